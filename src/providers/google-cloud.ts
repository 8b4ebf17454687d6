/**
 * Google Cloud Functions (2nd gen), cloud mode: deploys through Google's own client library
 * (`@google-cloud/functions` FunctionServiceClient over REST: generateUploadUrl → PUT the zipped source →
 * createFunction / updateFunction → wait for the operation), removes with deleteFunction, lists with
 * listFunctions, and invokes the function's HTTPS URL with an identity token, tracking each call as an
 * activation (google-invoke). The API endpoint is configurable (`api_endpoint`) so that the whole path can run
 * against a local server that speaks the same REST calls.
 */
import { readFile } from 'node:fs/promises';
import type { protos, v2 } from '@google-cloud/functions';
import { checkedUrl, identityTokenSource, oneLine, StaticTokenAuthClient, type IdentityTokenSource } from './google-cloud-auth.js';
import { functionEnv, functionIdOf, timeoutSecondsOf, type GoogleCloudSettings } from './google-config.js';
import { ENTRY_POINT, gcfSourceFiles, RUNTIME, zipSource } from './google-entry.js';
import { ActivationBook, activationHeaders, FunctionCaller, type GoogleActivation } from './google-invoke.js';
import type { FunctionSource } from './google-source.js';
import { ProviderError, type FunctionSpec, type Provider } from './types.js';

type CloudFunction = protos.google.cloud.functions.v2.IFunction;
type Client = v2.FunctionServiceClient;

export interface GoogleCloudProviderOptions {
  cluster: string;
  settings: GoogleCloudSettings;
  /** The OpenWhisk-style `exports.main = async (params) => …` source of a function, by name. */
  source: FunctionSource;
  /** An auth client for the API (a google-auth-library AuthClient); overrides `credentials` and `access_token`. */
  authClient?: unknown;
  /** Identity tokens for invoking (audience = the function's URL); overrides `identity_token`. */
  idToken?: IdentityTokenSource;
}

/** Labels mark what FedKeeper deployed, and keep the original function name (ids cannot hold `_`). */
const MANAGED_LABEL = 'managed-by';
const NAME_LABEL = 'fedkeeper-function';
/** gRPC codes as the client library reports them (also over REST). */
const NOT_FOUND = 5;
const PERMISSION_DENIED = 7;
const UNAUTHENTICATED = 16;
/**
 * Google's front end answers 504 itself at the function's timeout; the client waits a little longer so that
 * network time and a cold start do not turn a function that finished in time into a client-side timeout.
 */
const DEADLINE_GRACE_MS = 10_000;

/**
 * Where the upload went, as the build must name it. The decoded answer carries proto defaults (generation '0',
 * sourceUploadUrl '') that Google never sent; only bucket, object and a real generation are passed back.
 */
function uploadedObject(s: protos.google.cloud.functions.v2.IStorageSource): protos.google.cloud.functions.v2.IStorageSource {
  const out: protos.google.cloud.functions.v2.IStorageSource = { bucket: s.bucket ?? null, object: s.object ?? null };
  if (s.generation && String(s.generation) !== '0') out.generation = s.generation;
  return out;
}

interface Deployed {
  url: URL;
  timeoutMs: number;
}

export class GoogleCloudProvider implements Provider {
  readonly platform = 'google';
  readonly cluster: string;
  private readonly parent: string;
  private client: Promise<Client> | undefined;
  private readonly book = new ActivationBook();
  private readonly caller = new FunctionCaller();
  private readonly deployed = new Map<string, Deployed>();
  private readonly idToken: IdentityTokenSource;

  constructor(private readonly opts: GoogleCloudProviderOptions) {
    this.cluster = opts.cluster;
    this.parent = `projects/${opts.settings.projectId}/locations/${opts.settings.region}`;
    this.idToken = identityTokenSource(opts.cluster, opts.idToken, opts.settings.identityToken, async () => (await this.api()).auth);
  }

  private fail(message: string, exitCode: 1 | 2 = 1): ProviderError {
    return new ProviderError(`google cluster ${this.cluster}: ${message}`, exitCode);
  }

