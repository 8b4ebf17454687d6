/**
 * The functions of a local Lambda platform: validates CreateFunction / UpdateFunctionCode /
 * UpdateFunctionConfiguration bodies as Lambda does (naming the field; the field checks are in lambda-fields.ts),
 * keeps `$LATEST` of each function (no published versions or aliases) and its reserved concurrency, and renders
 * FunctionConfiguration as Lambda's API does.
 *
 * States: a created function is `Pending` and an updated one `LastUpdateStatus: InProgress` for `settleMs` (0 by
 * default: `Active` / `Successful` at once), then `Active` / `Successful`, so that the SDK's waiters
 * (waitUntilFunctionActiveV2, waitUntilFunctionUpdatedV2) work. While a function is Pending, invoking it is a
 * ResourceConflictException, and while an update is in progress so is another update.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { unzipSync } from 'fflate';
import { LambdaError } from './lambda-errors.js';
import { architectures, description, environment, ephemeral, handler, int, object, rejectUnsupported, role, str, stringMap, type Json } from './lambda-fields.js';

/** Lambda's limits. */
export const LAMBDA_LIMITS = {
  memory: { min: 128, max: 10_240 },
  timeout: { min: 1, max: 900 },
  /** A direct upload's request (the zip, base64, in JSON). */
  uploadRequestBytes: 69_905_067,
  zippedBytes: 52_428_800,
  unzippedBytes: 262_144_000,
  /** The account's code storage. */
  codeStorageBytes: 80_530_636_800,
} as const;

export const SUPPORTED_RUNTIMES = ['nodejs20.x'] as const;

const NAME = /^[a-zA-Z0-9_-]{1,64}$/;

export interface StoredFunction {
  name: string;
  arn: string;
  runtime: string;
  role: string;
  handler: string;
  description: string;
  /** Seconds. */
  timeout: number;
  memorySize: number;
  /** Absent when the function has no Environment. */
  variables?: Record<string, string>;
  architectures: string[];
  ephemeralStorage: number;
  tags: Record<string, string>;
  zip: Buffer;
  codeSha256: string;
  /** Unique across the platform's life: keys the execution environments, so an update never reuses old ones. */
  revision: number;
  revisionId: string;
  lastModified: string;
  /** Epoch ms: Pending until then (after a create), InProgress until then (after an update). */
  pendingUntil: number;
  updatingUntil: number;
  reservedConcurrency?: number;
  /** Secret part of the code's download URL (GetFunction's Code.Location). */
  codeToken: string;
}

export interface FunctionStoreOptions {
  region: string;
  accountId: string;
  /** The platform's memory: the largest MemorySize a function may have here. */
  memoryMb: number;
  /** The account's concurrency (reserved concurrency comes out of it). */
  concurrency: number;
  settleMs?: number;
  codeStorageBytes?: number;
}

export class FunctionStore {
  private readonly functions = new Map<string, StoredFunction>();
  private revisions = 0;

  constructor(private readonly opts: FunctionStoreOptions) {}

  get region(): string {
    return this.opts.region;
  }

  arnOf(name: string): string {
    return `arn:aws:lambda:${this.opts.region}:${this.opts.accountId}:function:${name}`;
  }

  /**
   * The function a FunctionName names — a name, a partial ARN (ACCOUNT:function:NAME) or an ARN, each optionally
   * `:QUALIFIER` — or ResourceNotFoundException. Only `$LATEST` exists.
   */
  find(given: string, qualifier?: string): StoredFunction {
    const { name, qualifier: q } = this.parseName(given);
    const want = qualifier ?? q;
    const fn = this.functions.get(name);
    if (!fn || (want !== undefined && want !== '$LATEST')) throw LambdaError.notFound(want !== undefined ? `${this.arnOf(name)}:${want}` : this.arnOf(name));
    return fn;
  }

  /** The name in a FunctionName, and its qualifier if it has one. */
  parseName(given: string): { name: string; qualifier?: string } {
    const parts = given.split(':');
    let rest: string[];
    if (parts[0] === 'arn') {
      // arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]
      if (parts.length < 7 || parts.length > 8 || parts[2] !== 'lambda' || parts[5] !== 'function') throw LambdaError.notFound(given);
      if (parts[3] !== this.opts.region || parts[4] !== this.opts.accountId) throw LambdaError.notFound(given);
      rest = parts.slice(6);
    } else if (parts.length >= 3 && parts[1] === 'function') {
      if (parts[0] !== this.opts.accountId) throw LambdaError.notFound(given);
      rest = parts.slice(2);
    } else {
      rest = parts;
    }
    const [name, qualifier, extra] = rest;
    if (name === undefined || !NAME.test(name) || extra !== undefined || (qualifier !== undefined && !/^(\$LATEST|[a-zA-Z0-9_-]{1,128})$/.test(qualifier))) {
      throw LambdaError.outOfRange('functionName', given, 'Member must satisfy regular expression pattern: (arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\\d{1}:)?(\\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?');
    }
    return qualifier !== undefined ? { name, qualifier } : { name };
  }

