/**
 * A Lambda execution environment, the container kind the local Lambda platform's ContainerPool runs (`lambdaKind`):
 *
 *  - a fresh, empty directory under the OS temp directory, holding `task/` (LAMBDA_TASK_ROOT, the function's zip
 *    unpacked: nothing of this repository is resolvable from it) and `tmp/` (the environment's /tmp, TMPDIR);
 *  - Lambda's Runtime API for it (lambda-runtime-api.ts), on a port of 127.0.0.1;
 *  - a runtime process (lambda-runtime-client.ts) started in the task root with Lambda's environment — the function's
 *    variables, the platform's FEDKEEPER_* variables, AWS_LAMBDA_*, _HANDLER … and nothing else of the parent's.
 *
 * Init: the runtime loads the handler and asks for its first invocation (init done), or posts an init error (the
 * environment's first invocation answers it: Runtime.ImportModuleError, Runtime.HandlerNotFound …), or exits
 * (Runtime.ExitError). One invocation at a time. Endings the runtime does not answer are phrased as Lambda does:
 * `Sandbox.Timedout` ("Task timed out after 3.00 seconds") and `Runtime.ExitError` ("Runtime exited with error:
 * exit status 3" / "signal: killed").
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { unzipSync } from 'fflate';
import { ActivationLogs } from './activation-logs.js';
import {
  ContainerFault,
  type ContainerKind,
  type ContainerSetup,
  type ExitInfo,
  type PoolContainer,
  type RunAnswer,
  type RunRequest,
  type UnansweredResult,
} from './container-kind.js';
import type { ContainerAction, RunMeta } from './container-types.js';
import { FAULT_INJECTION_FLAG, PAYLOAD_LIMITS, type ErrorDocument } from './lambda-contract.js';
import { RuntimeApi, type Settlement } from './lambda-runtime-api.js';

const CLIENT_ENTRY = fileURLToPath(new URL('./lambda-runtime-client.js', import.meta.url));
/** Longest wait, after an answer, for the runtime to poll again before the environment is released anyway. */
const RELEASE_WAIT_MS = 1000;

/** What an environment needs to know of its function. */
export interface LambdaFunction {
  functionName: string;
  /** Unqualified. */
  functionArn: string;
  region: string;
  /** `file.export`, relative to the task root. */
  handler: string;
  /** e.g. nodejs20.x. */
  runtime: string;
  /** The deployment package. */
  zip: Uint8Array;
  /** Environment.Variables. */
  variables: Record<string, string>;
  /** Stand for the execution role's credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY). */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** AWS_ENDPOINT_URL_LAMBDA: the local platform's API, so that an SDK inside the function reaches it. */
  apiEndpoint?: string;
}

/** A Lambda function as the pool runs it: version = `$LATEST` + a revision, so an update never reuses old ones. */
export interface LambdaContainerAction extends ContainerAction {
  lambda: LambdaFunction;
}

/** One invocation's input. */
export interface LambdaInvocation {
  /** The event, JSON text. */
  payload: string;
  /** The ARN the caller invoked (as given: qualified or not). */
  invokedFunctionArn: string;
  traceId: string;
  /** Client context, JSON text. */
  clientContext?: string;
}

export const lambdaKind: ContainerKind<LambdaContainerAction, LambdaInvocation> = {
  prepare(action, label) {
    if (!action.lambda) return `${label}: ${action.name} is not a Lambda function`;
    if (!/^nodejs\d+\.x$/.test(action.lambda.runtime)) return `${label}: function ${action.lambda.functionName} has runtime ${action.lambda.runtime}; this platform runs Node.js functions only`;
    return (setup) => new LambdaEnvironment(action, setup);
  },
};

const exitText = (e: ExitInfo): string => (e.signal ? `signal: ${e.signal === 'SIGKILL' ? 'killed' : e.signal.toLowerCase().replace(/^sig/, '')}` : `exit status ${e.code}`);
const documentAnswer = (doc: ErrorDocument): UnansweredResult => ({ result: { ...doc }, payload: JSON.stringify(doc) });

export class LambdaEnvironment implements PoolContainer<LambdaInvocation> {
  readonly id: string;
  readonly key: string;
  readonly memoryMb: number;
  readonly concurrency = 1;
  readonly logs: ActivationLogs;
  readonly exited: Promise<ExitInfo>;
  state: 'starting' | 'ready' | 'dead' = 'starting';
  active = 0;
  lastUsed = Date.now();
  idleTimer: NodeJS.Timeout | undefined;
  ready!: Promise<number>;
  private proc: ChildProcess | undefined;
  private exit: ExitInfo | undefined;
  private peakMb: number | undefined;
  private resolveExited!: (e: ExitInfo) => void;
  private initWait: { resolve: () => void; reject: (e: ContainerFault) => void } | undefined;
  private readonly root: string;
  private readonly api: RuntimeApi;
  private readonly out = new PassThrough();
  private readonly err = new PassThrough();
  private readonly logStream: string;

