/**
 * The actions of one namespace: takes `PUT …/actions/NAME` the way an Apache OpenWhisk controller does
 * (core/controller/…/Actions.scala: create/update, WhiskAction.scala, Exec.scala, the Limit classes) and renders the
 * records the API answers with.
 *
 *  - The body is read as a WhiskActionPut: exec (kind, code, image, main; `binary` is decided here), parameters,
 *    limits, version, publish, annotations, delAnnotations; unknown fields are ignored. What cannot be read is a 400
 *    "The request content was malformed:\n…" with the controller's reason.
 *  - The limits the body asks for are checked against the namespace's ranges (the cluster profile's, else stock:
 *    memory 128–512 MB, timeout 100–300,000 ms, concurrency 1–1, logs 0–10 MB): 400 with the controller's message,
 *    e.g. "memory size 1024 MB exceeds allowed threshold of 512 MB". Limits left out take the defaults on create
 *    (timeout 60,000, memory 256, logs 10, concurrency 1) and the action's own on update.
 *  - Kinds: `nodejs:20` (`nodejs:default`), `blackbox`. Any other runtime is one this platform's manifest does not
 *    have (400, the controller's "The specified runtime … is not supported by this platform"); `sequence`, which
 *    every controller parses, is refused as a controller whose operator allows only these kinds refuses it (403,
 *    "… not authorized to access actions of kind 'sequence'.").
 *  - An existing action without `overwrite=true`: 409. Create: version 0.0.1 (or the body's), annotations +
 *    `provide-api-key: false` (unless given) + `exec: KIND`. Update: the body's fields over the action's, version
 *    bumped (0.0.1 → 0.0.2) unless the body gives one, annotations merged (after `delAnnotations`), `exec` set.
 */
import { WhiskHttpError, WhiskMessages } from './errors.js';
import { OPENWHISK_LIMIT_RANGES, type ActionLimitRanges } from './profiles.js';
import { ActionPutSchema, describeIssues } from './schemas.js';

export interface KeyValue {
  key: string;
  value: unknown;
}

export interface StoredLimits {
  timeout: number;
  memory: number;
  logs: number;
  concurrency: number;
  /** Max containers of the action; only when the action was given one. */
  instances?: number;
}

export interface StoredExec {
  /** Normalised: `nodejs:default` is stored as `nodejs:20`. */
  kind: string;
  code?: string;
  binary: boolean;
  main?: string;
  image?: string;
}

export interface StoredAction {
  namespace: string;
  name: string;
  /** Semantic version: the body's, else 0.0.1 on create and a patch bump on every update, as OpenWhisk does. */
  version: string;
  /** Unique across the server's life (a deleted and re-created action restarts at 0.0.1): keys the containers. */
  revision: string;
  publish: boolean;
  exec: StoredExec;
  parameters: KeyValue[];
  annotations: KeyValue[];
  limits: StoredLimits;
  updated: number;
}

/** OpenWhisk's defaults for limits a new action leaves out (application.conf `std`). */
export const DEFAULT_LIMITS: Readonly<StoredLimits> = Object.freeze({ timeout: 60_000, memory: 256, logs: 10, concurrency: 1 });
/** The smallest memory a cluster can have (one action of the smallest stock memory limit). */
export const MIN_MEMORY_MB = OPENWHISK_LIMIT_RANGES.memory.min;

/** The runtimes of this platform's manifest, in the order the controller lists them (manifest, sequence, blackbox). */
export const RUNTIMES = ['nodejs:20', 'sequence', 'blackbox'] as const;
/** Kinds this cluster runs; `nodejs:default` means `nodejs:20`. */
const DEFAULT_RUNTIMES: Readonly<Record<string, string>> = { 'nodejs:20': 'nodejs:20', 'nodejs:default': 'nodejs:20' };
/** OpenWhisk's entity-name rule (EntityName.REGEX), 1 … 256 characters. */
const NAME_PATTERN = /^(?:[\w]|[\w][\w@ .&-]{0,254}[\w@.&-])$/;
export const MAX_NAME_LENGTH = 256;
const BASE64 = /^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)$/;

/** A parsed PUT body: what the body gave, nothing filled in yet. */
interface ActionPut {
  exec?: StoredExec;
  /** A sequence's components (the exec is then refused by kind). */
  sequence?: boolean;
  parameters?: KeyValue[];
  limits?: Partial<StoredLimits>;
  version?: string;
  publish?: boolean;
  annotations?: KeyValue[];
  delAnnotations?: string[];
}

export interface NamespaceLimits {
  ranges: ActionLimitRanges;
  /** The namespace's concurrent invocations, when throttled: no action's `instances` may exceed it. */
  concurrentInvocations?: number;
}

