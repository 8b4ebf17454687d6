/**
 * Google Cloud Functions, local mode: every deployed function is a set of instances of Google's real
 * functions-framework, each in its own process on its own port on 127.0.0.1 (google-local-server), serving the GCF
 * entry wrapper around the function's `main(params)` (google-entry). As on Cloud Functions (2nd gen), an instance
 * serves at most `concurrency` requests at a time (default 1); a request goes to an instance with a free slot, else
 * starts a new one (a cold start) while the function has fewer than min(max_instances, the machine's local cap),
 * else waits in a FIFO queue; past the queue window (when the function's own max_instances bind) it is refused as
 * GCF refuses it, HTTP 429 (google-instances). Deploy writes the source directory and starts max(1, min_instances)
 * instances (restarts them on update); remove stops every instance; invoke POSTs to an instance in the background
 * and keeps the activation record (google-invoke). An instance that died (a crash kills it) is dropped and replaced
 * by the next request that needs one; instances idle for idle_timeout beyond min_instances are stopped.
 *
 * Deployments are recorded in `<stateDir>/google-<cluster>/deployments.json` with every instance (pid, port), the
 * slots in use (a lease per request, by the sending process's pid) and the queue, all changed under a cross-process
 * lock: the keeper, relay activations and later CLI commands (start, remove) share the same instances.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { unzipSync } from 'fflate';
import { pidAlive } from '../keeper/lease.js';
import { functionEnv, functionIdOf, functionScaling, localInstanceCap, type GoogleLocalSettings } from './google-config.js';
import { ENTRY_POINT, gcfSourceFiles } from './google-entry.js';
import {
  isRunning,
  leaveQueue,
  mayProceed,
  place,
  prune,
  release,
  type InstancePool,
  type LocalInstance,
  type LocalScaling,
  type RunningInstance,
  type Ticket,
} from './google-instances.js';
import { ActivationBook, activationHeaders, FunctionCaller, type CallOutcome, type GoogleActivation } from './google-invoke.js';
import {
  frameworkMain,
  isServerAlive,
  ServerStartError,
  startFunctionServer,
  stopFunctionServer,
  stopServersBySource,
  type ServerRecord,
} from './google-local-server.js';
import type { FunctionSource } from './google-source.js';
import { ProviderError, type FunctionSpec, type Provider } from './types.js';
import { withStateLock } from './state-lock.js';

export interface GoogleLocalProviderOptions {
  cluster: string;
  settings: GoogleLocalSettings;
  /** Directory for deployment records, function sources and instance logs. */
  stateDir: string;
  /** For a function deployed without a package: its OpenWhisk-style `exports.main = async (params) => …` source. */
  source: FunctionSource;
  /** Extra environment for every instance. */
  env?: Record<string, string>;
}

interface LocalDeployment extends InstancePool {
  spec: FunctionSpec;
  sourceDir: string;
  deployedAt: number;
  /**
   * Fixed at deploy, like a GCF revision, so that an instance is the same whichever process starts it (a relay runs
   * from its own package, with its own environment): the framework's entry and the instances' environment.
   */
  framework?: string;
  env?: Record<string, string>;
}

type Deployments = Record<string, LocalDeployment>;

/** A record written before functions had several instances: one `server`. */
type RecordedDeployment = Omit<LocalDeployment, keyof InstancePool> & Partial<InstancePool> & { server?: ServerRecord };

/** Variables of the keeper's environment an instance inherits (everything else it does not see). */
const INHERITED_ENV = new Set(['PATH', 'HOME', 'TMPDIR', 'LANG', 'TZ']);

/** How long an instance that answered a crash is watched for exiting before it gets requests again, ms. */
const CRASH_SETTLE_MS = 150;
/** A lease outlives its request's own bounds (start + timeout) by this much before it counts as forgotten, ms. */
const LEASE_SLACK_MS = 60_000;
/** A waiting request takes the record's lock at least this often (to refresh its queue entry), ms. */
const WAITER_REFRESH_MS = 2_000;
/** Between looks at the record while waiting, ms (at most; a slot freed in this process wakes waiters at once). */
const WAIT_POLL_MS = 100;

