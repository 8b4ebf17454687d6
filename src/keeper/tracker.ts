/**
 * ActivationTracker: every invocation the keeper makes goes through here. It invokes through the provider (getting
 * an activation id at once), records the activation in the store as it changes (so the history survives the
 * keeper), polls the platform until the activation ends, and writes its row into the run directory.
 */
import { errorText } from '../providers/error-text.js';
import { ThrottledError } from '../providers/throttled.js';
import { ProviderError, type Activation, type Provider } from '../providers/types.js';
import type { ActivationRecord, ParameterStore } from '../store/types.js';
import type { RunDirectory } from '../telemetry/run-dir.js';

export interface InvocationRequest {
  provider: Provider;
  functionName: string;
  params: Record<string, unknown>;
  round: number;
  /** -1 for server functions. */
  clientId: number;
  attempt: number;
  /** ms after the invoke by which a result must be seen, else the activation is `timed out` here. */
  deadlineMs: number;
}

/** How the tracker retries the platform calls themselves (not the function). */
export interface CallPolicy {
  retries: number;
  backoff: (attempt: number) => number;
  /**
   * Wait before repeating a call the platform throttled (HTTP 429) for the n-th time in a row, when the platform
   * did not say how long (Retry-After); default throttleBackoffMs.
   */
  throttleBackoff?: (throttledTimes: number) => number;
}

/** Bounds of the default wait after a throttled call: it doubles from the first to the last. */
export const THROTTLE_BACKOFF = { initialMs: 250, maxMs: 4000 };

/**
 * The default wait after the n-th throttled call in a row: 250 ms doubling up to 4 s, each between half and all of
 * that (jittered, so that calls throttled together do not come back together).
 */
export function throttleBackoffMs(throttledTimes: number, random: () => number = Math.random): number {
  const cap = Math.min(THROTTLE_BACKOFF.maxMs, THROTTLE_BACKOFF.initialMs * 2 ** Math.max(0, throttledTimes - 1));
  return Math.floor(cap / 2 + (random() * cap) / 2);
}

export interface FinishedInvocation {
  request: InvocationRequest;
  record: ActivationRecord;
  activation: Activation;
  ok: boolean;
  result: Record<string, unknown>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One ended client activation, for the per-platform duration statistics. */
export interface DurationSample {
  platform: string;
  cluster: string;
  durationS: number;
  coldStart: boolean;
  status: string;
}

export class ActivationTracker {
  invocations = 0;
  /** Told of every ended activation and throttled call (the run's Prometheus metrics, when served). */
  observer: { activation(a: { platform: string; cluster: string; functionName: string; status: string; durationS: number }): void; throttledCall(): void } | undefined;
  /** Every ended activation (server functions and failures too), for the cost of a round: see telemetry/cost.ts. */
  readonly billing: { round: number; platform: string; cluster: string; functionName: string; durationMs: number }[] = [];
  readonly samples: DurationSample[] = [];

  /** Calls retried after a transient platform error (5xx, network); not the throttled ones. */
  callRetries = 0;

  /**
   * Times a platform refused a call because of its throttles (HTTP 429). The call waits (the platform's
   * Retry-After, else throttleBackoff) and is repeated until the platform takes it: this is the keeper pacing
   * itself, not a failure — it uses neither a call retry nor a client attempt.
   */
  throttled = 0;

  constructor(
    private readonly store: ParameterStore,
    private readonly runDir: RunDirectory,
    private readonly runId: string,
    private readonly calls: CallPolicy = { retries: 0, backoff: () => 0 },
    private readonly pollMs = { min: 20, max: 250 },
  ) {}

  /**
   * Runs a platform call, repeating it after transient errors (HTTP 5xx, refused or reset connections) up to
   * `calls.retries` times, and after throttling (HTTP 429) for as long as the platform throttles it.
   */
  private async call<T>(what: () => Promise<T>, label: string): Promise<T> {
    let attempt = 1;
    let throttledTimes = 0;
    for (;;) {
      try {
        return await what();
      } catch (e) {
        if (e instanceof ThrottledError) {
          if (this.stopped) throw new ProviderError(`${label}: the run ended while the platform was throttling this call (${e.message})`, 1);
          this.throttled++;
          this.observer?.throttledCall();
          throttledTimes++;
          const waitMs = Math.max(0, e.retryAfterMs ?? (this.calls.throttleBackoff ?? throttleBackoffMs)(throttledTimes));
          this.runDir.event('call_throttled', { call: label, times: throttledTimes, wait_ms: waitMs, error: e.message });
          await sleep(waitMs);
          continue;
        }
        if (!(e instanceof ProviderError && e.transient) || attempt > this.calls.retries) throw e;
        this.callRetries++;
        this.runDir.event('call_retry', { call: label, attempt, error: e.message });
        await sleep(this.calls.backoff(attempt));
        attempt++;
      }
    }
  }

  /** Invokes without blocking: resolves once the platform gave an activation id, with a promise for its end. */
  async invoke(req: InvocationRequest): Promise<{ activationId: string; done: Promise<FinishedInvocation> }> {
    const activationId = await this.call(() => req.provider.invoke(req.functionName, req.params), `invoke ${req.functionName}`);
    this.invocations++;
    const record: ActivationRecord = {
      activationId,
      runId: this.runId,
      round: req.round,
      clientId: req.clientId,
      functionName: req.functionName,
      platform: req.provider.platform,
      cluster: req.provider.cluster,
      attempt: req.attempt,
      startTime: Date.now(),
      endTime: null,
      status: 'running',
      coldStart: false,
    };
    await this.store.putActivation(record);
    this.runDir.event('invoked', { round: req.round, client_id: req.clientId, function: req.functionName, cluster: req.provider.cluster, activation_id: activationId, attempt: req.attempt });
    return { activationId, done: this.follow(req, record) };
  }