export class ActionStore {
  private readonly actions = new Map<string, StoredAction>();
  private revisions = 0;

  constructor(
    readonly namespace: string,
    readonly limits: NamespaceLimits = { ranges: OPENWHISK_LIMIT_RANGES },
  ) {}

  get(name: string): StoredAction | undefined {
    return this.actions.get(name);
  }

  /** Newest update first, as `GET …/actions` lists them. */
  list(): StoredAction[] {
    return [...this.actions.values()].sort((a, b) => b.updated - a.updated || a.name.localeCompare(b.name));
  }

  delete(name: string): StoredAction {
    const a = this.actions.get(name);
    if (!a) throw WhiskHttpError.notFound();
    this.actions.delete(name);
    return a;
  }

  /**
   * Create, or update when `overwrite` is set, in the controller's order: the body is read (400 malformed), its
   * limits checked (400), its kind entitled (403), then 409 if the action exists without overwrite, and a create
   * without exec is a 400 "exec undefined". The name was checked by the route (checkEntityName).
   */
  put(name: string, body: unknown, overwrite: boolean): StoredAction {
    const put = parsePut(body);
    this.checkLimits(put.limits);
    if (put.sequence) throw new WhiskHttpError(403, WhiskMessages.forbiddenKind('sequence'));
    const existing = this.actions.get(name);
    if (existing && !overwrite) throw WhiskHttpError.conflict();
    const instances = put.limits?.instances;
    if (instances !== undefined && this.limits.concurrentInvocations !== undefined && instances > this.limits.concurrentInvocations) {
      throw WhiskHttpError.badRequest(WhiskMessages.instancesExceedNamespace(this.limits.concurrentInvocations));
    }
    const action = existing ? update(existing, put) : create(this.namespace, name, put);
    action.revision = String(++this.revisions);
    this.actions.set(name, action);
    return action;
  }

  /** The namespace's ranges, on the limits the body gives (memory, timeout, logs, concurrency; max first). */
  private checkLimits(l: Partial<StoredLimits> | undefined): void {
    if (!l) return;
    const r = this.limits.ranges;
    const out = (tooBig: boolean, message: string) => {
      if (tooBig) throw WhiskHttpError.badRequest(message);
    };
    if (l.memory !== undefined) {
      out(l.memory > r.memory.max, `memory size ${l.memory} MB exceeds allowed threshold of ${r.memory.max} MB`);
      out(l.memory < r.memory.min, `memory size ${l.memory} MB below allowed threshold of ${r.memory.min} MB`);
    }
    if (l.timeout !== undefined) {
      out(l.timeout > r.timeout.max, `duration ${l.timeout} milliseconds exceeds allowed threshold of ${r.timeout.max} milliseconds`);
      out(l.timeout < r.timeout.min, `duration ${l.timeout} milliseconds below allowed threshold of ${r.timeout.min} milliseconds`);
    }
    if (l.logs !== undefined) {
      out(l.logs > r.logs.max, `log size ${l.logs} MB exceeds allowed threshold of ${r.logs.max} MB`);
      out(l.logs < r.logs.min, `log size ${l.logs} MB below allowed threshold of ${r.logs.min} MB`);
    }
    if (l.concurrency !== undefined) {
      out(l.concurrency > r.concurrency.max, `concurrency ${l.concurrency} exceeds allowed threshold of ${r.concurrency.max}`);
      out(l.concurrency < r.concurrency.min, `concurrency ${l.concurrency} below allowed threshold of ${r.concurrency.min}`);
    }
  }
}

/** The route's check of an entity name (any action operation): 400 with the controller's text. */
export function checkEntityName(name: string): void {
  if (name.length > MAX_NAME_LENGTH) throw WhiskHttpError.badRequest(WhiskMessages.entityNameTooLong(name.length, MAX_NAME_LENGTH));
  if (!NAME_PATTERN.test(name)) throw WhiskHttpError.badRequest(WhiskMessages.entityNameIllegal);
}