  /** The client library is loaded on first use: local clusters and other platforms never pay for it. */
  private api(): Promise<Client> {
    this.client ??= (async () => {
      const { v2: api } = await import('@google-cloud/functions');
      const s = this.opts.settings;
      const o: Record<string, unknown> = { fallback: true, projectId: s.projectId };
      if (s.apiEndpoint) Object.assign(o, { apiEndpoint: s.apiEndpoint.host, port: s.apiEndpoint.port, protocol: s.apiEndpoint.protocol });
      if (this.opts.authClient) o.authClient = this.opts.authClient;
      else if (s.accessToken) o.authClient = new StaticTokenAuthClient(s.accessToken);
      else if (typeof s.credentials === 'string') o.keyFilename = s.credentials;
      else if (s.credentials) o.credentials = s.credentials;
      return new api.FunctionServiceClient(o as ConstructorParameters<typeof api.FunctionServiceClient>[0]);
    })();
    return this.client;
  }

  /** Runs one API call; refused credentials become exit code 2 with one line naming the cluster. */
  private async call<T>(what: string, run: (c: Client) => Promise<T>): Promise<T> {
    const client = await this.api();
    try {
      return await run(client);
    } catch (e) {
      throw this.apiError(what, e);
    }
  }

  private apiError(what: string, e: unknown): ProviderError {
    if (e instanceof ProviderError) return e;
    const err = e as { code?: unknown; httpStatusCode?: unknown; status?: unknown; response?: { status?: unknown }; message?: unknown };
    const message = oneLine(String(err.message ?? e));
    // google-gax reports an HTTP status as `httpStatusCode`; an error of the auth client's fetch (gaxios-style:
    // `status`, `response.status`) reaches us unchanged with google-gax 5.
    const http = [err.httpStatusCode, err.status, err.response?.status].find((v): v is number => typeof v === 'number');
    if (err.code === UNAUTHENTICATED || err.code === PERMISSION_DENIED || http === 401 || http === 403) {
      const kind = err.code === PERMISSION_DENIED || http === 403 ? 'permission denied' : 'credentials refused';
      return this.fail(`${what}: ${kind} by the Cloud Functions API (${message}); check credentials and project_id`, 2);
    }
    if (/Could not load the default credentials|ENOENT|invalid_grant|private key/i.test(message)) {
      return this.fail(`${what}: cannot use the credentials (${message}); check credentials`, 2);
    }
    return this.fail(`${what} failed: ${message}`);
  }

  private fullName(id: string): string {
    return `${this.parent}/functions/${id}`;
  }

  private async getFunction(id: string): Promise<CloudFunction | undefined> {
    const client = await this.api();
    try {
      return (await client.getFunction({ name: this.fullName(id) }))[0];
    } catch (e) {
      if ((e as { code?: unknown }).code === NOT_FOUND) return undefined;
      throw this.apiError(`looking up function ${id}`, e);
    }
  }

  private remember(name: string, fn: CloudFunction): Deployed {
    const uri = fn.serviceConfig?.uri;
    if (!uri) throw this.fail(`function ${name} has no URL (is it an HTTP function that finished deploying?)`);
    const d = { url: checkedUrl(this.cluster, `the URL of function ${name}`, uri), timeoutMs: (Number(fn.serviceConfig?.timeoutSeconds) || 60) * 1000 };
    this.deployed.set(name, d);
    return d;
  }

  private async uploadSource(uploadUrl: string, zip: Uint8Array): Promise<void> {
    const url = checkedUrl(this.cluster, 'the source upload URL', uploadUrl);
    let res: Response;
    try {
      // The signed URL expects exactly this content type (`gcloud functions deploy` sends the same).
      res = await fetch(url, { method: 'PUT', headers: { 'content-type': 'application/zip' }, body: zip });
    } catch (e) {
      throw this.fail(`uploading the source failed: ${oneLine((e as Error).message)}`);
    }
    if (!res.ok) throw this.fail(`uploading the source failed: HTTP ${res.status} ${oneLine(await res.text())}`);
  }