/** Requests of this process waiting for an instance: a freed slot or a started instance wakes them. */
const wakers = new Set<() => void>();
function wakeWaiters(): void {
  for (const w of [...wakers]) w();
}
function nap(ms: number): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      wakers.delete(done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    wakers.add(done);
  });
}

type Acquired = { dep: LocalDeployment; instance: RunningInstance; started: boolean } | { refused: number; dep: LocalDeployment };

export class GoogleLocalProvider implements Provider {
  readonly platform = 'google';
  readonly cluster: string;
  private readonly root: string;
  private readonly file: string;
  private readonly book = new ActivationBook();
  private readonly caller = new FunctionCaller();
  /** Serialises read-modify-write of the deployment record within this process. */
  private stateLock: Promise<unknown> = Promise.resolve();
  private rootMade = false;
  /** Requests in progress and instances being stopped: close() waits for them to give back what they hold. */
  private readonly inflight = new Set<Promise<unknown>>();
  /** Counts close() calls: a request begun before the latest one is abandoned (later ones run as usual). */
  private epoch = 0;

  constructor(private readonly opts: GoogleLocalProviderOptions) {
    this.cluster = opts.cluster;
    this.root = path.join(opts.stateDir, `google-${opts.cluster}`);
    this.file = path.join(this.root, 'deployments.json');
  }

  private fail(message: string, exitCode: 1 | 2 = 1): ProviderError {
    return new ProviderError(`google cluster ${this.cluster}: ${message}`, exitCode);
  }

  private async readState(): Promise<Deployments> {
    let recorded: Record<string, RecordedDeployment>;
    try {
      recorded = JSON.parse(await readFile(this.file, 'utf8')) as Record<string, RecordedDeployment>;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw this.fail(`cannot read its deployment record ${this.file}: ${(e as Error).message}`);
    }
    for (const dep of Object.values(recorded)) this.upgrade(dep);
    return recorded as Deployments;
  }

  /** A record from before instances (one `server`) is read as a function with that one instance. */
  private upgrade(dep: RecordedDeployment): void {
    if (!dep.instances) {
      const s = dep.server;
      dep.instances = s ? [{ id: 'i1', pid: s.pid, port: s.port, startedAt: s.startedAt, lastUsed: s.startedAt, leases: [] }] : [];
      dep.nextInstance = dep.instances.length + 1;
      delete dep.server;
    }
    dep.queue ??= [];
    dep.nextInstance ??= dep.instances.length + 1;
    if (!dep.scaling) {
      try {
        dep.scaling = this.scalingOf(dep.spec);
      } catch {
        dep.scaling = { maxInstances: 1, minInstances: 0, concurrency: 1, limit: 1, queueTimeoutMs: null, idleTimeoutMs: this.opts.settings.idleTimeoutMs };
      }
    }
  }

  private updateState<T>(change: (d: Deployments) => Promise<T>): Promise<T> {
    // Serialised in this process, and locked against other keepers changing the same cluster's record.
    const run = this.stateLock.then(async () => {
      if (!this.rootMade) {
        await mkdir(this.root, { recursive: true });
        this.rootMade = true;
      }
      return withStateLock(this.file, async () => {
        const d = await this.readState();
        const out = await change(d);
        const tmp = `${this.file}.${process.pid}.tmp`;
        await writeFile(tmp, JSON.stringify(d, null, 2));
        await rename(tmp, this.file);
        return out;
      });
    });
    this.stateLock = run.catch((e: unknown) => {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') this.rootMade = false; // the state directory went away
    });
    return run;
  }

