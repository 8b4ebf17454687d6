/**
 * The AWS Lambda provider, through the official `@aws-sdk/client-lambda`: functions are created and updated from
 * their Lambda packages (CreateFunction / UpdateFunctionCode / UpdateFunctionConfiguration, waiting until Lambda
 * says they are ready), removed with DeleteFunction, listed with ListFunctions, invoked with Invoke.
 *
 * Tracking. Lambda has no activation lookup. An invocation here is a RequestResponse call that this provider holds
 * open, in the background, under an activation id of its own: the keeper polls `activation(id)` as on every other
 * platform. Why not Event invocations: an Event payload is limited to 256 KB, Lambda retries failed events on its
 * own (so attempts would be Lambda's, not the keeper's), and an Event's outcome — its error, its timeout, its result —
 * can only be found again through another channel. A held RequestResponse call gives the function's result, its
 * error type and its timeout directly, and cold starts from the log tail's REPORT line (`Init Duration`).
 *
 * Failures: a function error is an application error (a thrown handler) or a developer error (`Runtime.*`); `Task
 * timed out` is a timeout; throttling (429 TooManyRequestsException) is retried here with backoff, then reported as
 * an internal error for the keeper to re-invoke; a payload over Lambda's limits is the plan's fault (bad input).
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import {
  CreateFunctionCommand,
  DeleteFunctionCommand,
  GetFunctionCommand,
  InvokeCommand,
  LambdaClient,
  ListFunctionsCommand,
  UpdateFunctionCodeCommand,
  UpdateFunctionConfigurationCommand,
  waitUntilFunctionActiveV2,
  waitUntilFunctionUpdatedV2,
  type FunctionConfiguration,
} from '@aws-sdk/client-lambda';
import { LAMBDA_HANDLER, LAMBDA_RUNTIME } from '../packaging/targets.js';
import { checkLambdaFunction, lambdaEnv, parseLambdaCluster, type LambdaClusterSettings } from './lambda-config.js';
import { localLambdaFaults } from './lambda-faults.js';
import { classifyInvoke } from './lambda-invoke.js';
import type { Activation, FunctionSpec, Provider } from './types.js';
import { ProviderError } from './types.js';

interface AwsError extends Error {
  name: string;
  $metadata?: { httpStatusCode?: number };
  $fault?: 'client' | 'server';
  Reason?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Throttled invocations are sent again this many times (with full-jitter backoff) before the keeper hears of it. */
const THROTTLE_RETRIES = 6;
/** How long Lambda may take to make a created or updated function ready, seconds. */
const READY_WAIT_S = 120;

export interface LambdaProviderOptions {
  cluster: string;
  /** The cluster's block from the config (`providers.lambda.<cluster>`), the keeper's keys taken off. */
  settings: Record<string, unknown>;
}

export class LambdaProvider implements Provider {
  readonly platform = 'lambda';
  readonly cluster: string;
  readonly settings: LambdaClusterSettings;
  private readonly client: LambdaClient;
  private readonly agent: http.Agent;
  private readonly activations = new Map<string, Activation>();
  private closed = false;

  constructor(opts: LambdaProviderOptions) {
    this.cluster = opts.cluster;
    this.settings = parseLambdaCluster(opts.cluster, opts.settings);
    const s = this.settings;
    // The pinned SDK supports Node.js 20; its notice about releases after January 2027 would print on every command.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    const secure = !s.endpoint || s.endpoint.startsWith('https:');
    // Up to a few hundred invocations are held open at once: one socket each.
    this.agent = secure ? new https.Agent({ keepAlive: true, maxSockets: 512, rejectUnauthorized: !s.insecure }) : new http.Agent({ keepAlive: true, maxSockets: 512 });
    this.client = new LambdaClient({
      region: s.region,
      ...(s.endpoint ? { endpoint: s.endpoint } : {}),
      ...(s.credentials ? { credentials: s.credentials } : {}),
      maxAttempts: 4,
      requestHandler: secure ? { httpsAgent: this.agent as https.Agent } : { httpAgent: this.agent },
    });
  }

  private where(name?: string): string {
    return `lambda cluster ${this.cluster}${name ? `: function ${name}` : ''}`;
  }

