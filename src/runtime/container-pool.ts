/**
 * ContainerPool: runs actions in containers (action-runtime processes) as an OpenWhisk invoker does. One
 * implementation for the `local` provider and the local platforms of fabric/.
 *
 *  - A run takes a warm container of the same action name + version with a free concurrency slot; else starts a
 *    new one if the memory bound allows (evicting idle containers, least recently used first, to make room); else
 *    waits in a FIFO queue. At most maxActive runs are in flight across the pool (CPU-bound work must not
 *    oversubscribe the cores).
 *  - A run past limits.timeoutMs (from the start of /run) gets its container SIGKILLed: 'timed out'. A crash, a
 *    broken connection or a non-200 answer is a 'developer error', and that container is never reused. A result
 *    with an `error` field is an 'application error'.
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
import type { RunBody } from './action-contract.js';
import { Container, ContainerFault, PayloadError, describeExit } from './container.js';
import type { ClusterProfile, ContainerAction, ContainerOutcome, ContainerRunResult, InjectedFault, InjectedFaults, RunMeta } from './container-types.js';
import { resolveCode, runtimeEnv, type ActionCode, type ImageMap } from './action-code.js';

export interface ContainerPoolOptions {
  /** The sum of live containers' limits.memoryMb never exceeds this (Infinity allowed). */
  memoryMb: number;
  /** Activations running at once across the pool (default Infinity); more wait in a FIFO queue. */
  maxActive?: number;
  profile?: Partial<ClusterProfile>;
  /** Base environment of every runtime process (on top of a minimal PATH/HOME/TMPDIR/locale set). */
  env?: Record<string, string>;
  /** Blackbox image → the action it runs locally. */
  images?: ImageMap;
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

interface Job {
  action: ContainerAction;
  code: ActionCode;
  params: Record<string, unknown>;
  meta: RunMeta;
  submitted: number;
  /** Drawn at submission. */
  fault: InjectedFault | undefined;
  resolve: (r: ContainerRunResult) => void;
}

type Ending =
  | { kind: 'answer'; status: number; body: Record<string, unknown> }
  | { kind: 'timeout' }
  | { kind: 'fault'; message: string }
  /** Nothing was sent: the container is unharmed. */
  | { kind: 'refused'; message: string };