  /**
   * How the function scales here: its GCF settings, its instances bounded by min(max_instances, the local cap).
   * The queue window applies when the function's own max_instances is the bound (as on GCF); when the machine's
   * cap is, GCF would have started another instance, so a request just waits for one here.
   */
  private scalingOf(spec: FunctionSpec): LocalScaling {
    const s = functionScaling(this.cluster, spec.name, spec.settings, spec.memoryMb);
    const cap = this.opts.settings.maxLocalInstances ?? localInstanceCap();
    const limit = Math.min(s.maxInstances, cap);
    return {
      maxInstances: s.maxInstances,
      minInstances: Math.min(s.minInstances, limit),
      concurrency: s.concurrency,
      limit,
      queueTimeoutMs: s.maxInstances <= cap ? this.opts.settings.queueTimeoutMs : null,
      idleTimeoutMs: this.opts.settings.idleTimeoutMs,
    };
  }

  /** Refuses, before anything is deployed, what Cloud Functions would refuse: name, env, scaling settings. */
  validate(spec: FunctionSpec): void {
    functionIdOf(this.cluster, spec.name);
    functionEnv(this.cluster, spec.name, spec.settings);
    functionScaling(this.cluster, spec.name, spec.settings, spec.memoryMb);
  }

  private instanceEnv(name: string, dep: LocalDeployment): Record<string, string> {
    const id = functionIdOf(this.cluster, name);
    const env: Record<string, string> = {
      // What Google's Node.js runtime sets for a 2nd gen function.
      K_SERVICE: id,
      K_REVISION: `${id}-${dep.deployedAt}`,
      K_CONFIGURATION: id,
      FUNCTION_TARGET: ENTRY_POINT,
      FUNCTION_SIGNATURE_TYPE: 'http',
      ...this.opts.env,
      ...functionEnv(this.cluster, name, dep.spec.settings),
    };
    // An instance sees its own environment only, not the keeper's (which may hold other platforms' secrets).
    // Kept: what any process needs, and the BLAS/OpenMP settings a machine may rely on for its native kernels.
    for (const [k, v] of Object.entries(process.env)) {
      if (v !== undefined && env[k] === undefined && (INHERITED_ENV.has(k) || /^(OPENBLAS|OMP)_/.test(k))) env[k] = v;
    }
    return env;
  }

  /** Starts one instance process of the function (its log: `logs/<function>.<instance>.log`). */
  private async start(name: string, dep: LocalDeployment, instanceId: string): Promise<ServerRecord> {
    await mkdir(path.join(this.root, 'logs'), { recursive: true });
    try {
      return await startFunctionServer({
        sourceDir: dep.sourceDir,
        logFile: path.join(this.root, 'logs', `${name}.${instanceId}.log`),
        preloadFile: path.join(this.root, 'loopback-preload.cjs'),
        env: dep.env ?? this.instanceEnv(name, dep),
        startupTimeoutMs: this.opts.settings.startupTimeoutMs,
        ...(dep.framework ? { frameworkMain: dep.framework } : {}),
      });
    } catch (e) {
      if (e instanceof ServerStartError) throw this.fail(`function ${name} did not start: ${e.message}`);
      throw e;
    }
  }

  /** Stops every instance of a deployment: the recorded ones, then any other serving its source (one being started). */
  private async stopAll(dep: LocalDeployment): Promise<void> {
    await Promise.all(dep.instances.filter(isRunning).map((i) => stopFunctionServer(i, dep.sourceDir)));
    await stopServersBySource(dep.sourceDir);
  }

