/**
 * The cluster's invoker: turns an invocation of a stored action into a run on the container pool and the pool's
 * answer into an OpenWhisk activation record, which it stores when the activation ends. Keeps the running
 * activations so a blocking request can wait on one.
 */
import type { ContainerAction, ContainerRunResult, RunMeta } from '../runtime/container-types.js';
import type { KeyValue, StoredAction } from './action-store.js';
import { STATUS_CODES, type ActivationStatus, type ActivationStore, type StoredActivation } from './activation-store.js';
import { WhiskMessages } from './errors.js';
import { randomHexId } from './http.js';

/** What the invoker needs of a container pool (runtime/container-pool.ts's ContainerPool). */
export interface ContainerRunner {
  run(action: ContainerAction, params: Record<string, unknown>, meta: RunMeta): Promise<ContainerRunResult>;
}

export interface InvokerIdentity {
  namespace: string;
  subject: string;
  /** Handed to an action only when it is annotated `provide-api-key: true`, as in OpenWhisk. */
  apiKey: string;
}

export class Invoker {
  private readonly running = new Map<string, Promise<StoredActivation>>();

  constructor(
    private readonly pool: ContainerRunner,
    private readonly store: ActivationStore,
    private readonly who: InvokerIdentity,
    /** Results larger than this (bytes of their JSON) end as developer errors, as in OpenWhisk. */
    private readonly resultMaxBytes = Infinity,
    /** Told of every activation as it is stored (the cluster's metrics). */
    private readonly onStored: (rec: StoredActivation) => void = () => {},
  ) {}

  /** Runs submitted in this turn of the event loop, started together right after it (see start). */
  private deferred: (() => void)[] = [];

  private later(run: () => void): void {
    if (this.deferred.push(run) > 1) return;
    setImmediate(() => {
      const runs = this.deferred;
      this.deferred = [];
      for (const r of runs) r();
    });
  }

  /** Number of activations started and not yet ended. */
  get active(): number {
    return this.running.size;
  }

  /** Starts an activation; `done` resolves (never rejects) with its record once it is stored. */
  start(action: StoredAction, payload: Record<string, unknown>, transactionId: string): { activationId: string; done: Promise<StoredActivation> } {
    const activationId = newActivationId();
    const params: Record<string, unknown> = {};
    for (const p of action.parameters) params[p.key] = p.value;
    Object.assign(params, payload);
    const meta: RunMeta = {
      activationId,
      namespace: this.who.namespace,
      actionName: `/${this.who.namespace}/${action.name}`,
      transactionId,
    };
    if (action.annotations.some((a) => a.key === 'provide-api-key' && a.value === true)) meta.apiKey = this.who.apiKey;
    const submitted = Date.now();
    // As a controller hands an activation to an invoker and answers at once, the run starts after this turn of the
    // event loop: the request's answer (202 with the id) goes out first, and so do those of requests that came in
    // with it, instead of waiting behind their container work. Runs start in the order they were submitted.
    const done = new Promise<ContainerRunResult>((resolve, reject) => this.later(() => {
        try {
          this.pool.run(containerAction(action), params, meta).then(resolve, reject);
        } catch (e) {
          reject(e);
        }
      }),
    )
      .then((r) => this.record(action, activationId, r))
      .catch((e: unknown) => this.internalError(action, activationId, submitted, e))
      .then((rec) => {
        this.store.add(rec);
        this.running.delete(activationId);
        this.onStored(rec);
        return rec;
      });
    this.running.set(activationId, done);
    return { activationId, done };
  }

  private record(action: StoredAction, activationId: string, r: ContainerRunResult): StoredActivation {
    const timedOut = r.status === 'timed out';
    let result = timedOut ? { error: WhiskMessages.timeLimit(action.limits.timeout) } : r.result;
    let status: ActivationStatus = r.status === 'success' ? 'success' : r.status === 'application error' ? 'application error' : 'action developer error';
    // OpenWhisk reads at most `payload.truncation` bytes of a response; a longer one is a developer error.
    const text = timedOut || !Number.isFinite(this.resultMaxBytes) ? '' : JSON.stringify(result ?? {});
    const length = Buffer.byteLength(text);
    if (length > this.resultMaxBytes) {
      status = 'action developer error';
      result = { error: WhiskMessages.truncatedResponse(Buffer.from(text).subarray(0, this.resultMaxBytes).toString('utf8'), length, this.resultMaxBytes) };
    }
    // OpenWhisk's accounting: a cold activation starts before its /init (duration includes initTime), and waitTime
    // is what came before that. The pool's startTime is after /init and its waitTimeMs includes the init.
    const initMs = r.coldStart ? Math.max(0, Math.round(r.initTimeMs)) : 0;
    const start = Math.round(r.startTime) - initMs;
    const annotations: KeyValue[] = [
      { key: 'path', value: `${action.namespace}/${action.name}` },
      { key: 'waitTime', value: Math.max(0, Math.round(r.waitTimeMs) - initMs) },
      { key: 'kind', value: action.exec.kind },
      { key: 'timeout', value: timedOut },
      { key: 'limits', value: { ...action.limits } },
    ];
    if (r.coldStart) annotations.push({ key: 'initTime', value: initMs });
    return this.build(action, activationId, start, Math.max(start, Math.round(r.endTime)), status, result, r.logs, annotations);
  }

  private internalError(action: StoredAction, activationId: string, start: number, e: unknown): StoredActivation {
    const reason = e instanceof Error ? e.message : String(e);
    const annotations: KeyValue[] = [
      { key: 'path', value: `${action.namespace}/${action.name}` },
      { key: 'kind', value: action.exec.kind },
      { key: 'limits', value: { ...action.limits } },
    ];
    const result = { error: `Failed to run the action: ${reason}` };
    return this.build(action, activationId, start, Date.now(), 'whisk internal error', result, [], annotations);
  }

  private build(
    action: StoredAction,
    activationId: string,
    start: number,
    end: number,
    status: ActivationStatus,
    result: Record<string, unknown>,
    logs: string[],
    annotations: KeyValue[],
  ): StoredActivation {
    const statusCode = STATUS_CODES[status];
    return {
      namespace: action.namespace,
      name: action.name,
      version: action.version,
      subject: this.who.subject,
      activationId,
      start,
      end,
      duration: Math.max(0, end - start),
      statusCode,
      response: { status, statusCode, success: status === 'success', result, size: Buffer.byteLength(JSON.stringify(result)) },
      logs: [...logs],
      annotations,
      publish: false,
    };
  }
}

/** What the pool runs: containers are keyed by name + revision, so an updated action never reuses old ones. */
function containerAction(a: StoredAction): ContainerAction {
  const exec: ContainerAction['exec'] = { kind: a.exec.kind, binary: a.exec.binary };
  if (a.exec.code !== undefined) exec.code = a.exec.code;
  if (a.exec.main !== undefined) exec.main = a.exec.main;
  if (a.exec.image !== undefined) exec.image = a.exec.image;
  return {
    name: `${a.namespace}/${a.name}`,
    version: `${a.version}+r${a.revision}`,
    exec,
    limits: { timeoutMs: a.limits.timeout, memoryMb: a.limits.memory, concurrency: a.limits.concurrency },
  };
}

/** 32 lowercase hex characters, like OpenWhisk's activation ids. */
export function newActivationId(): string {
  return randomHexId();
}