  /** Sorted by name; `marker` is where the previous page ended. */
  list(marker: string | undefined, maxItems: number | undefined): { functions: StoredFunction[]; nextMarker?: string } {
    const max = maxItems ?? 50;
    if (!Number.isInteger(max) || max < 1 || max > 10_000) throw LambdaError.outOfRange('maxItems', max, 'Member must have value between 1 and 10000');
    let after = '';
    if (marker !== undefined && marker !== '') {
      after = Buffer.from(marker, 'base64url').toString('utf8');
      if (!after.startsWith('after:')) throw LambdaError.invalid(`Invalid marker: ${marker}`);
      after = after.slice('after:'.length);
    }
    const all = [...this.functions.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).filter((f) => f.name > after);
    const page = all.slice(0, max);
    return all.length > max ? { functions: page, nextMarker: Buffer.from(`after:${page.at(-1)!.name}`).toString('base64url') } : { functions: page };
  }

  get count(): number {
    return this.functions.size;
  }

  get totalCodeSize(): number {
    let n = 0;
    for (const f of this.functions.values()) n += f.zip.length;
    return n;
  }

  get reservedTotal(): number {
    let n = 0;
    for (const f of this.functions.values()) n += f.reservedConcurrency ?? 0;
    return n;
  }

  get accountConcurrency(): number {
    return this.opts.concurrency;
  }

  create(body: unknown): StoredFunction {
    const b = object(body);
    const given = str(b, 'FunctionName', true)!;
    const { name, qualifier } = this.parseName(given);
    if (qualifier !== undefined) throw LambdaError.invalid(`FunctionName ${given}: a new function cannot have a qualifier`);
    if (this.functions.has(name)) throw LambdaError.conflict(`Function already exist: ${name}`);
    rejectUnsupported(b);
    const packageType = str(b, 'PackageType') ?? 'Zip';
    if (packageType !== 'Zip') throw LambdaError.invalid(`PackageType ${packageType} is not supported by this local Lambda platform: it runs zip packages (PackageType Zip)`);
    const code = b.Code;
    if (code === undefined) throw LambdaError.invalid('Code is required: the deployment package as Code.ZipFile');
    const zip = this.checkZip(object(code, 'Code'), 0);
    const now = Date.now();
    const fn: StoredFunction = {
      name,
      arn: this.arnOf(name),
      runtime: this.runtime(str(b, 'Runtime', true)!),
      role: role(str(b, 'Role', true)!),
      handler: handler(str(b, 'Handler', true)!),
      description: description(str(b, 'Description') ?? ''),
      timeout: this.timeout(int(b, 'Timeout') ?? 3),
      memorySize: this.memory(int(b, 'MemorySize') ?? 128),
      architectures: architectures(b.Architectures),
      ephemeralStorage: ephemeral(b.EphemeralStorage),
      tags: stringMap(b.Tags, 'Tags'),
      zip,
      codeSha256: sha256(zip),
      revision: ++this.revisions,
      revisionId: randomUUID(),
      lastModified: lambdaDate(now),
      pendingUntil: now + (this.opts.settleMs ?? 0),
      updatingUntil: now,
      codeToken: randomBytes(16).toString('hex'),
    };
    const variables = environment(b.Environment);
    if (variables !== undefined) fn.variables = variables;
    this.functions.set(name, fn);
    return fn;
  }

  /** UpdateFunctionCode; with DryRun the checked, would-be function is returned and nothing changes. */
  updateCode(given: string, body: unknown): StoredFunction {
    const fn = this.find(given);
    const b = object(body);
    this.checkUpdatable(fn, b);
    if (b.Publish === true) throw LambdaError.invalid('Publish: this local Lambda platform keeps only $LATEST (no published versions); update without Publish');
    if (b.ImageUri !== undefined) throw LambdaError.invalid('ImageUri: this local Lambda platform runs zip packages only (ZipFile)');
    const zip = this.checkZip(b, fn.zip.length);
    const next: StoredFunction = { ...fn, zip, codeSha256: sha256(zip), codeToken: randomBytes(16).toString('hex'), ...(b.Architectures !== undefined ? { architectures: architectures(b.Architectures) } : {}) };
    return b.DryRun === true ? next : this.updated(next);
  }