  async deploy(spec: FunctionSpec): Promise<void> {
    const id = functionIdOf(this.cluster, spec.name);
    functionEnv(this.cluster, spec.name, spec.settings); // refuse a bad env before touching anything
    const scaling = this.scalingOf(spec); // and bad scaling settings
    const files = await this.sourceFiles(spec, id);
    const startError = await this.updateState(async (d) => {
      const old = d[spec.name];
      if (old) {
        await this.stopAll(old);
        await rm(old.sourceDir, { recursive: true, force: true });
      }
      // Like Google's build, the function's source is unpacked on its own, in a fresh directory outside any project:
      // nothing resolves through a parent node_modules (the framework is the platform's, as on GCF).
      const sourceDir = await mkdtemp(path.join(os.tmpdir(), `fk-gcf-${this.cluster}-${spec.name}-`));
      for (const [file, data] of Object.entries(files)) {
        const target = path.resolve(sourceDir, file);
        if (!target.startsWith(sourceDir + path.sep)) throw this.fail(`function ${spec.name}: its package has an entry outside its directory: ${file}`, 2);
        if (file.endsWith('/')) continue;
        await mkdir(path.dirname(target), { recursive: true });
        await writeFile(target, data);
      }
      // Instance ids go on across redeployments, so that activations of the old and the new code never share one.
      const dep: LocalDeployment = { spec, sourceDir, deployedAt: Date.now(), scaling, nextInstance: old?.nextInstance ?? 1, instances: [], queue: [] };
      dep.env = this.instanceEnv(spec.name, dep);
      dep.framework = frameworkMain();
      d[spec.name] = dep; // recorded even if the start fails, so that remove cleans up and invoke retries the start
      // The min_instances (at least one: like GCF's deploy, it shows the code loads and listens) start now.
      const ids = Array.from({ length: Math.max(1, scaling.minInstances) }, () => `i${dep.nextInstance++}`);
      const started = await Promise.allSettled(ids.map((iid) => this.start(spec.name, dep, iid)));
      let error: unknown;
      started.forEach((r, k) => {
        if (r.status === 'fulfilled') dep.instances.push({ id: ids[k]!, ...r.value, lastUsed: r.value.startedAt, leases: [] });
        else error ??= r.reason;
      });
      return error;
    });
    if (startError) throw startError;
  }

  /** The function's source: its package (a GCF source zip), or for code without one, its source wrapped for GCF. */
  private async sourceFiles(spec: FunctionSpec, id: string): Promise<Record<string, Uint8Array | string>> {
    if (spec.artifact) {
      try {
        return unzipSync(await readFile(spec.artifact.file));
      } catch (e) {
        throw this.fail(`function ${spec.name}: its package ${spec.artifact.file} cannot be read: ${(e as Error).message}`, 2);
      }
    }
    try {
      return gcfSourceFiles(id, await this.opts.source(spec.name));
    } catch (e) {
      throw this.fail(`no code for function ${spec.name}: ${(e as Error).message}`, 2);
    }
  }

  async deployedArtifact(name: string): Promise<{ sha256: string; size: number } | undefined> {
    const a = (await this.readState())[name]?.spec.artifact;
    return a ? { sha256: a.sha256, size: a.size } : undefined;
  }

  /** Stops every instance of the function, whichever process started it, and forgets the function. */
  async remove(name: string): Promise<void> {
    await this.updateState(async (d) => {
      const dep = d[name];
      if (!dep) return;
      await this.stopAll(dep);
      await rm(dep.sourceDir, { recursive: true, force: true });
      delete d[name];
    });
  }

  async list(): Promise<string[]> {
    return Object.keys(await this.readState()).sort();
  }

  async invoke(name: string, params: Record<string, unknown>): Promise<string> {
    if (!(await this.readState())[name]) throw this.fail(`function ${name} is not deployed (run \`fedkeeper deploy -c CONFIG\` first)`, 2);
    const record = this.book.open(name);
    this.track(this.run(name, record, params, this.epoch));
    return record.activationId;
  }

  private track(p: Promise<unknown>): void {
    const tracked = p.catch(() => undefined).finally(() => this.inflight.delete(tracked));
    this.inflight.add(tracked);
  }