  private fail(e: unknown, what: string, name?: string): ProviderError {
    const err = e as AwsError;
    const status = err.$metadata?.httpStatusCode;
    const detail = String(err.message ?? e).replace(/\s+/g, ' ').trim();
    switch (err.name) {
      case 'UnrecognizedClientException':
      case 'InvalidSignatureException':
      case 'MissingAuthenticationTokenException':
      case 'ExpiredTokenException':
      case 'AccessDeniedException':
      case 'CredentialsProviderError':
        return new ProviderError(`${this.where(name)}: ${what}: the credentials were refused (${err.name}: ${detail}); check the cluster's credentials`, 2);
      case 'ResourceNotFoundException':
        return new ProviderError(`${this.where(name)}: does not exist (deploy it first: fedkeeper deploy -c CONFIG)`, 2);
      case 'InvalidParameterValueException':
      case 'RequestEntityTooLargeException':
      case 'CodeStorageExceededException':
        return new ProviderError(`${this.where(name)}: ${what}: Lambda refused it (${err.name}: ${detail})`, 2);
      case 'TooManyRequestsException':
        return new ProviderError(`${this.where(name)}: ${what}: throttled (${detail})`, 1, true);
    }
    if (status !== undefined) return new ProviderError(`${this.where(name)}: ${what} failed with HTTP ${status}: ${err.name}: ${detail}`, 1, status >= 500 || status === 429);
    return new ProviderError(`${this.where(name)}: cannot reach ${this.settings.endpoint ?? `Lambda in ${this.settings.region}`} (${what}): ${detail}`, 1, true);
  }

  private async call<T>(what: string, name: string | undefined, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (e) {
      throw this.fail(e, what, name);
    }
  }

  validate(spec: FunctionSpec): void {
    checkLambdaFunction(this.cluster, spec.name, spec.memoryMb, spec.timeoutMs);
    lambdaEnv(this.cluster, spec.name, spec.settings);
  }

  async deploy(spec: FunctionSpec): Promise<void> {
    const name = spec.name;
    this.validate(spec);
    const env = lambdaEnv(this.cluster, name, spec.settings);
    const zip = await this.zipOf(spec);
    const config = {
      FunctionName: name,
      MemorySize: Math.round(spec.memoryMb),
      Timeout: Math.max(1, Math.ceil(spec.timeoutMs / 1000)),
      Environment: { Variables: env },
      Description: 'FedKeeper function',
    };
    const waiter = { client: this.client, maxWaitTime: READY_WAIT_S };
    if (await this.exists(name)) {
      await this.call('updating its code', name, () => this.client.send(new UpdateFunctionCodeCommand({ FunctionName: name, ZipFile: zip })));
      await this.call('waiting for the code update', name, () => waitUntilFunctionUpdatedV2(waiter, { FunctionName: name }));
      await this.call('updating its configuration', name, () => this.client.send(new UpdateFunctionConfigurationCommand({ ...config, Runtime: LAMBDA_RUNTIME, Handler: LAMBDA_HANDLER })));
      await this.call('waiting for the configuration update', name, () => waitUntilFunctionUpdatedV2(waiter, { FunctionName: name }));
      return;
    }
    await this.call('creating it', name, () =>
      this.client.send(new CreateFunctionCommand({ ...config, Runtime: LAMBDA_RUNTIME, Handler: LAMBDA_HANDLER, Role: this.settings.role, Code: { ZipFile: zip }, PackageType: 'Zip' })),
    );
    await this.call('waiting until it is active', name, () => waitUntilFunctionActiveV2(waiter, { FunctionName: name }));
  }

  /** The zip: the function's Lambda package, or a user's own `func_path` zip. */
  private async zipOf(spec: FunctionSpec): Promise<Uint8Array> {
    const own = typeof spec.settings.func_path === 'string' && spec.settings.func_path ? spec.settings.func_path : undefined;
    const file = own ?? spec.artifact?.file;
    if (!file) throw new ProviderError(`${this.where(spec.name)}: has neither a package nor a func_path`, 2);
    if (!file.endsWith('.zip')) throw new ProviderError(`${this.where(spec.name)}: func_path ${file} must be a .zip (Handler ${LAMBDA_HANDLER})`, 2);
    try {
      return await readFile(file);
    } catch (e) {
      throw new ProviderError(`${this.where(spec.name)}: ${own ? `func_path ${own}` : `its package ${file}`}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (e as Error).message}`, 2);
    }
  }