  constructor(
    private readonly fn: LambdaContainerAction,
    private readonly setup: ContainerSetup,
  ) {
    this.id = setup.id;
    this.key = setup.key;
    this.memoryMb = fn.limits.memoryMb;
    this.root = mkdtempSync(path.join(os.tmpdir(), 'fk-lambda-'));
    this.logs = new ActivationLogs(this.out, this.err);
    this.exited = new Promise((resolve) => (this.resolveExited = resolve));
    const day = new Date().toISOString().slice(0, 10).replaceAll('-', '/');
    this.logStream = `${day}/[$LATEST]${randomBytes(16).toString('hex')}`;
    this.api = new RuntimeApi({
      initialised: () => this.initWait?.resolve(),
      initFailed: (doc, payload) => this.initWait?.reject(new ContainerFault(`${doc.errorType}: ${doc.errorMessage}`, { result: { ...doc }, payload })),
    });
  }

  get alive(): boolean {
    return this.state !== 'dead';
  }

  private get taskRoot(): string {
    return path.join(this.root, 'task');
  }

  /** The Runtime API listens and the package is unpacked. */
  async started(): Promise<void> {
    await this.api.listening;
    if (this.state === 'dead') throw new ContainerFault('the execution environment was stopped while it started');
    unpack(this.fn.lambda.zip, this.taskRoot);
    mkdirSync(path.join(this.root, 'tmp'));
  }