  private async run(name: string, record: GoogleActivation, params: Record<string, unknown>, epoch: number): Promise<void> {
    const ticket: Ticket = { token: randomBytes(12).toString('hex'), pid: process.pid };
    const closed = (): boolean => epoch !== this.epoch;
    let got: Acquired;
    try {
      got = await this.acquire(name, ticket, closed);
    } catch (e) {
      this.book.fail(record, 'developer error', (e as Error).message);
      return;
    }
    if ('refused' in got) {
      // What GCF's front end answers when max instances stay busy past its queueing window.
      const s = got.dep.scaling;
      this.book.fail(
        record,
        'internal error',
        `HTTP 429 from the platform: The request was aborted because there was no available instance. (function ${name}: its max_instances ${s.maxInstances} were all busy for ${got.refused} ms)`,
        429,
      );
      return;
    }
    const { dep, instance, started } = got;
    record.instance = instance.id;
    let outcome: CallOutcome | undefined;
    try {
      if (closed()) throw this.fail('this provider object was closed before the request was sent');
      outcome = await this.caller.call({
        url: new URL(`http://127.0.0.1:${instance.port}/`),
        params,
        headers: activationHeaders(record.activationId, dep.spec.timeoutMs),
        timeoutMs: dep.spec.timeoutMs,
      });
      if (outcome.status === 'developer error' && !closed()) {
        // The framework answers a crash first and may exit right after (process.exit, uncaught errors): until that
        // is settled, no request must go to a dying instance (GCF would route it to a healthy one). This request's
        // slot stays held meanwhile; with concurrency > 1 the instance is marked so that its other slots are too.
        if (dep.scaling.concurrency > 1) await this.markSuspect(name, dep, instance.id);
        await this.awaitDeath(instance, dep.sourceDir);
      }
    } catch (e) {
      if (!outcome) this.book.fail(record, 'developer error', (e as Error).message);
    } finally {
      // The slot is free before the record says the request ended: whoever sees it ended finds the instance idle.
      // A timed-out request's slot is freed too, although its function may run on in the instance (GCF does not
      // stop it either): the next request may then share the instance with it.
      await this.releaseSlot(name, dep, ticket, instance.id, outcome?.status === 'developer error').catch(() => undefined);
    }
    // The entry wrapper tells an instance's first request; a request that had to start its instance is cold anyway.
    if (outcome) this.book.settle(record, { ...outcome, coldStart: outcome.coldStart || started });
  }

  /**
   * A slot for the request: on a running instance with room, or on a new instance it starts, or after waiting its
   * turn in the queue (FIFO across every process using the function). Refused past the queue window.
   */
  private async acquire(name: string, ticket: Ticket, closed: () => boolean): Promise<Acquired> {
    let delay = 10;
    for (;;) {
      if (closed()) {
        await this.updateState(async (d) => {
          if (d[name]) leaveQueue(d[name], ticket.token);
        }).catch(() => undefined);
        throw this.fail(`this provider object was closed while the request waited for an instance of function ${name}`);
      }
      const { placement, dep, idle } = await this.updateState(async (d) => {
        const dep = d[name];
        if (!dep) throw this.fail(`function ${name} was removed`);
        const idle = prune(dep, {
          now: Date.now(),
          pidAlive,
          dead: await this.deadInstances(dep),
          startStaleMs: this.opts.settings.startupTimeoutMs + LEASE_SLACK_MS,
        });
        const leaseMs = this.opts.settings.startupTimeoutMs + dep.spec.timeoutMs + LEASE_SLACK_MS;
        return { placement: place(dep, ticket, Date.now(), leaseMs), dep, idle };
      });
      // Scaled in: stopped outside the lock (they are out of the record already, so no request goes to them).
      if (idle.length > 0) this.track(Promise.all(idle.map((i) => stopFunctionServer(i, dep.sourceDir))));
      switch (placement.kind) {
        case 'run':
          return { dep, instance: placement.instance, started: false };
        case 'start':
          return { dep, instance: await this.startInstance(name, dep, placement.instance), started: true };
        case 'refused':
          return { dep, refused: placement.waitedMs };
        case 'wait': {
          // Queued: look at the record (without its lock) until this request's turn may have come.
          const lockedAt = Date.now();
          for (;;) {
            await nap(delay);
            delay = Math.min(WAIT_POLL_MS, delay * 2);
            if (closed() || Date.now() - lockedAt >= WAITER_REFRESH_MS) break;
            if (mayProceed((await this.readState())[name], ticket, Date.now())) break;
          }
        }
      }
    }
  }