  private async config(name: string): Promise<FunctionConfiguration | undefined> {
    try {
      return (await this.client.send(new GetFunctionCommand({ FunctionName: name }))).Configuration;
    } catch (e) {
      if ((e as AwsError).name === 'ResourceNotFoundException') return undefined;
      throw this.fail(e, 'reading it', name);
    }
  }

  private async exists(name: string): Promise<boolean> {
    return (await this.config(name)) !== undefined;
  }

  /** Lambda keeps the package's SHA-256 (base64) and size with the function: the package it runs, by its own record. */
  async deployedArtifact(name: string): Promise<{ sha256: string; size: number } | undefined> {
    const c = await this.config(name);
    if (!c?.CodeSha256) return undefined;
    return { sha256: Buffer.from(c.CodeSha256, 'base64').toString('hex'), size: Number(c.CodeSize ?? 0) };
  }

  async remove(name: string): Promise<void> {
    try {
      await this.client.send(new DeleteFunctionCommand({ FunctionName: name }));
    } catch (e) {
      if ((e as AwsError).name === 'ResourceNotFoundException') return;
      throw this.fail(e, 'deleting it', name);
    }
  }

  async list(): Promise<string[]> {
    const names: string[] = [];
    let marker: string | undefined;
    do {
      const page = await this.call('listing functions', undefined, () => this.client.send(new ListFunctionsCommand({ MaxItems: 50, ...(marker ? { Marker: marker } : {}) })));
      for (const f of page.Functions ?? []) if (f.FunctionName) names.push(f.FunctionName);
      marker = page.NextMarker;
    } while (marker);
    return names.sort();
  }

  async invoke(name: string, params: Record<string, unknown>): Promise<string> {
    if (this.closed) throw new ProviderError(`${this.where(name)}: the provider is closed`);
    const activationId = randomBytes(16).toString('hex');
    const record: Activation = { activationId, functionName: name, status: 'running', startTime: Date.now(), endTime: null, coldStart: false };
    this.activations.set(activationId, record);
    void this.hold(name, params, record);
    return activationId;
  }

  /** The RequestResponse call, held open until the function answers; throttling is retried here. */
  private async hold(name: string, params: Record<string, unknown>, record: Activation): Promise<void> {
    const payload = Buffer.from(JSON.stringify(params));
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await this.client.send(new InvokeCommand({ FunctionName: name, InvocationType: 'RequestResponse', LogType: 'Tail', Payload: payload }));
        const o = classifyInvoke({
          ...(res.StatusCode !== undefined ? { statusCode: res.StatusCode } : {}),
          ...(res.FunctionError ? { functionError: res.FunctionError } : {}),
          payload: res.Payload ? Buffer.from(res.Payload).toString('utf8') : '',
          ...(res.LogResult ? { logResult: res.LogResult } : {}),
        });
        Object.assign(record, { status: o.status, result: o.result, coldStart: o.coldStart, logs: o.logs, endTime: Date.now() });
        return;
      } catch (e) {
        const err = e as AwsError;
        if (err.name === 'TooManyRequestsException' && attempt < THROTTLE_RETRIES && !this.closed) {
          await sleep(Math.random() * Math.min(5_000, 200 * 2 ** attempt));
          continue;
        }
        const detail = String(err.message ?? e).replace(/\s+/g, ' ').trim();
        if (err.name === 'RequestEntityTooLargeException') {
          // The plan put more in a payload than Lambda carries: retrying cannot help.
          Object.assign(record, { status: 'application error', result: { error: `${this.where(name)}: the payload is over Lambda's limit (${detail})`, errorCode: 'bad_input' }, endTime: Date.now() });
        } else {
          const what = err.name === 'TooManyRequestsException' ? `still throttled after ${THROTTLE_RETRIES} retries` : err.name === 'ResourceNotFoundException' ? 'not deployed' : 'the invocation failed';
          Object.assign(record, { status: 'internal error', result: { error: `${this.where(name)}: ${what}: ${err.name}: ${detail}` }, endTime: Date.now() });
        }
        return;
      }
    }
  }

  async activation(activationId: string): Promise<Activation | undefined> {
    const a = this.activations.get(activationId);
    return a ? { ...a } : undefined;
  }

  /** Faults injected so far by a local FedKeeper Lambda platform (undefined for real Lambda). */
  async faults(): Promise<Record<string, number> | undefined> {
    return localLambdaFaults(this.settings);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.client.destroy();
    this.agent.destroy();
  }
}
