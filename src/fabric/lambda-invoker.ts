/**
 * The local Lambda platform's invoke path: admission as Lambda does it, then a run in an execution environment of
 * the cluster's ContainerPool (runtime/, kind lambdaKind), and the answer as Invoke returns it.
 *
 * Admission (Lambda throttles; it does not queue a RequestResponse invocation):
 *  - a function with reserved concurrency runs at most that many invocations at once, else 429
 *    TooManyRequestsException, Reason ReservedFunctionConcurrentInvocationLimitExceeded;
 *  - the other functions share the account's concurrency minus every reservation, else Reason
 *    ConcurrentInvocationLimitExceeded;
 *  - and the platform must have room now — a warm environment of the function, or memory for a new one (idle
 *    environments are evicted for it) — else ConcurrentInvocationLimitExceeded as well.
 * An Event invocation is accepted (202) into the platform's queue and runs, in order per function, as soon as it
 * is admitted; its result is not kept (Lambda's asynchronous retries and destinations are not modelled).
 *
 * The answer: the function's response, or its error document with FunctionError `Unhandled`; the invocation's log
 * (START, the function's lines, END, REPORT with `Init Duration` on a cold start) whose last 4 KB are LogResult.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { ContainerPool } from '../runtime/container-pool.js';
import type { ContainerRunResult } from '../runtime/container-types.js';
import type { LambdaContainerAction, LambdaInvocation } from '../runtime/lambda-environment.js';
import { LambdaError } from './lambda-errors.js';
import { isPending, type FunctionStore, type StoredFunction } from './lambda-functions.js';

export type LambdaPool = ContainerPool<LambdaContainerAction, LambdaInvocation>;

export interface InvokeRequest {
  fn: StoredFunction;
  /** The ARN the caller named (qualified when it gave a qualifier). */
  invokedArn: string;
  /** The event, JSON text. */
  payload: string;
  clientContext?: string;
}

export interface InvokeAnswer {
  requestId: string;
  /** The response, or the error document. */
  payload: string;
  functionError?: 'Unhandled';
  /** The invocation's log. */
  log: string[];
  coldStart: boolean;
  initDurationMs: number;
  traceId: string;
}

export interface InvokerIdentity {
  /** What AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY hold in the functions (the execution role, locally the cluster's key). */
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** The platform's own URL (AWS_ENDPOINT_URL_LAMBDA in the functions); known once it listens. */
  endpoint: () => string;
}

type Reason = 'ReservedFunctionConcurrentInvocationLimitExceeded' | 'ConcurrentInvocationLimitExceeded';

interface QueuedEvent extends InvokeRequest {
  requestId: string;
}

/** Where an admitted invocation counts: its function's reservation, or the unreserved pool. */
interface Slot {
  name: string;
  reserved: boolean;
}

export class LambdaInvoker {
  private readonly inflight = new Map<string, number>();
  private unreservedInflight = 0;
  private readonly events: QueuedEvent[] = [];
  private readonly actions = new Map<string, LambdaContainerAction>();
  private closed = false;
  /** RequestResponse invocations refused with 429. */
  throttles = 0;

  constructor(
    private readonly pool: LambdaPool,
    private readonly functions: FunctionStore,
    private readonly who: InvokerIdentity,
  ) {}

  /** Runs a RequestResponse invocation; a LambdaError (429, 409) when it cannot run now. */
  async invoke(req: InvokeRequest, requestId: string = randomUUID()): Promise<InvokeAnswer> {
    ready(req.fn);
    const started = this.start(req, requestId);
    if (typeof started === 'string') {
      this.throttles++;
      throw LambdaError.throttled(started);
    }
    return started;
  }

  /** Accepts an Event invocation: it runs when admitted. Answers its request id. */
  enqueue(req: InvokeRequest): string {
    ready(req.fn);
    const requestId = randomUUID();
    this.events.push({ ...req, requestId });
    this.pump();
    return requestId;
  }

  /** Event invocations waiting to be admitted. */
  get queued(): number {
    return this.events.length;
  }

  /** Starts what the queue can start (after an invocation ended, or the limits changed). */
  pump(): void {
    if (this.closed) return;
    const blocked = new Set<string>();
    for (let i = 0; i < this.events.length; ) {
      const e = this.events[i]!;
      let fn: StoredFunction | undefined;
      try {
        fn = this.functions.find(e.fn.name);
      } catch {
        fn = undefined;
      }
      if (!fn) {
        this.events.splice(i, 1); // deleted meanwhile: Lambda drops it
        continue;
      }
      if (blocked.has(fn.name) || isPending(fn)) {
        i++;
        continue;
      }
      const started = this.start({ ...e, fn }, e.requestId);
      if (typeof started === 'string') {
        blocked.add(fn.name);
        i++;
        continue;
      }
      this.events.splice(i, 1);
      started.catch(() => {});
    }
  }

  close(): void {
    this.closed = true;
    this.events.length = 0;
  }

  /** Admits and starts the invocation, or says why it is throttled. */
  private start(req: InvokeRequest, requestId: string): Promise<InvokeAnswer> | Reason {
    const { fn } = req;
    const slot = this.admit(fn);
    if (typeof slot === 'string') return slot;
    const traceId = newTraceId();
    const input: LambdaInvocation = {
      payload: req.payload,
      invokedFunctionArn: req.invokedArn,
      traceId,
      ...(req.clientContext !== undefined ? { clientContext: req.clientContext } : {}),
    };
    const run = this.pool.tryRun(this.action(fn), input, { activationId: requestId, namespace: this.functions.region, actionName: fn.name });
    if (run === undefined) return 'ConcurrentInvocationLimitExceeded';
    this.count(slot, +1);
    return run.then((r) => {
      this.count(slot, -1);
      setImmediate(() => this.pump());
      return answer(fn, requestId, traceId, r);
    });
  }