  updateConfiguration(given: string, body: unknown): StoredFunction {
    const fn = this.find(given);
    const b = object(body);
    this.checkUpdatable(fn, b);
    rejectUnsupported(b);
    const next: StoredFunction = { ...fn };
    const r = str(b, 'Role');
    if (r !== undefined) next.role = role(r);
    const h = str(b, 'Handler');
    if (h !== undefined) next.handler = handler(h);
    const d = str(b, 'Description');
    if (d !== undefined) next.description = description(d);
    const rt = str(b, 'Runtime');
    if (rt !== undefined) next.runtime = this.runtime(rt);
    const t = int(b, 'Timeout');
    if (t !== undefined) next.timeout = this.timeout(t);
    const m = int(b, 'MemorySize');
    if (m !== undefined) next.memorySize = this.memory(m);
    if (b.EphemeralStorage !== undefined) next.ephemeralStorage = ephemeral(b.EphemeralStorage);
    if (b.Environment !== undefined) {
      const v = environment(b.Environment);
      if (v === undefined) delete next.variables;
      else next.variables = v;
    }
    return this.updated(next);
  }

  delete(given: string, qualifier?: string): StoredFunction {
    const { name, qualifier: q } = this.parseName(given);
    const want = qualifier ?? q;
    if (want === '$LATEST') throw LambdaError.invalid('$LATEST version cannot be deleted without deleting the function.');
    const fn = this.find(name, want);
    this.functions.delete(fn.name);
    return fn;
  }

  putConcurrency(given: string, body: unknown): StoredFunction {
    const fn = this.find(given);
    const n = int(object(body), 'ReservedConcurrentExecutions');
    if (n === undefined) throw LambdaError.invalid('ReservedConcurrentExecutions is required');
    if (n < 0) throw LambdaError.outOfRange('reservedConcurrentExecutions', n, 'Member must have value greater than or equal to 0');
    const others = this.reservedTotal - (fn.reservedConcurrency ?? 0);
    if (others + n > this.opts.concurrency) {
      throw LambdaError.invalid(`Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [0].`);
    }
    fn.reservedConcurrency = n;
    return fn;
  }

  deleteConcurrency(given: string): void {
    delete this.find(given).reservedConcurrency;
  }

  /** The code's bytes, for GetFunction's Code.Location. */
  codeByToken(token: string): StoredFunction | undefined {
    for (const f of this.functions.values()) if (f.codeToken === token) return f;
    return undefined;
  }

  private updated(next: StoredFunction): StoredFunction {
    const now = Date.now();
    next.revision = ++this.revisions;
    next.revisionId = randomUUID();
    next.lastModified = lambdaDate(now);
    next.updatingUntil = now + (this.opts.settleMs ?? 0);
    this.functions.set(next.name, next);
    return next;
  }

  private checkUpdatable(fn: StoredFunction, b: Json): void {
    const now = Date.now();
    if (now < fn.pendingUntil || now < fn.updatingUntil) {
      throw LambdaError.conflict(`The operation cannot be performed at this time. An update is in progress for resource: ${fn.arn}`);
    }
    const rev = str(b, 'RevisionId');
    if (rev !== undefined && rev !== fn.revisionId) throw LambdaError.preconditionFailed();
  }