function create(namespace: string, name: string, put: ActionPut): StoredAction {
  if (!put.exec) throw WhiskHttpError.badRequest(WhiskMessages.execUndefined);
  const given = put.annotations ?? [];
  const annotations = given.some((a) => a.key === 'provide-api-key') ? given : merge(given, [{ key: 'provide-api-key', value: false }]);
  const l = put.limits ?? {};
  const limits: StoredLimits = {
    timeout: l.timeout ?? DEFAULT_LIMITS.timeout,
    memory: l.memory ?? DEFAULT_LIMITS.memory,
    logs: l.logs ?? DEFAULT_LIMITS.logs,
    concurrency: l.concurrency ?? DEFAULT_LIMITS.concurrency,
    ...(l.instances !== undefined ? { instances: l.instances } : {}),
  };
  return {
    namespace,
    name,
    version: put.version ?? '0.0.1',
    revision: '',
    publish: put.publish ?? false,
    exec: put.exec,
    parameters: put.parameters ?? [],
    annotations: merge(annotations, [{ key: 'exec', value: put.exec.kind }]),
    limits,
    updated: Date.now(),
  };
}

function update(a: StoredAction, put: ActionPut): StoredAction {
  const exec = put.exec ?? a.exec;
  const l = put.limits;
  const limits: StoredLimits = l
    ? {
        timeout: l.timeout ?? a.limits.timeout,
        memory: l.memory ?? a.limits.memory,
        logs: l.logs ?? a.limits.logs,
        concurrency: l.concurrency ?? a.limits.concurrency,
        ...((l.instances ?? a.limits.instances) !== undefined ? { instances: (l.instances ?? a.limits.instances)! } : {}),
      }
    : { ...a.limits };
  const deleted = new Set(put.delAnnotations ?? []);
  const kept = put.delAnnotations ? a.annotations.filter((x) => !deleted.has(x.key)) : a.annotations;
  return {
    namespace: a.namespace,
    name: a.name,
    version: put.version ?? bumpPatch(a.version),
    revision: '',
    publish: put.publish ?? a.publish,
    exec,
    parameters: (put.parameters ?? a.parameters).map((p) => ({ key: p.key, value: p.value })),
    annotations: merge(merge(kept, put.annotations ?? []), [{ key: 'exec', value: exec.kind }]),
    limits,
    updated: Date.now(),
  };
}

/** The JSON of an action, as `PUT`/`GET`/`DELETE …/actions/NAME` answer (WhiskAction's fields; code unless asked not to). */
export function actionJson(a: StoredAction, withCode: boolean): Record<string, unknown> {
  const exec: Record<string, unknown> = { kind: a.exec.kind };
  if (a.exec.image !== undefined) exec.image = a.exec.image;
  if (withCode && a.exec.code !== undefined) exec.code = a.exec.code;
  exec.binary = a.exec.binary;
  if (a.exec.main !== undefined) exec.main = a.exec.main;
  return {
    namespace: a.namespace,
    name: a.name,
    exec,
    parameters: a.parameters,
    limits: limitsJson(a.limits),
    version: a.version,
    publish: a.publish,
    annotations: a.annotations,
    updated: a.updated,
  };
}

/** An element of `GET …/actions` (the controller's list view: exec carries only `binary`). */
export function actionMetaJson(a: StoredAction): Record<string, unknown> {
  return {
    namespace: a.namespace,
    name: a.name,
    version: a.version,
    publish: a.publish,
    annotations: a.annotations,
    updated: a.updated,
    limits: limitsJson(a.limits),
    exec: { binary: a.exec.binary },
  };
}

function limitsJson(l: StoredLimits): Record<string, number> {
  return { timeout: l.timeout, memory: l.memory, logs: l.logs, concurrency: l.concurrency, ...(l.instances !== undefined ? { instances: l.instances } : {}) };
}

// ---- reading a PUT body, as the controller's JSON readers do ---------------------------------------------------

function parsePut(body: unknown): ActionPut {
  if (body === undefined) throw WhiskHttpError.badRequest(WhiskMessages.entityExpected);
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw WhiskHttpError.malformed('Object expected');
  const b = body as Record<string, unknown>;
  const put: ActionPut = {};
  if (b.exec !== undefined && b.exec !== null) {
    const e = readExec(b.exec);
    if (e === 'sequence') put.sequence = true;
    else put.exec = e;
  }
  if (b.limits !== undefined && b.limits !== null) put.limits = readLimits(b.limits);
  // The other fields are plain JSON types: the swagger's schema reads them (unknown fields are dropped).
  const { exec: _e, limits: _l, ...rest } = b;
  const parsed = ActionPutSchema.omit({ exec: true, limits: true }).safeParse(withoutNulls(rest));
  if (!parsed.success) throw WhiskHttpError.malformed(describeIssues(parsed.error));
  const p = parsed.data;
  if (p.version !== undefined) put.version = semVer(p.version);
  if (p.publish !== undefined) put.publish = p.publish;
  if (p.parameters !== undefined) put.parameters = p.parameters.map((kv) => ({ key: kv.key, value: kv.value }));
  if (p.annotations !== undefined) put.annotations = p.annotations.map((kv) => ({ key: kv.key, value: kv.value }));
  if (p.delAnnotations !== undefined) put.delAnnotations = p.delAnnotations;
  return put;
}