  private functionResource(spec: FunctionSpec, id: string, storageSource: protos.google.cloud.functions.v2.IStorageSource): CloudFunction {
    const s = spec.settings;
    const serviceConfig: protos.google.cloud.functions.v2.IServiceConfig = {
      availableMemory: `${Math.round(spec.memoryMb)}M`,
      timeoutSeconds: timeoutSecondsOf(spec.timeoutMs),
      environmentVariables: functionEnv(this.cluster, spec.name, s),
    };
    if (typeof s.max_instances === 'number') serviceConfig.maxInstanceCount = s.max_instances;
    if (typeof s.min_instances === 'number') serviceConfig.minInstanceCount = s.min_instances;
    if (typeof s.concurrency === 'number') serviceConfig.maxInstanceRequestConcurrency = s.concurrency;
    return {
      name: this.fullName(id),
      labels: { [MANAGED_LABEL]: 'fedkeeper', [NAME_LABEL]: spec.name },
      buildConfig: { runtime: RUNTIME, entryPoint: ENTRY_POINT, source: { storageSource: uploadedObject(storageSource) } },
      serviceConfig,
    };
  }

  /** The source zip: the function's package, or for code without one, its source wrapped for GCF. */
  private async sourceZip(spec: FunctionSpec, id: string): Promise<Uint8Array> {
    if (spec.artifact) {
      try {
        return await readFile(spec.artifact.file);
      } catch (e) {
        throw this.fail(`function ${spec.name}: its package ${spec.artifact.file} cannot be read: ${(e as Error).message}`, 2);
      }
    }
    try {
      return zipSource(gcfSourceFiles(id, await this.opts.source(spec.name)));
    } catch (e) {
      throw this.fail(`no code for function ${spec.name}: ${(e as Error).message}`, 2);
    }
  }

  async deploy(spec: FunctionSpec): Promise<void> {
    const id = functionIdOf(this.cluster, spec.name);
    functionEnv(this.cluster, spec.name, spec.settings); // refuse a bad env before any API call
    const zip = await this.sourceZip(spec, id);
    const [upload] = await this.call('asking for a source upload URL', (c) => c.generateUploadUrl({ parent: this.parent }));
    if (!upload.uploadUrl || !upload.storageSource) throw this.fail('the API gave no source upload URL');
    await this.uploadSource(upload.uploadUrl, zip);
    const fn = this.functionResource(spec, id, upload.storageSource);
    const exists = (await this.getFunction(id)) !== undefined;
    const [operation] = exists
      ? await this.call(`updating function ${spec.name}`, (c) => c.updateFunction({ function: fn }))
      : await this.call(`creating function ${spec.name}`, (c) => c.createFunction({ parent: this.parent, functionId: id, function: fn }));
    // Building and rolling out takes minutes on Google; the client library polls the operation until it is done.
    const [deployed] = await this.call(`deploying function ${spec.name}`, () => operation.promise());
    this.remember(spec.name, deployed);
  }

  async remove(name: string): Promise<void> {
    const id = functionIdOf(this.cluster, name);
    this.deployed.delete(name);
    const client = await this.api();
    try {
      const [operation] = await client.deleteFunction({ name: this.fullName(id) });
      await operation.promise();
    } catch (e) {
      if ((e as { code?: unknown }).code === NOT_FOUND) return; // already gone: removing is idempotent
      throw this.apiError(`removing function ${name}`, e);
    }
  }

  async list(): Promise<string[]> {
    const [fns] = await this.call('listing functions', (c) => c.listFunctions({ parent: this.parent }));
    return fns
      .filter((f) => f.labels?.[MANAGED_LABEL] === 'fedkeeper')
      .map((f) => f.labels?.[NAME_LABEL] ?? String(f.name).split('/').pop()!)
      .sort();
  }

  async invoke(name: string, params: Record<string, unknown>): Promise<string> {
    let target = this.deployed.get(name);
    if (!target) {
      const fn = await this.getFunction(functionIdOf(this.cluster, name));
      if (!fn) throw this.fail(`function ${name} is not deployed (run \`fedkeeper deploy -c CONFIG\` first)`, 2);
      target = this.remember(name, fn);
    }
    const token = await this.idToken(target.url.href);
    const record = this.book.open(name);
    void this.caller
      .call({
        url: target.url,
        params,
        headers: { authorization: `Bearer ${token}`, ...activationHeaders(record.activationId, target.timeoutMs) },
        timeoutMs: target.timeoutMs + DEADLINE_GRACE_MS,
      })
      .then((o) => this.book.settle(record, o));
    return record.activationId;
  }

  async activation(activationId: string): Promise<GoogleActivation | undefined> {
    return this.book.get(activationId);
  }

  async close(): Promise<void> {
    this.caller.close();
    const c = this.client;
    this.client = undefined;
    if (c) await (await c).close();
  }
}