const keyOf = (a: ContainerAction) => `${a.name}@${a.version}`;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class ContainerPool {
  private readonly containers: Container[] = [];
  private readonly queue: Job[] = [];
  private readonly agent = new http.Agent({ keepAlive: true });
  private readonly profile: Required<ClusterProfile>;
  private readonly seed: number;
  private readonly label: string;
  private readonly injected: InjectedFaults = { activations: 0, crash: 0, error: 0, timeout: 0 };
  private active = 0;
  private nextId = 1;
  private closed = false;

  constructor(private readonly opts: ContainerPoolOptions) {
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
  }

  /** The faults injected so far (a copy). */
  faults(): InjectedFaults {
    return { ...this.injected };
  }

  run(action: ContainerAction, params: Record<string, unknown>, meta: RunMeta): Promise<ContainerRunResult> {
    const submitted = Date.now();
    if (this.closed) return Promise.resolve(failed(`${this.label}: the container pool is closed`, submitted));
    const code = resolveCode(action, this.opts.images ?? {}, this.label);
    if (typeof code === 'string') return Promise.resolve(failed(code, submitted));
    if (action.limits.memoryMb > this.opts.memoryMb) {
      return Promise.resolve(failed(`${this.label}: action ${action.name} needs ${action.limits.memoryMb} MB, more than the ${this.opts.memoryMb} MB of the whole pool`, submitted));
    }
    const fault = this.drawFault(action);
    return new Promise((resolve) => {
      this.queue.push({ action, code, params, meta, submitted, fault, resolve });
      this.dispatch();
    });
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
  private drawFault(action: ContainerAction): InjectedFault | undefined {
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
    for (let i = 0; i < this.queue.length && this.active < maxActive; ) {
      const job = this.queue[i]!;
      const key = keyOf(job.action);
      const warm = this.containers.find((c) => c.alive && c.key === key && c.active < c.concurrency);
      if (warm) {
        this.queue.splice(i, 1);
        this.assign(job, warm, false);
      } else if (!blocked && this.makeRoom(job.action.limits.memoryMb)) {
        this.queue.splice(i, 1);
        this.assign(job, this.start(job), true);
      } else {
        blocked = true;
        i++;
      }
    }
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

  private remove(c: Container): void {
    c.kill();
    const i = this.containers.indexOf(c);
    if (i >= 0) this.containers.splice(i, 1);
  }

  /** A new container for job's action: fork, wait for its port, the profile's cold-start delay, then /init. */
  private start(job: Job): Container {
    const { action, code } = job;
    const c = new Container({
      id: `${this.label.replace(/\W+/g, '-')}-${this.nextId++}`,
      key: keyOf(action),
      memoryMb: action.limits.memoryMb,
      concurrency: Math.max(1, Math.floor(action.limits.concurrency)),
      env: runtimeEnv(this.opts.env),
      agent: this.agent,
      faultInjection: this.profile.errorProbability > 0 || this.profile.timeoutProbability > 0,
    });
    this.containers.push(c);
    c.ready = (async () => {
      await c.started();
      const t0 = Date.now();
      if (this.profile.coldStartDelayMs > 0) await sleep(this.profile.coldStartDelayMs);
      const body = { value: { name: action.name, main: code.main, code: code.code, binary: code.binary, env: action.env ?? {} } };
      const r = await c.init(body, action.limits.timeoutMs);
      if (r.status !== 200) throw new ContainerFault(String(r.body.error ?? `/init answered HTTP ${r.status}`));
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

  private assign(job: Job, c: Container, cold: boolean): void {
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

  private scheduleIdleStop(c: Container): void {
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

  private async execute(job: Job, c: Container, cold: boolean): Promise<ContainerRunResult> {
    const base = { coldStart: cold, containerId: c.id, initTimeMs: 0 };
    try {
      const initMs = await c.ready;
      if (cold) base.initTimeMs = initMs;
    } catch (e) {
      const now = Date.now();
      const message = e instanceof ContainerFault ? e.message : String(e);
      const logs = await c.logs.last();
      return { ...base, status: 'developer error', result: { error: this.closed ? `${this.label}: the container pool was closed` : message }, startTime: now, endTime: now, waitTimeMs: now - job.submitted, logs };
    }
    const doomed = job.fault === 'crash';
    if (job.fault) this.injected[job.fault]++; // the container is ready: the fault is on its way
    const startTime = Date.now();
    const timeoutMs = job.action.limits.timeoutMs;
    const body: RunBody = {
      value: job.params,
      namespace: job.meta.namespace,
      action_name: job.meta.actionName,
      activation_id: job.meta.activationId,
      transaction_id: job.meta.transactionId ?? job.meta.activationId,
      deadline: String(startTime + timeoutMs),
      ...(job.meta.apiKey ? { api_key: job.meta.apiKey } : {}),
      ...(job.fault === 'error' || job.fault === 'timeout' ? { fedkeeper_fault: job.fault } : {}),
    };
    const ending = await this.runWithLimits(c, body, timeoutMs, doomed);
    const endTime = Date.now();
    const timing = { startTime, endTime, waitTimeMs: startTime - job.submitted };
    let status: ContainerOutcome;
    let result: Record<string, unknown>;
    if (ending.kind === 'answer' && ending.status === 200) {
      status = 'error' in ending.body ? 'application error' : 'success';
      result = ending.body;
    } else if (ending.kind === 'refused') {
      return { ...base, ...timing, status: 'developer error', result: { error: ending.message }, logs: [] };
    } else {
      c.kill(); // a container that timed out, crashed or answered a developer error is never reused
      if (ending.kind === 'timeout') {
        status = 'timed out';
        result = { error: `The action exceeded its time limit of ${timeoutMs} milliseconds.` };
      } else {
        status = 'developer error';
        const error = ending.kind === 'fault' ? ending.message : String(ending.body.error ?? `the action's runtime answered HTTP ${ending.status}`);
        result = { error: this.closed ? `${this.label}: the container pool was closed while the activation ran` : error };
      }
    }
    const logs = status === 'timed out' || ending.kind === 'fault' ? await c.logs.last() : await c.logs.next();
    return { ...base, ...timing, status, result, logs };
  }

  /** /run under the time limit, the simulated slowness, and the injected crash. */
  private runWithLimits(c: Container, body: RunBody, timeoutMs: number, doomed: boolean): Promise<Ending> {
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
        const how = exit ? `exited unexpectedly (${describeExit(exit)})` : `failed: ${why}`;
        const injected = doomed ? ` (crash injected by the cluster profile, failureProbability ${this.profile.failureProbability})` : '';
        settle({ kind: 'fault', message: `The action's runtime ${how} while running the activation${injected}.` });
      };
      const t0 = Date.now();
      // An injected failure is a real crash: the runtime is SIGKILLed once the activation is on its way to it.
      c.run(body, doomed ? () => c.kill() : undefined).then(
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