  /** Ids of the recorded instances whose process is gone. */
  private async deadInstances(dep: LocalDeployment): Promise<Set<string>> {
    const dead = new Set<string>();
    await Promise.all(
      dep.instances.filter(isRunning).map(async (i) => {
        if (!(await isServerAlive(i, dep.sourceDir))) dead.add(i.id);
      }),
    );
    return dead;
  }

  /** Starts an instance place() recorded for this request, and records its pid and port (a cold start). */
  private async startInstance(name: string, dep: LocalDeployment, instance: LocalInstance): Promise<RunningInstance> {
    let server: ServerRecord;
    try {
      server = await this.start(name, dep, instance.id);
    } catch (e) {
      await this.updateState(async (d) => {
        const cur = d[name];
        if (cur?.deployedAt === dep.deployedAt) cur.instances = cur.instances.filter((i) => i.id !== instance.id);
      }).catch(() => undefined);
      wakeWaiters();
      throw e;
    }
    const running = await this.updateState(async (d) => {
      const cur = d[name];
      const i = cur?.deployedAt === dep.deployedAt ? cur.instances.find((x) => x.id === instance.id) : undefined;
      if (!i) return undefined;
      Object.assign(i, { pid: server.pid, port: server.port, startedAt: server.startedAt, lastUsed: Date.now() });
      delete i.starter;
      return i as RunningInstance;
    });
    if (!running) {
      await stopFunctionServer(server, dep.sourceDir);
      throw this.fail(`function ${name} was removed or redeployed while its instance ${instance.id} started`);
    }
    wakeWaiters(); // with concurrency > 1, its other slots are free
    return running;
  }

  private async markSuspect(name: string, dep: LocalDeployment, instanceId: string): Promise<void> {
    await this.updateState(async (d) => {
      const cur = d[name];
      const i = cur?.deployedAt === dep.deployedAt ? cur.instances.find((x) => x.id === instanceId) : undefined;
      if (i) i.suspectUntil = Date.now() + 10 * CRASH_SETTLE_MS;
    });
  }

  /** Gives the request's slot back; after a developer error, an instance that exited is dropped at once. */
  private async releaseSlot(name: string, dep: LocalDeployment, ticket: Ticket, instanceId: string, crashed: boolean): Promise<void> {
    try {
      await this.updateState(async (d) => {
        const cur = d[name];
        if (cur?.deployedAt !== dep.deployedAt) return;
        const i = release(cur, ticket.token, instanceId, Date.now());
        if (!i || !crashed) return;
        delete i.suspectUntil;
        if (isRunning(i) && !(await isServerAlive(i, cur.sourceDir))) cur.instances = cur.instances.filter((x) => x !== i);
      });
    } finally {
      wakeWaiters();
    }
  }

  /** Resolves when the instance has exited, or after a short while if it stays up (a thrown error keeps it). */
  private async awaitDeath(server: ServerRecord, sourceDir: string): Promise<void> {
    for (let waited = 0; waited < CRASH_SETTLE_MS; waited += 10) {
      if (!(await isServerAlive(server, sourceDir))) return;
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async activation(activationId: string): Promise<GoogleActivation | undefined> {
    return this.book.get(activationId);
  }

  /**
   * Instances keep running: the functions stay deployed until `remove`. Requests of this object still in flight
   * are abandoned (their connections closed) and give their slots and queue places back before this resolves.
   */
  async close(): Promise<void> {
    this.epoch++;
    wakeWaiters();
    this.caller.close();
    await Promise.allSettled([...this.inflight]);
  }
}