  private admit(fn: StoredFunction): Slot | Reason {
    const mine = this.inflight.get(fn.name) ?? 0;
    if (fn.reservedConcurrency !== undefined) {
      return mine >= fn.reservedConcurrency ? 'ReservedFunctionConcurrentInvocationLimitExceeded' : { name: fn.name, reserved: true };
    }
    const unreserved = this.functions.accountConcurrency - this.functions.reservedTotal;
    return this.unreservedInflight >= unreserved ? 'ConcurrentInvocationLimitExceeded' : { name: fn.name, reserved: false };
  }

  private count(slot: Slot, d: number): void {
    this.inflight.set(slot.name, (this.inflight.get(slot.name) ?? 0) + d);
    if (!slot.reserved) this.unreservedInflight += d;
  }

  /** The pool's view of a function revision (kept while it is the current one). */
  private action(fn: StoredFunction): LambdaContainerAction {
    const version = `$LATEST+r${fn.revision}`;
    const cached = this.actions.get(fn.name);
    if (cached?.version === version) return cached;
    const a: LambdaContainerAction = {
      name: fn.name,
      version,
      exec: { kind: fn.runtime, binary: true, main: fn.handler },
      limits: { timeoutMs: fn.timeout * 1000, memoryMb: fn.memorySize, concurrency: 1 },
      lambda: {
        functionName: fn.name,
        functionArn: fn.arn,
        region: this.functions.region,
        handler: fn.handler,
        runtime: fn.runtime,
        zip: fn.zip,
        variables: fn.variables ?? {},
        credentials: this.who.credentials,
        apiEndpoint: this.who.endpoint(),
      },
    };
    this.actions.set(fn.name, a);
    return a;
  }
}

function ready(fn: StoredFunction): void {
  if (isPending(fn)) throw LambdaError.conflict('The operation cannot be performed at this time. The function is currently in the following state: Pending');
}

function answer(fn: StoredFunction, requestId: string, traceId: string, r: ContainerRunResult): InvokeAnswer {
  const ok = r.status === 'success';
  const payload = r.payload ?? (ok ? JSON.stringify(r.result) : JSON.stringify({ errorType: 'Runtime.Unknown', errorMessage: String(r.result.error ?? 'the function failed') }));
  const initDurationMs = r.coldStart ? r.initTimeMs : 0;
  return {
    requestId,
    payload,
    ...(ok ? {} : { functionError: 'Unhandled' as const }),
    log: invocationLog(fn, requestId, r, ok ? undefined : errorOf(payload)),
    coldStart: r.coldStart,
    initDurationMs,
    traceId,
  };
}

function errorOf(payload: string): { type: string; message: string } {
  try {
    const e = JSON.parse(payload) as { errorType?: unknown; errorMessage?: unknown };
    return { type: typeof e.errorType === 'string' ? e.errorType : 'Unhandled', message: typeof e.errorMessage === 'string' ? e.errorMessage : '' };
  } catch {
    return { type: 'Unhandled', message: '' };
  }
}

/** START, the function's lines, END and REPORT, as Lambda writes an invocation's log. */
function invocationLog(fn: StoredFunction, id: string, r: ContainerRunResult, failure: { type: string; message: string } | undefined): string[] {
  const lines = [`START RequestId: ${id} Version: $LATEST`, ...r.logs];
  if (r.status === 'timed out') lines.push(`${new Date(r.endTime).toISOString()} ${id} Task timed out after ${fn.timeout.toFixed(2)} seconds`);
  else if (failure?.type === 'Runtime.ExitError') lines.push(failure.message, 'Runtime.ExitError');
  lines.push(`END RequestId: ${id}`);
  const duration = Math.max(0, r.endTime - r.startTime);
  let report = `REPORT RequestId: ${id}\tDuration: ${duration.toFixed(2)} ms\tBilled Duration: ${Math.max(1, Math.ceil(duration))} ms\tMemory Size: ${fn.memorySize} MB\tMax Memory Used: ${r.memoryUsedMb ?? 0} MB\t`;
  if (r.coldStart && r.initTimeMs > 0) report += `Init Duration: ${r.initTimeMs.toFixed(2)} ms\t`;
  if (r.status === 'timed out') report += 'Status: timeout';
  else if (r.status === 'developer error' && failure) report += `Status: error\tError Type: ${failure.type}`;
  lines.push(report);
  return lines;
}

/** The last 4 KB of an invocation's log, base64 (Invoke's LogResult with LogType Tail). */
export function logTail(log: string[]): string {
  const text = Buffer.from(`${log.join('\n')}\n`, 'utf8');
  return text.subarray(Math.max(0, text.length - 4096)).toString('base64');
}

/** An X-Ray trace header: Root=1-{epoch s, hex}-{96 random bits}. */
function newTraceId(): string {
  return `Root=1-${Math.floor(Date.now() / 1000).toString(16)}-${randomBytes(12).toString('hex')};Parent=${randomBytes(8).toString('hex')};Sampled=0`;
}