  private stopped = false;

  /**
   * The run is over (completed or failed): activations still in flight (dropped stragglers, a failed round's other
   * clients) are no longer followed, so nothing is written after the run's end and the keeper can exit at once.
   */
  stop(): void {
    this.stopped = true;
  }

  /** Activations being followed now. */
  private following = 0;

  /**
   * The longest wait between two polls of one activation: pollMs.max, stretched when many are followed at once
   * (1,000 clients of a round), so that polling stays near 500 requests per second per keeper, at most 2 s apart.
   */
  private maxPollMs(): number {
    return Math.min(2000, Math.max(this.pollMs.max, this.following * 2));
  }

  private async follow(req: InvocationRequest, record: ActivationRecord): Promise<FinishedInvocation> {
    this.following++;
    try {
      return await this.poll(req, record);
    } finally {
      this.following--;
    }
  }

  private async poll(req: InvocationRequest, record: ActivationRecord): Promise<FinishedInvocation> {
    let wait = this.pollMs.min;
    const deadline = record.startTime + req.deadlineMs;
    for (;;) {
      if (this.stopped) {
        const error = 'the run ended before this activation did; it was no longer followed';
        const a: Activation = { activationId: record.activationId, functionName: req.functionName, status: 'lost', startTime: record.startTime, endTime: Date.now(), coldStart: false, result: { error } };
        return { request: req, record: { ...record, status: 'lost', error }, activation: a, ok: false, result: { error } };
      }
      if (Date.now() > deadline) {
        // No result in time: this attempt is given up (a late answer can no longer count, see putClientUpdate).
        return this.finish(req, record, {
          activationId: record.activationId,
          functionName: req.functionName,
          status: 'timed out',
          startTime: record.startTime,
          endTime: Date.now(),
          coldStart: false,
          result: { error: `no result within the keeper's deadline of ${req.deadlineMs / 1000} s` },
        });
      }
      let a: Activation | undefined;
      try {
        a = await req.provider.activation(record.activationId);
      } catch (e) {
        // The platform is unreachable for now (an outage): keep polling until the deadline.
        if (!(e instanceof ProviderError && e.transient)) throw e;
        await sleep(Math.max(wait, 200));
        wait = Math.min(this.maxPollMs(), Math.ceil(wait * 1.5));
        continue;
      }
      if (a && a.status !== 'running') return this.finish(req, record, a);
      if (!a) {
        return this.finish(req, record, {
          activationId: record.activationId,
          functionName: req.functionName,
          status: 'lost',
          startTime: record.startTime,
          endTime: Date.now(),
          coldStart: false,
          result: { error: `cluster ${req.provider.cluster} no longer knows activation ${record.activationId}` },
        });
      }
      await sleep(wait);
      wait = Math.min(this.maxPollMs(), Math.ceil(wait * 1.5));
    }
  }

  private async finish(req: InvocationRequest, record: ActivationRecord, a: Activation): Promise<FinishedInvocation> {
    const result = a.result ?? {};
    const ok = a.status === 'success';
    const done: ActivationRecord = {
      ...record,
      startTime: a.startTime,
      endTime: a.endTime ?? Date.now(),
      status: a.status,
      coldStart: a.coldStart,
      error: ok ? undefined : errorText(result.error) || a.status,
    };
    await this.store.putActivation(done);
    // Through the relay, the row names the client's own platform and cluster (failed attempts too: the request says
    // where the relay was to run it); `via` names the relay's.
    const target = (req.params as { target?: { platform?: unknown; cluster?: unknown } }).target;
    const relayed = typeof target?.platform === 'string' && typeof target.cluster === 'string';
    const platform = relayed ? String(target.platform) : req.provider.platform;
    const cluster = relayed ? String(target.cluster) : req.provider.cluster;
    const durationS = (done.endTime! - done.startTime) / 1000;
    const fn = relayed ? String((req.params as { target?: { functionName?: unknown } }).target?.functionName ?? req.functionName) : req.functionName;
    this.billing.push({ round: req.round, platform, cluster, functionName: fn, durationMs: done.endTime! - done.startTime });
    this.observer?.activation({ platform, cluster, functionName: fn, status: a.status, durationS });
    if (req.clientId >= 0) this.samples.push({ platform, cluster, durationS, coldStart: relayed ? result.relayedColdStart === true : a.coldStart, status: a.status });
    this.runDir.activation(req.round, {
      client_id: req.clientId,
      function: req.functionName,
      platform,
      cluster,
      activation_id: relayed && typeof result.relayedActivationId === 'string' ? result.relayedActivationId : a.activationId,
      start_time: done.startTime / 1000,
      end_time: done.endTime! / 1000,
      duration: durationS,
      status: a.status,
      attempt: req.attempt,
      cold_start: relayed ? result.relayedColdStart === true : a.coldStart,
      num_samples: typeof result.numSamples === 'number' ? result.numSamples : undefined,
      loss: typeof result.loss === 'number' ? result.loss : undefined,
      accuracy: typeof result.accuracy === 'number' ? result.accuracy : undefined,
      via: relayed ? `${req.provider.platform}:${req.provider.cluster}/${a.activationId}` : undefined,
      error: done.error,
      instance: relayed ? (typeof result.relayedInstance === 'string' ? result.relayedInstance : undefined) : a.instance,
    });
    this.runDir.event('activation_done', {
      round: req.round,
      client_id: req.clientId,
      function: req.functionName,
      activation_id: a.activationId,
      status: a.status,
      attempt: req.attempt,
      duration_s: (done.endTime! - done.startTime) / 1000,
      ...(ok ? {} : { error: done.error }),
    });
    return { request: req, record: done, activation: a, ok, result };
  }
}
