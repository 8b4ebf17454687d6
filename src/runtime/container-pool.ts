/**
 * ContainerPool: runs actions in containers as an OpenWhisk invoker does. One implementation for the `local`
 * provider and the local platforms of fabric/, whatever the kind of container (container-kind.ts): OpenWhisk action
 * containers by default, Lambda execution environments for the local Lambda platform.
 *
 *  - A run takes a warm container of the same action name + version with a free concurrency slot; else starts a
 *    new one if the memory bound allows (evicting idle containers, least recently used first, to make room); else
 *    waits in a FIFO queue. At most maxActive runs are in flight across the pool (CPU-bound work must not
 *    oversubscribe the cores). `tryRun` never waits: it places the run at once or refuses it (Lambda throttles
 *    rather than queueing).
 *  - A run past limits.timeoutMs (from the start of the run) gets its container SIGKILLed: 'timed out'. A crash, a
 *    broken connection or an unusable answer is a 'developer error', and that container is never reused. A result
 *    the kind calls an application error (OpenWhisk: an `error` field; Lambda: a function error) is one.
 *  - The profile makes one pool behave like a given cluster: coldStartDelayMs, speedFactor, and injected faults
 *    (failureProbability: the container crashes; errorProbability: an application error; timeoutProbability: the
 *    activation outlives its time limit — see ClusterProfile). Each activation gets one uniform draw from a PRNG
 *    seeded with (seed, label, its sequence number in the pool, in order of submission), so a run that submits the
 *    same activations in the same order gets the same faults whatever the timing. The three outcomes are disjoint
 *    (the probabilities must sum to ≤ 1): crash on [0, pf), error on [pf, pf + pe), timeout on [pf + pe, pf + pe + pt).
 *  - run() never rejects for a fault of the action or its container: every outcome is a ContainerRunResult.
 */
import http from 'node:http';
import { createRng } from '../fl/rng.js';
import type { ImageMap } from './action-code.js';
import { openWhiskKind, type ActionParams } from './container.js';
import { ContainerFault, PayloadError, type ContainerFactory, type ContainerKind, type PoolContainer, type RunRequest } from './container-kind.js';
import type { ClusterProfile, ContainerAction, ContainerOutcome, ContainerRunResult, InjectedFault, InjectedFaults, RunMeta } from './container-types.js';

/**
 * A: the actions the pool runs; I: an activation's input. The defaults are OpenWhisk's (actions with parameters);
 * another kind needs its `kind` option.
 */
export interface ContainerPoolOptions<A extends ContainerAction = ContainerAction, I = ActionParams> {
  /** The sum of live containers' limits.memoryMb never exceeds this (Infinity allowed). */
  memoryMb: number;
  /** Activations running at once across the pool (default Infinity); more wait in a FIFO queue. */
  maxActive?: number;
  profile?: Partial<ClusterProfile>;
  /**
   * Base environment of every runtime process, on top of what its kind gives it (OpenWhisk containers: a minimal
   * PATH/HOME/TMPDIR/locale set; Lambda environments: Lambda's variables and the function's).
   */
  env?: Record<string, string>;
  /** Blackbox image → the action it runs locally (OpenWhisk containers, the default kind). */
  images?: ImageMap;
  /** The kind of container; default OpenWhisk action containers (with `images`). */
  kind?: ContainerKind<A, I>;
  /** Idle containers are stopped after this (default 10 min). */
  idleTimeoutMs?: number;
  /** Seeds the fault draws (reproducible). */
  seed?: number;
  /** For error messages, e.g. "openwhisk cluster edge". */
  label?: string;
}

export interface ContainerPoolStats {
  containers: number;
  warm: number;
  busy: number;
  queued: number;
  memoryUsedMb: number;
}

interface Job<A extends ContainerAction, I> {
  action: A;
  create: ContainerFactory<I>;
  input: I;
  meta: RunMeta;
  submitted: number;
  /** Drawn at submission (run) or once placed (tryRun). */
  fault: InjectedFault | undefined;
  resolve: (r: ContainerRunResult) => void;
}