  /** Starts the runtime; resolves when it asks for its first invocation. */
  async init(timeoutMs: number, first: RunMeta): Promise<void> {
    const port = await this.api.listening;
    if (this.state === 'dead') throw new ContainerFault('the execution environment was stopped while it started');
    const loaded = new Promise<void>((resolve, reject) => (this.initWait = { resolve, reject }));
    const proc = spawn(process.execPath, [`--max-old-space-size=${Math.max(64, Math.floor(this.memoryMb))}`, CLIENT_ENTRY, this.id, ...(this.setup.faultInjection ? [FAULT_INJECTION_FLAG] : [])], {
      cwd: this.taskRoot,
      env: this.environment(port),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc = proc;
    proc.stdout!.pipe(this.out);
    proc.stderr!.pipe(this.err);
    proc.on('error', () => {}); // a failed spawn also emits 'exit'
    proc.once('exit', (code, signal) => void this.ended({ code, signal }, first));
    let timer: NodeJS.Timeout | undefined;
    if (Number.isFinite(timeoutMs)) {
      timer = setTimeout(() => {
        this.initWait?.reject(new ContainerFault('the function did not initialise in time', documentAnswer(timedOut(first.activationId, timeoutMs))));
        this.kill();
      }, timeoutMs);
    }
    try {
      await loaded;
    } finally {
      clearTimeout(timer);
      this.initWait = undefined;
    }
  }

  markReady(): void {
    if (this.state === 'dead') throw new ContainerFault('the execution environment was stopped while it initialised');
    this.state = 'ready';
  }

  async run(request: RunRequest<LambdaInvocation>, onSent?: () => void): Promise<RunAnswer> {
    if (this.state !== 'ready') throw new ContainerFault('the execution environment is not ready');
    const { input, meta } = request;
    let settled: Settlement;
    try {
      settled = await this.api.deliver({
        requestId: meta.activationId,
        payload: input.payload,
        deadlineMs: Number.isFinite(request.deadline) ? request.deadline : Date.now() + 900_000,
        invokedFunctionArn: input.invokedFunctionArn,
        traceId: input.traceId,
        ...(input.clientContext !== undefined ? { clientContext: input.clientContext } : {}),
        ...(request.fault ? { fault: request.fault } : {}),
        ...(onSent ? { onSent } : {}),
      });
    } catch (e) {
      throw new ContainerFault(e instanceof Error ? e.message : String(e));
    }
    this.samplePeakMemory();
    // Released (to the pool) once the runtime polls for more, as Lambda hands a runtime work only then: a runtime that
    // answers and then exits (an uncaught exception) is never given the next invocation. Bounded, so that a runtime
    // busy after answering (callbackWaitsForEmptyEventLoop = false) does not hold the answer back for long.
    await this.readyForMore(Math.max(0, Math.min(RELEASE_WAIT_MS, request.deadline - Date.now() - 10)));
    if (settled.kind === 'response') return { status: 'success', result: asObject(settled.payload), payload: settled.payload };
    if (settled.kind === 'error') return { status: 'application error', ...documentAnswer(settled.document), payload: settled.payload };
    const doc = { errorType: 'Function.ResponseSizeTooLarge', errorMessage: `Response payload size (${settled.size} bytes) exceeded maximum allowed payload size (${PAYLOAD_LIMITS.response} bytes).` };
    return { status: 'application error', ...documentAnswer(doc) };
  }

  timedOut(request: RunRequest<LambdaInvocation>, timeoutMs: number): UnansweredResult {
    return documentAnswer(timedOut(request.meta.activationId, timeoutMs));
  }

  crashed(request: RunRequest<LambdaInvocation>, exit: ExitInfo | undefined, why: string, note: string): UnansweredResult {
    const how = exit ? `with error: ${exitText(exit)}` : `unexpectedly: ${why}`;
    return documentAnswer({ errorType: 'Runtime.ExitError', errorMessage: `RequestId: ${request.meta.activationId} Error: Runtime exited ${how}${note}` });
  }

  private async readyForMore(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.api.polling(), this.exited, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
    clearTimeout(timer);
  }

  peakMemoryMb(): number | undefined {
    return this.peakMb;
  }

  kill(): void {
    if (this.state === 'dead') return;
    this.state = 'dead';
    clearTimeout(this.idleTimer);
    if (this.proc && this.exit === undefined) this.proc.kill('SIGKILL');
    else if (!this.proc) void this.ended({ code: null, signal: null }); // never started: nothing to wait for
  }

  async exitInfo(ms: number): Promise<ExitInfo | undefined> {
    if (this.exit) return this.exit;
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([this.exited, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)))]);
    clearTimeout(timer);
    return r;
  }

  /** The runtime process ended (or never started): fail what waits on it, free the directory. */
  private async ended(exit: ExitInfo, first?: RunMeta): Promise<void> {
    if (this.exit) return;
    this.exit = exit;
    this.state = 'dead';
    if (this.initWait) {
      const id = first?.activationId ?? '';
      this.initWait.reject(new ContainerFault(`the runtime exited while initialising (${exitText(exit)})`, documentAnswer({ errorType: 'Runtime.ExitError', errorMessage: `RequestId: ${id} Error: Runtime exited with error: ${exitText(exit)}` })));
    }
    if (!this.proc) {
      this.out.end();
      this.err.end();
    }
    await this.api.close(`the runtime exited (${exitText(exit)})`);
    rmSync(this.root, { recursive: true, force: true });
    this.resolveExited(exit);
  }

  /** Lambda's environment: the function's variables over a minimal base, Lambda's own variables over both. */
  private environment(port: number): Record<string, string> {
    const f = this.fn.lambda;
    const env: Record<string, string> = { LANG: 'en_US.UTF-8', TZ: ':UTC' };
    for (const k of ['PATH', 'SYSTEMROOT']) {
      const v = process.env[k];
      if (v !== undefined) env[k] = v;
    }
    const tmp = path.join(this.root, 'tmp');
    Object.assign(env, { TMPDIR: tmp, TMP: tmp, TEMP: tmp }, this.setup.env, f.variables);
    return {
      ...env,
      LAMBDA_TASK_ROOT: this.taskRoot,
      _HANDLER: f.handler,
      AWS_EXECUTION_ENV: `AWS_Lambda_${f.runtime}`,
      AWS_REGION: f.region,
      AWS_DEFAULT_REGION: f.region,
      AWS_LAMBDA_FUNCTION_NAME: f.functionName,
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(this.memoryMb),
      AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
      AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand',
      AWS_LAMBDA_LOG_GROUP_NAME: `/aws/lambda/${f.functionName}`,
      AWS_LAMBDA_LOG_STREAM_NAME: this.logStream,
      AWS_LAMBDA_RUNTIME_API: `127.0.0.1:${port}`,
      ...(f.credentials ? { AWS_ACCESS_KEY_ID: f.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: f.credentials.secretAccessKey } : {}),
      ...(f.apiEndpoint ? { AWS_ENDPOINT_URL_LAMBDA: f.apiEndpoint } : {}),
    };
  }

  /** Linux: the process's resident-set high-water mark (Lambda's "Max Memory Used"). */
  private samplePeakMemory(): void {
    const pid = this.proc?.pid;
    if (pid === undefined) return;
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) this.peakMb = Math.ceil(Number(m[1]) / 1024);
    } catch {
      // not Linux, or the process is gone
    }
  }
}

function timedOut(requestId: string, timeoutMs: number): ErrorDocument {
  return { errorType: 'Sandbox.Timedout', errorMessage: `RequestId: ${requestId} Error: Task timed out after ${(timeoutMs / 1000).toFixed(2)} seconds` };
}

function asObject(text: string): Record<string, unknown> {
  try {
    const v = JSON.parse(text) as unknown;
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** Unpacks the deployment package into dir (created here); entries may not point outside it. */
function unpack(zip: Uint8Array, dir: string): void {
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(zip);
  } catch (e) {
    throw new ContainerFault(`the deployment package is not a valid zip: ${(e as Error).message}`);
  }
  mkdirSync(dir, { recursive: true });
  for (const [name, data] of Object.entries(files)) {
    const target = path.resolve(dir, name);
    if (target !== dir && !target.startsWith(dir + path.sep)) throw new ContainerFault(`zip entry ${name} points outside the task root`);
    if (name.endsWith('/')) {
      mkdirSync(target, { recursive: true });
      continue;
    }
    mkdirSync(path.dirname(target), { recursive: true });
    writeFileSync(target, data);
  }
}