/** Exec.serdes.read: the kind decides what else must be there. */
function readExec(v: unknown): StoredExec | 'sequence' {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw WhiskHttpError.malformed('JSON object expected');
  const o = v as Record<string, unknown>;
  if (typeof o.kind !== 'string') throw WhiskHttpError.malformed("'kind' must be a string defined in 'exec'");
  const kind = o.kind.trim().toLowerCase();
  const main = (): string | undefined => {
    if (o.main === undefined) return undefined;
    if (typeof o.main !== 'string') throw WhiskHttpError.malformed(`if defined, 'main' be a string in 'exec' for '${kind}' actions`);
    return o.main;
  };
  if (kind === 'sequence') {
    if (o.components === undefined) throw WhiskHttpError.malformed("'components' must be defined for sequence kind");
    if (!Array.isArray(o.components)) throw WhiskHttpError.malformed("'components' must be an array");
    return 'sequence';
  }
  if (kind === 'blackbox') {
    if (typeof o.image !== 'string') throw WhiskHttpError.malformed("'image' must be a string defined in 'exec' for 'blackbox' actions");
    const code = typeof o.code === 'string' && o.code.trim() !== '' ? o.code : undefined;
    const exec: StoredExec = { kind, image: o.image, binary: code !== undefined && isBinaryCode(code) };
    if (code !== undefined) exec.code = code;
    const m = main();
    if (m !== undefined) exec.main = m;
    return exec;
  }
  const runtime = DEFAULT_RUNTIMES[kind];
  if (!runtime) throw WhiskHttpError.malformed(WhiskMessages.invalidRuntime(kind, RUNTIMES));
  if (typeof o.code !== 'string') throw WhiskHttpError.malformed(`'code' must be a string or attachment object defined in 'exec' for '${kind}' actions`);
  const exec: StoredExec = { kind: runtime, code: o.code, binary: isBinaryCode(o.code) };
  const m = main();
  if (m !== undefined) exec.main = m;
  return exec;
}

/** ActionLimitsOption: each limit a whole number (the Limit classes' readers), ranges checked afterwards. */
function readLimits(v: unknown): Partial<StoredLimits> {
  if (typeof v !== 'object' || Array.isArray(v)) throw WhiskHttpError.malformed("Object expected in field 'timeout'");
  const o = v as Record<string, unknown>;
  const out: Partial<StoredLimits> = {};
  const fields = [
    ['timeout', 'time limit'],
    ['memory', 'memory limit'],
    ['logs', 'log limit'],
    ['concurrency', 'intra concurrency limit'],
    ['instances', 'instance concurrency limit'],
  ] as const;
  for (const [key, what] of fields) {
    const x = o[key];
    if (x === undefined || x === null) continue;
    if (typeof x !== 'number' || !Number.isFinite(x)) throw WhiskHttpError.malformed(`${key === 'concurrency' ? 'concurrency limit' : what} malformed`);
    if (!Number.isInteger(x)) throw WhiskHttpError.malformed(`${what} must be whole number`);
    if (key === 'instances' && x < 0) throw WhiskHttpError.malformed('Action container concurrency must be greater than or equal to 0.');
    out[key] = x;
  }
  return out;
}

/** Exec.isBinaryCode: the trimmed code is base64 (a zip archive sent as `wsk action create x.zip` sends it). */
export function isBinaryCode(code: string): boolean {
  const t = code.trim();
  return t.length > 0 && t.length % 4 === 0 && BASE64.test(t);
}

function withoutNulls(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== null));
}

/** Parameters `++`: the second list's keys replace the first's (in place), new keys are appended. */
function merge(base: readonly KeyValue[], over: readonly KeyValue[]): KeyValue[] {
  const out = base.map((kv) => ({ key: kv.key, value: kv.value }));
  for (const kv of over) {
    const i = out.findIndex((x) => x.key === kv.key);
    if (i >= 0) out[i] = { key: kv.key, value: kv.value };
    else out.push({ key: kv.key, value: kv.value });
  }
  return out;
}

/** SemVer(string): up to three numbers, the missing ones 0 ("1.2" is 1.2.0). */
function semVer(v: string): string {
  const parts = v.split('.').map(Number);
  return [parts[0] ?? 0, parts[1] ?? 0, parts[2] ?? 0].join('.');
}

function bumpPatch(v: string): string {
  const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(v);
  return m ? `${m[1]}.${m[2]}.${Number(m[3]) + 1}` : '0.0.1';
}