  private checkZip(b: Json, replaced: number): Buffer {
    if (b.S3Bucket !== undefined || b.S3Key !== undefined || b.ImageUri !== undefined) {
      throw LambdaError.invalid('Code: S3 and container image locations are not supported by this local Lambda platform; upload the package as ZipFile');
    }
    const text = str(b, 'ZipFile', true)!;
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) throw LambdaError.badContent('Could not parse request body into json: ZipFile is not valid base64');
    const zip = Buffer.from(text, 'base64');
    if (zip.length > LAMBDA_LIMITS.zippedBytes) throw LambdaError.tooLarge(`Zipped size must be smaller than ${LAMBDA_LIMITS.zippedBytes} bytes`);
    if (zip.length < 22 || zip.readUInt32LE(0) !== 0x04034b50) throw LambdaError.invalid('Could not unzip uploaded file. Please check your file, then try to upload again.');
    let unzipped = 0;
    try {
      // Sizes from the archive's directory, nothing extracted: a package is unpacked only into an environment.
      unzipSync(zip, {
        filter: (f) => {
          unzipped += f.originalSize;
          return false;
        },
      });
    } catch {
      throw LambdaError.invalid('Could not unzip uploaded file. Please check your file, then try to upload again.');
    }
    if (unzipped > LAMBDA_LIMITS.unzippedBytes) throw LambdaError.invalid(`Unzipped size must be smaller than ${LAMBDA_LIMITS.unzippedBytes} bytes`);
    const storage = this.opts.codeStorageBytes ?? LAMBDA_LIMITS.codeStorageBytes;
    if (this.totalCodeSize - replaced + zip.length > storage) throw new LambdaError(400, 'CodeStorageExceededException', 'Code storage limit exceeded.');
    return zip;
  }

  private runtime(r: string): string {
    if ((SUPPORTED_RUNTIMES as readonly string[]).includes(r)) return r;
    throw LambdaError.invalid(`The runtime parameter of ${r} is not supported by this local Lambda platform; it runs ${SUPPORTED_RUNTIMES.join(', ')}.`);
  }

  private memory(m: number): number {
    const { min, max } = LAMBDA_LIMITS.memory;
    if (m < min) throw LambdaError.outOfRange('memorySize', m, `Member must have value greater than or equal to ${min}`);
    if (m > max) throw LambdaError.outOfRange('memorySize', m, `Member must have value less than or equal to ${max}`);
    if (m > this.opts.memoryMb) throw LambdaError.invalid(`MemorySize ${m} MB is more than the ${this.opts.memoryMb} MB of this local Lambda platform`);
    return m;
  }

  private timeout(t: number): number {
    const { min, max } = LAMBDA_LIMITS.timeout;
    if (t < min) throw LambdaError.outOfRange('timeout', t, `Member must have value greater than or equal to ${min}`);
    if (t > max) throw LambdaError.outOfRange('timeout', t, `Member must have value less than or equal to ${max}`);
    return t;
  }
}

// ---- rendering -------------------------------------------------------------------------------------------------

/** FunctionConfiguration. ListFunctions leaves out the state fields, as Lambda does (`brief`). */
export function configurationJson(fn: StoredFunction, region: string, brief = false): Json {
  const c: Json = {
    FunctionName: fn.name,
    FunctionArn: fn.arn,
    Runtime: fn.runtime,
    Role: fn.role,
    Handler: fn.handler,
    CodeSize: fn.zip.length,
    Description: fn.description,
    Timeout: fn.timeout,
    MemorySize: fn.memorySize,
    LastModified: fn.lastModified,
    CodeSha256: fn.codeSha256,
    Version: '$LATEST',
  };
  if (fn.variables !== undefined) c.Environment = { Variables: { ...fn.variables } };
  Object.assign(c, {
    TracingConfig: { Mode: 'PassThrough' },
    RevisionId: fn.revisionId,
    PackageType: 'Zip',
    Architectures: [...fn.architectures],
    EphemeralStorage: { Size: fn.ephemeralStorage },
    SnapStart: { ApplyOn: 'None', OptimizationStatus: 'Off' },
    LoggingConfig: { LogFormat: 'Text', LogGroup: `/aws/lambda/${fn.name}` },
  });
  if (brief) return c;
  const now = Date.now();
  if (now < fn.pendingUntil) Object.assign(c, { State: 'Pending', StateReason: 'The function is being created.', StateReasonCode: 'Creating' });
  else c.State = 'Active';
  if (now < fn.updatingUntil) Object.assign(c, { LastUpdateStatus: 'InProgress', LastUpdateStatusReason: 'The function is being updated.', LastUpdateStatusReasonCode: 'Updating' });
  else c.LastUpdateStatus = 'Successful';
  c.RuntimeVersionConfig = { RuntimeVersionArn: `arn:aws:lambda:${region}::runtime:${createHash('sha256').update(`fedkeeper ${fn.runtime} ${process.version}`).digest('hex')}` };
  return c;
}

export function isPending(fn: StoredFunction): boolean {
  return Date.now() < fn.pendingUntil;
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('base64');
}

/** Lambda's LastModified: 2019-10-26T00:56:32.157+0000. */
function lambdaDate(t: number): string {
  return new Date(t).toISOString().replace('Z', '+0000');
}