type Ending =
  | { kind: 'answer'; status: Exclude<ContainerOutcome, 'timed out'>; result: Record<string, unknown>; payload?: string }
  | { kind: 'timeout' }
  | { kind: 'fault'; answer: { result: Record<string, unknown>; payload?: string } }
  /** Nothing was sent: the container is unharmed. */
  | { kind: 'refused'; message: string };

const keyOf = (a: ContainerAction) => `${a.name}@${a.version}`;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class ContainerPool<A extends ContainerAction = ContainerAction, I = ActionParams> {
  private readonly containers: PoolContainer<I>[] = [];
  private readonly queue: Job<A, I>[] = [];
  private readonly kind: ContainerKind<A, I>;
  private readonly agent = new http.Agent({ keepAlive: true });
  private readonly profile: Required<ClusterProfile>;
  private readonly seed: number;
  private readonly label: string;
  private readonly injected: InjectedFaults = { activations: 0, crash: 0, error: 0, timeout: 0 };
  private active = 0;
  private nextId = 1;
  private closed = false;

  constructor(private readonly opts: ContainerPoolOptions<A, I>) {
    if (!(opts.memoryMb > 0)) throw new RangeError(`container pool memoryMb must be > 0, got ${opts.memoryMb}`);
    const maxActive = opts.maxActive ?? Infinity;
    if (!(maxActive >= 1)) throw new RangeError(`container pool maxActive must be ≥ 1, got ${maxActive}`);
    const given = Object.fromEntries(Object.entries(opts.profile ?? {}).filter(([, v]) => v !== undefined));
    this.profile = { coldStartDelayMs: 0, speedFactor: 1, failureProbability: 0, errorProbability: 0, timeoutProbability: 0, ...given };
    const p = this.profile;
    if (!(p.speedFactor >= 1)) throw new RangeError(`profile speedFactor must be ≥ 1, got ${p.speedFactor}`);
    for (const k of ['failureProbability', 'errorProbability', 'timeoutProbability'] as const) {
      if (!(p[k] >= 0 && p[k] <= 1)) throw new RangeError(`profile ${k} must be in [0, 1], got ${p[k]}`);
    }
    const sum = p.failureProbability + p.errorProbability + p.timeoutProbability;
    if (!(sum <= 1 + 1e-9)) throw new RangeError(`profile failureProbability + errorProbability + timeoutProbability must be ≤ 1, got ${sum}`);
    if (!(p.coldStartDelayMs >= 0)) throw new RangeError(`profile coldStartDelayMs must be ≥ 0, got ${p.coldStartDelayMs}`);
    this.label = opts.label ?? 'container pool';
    this.seed = opts.seed ?? 0;
    // The OpenWhisk kind runs any ContainerAction with parameters: the default for the default type arguments.
    this.kind = opts.kind ?? (openWhiskKind(opts.images ?? {}) as unknown as ContainerKind<A, I>);
  }

  /** The faults injected so far (a copy). */
  faults(): InjectedFaults {
    return { ...this.injected };
  }

  run(action: A, input: I, meta: RunMeta): Promise<ContainerRunResult> {
    const submitted = Date.now();
    const create = this.prepare(action, submitted);
    if (typeof create !== 'function') return create;
    const fault = this.drawFault(action);
    return new Promise((resolve) => {
      this.queue.push({ action, create, input, meta, submitted, fault, resolve });
      this.dispatch();
    });
  }

  /**
   * Runs at once, or not at all: undefined (nothing started, no fault drawn) when the run would have to wait — for a
   * container's slot, for memory, for maxActive, or behind queued runs. A run that can never run (pool closed, the
   * action cannot be prepared or is bigger than the pool) is answered as by run().
   */
  tryRun(action: A, input: I, meta: RunMeta): Promise<ContainerRunResult> | undefined {
    const submitted = Date.now();
    const create = this.prepare(action, submitted);
    if (typeof create !== 'function') return create;
    if (this.queue.length > 0 || this.active >= (this.opts.maxActive ?? Infinity)) return undefined;
    let resolve!: (r: ContainerRunResult) => void;
    const done = new Promise<ContainerRunResult>((r) => (resolve = r));
    const job: Job<A, I> = { action, create, input, meta, submitted, fault: undefined, resolve };
    const place = this.placement(job, false);
    if (place === undefined) return undefined;
    job.fault = this.drawFault(action);
    this.assign(job, place.container, place.cold);
    return done;
  }

  /** The factory of containers for action, or the answer of a run that cannot happen. */
  private prepare(action: A, submitted: number): ContainerFactory<I> | Promise<ContainerRunResult> {
    if (this.closed) return Promise.resolve(failed(`${this.label}: the container pool is closed`, submitted));
    const create = this.kind.prepare(action, this.label);
    if (typeof create === 'string') return Promise.resolve(failed(create, submitted));
    if (action.limits.memoryMb > this.opts.memoryMb) {
      return Promise.resolve(failed(`${this.label}: action ${action.name} needs ${action.limits.memoryMb} MB, more than the ${this.opts.memoryMb} MB of the whole pool`, submitted));
    }
    return create;
  }

  stats(): ContainerPoolStats {
    const live = this.containers.filter((c) => c.alive);
    return {
      containers: live.length,
      warm: live.filter((c) => c.state === 'ready' && c.active === 0).length,
      busy: live.filter((c) => c.active > 0).length,
      queued: this.queue.length,
      memoryUsedMb: this.memoryUsed(),
    };
  }

  /** Kills every runtime process; queued runs fail (developer error), running ones end as their container dies. */
  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.queue.splice(0)) job.resolve(failed(`${this.label}: the container pool was closed`, job.submitted));
    const all = [...this.containers];
    for (const c of all) c.kill();
    await Promise.all(all.map((c) => c.exited));
    this.agent.destroy();
  }

  /** The fault of the next activation: one uniform draw from its own stream (seed, label, sequence number). */
  private drawFault(action: A): InjectedFault | undefined {
    const seq = this.injected.activations++;
    const p = this.profile;
    if (p.failureProbability === 0 && p.errorProbability === 0 && p.timeoutProbability === 0) return undefined;
    const u = createRng(this.seed, 'faults', this.label, seq).next();
    if (u < p.failureProbability) return 'crash';
    if (u < p.failureProbability + p.errorProbability) return 'error';
    if (u < p.failureProbability + p.errorProbability + p.timeoutProbability) {
      // Without a finite time limit nothing would ever end the held activation: no timeout fault then.
      const t = action.limits.timeoutMs;
      return Number.isFinite(t) && t > 0 ? 'timeout' : undefined;
    }
    return undefined;
  }

  /** Memory of live containers: a killed one's is free at once (its process is gone within milliseconds). */
  private memoryUsed(): number {
    return this.containers.reduce((s, c) => s + (c.alive ? c.memoryMb : 0), 0);
  }

  /** Places queued runs in order. A run that must wait for memory blocks later cold starts, not later warm reuse. */
  private dispatch(): void {
    if (this.closed) return;
    const maxActive = this.opts.maxActive ?? Infinity;
    let blocked = false;
    // Once a run is blocked, later runs can only go to warm containers with a free slot: the actions that have one
    // (recomputed after each placement); none left ends the pass, so a long queue costs nothing per ended run.
    let free: Set<string> | undefined;
    for (let i = 0; i < this.queue.length && this.active < maxActive; ) {
      const job = this.queue[i]!;
      if (blocked) {
        free ??= this.actionsWithFreeSlots();
        if (free.size === 0) break;
        if (!free.has(keyOf(job.action))) {
          i++;
          continue;
        }
      }
      const place = this.placement(job, blocked);
      if (place) {
        this.queue.splice(i, 1);
        this.assign(job, place.container, place.cold);
        free = undefined;
      } else {
        blocked = true;
        i++;
      }
    }
  }

  /** Keys (keyOf) of the actions that have a live container with a free concurrency slot. */
  private actionsWithFreeSlots(): Set<string> {
    const keys = new Set<string>();
    for (const c of this.containers) if (c.alive && c.active < c.concurrency) keys.add(c.key);
    return keys;
  }

  /** A warm container with a free slot, else a new one if memory allows (and no cold start is blocked), else none. */
  private placement(job: Job<A, I>, coldBlocked: boolean): { container: PoolContainer<I>; cold: boolean } | undefined {
    const key = keyOf(job.action);
    const warm = this.containers.find((c) => c.alive && c.key === key && c.active < c.concurrency);
    if (warm) return { container: warm, cold: false };
    if (!coldBlocked && this.makeRoom(job.action.limits.memoryMb)) return { container: this.start(job), cold: true };
    return undefined;
  }

  /** True if `need` MB fit, after evicting idle containers (LRU first) if that is enough; evicts nothing otherwise. */
  private makeRoom(need: number): boolean {
    let free = this.opts.memoryMb - this.memoryUsed();
    if (free >= need) return true;
    const idle = this.containers.filter((c) => c.state === 'ready' && c.active === 0).sort((a, b) => a.lastUsed - b.lastUsed);
    if (free + idle.reduce((s, c) => s + c.memoryMb, 0) < need) return false;
    for (const c of idle) {
      if (free >= need) break;
      this.remove(c);
      free += c.memoryMb;
    }
    return true;
  }

  private remove(c: PoolContainer<I>): void {
    c.kill();
    const i = this.containers.indexOf(c);
    if (i >= 0) this.containers.splice(i, 1);
  }

  /** A new container for job's action: its process starting, then the profile's cold-start delay, then its init. */
  private start(job: Job<A, I>): PoolContainer<I> {
    const { action } = job;
    const c = job.create({
      id: `${this.label.replace(/\W+/g, '-')}-${this.nextId++}`,
      key: keyOf(action),
      env: this.opts.env ?? {},
      agent: this.agent,
      faultInjection: this.profile.errorProbability > 0 || this.profile.timeoutProbability > 0,
      label: this.label,
    });
    this.containers.push(c);
    c.ready = (async () => {
      await c.started();
      const t0 = Date.now();
      if (this.profile.coldStartDelayMs > 0) await sleep(this.profile.coldStartDelayMs);
      await c.init(action.limits.timeoutMs, job.meta);
      c.markReady();
      return Date.now() - t0;
    })();
    c.ready.catch(() => this.remove(c));
    void c.exited.then(() => {
      this.remove(c);
      this.dispatch(); // its memory is free
    });
    return c;
  }

  private assign(job: Job<A, I>, c: PoolContainer<I>, cold: boolean): void {
    this.active++;
    c.active++;
    clearTimeout(c.idleTimer);
    void this.execute(job, c, cold).then((r) => {
      this.active--;
      c.active--;
      c.lastUsed = Date.now();
      if (c.alive && c.active === 0) this.scheduleIdleStop(c);
      job.resolve(r);
      this.dispatch();
    });
  }

  private scheduleIdleStop(c: PoolContainer<I>): void {
    const ms = this.opts.idleTimeoutMs ?? 10 * 60_000;
    if (!Number.isFinite(ms)) return;
    c.idleTimer = setTimeout(() => {
      if (c.active === 0) {
        this.remove(c);
        this.dispatch();
      }
    }, ms);
    c.idleTimer.unref(); // an idle container must not keep the process alive on its own
  }

  private async execute(job: Job<A, I>, c: PoolContainer<I>, cold: boolean): Promise<ContainerRunResult> {
    const base = { coldStart: cold, containerId: c.id, initTimeMs: 0 };
    try {
      const initMs = await c.ready;
      if (cold) base.initTimeMs = initMs;
    } catch (e) {
      const now = Date.now();
      const message = e instanceof ContainerFault ? e.message : String(e);
      const logs = await c.logs.last();
      const answer = this.closed ? { result: { error: `${this.label}: the container pool was closed` } } : e instanceof ContainerFault && e.answer ? e.answer : { result: { error: message } };
      return { ...base, status: 'developer error', ...answer, startTime: now, endTime: now, waitTimeMs: now - job.submitted, logs };
    }
    const doomed = job.fault === 'crash';
    if (job.fault) this.injected[job.fault]++; // the container is ready: the fault is on its way
    const startTime = Date.now();
    const timeoutMs = job.action.limits.timeoutMs;
    const request: RunRequest<I> = {
      input: job.input,
      meta: job.meta,
      deadline: startTime + timeoutMs,
      ...(job.fault === 'error' || job.fault === 'timeout' ? { fault: job.fault } : {}),
    };
    const ending = await this.runWithLimits(c, request, timeoutMs, doomed);
    const endTime = Date.now();
    const timing = { startTime, endTime, waitTimeMs: startTime - job.submitted };
    if (ending.kind === 'refused') return { ...base, ...timing, status: 'developer error', result: { error: ending.message }, logs: [] };
    let status: ContainerOutcome;
    let answer: { result: Record<string, unknown>; payload?: string };
    if (ending.kind === 'answer') {
      status = ending.status;
      answer = ending.payload !== undefined ? { result: ending.result, payload: ending.payload } : { result: ending.result };
      if (status === 'developer error') c.kill(); // a container that answered a developer error is never reused
    } else {
      c.kill(); // a container that timed out or crashed is never reused
      if (ending.kind === 'timeout') {
        status = 'timed out';
        answer = c.timedOut(request, timeoutMs);
      } else {
        status = 'developer error';
        answer = this.closed ? { result: { error: `${this.label}: the container pool was closed while the activation ran` } } : ending.answer;
      }
    }
    const logs = status === 'timed out' || ending.kind === 'fault' ? await c.logs.last() : await c.logs.next();
    const memoryUsedMb = c.peakMemoryMb?.();
    return { ...base, ...timing, status, ...answer, logs, ...(memoryUsedMb !== undefined ? { memoryUsedMb } : {}) };
  }

  /** The run under the time limit, the simulated slowness, and the injected crash. */
  private runWithLimits(c: PoolContainer<I>, request: RunRequest<I>, timeoutMs: number, doomed: boolean): Promise<Ending> {
    return new Promise((resolve) => {
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const settle = (e: Ending) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(e);
      };
      if (Number.isFinite(timeoutMs) && timeoutMs > 0) {
        timer = setTimeout(() => {
          c.kill();
          settle({ kind: 'timeout' });
        }, timeoutMs);
      }
      const crashed = async (why: string) => {
        const exit = await c.exitInfo(1000);
        const note = doomed ? ` (crash injected by the cluster profile, failureProbability ${this.profile.failureProbability})` : '';
        settle({ kind: 'fault', answer: c.crashed(request, exit, why, note) });
      };
      const t0 = Date.now();
      // An injected failure is a real crash: the runtime is SIGKILLed once the activation is on its way to it.
      c.run(request, doomed ? () => c.kill() : undefined).then(
        async (answer) => {
          if (doomed) return crashed('killed');
          // speedFactor: simulated slowness of the host, not CPU throttling — the container is held and the answer
          // delayed by (factor − 1) × the real run time; the time limit still applies to the total.
          if (this.profile.speedFactor > 1) await sleep((this.profile.speedFactor - 1) * (Date.now() - t0));
          settle({ kind: 'answer', ...answer });
        },
        (e: unknown) => (e instanceof PayloadError ? settle({ kind: 'refused', message: e.message }) : crashed(e instanceof Error ? e.message : String(e))),
      );
    });
  }
}

function failed(error: string, submitted: number): ContainerRunResult {
  const now = Date.now();
  return { status: 'developer error', result: { error }, startTime: now, endTime: now, waitTimeMs: now - submitted, initTimeMs: 0, coldStart: false, containerId: '', logs: [] };
}
