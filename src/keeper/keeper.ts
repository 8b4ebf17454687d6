/**
 * The Keeper: the only orchestrator. It deploys the FL functions through the providers, initialises the run,
 * drives the rounds (select clients with the seed, invoke them without blocking, track every activation, re-invoke
 * failed ones, aggregate), stops at the target accuracy or max_rounds, writes the run directory, and removes the
 * functions when asked.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { redactConfig } from '../config/index.js';
import type { FedKeeperConfig } from '../config/types.js';
import { weightsSha256 } from '../fl/codec.js';
import { hashSeed } from '../fl/rng.js';
import { selectClients } from '../fl/selection.js';
import type { AggregatorParams, ClientParams, CommonParams, InitParams, RelayParams } from '../functions/params.js';
import type { Provider } from '../providers/types.js';
import { materializeEmbeddedMnist, type DatasetSpec } from '../ml/datasets.js';
import { openStore } from '../store/index.js';
import { startStoreServer } from '../store/store-server.js';
import type { FunctionStoreSpec, ParameterStore, StoreSpec } from '../store/types.js';
import { durationsBy } from '../telemetry/durations.js';
import { RunDirectory } from '../telemetry/run-dir.js';
import { BadInputError, RunFailedError } from './errors.js';
import { backoffMs } from './backoff.js';
import { PackageSet, packageCacheDir } from './packages.js';
import { checkRelayedPayloads } from './payloads.js';
import { buildPlan, RELAY_FUNCTION, type DeploymentPlan } from './plan.js';
import { preflight, type Preflight } from './preflight.js';
import { ClientInputs } from './client-inputs.js';
import { ActivationTracker, type FinishedInvocation, type InvocationRequest } from './tracker.js';
import { DeploymentHolds, describeUsers } from './holds.js';
import { HeldLease, LeaseLostError } from './lease.js';
import { limiter } from './limit.js';
import type { RunMetrics } from '../telemetry/metrics.js';
import { costByPlatform, priceTable, PRICE_DATE, totalUsd, type PlatformCost, type PlatformPrice } from '../telemetry/cost.js';
import { storeOfConfig } from './runs-command.js';
import { clusterConfigurations } from '../config/cluster-blocks.js';
import { PrometheusRounds } from '../telemetry/prometheus-rounds.js';

export type ProgressEvent =
  | { kind: 'packaged'; functionName: string; target: string; size: number; sha256: string; reused: boolean }
  /** Something the user should know that does not stop the command (e.g. a limit clamped into a cluster's range). */
  | { kind: 'warning'; message: string }
  /** Functions a finished run left deployed because other live runs use them. */
  | { kind: 'functions_kept'; functions: string[]; users: string }
  | { kind: 'run_started'; runId: string; runDir: string; maxRounds: number; clientsPerRound: number }
  | { kind: 'init_done'; seconds: number; engine: string }
  /** `clusters`: "platform:cluster" → clients of this round placed there. */
  | { kind: 'round_started'; round: number; maxRounds: number; selected: number; clusters: Record<string, number> }
  /** `where`: "platform:cluster" of the client that ended; `retries`: re-invocations so far in this round. */
  | { kind: 'client_done'; round: number; done: number; selected: number; failed: number; where: string; retries: number }
  | { kind: 'round_done'; round: number; maxRounds: number; accuracy: number; loss: number; best: number; totalSeconds: number };

/** Invocations of a round's clients started at once (each waits for the platform's activation id). */
const DISPATCH_CONCURRENCY = 64;

export interface KeeperOptions {
  /** Directory for local state (deployment records of local clusters); default ".fedkeeper". */
  stateDir?: string;
  onProgress?: (e: ProgressEvent) => void;
  /** The config file's path, recorded in run.json so that `--resume` can find it. */
  configFile?: string;
  /** Attempts per client invocation before the round fails; default fault_tolerance.max_attempts. */
  maxAttempts?: number;
  /** The run's Prometheus metrics (telemetry/metrics.ts), updated as activations and rounds end. */
  metrics?: RunMetrics;
}

export interface RunSummary {
  name: string;
  run_id: string;
  run_dir: string;
  status: 'completed' | 'failed' | 'stopped';
  rounds: number;
  final_accuracy: number | null;
  final_loss: number | null;
  best_accuracy: number | null;
  target_accuracy: number;
  reached_target: boolean;
  wall_s: number;
  clients_total: number;
  clients_per_round: number;
  invocations: number;
  retries: number;
  failures: number;
  final_weights_sha256: string | null;
  [key: string]: unknown;
}

/** A run this keeper has taken over for `--resume`: the open store, the run, its directory (the lease is held). */
interface Claimed {
  store: ParameterStore;
  runId: string;
  runDir: RunDirectory;
}

export class Keeper {
  private constructor(
    private readonly cfg: FedKeeperConfig,
    private readonly plan: DeploymentPlan,
    private readonly opts: Required<Pick<KeeperOptions, 'stateDir' | 'maxAttempts'>> & KeeperOptions,
  ) {}

  /** Builds the plan: provider objects for every cluster, starting the local fabric (OpenWhisk, Lambda) if the config has one. */
  static async open(cfg: FedKeeperConfig, opts: KeeperOptions = {}): Promise<Keeper> {
    const full = { stateDir: '.fedkeeper', maxAttempts: cfg.scenarios.federated_learning.fault_tolerance.max_attempts, ...opts };
    return new Keeper(cfg, await buildPlan(cfg, full.stateDir), full);
  }

  private provider(cluster: string): Provider {
    return this.plan.clusters.get(cluster)!.provider;
  }

  /** How the keeper opens the config's store. */
  private storeSpec(): StoreSpec {
    return storeOfConfig(this.cfg);
  }

  /**
   * Creates (or updates) every function of the plan on its cluster, each from its package for the cluster's
   * platform kind. Everything that can be refused is checked first (the store answers, every package is built and
   * fits its cluster); if a platform still refuses a function, the functions this call created are removed again,
   * so that no half-deployed experiment is left behind.
   */
  async deploy(): Promise<string[]> {
    this.checkPayloads(await preflight(this.cfg));
    await this.holdFunctions();
    if (this.cfg.scenarios.federated_learning.store.type === 'postgres') await (await openStore(this.storeSpec())).close();
    const progress = this.opts.onProgress ?? (() => {});
    const packages = new PackageSet(packageCacheDir(this.opts.stateDir), (a) => progress({ kind: 'packaged', functionName: a.functionName, target: a.target, size: a.size, sha256: a.sha256, reused: a.reused }));
    const work: { cluster: string; spec: import('../providers/types.js').FunctionSpec }[] = [];
    for (const [cluster, specs] of this.plan.specs) {
      const c = this.plan.clusters.get(cluster)!;
      for (const s of specs) work.push({ cluster, spec: await packages.attach({ name: cluster, platform: c.platform, ...(c.maxPackageMb !== undefined ? { maxPackageMb: c.maxPackageMb } : {}) }, s) });
    }
    for (const { cluster, spec } of work) {
      for (const message of this.provider(cluster).validate?.(spec) ?? []) progress({ kind: 'warning', message });
    }
    const existed = new Map<string, Set<string>>();
    for (const cluster of this.plan.specs.keys()) existed.set(cluster, new Set(await this.provider(cluster).list()));
    const created: { cluster: string; name: string }[] = [];
    const done: string[] = [];
    const inUse = this.registry().users(work.map((w) => this.target(w.cluster, w.spec.name)));
    try {
      for (const { cluster, spec } of work) {
        const p = this.provider(cluster);
        const users = inUse.get(this.target(cluster, spec.name));
        if (users && spec.artifact && existed.get(cluster)!.has(spec.name) && (await p.deployedArtifact?.(spec.name))?.sha256 === spec.artifact.sha256) {
          // Another live run uses this very package: deploying it again would only restart what that run is using.
          done.push(`${p.platform}:${cluster}/${spec.name} (unchanged, in use by ${describeUsers(users)})`);
          continue;
        }
        await p.deploy(spec);
        if (!existed.get(cluster)!.has(spec.name)) created.push({ cluster, name: spec.name });
        const pkg = spec.artifact ? ` (package ${(spec.artifact.size / 1024 / 1024).toFixed(2)} MB, sha256 ${spec.artifact.sha256.slice(0, 16)}…)` : '';
        done.push(`${p.platform}:${cluster}/${spec.name}${pkg}`);
      }
    } catch (e) {
      for (const c of created.reverse()) await this.provider(c.cluster).remove(c.name).catch(() => {});
      throw e;
    }
    return done;
  }

  /** Relayed clients on a platform with payload limits must fit them (weights, data, update). */
  private checkPayloads(pre: Preflight): void {
    const relayed = [...this.plan.clusters.values()]
      .filter((c) => c.storeAccess === 'relay' && this.plan.placement.includes(c.name))
      .map((c) => ({ name: c.name, platform: c.platform, functionName: this.cfg.scenarios.federated_learning.clients_info.client_functions[0]!, ...(c.maxPayloadMb !== undefined ? { maxPayloadMb: c.maxPayloadMb } : {}) }));
    checkRelayedPayloads(relayed, pre.model, pre.dataset, Math.max(0, ...pre.partitionSizes));
  }

  /** The packages the deployed functions run, as the platforms recorded them: "platform:cluster/function" → sha256. */
  private async deployedArtifacts(): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const [cluster, specs] of this.plan.specs) {
      const p = this.provider(cluster);
      for (const s of specs) {
        const a = await p.deployedArtifact?.(s.name);
        if (a) out[`${p.platform}:${cluster}/${s.name}`] = a.sha256;
      }
    }
    return out;
  }

  /**
   * How the functions reach the store: PostgreSQL by its URL; a SQLite file through the keeper's store endpoint
   * (HTTP on 127.0.0.1, a fresh token), which lives as long as this call's run.
   */
  private async functionStore(store: ParameterStore): Promise<{ spec: FunctionStoreSpec; close(): Promise<void> }> {
    const st = this.cfg.scenarios.federated_learning.store;
    if (st.type === 'postgres') return { spec: { type: 'postgres', url: st.url }, close: async () => {} };
    const server = await startStoreServer(store);
    return { spec: { type: 'http', url: server.url, token: server.token }, close: () => server.close() };
  }

  /** The dataset as functions see it: the embedded digits become IDX files in the state directory (packages carry no data). */
  private async functionDataset(d: DatasetSpec): Promise<DatasetSpec> {
    if (d.dataset !== 'mnist') return d;
    return materializeEmbeddedMnist(d.test_fraction, path.resolve(this.opts.stateDir, 'datasets'));
  }

  /** "platform:cluster/function": how holds.ts names a deployed function. */
  private target(cluster: string, name: string): string {
    return `${this.provider(cluster).platform}:${cluster}/${name}`;
  }

  private targets(): string[] {
    return [...this.plan.specs].flatMap(([cluster, specs]) => specs.map((s) => this.target(cluster, s.name)));
  }

  /** The registry of which live keepers use which deployed functions (holds.ts), opened on first use. */
  private registry(): DeploymentHolds {
    return (this.holds ??= DeploymentHolds.open(this.opts.stateDir));
  }

  /** Registers this keeper as a user of the plan's functions until close() (see holds.ts). */
  private async holdFunctions(): Promise<void> {
    await this.registry().hold(this.targets());
  }

  /**
   * Deletes every function of the plan from its cluster, also those other live runs still use (what
   * `fedkeeper remove` asks for); such a function's line says which runs used it.
   */
  async remove(): Promise<string[]> {
    const users = this.registry().users(this.targets());
    const done: string[] = [];
    for (const [cluster, specs] of this.plan.specs) {
      const p = this.provider(cluster);
      for (const s of specs) {
        await p.remove(s.name);
        const u = users.get(this.target(cluster, s.name));
        done.push(`${p.platform}:${cluster}/${s.name}${u ? ` (it was still in use by ${describeUsers(u)})` : ''}`);
      }
    }
    return done;
  }

  /**
   * The end of `run`: deletes the plan's functions that no other live keeper uses; the others stay deployed for the
   * runs that use them (the last of them removes them).
   */
  private async removeUnused(): Promise<string[]> {
    const rel = this.registry().release(this.targets());
    const done: string[] = [];
    try {
      for (const [cluster, specs] of this.plan.specs) {
        const p = this.provider(cluster);
        for (const s of specs) {
          if (!rel.free.includes(this.target(cluster, s.name))) continue;
          await p.remove(s.name);
          done.push(this.target(cluster, s.name));
        }
      }
    } finally {
      rel.done();
    }
    if (rel.kept.size) {
      const users = new Map([...rel.kept.values()].flat().map((h) => [h.holder, h]));
      this.opts.onProgress?.({ kind: 'functions_kept', functions: [...rel.kept.keys()].sort(), users: describeUsers([...users.values()]) });
    }
    return done;
  }

  /** Releases the run's lease and the function holds, provider processes and connections, and the plan's fabric. */
  async close(): Promise<void> {
    await this.lease?.release().catch(() => {});
    this.holds?.close();
    this.holds = undefined;
    await this.plan.close();
  }

  private holds: DeploymentHolds | undefined;
  private lease: HeldLease | undefined;

  /**
   * deploy → start → remove (what no other live run uses). `resumeDir` continues an interrupted run from its last
   * completed round; it is claimed (refused if its keeper still lives) before anything is deployed.
   */
  async run(resumeDir?: string): Promise<RunSummary> {
    const claimed = resumeDir ? await this.claim(resumeDir) : undefined;
    try {
      await this.deploy();
    } catch (e) {
      await this.lease?.release().catch(() => {});
      await claimed?.store.close();
      throw e;
    }
    try {
      return await this.start(resumeDir, claimed);
    } finally {
      await this.removeUnused();
    }
  }

  /**
   * Runs the FL experiment on the deployed functions (or continues the run in `resumeDir`), holding the run's lease
   * throughout: exactly one keeper drives a run.
   */
  async start(resumeDir?: string, claimed?: Claimed): Promise<RunSummary> {
    let store = claimed?.store;
    let access: { spec: FunctionStoreSpec; close(): Promise<void> } | undefined;
    try {
      const pre = await preflight(this.cfg);
      this.checkPayloads(pre);
      await this.holdFunctions();
      await this.checkDeployed();
      if (resumeDir) claimed ??= await this.claim(resumeDir);
      store ??= await openStore(this.storeSpec());
      access = await this.functionStore(store);
      const fn = { store: access.spec, dataset: await this.functionDataset(pre.dataset) };
      if (claimed) {
        this.registry().setRun(claimed.runId);
        return await this.execute(store, claimed.runId, claimed.runDir, pre, fn, true);
      }
      const runId = `${this.cfg.name}-${timestamp()}-${randomBytes(2).toString('hex')}`;
      const runDir = RunDirectory.create(path.resolve(this.cfg.output_dir, runId), this.prometheus().columns());
      runDir.writeText('run.json', JSON.stringify({ run_id: runId, config_file: this.opts.configFile ? path.resolve(this.opts.configFile) : null, started_at: new Date().toISOString() }, null, 2) + '\n');
      this.registry().setRun(runId);
      return await this.execute(store, runId, runDir, pre, fn, false);
    } finally {
      await access?.close();
      await this.lease?.release().catch(() => {});
      await store?.close();
    }
  }

  /**
   * Opens the store and takes over the run in `dir`: it must be a run of this config that can go on, and no live
   * keeper may hold it (one line naming its pid and host otherwise, exit 2); a dead keeper's lease is taken over.
   */
  private async claim(dir: string): Promise<Claimed> {
    const store = await openStore(this.storeSpec());
    try {
      const { runId, runDir } = await this.resumable(store, dir);
      this.lease = await HeldLease.acquire(store, runId, `--resume ${dir}`);
      return { store, runId, runDir };
    } catch (e) {
      await store.close();
      throw e;
    }
  }

  /** Checks that `dir` is a run of this config that can go on. */
  private async resumable(store: ParameterStore, dir: string): Promise<{ runId: string; runDir: RunDirectory }> {
    let runDir: RunDirectory;
    try {
      runDir = RunDirectory.open(path.resolve(dir));
    } catch (e) {
      throw new BadInputError(`--resume ${dir}: ${(e as Error).message}`);
    }
    const info = runDir.readJson<{ run_id: string }>('run.json');
    if (!info?.run_id) throw new BadInputError(`--resume ${dir}: no run.json with a run id in it`);
    const run = await store.getRun(info.run_id);
    const st = this.cfg.scenarios.federated_learning.store;
    if (!run) throw new BadInputError(`--resume ${dir}: run ${info.run_id} is not in the ${st.type} store${st.type === 'sqlite' ? ` ${st.path}` : ''}`);
    if (run.status === 'completed') throw new BadInputError(`--resume ${dir}: run ${info.run_id} has already completed`);
    if (run.configJson !== JSON.stringify(redactConfig(this.cfg))) {
      throw new BadInputError(`--resume ${dir}: the config differs from the one run ${info.run_id} started with; resume with the same config`);
    }
    return { runId: info.run_id, runDir };
  }

  /** Ctrl-C: record the run as stopped (resumable) before the processes go. */
  async interrupt(): Promise<void> {
    await this.stopHook?.();
  }

  private async checkDeployed(): Promise<void> {
    for (const [cluster, specs] of this.plan.specs) {
      const p = this.provider(cluster);
      const have = new Set(await p.list());
      const missing = specs.filter((s) => !have.has(s.name)).map((s) => s.name);
      if (missing.length) {
        throw new BadInputError(`${p.platform} cluster ${cluster}: function(s) ${missing.join(', ')} not deployed; run \`fedkeeper deploy -c CONFIG\` first`);
      }
    }
  }

  private stopHook: (() => Promise<void>) | undefined;

  private async execute(
    store: ParameterStore,
    runId: string,
    runDir: RunDirectory,
    pre: Preflight,
    fn: { store: FunctionStoreSpec; dataset: DatasetSpec },
    resumed: boolean,
  ): Promise<RunSummary> {
    const cfg = this.cfg;
    const fl = cfg.scenarios.federated_learning;
    const t0 = Date.now();
    const cpuAtStart = process.cpuUsage();
    const progress = this.opts.onProgress ?? (() => {});
    const ft = fl.fault_tolerance;
    const tracker = new ActivationTracker(store, runDir, runId, { retries: ft.call_retries, backoff: (n) => backoffMs(n, ft.backoff_initial, ft.backoff_max) });
    tracker.observer = this.opts.metrics;
    const common: CommonParams = { runId, store: fn.store, dataset: fn.dataset, model: pre.model };
    const server = this.provider(this.plan.serverCluster);
    const counters = { retries: 0, failures: 0 };

    const done = resumed ? runDir.readRounds() : [];
    if (resumed) {
      await store.setRunStatus(runId, 'running');
      const prev = this.lease?.tookOver;
      runDir.event('run_resumed', { run_id: runId, completed_rounds: done.length, pid: process.pid, ...(prev ? { took_over_from: { pid: prev.pid, host: prev.host } } : {}) });
    } else {
      runDir.writeText('config.yaml', YAML.stringify(redactConfig(cfg)));
      await store.createRun({ runId, name: cfg.name, configJson: JSON.stringify(redactConfig(cfg)), status: 'running', createdAt: t0, updatedAt: t0 });
      this.lease = await HeldLease.acquire(store, runId, `run ${runId}`);
      runDir.event('run_started', { run_id: runId, name: cfg.name, seed: fl.seed, clients_total: fl.clients_info.total_num_clients, clients_per_round: fl.clients_info.num_clients_per_round });
    }
    progress({ kind: 'run_started', runId, runDir: runDir.dir, maxRounds: fl.max_rounds, clientsPerRound: fl.clients_info.num_clients_per_round });

    const summary: RunSummary = {
      name: cfg.name,
      run_id: runId,
      run_dir: runDir.dir,
      status: 'failed',
      rounds: 0,
      final_accuracy: null,
      final_loss: null,
      best_accuracy: null,
      target_accuracy: fl.target_accuracy,
      reached_target: false,
      wall_s: 0,
      clients_total: fl.clients_info.total_num_clients,
      clients_per_round: fl.clients_info.num_clients_per_round,
      invocations: 0,
      retries: 0,
      failures: 0,
      final_weights_sha256: null,
      seed: fl.seed,
      model: pre.model.model,
      optimizer: fl.model_params.optim,
      dataset: pre.dataset.dataset === 'mnist' ? 'mnist-embedded' : pre.dataset.train_images_url,
      train_samples: pre.trainSamples,
      partition: fl.data_sampling.partition,
      store: fl.store.type,
      artifacts: await this.deployedArtifacts(),
      configurations: clusterConfigurations(cfg.providers as unknown as Record<string, unknown>),
      started_at: new Date(t0).toISOString(),
    };
    const previous = resumed ? runDir.readJson<RunSummary>('summary.json') : undefined;
    if (previous) summary.started_at = previous.started_at;
    if (resumed) summary.resumed_at = [...((previous?.resumed_at as string[] | undefined) ?? []), new Date(t0).toISOString()];
    const finishSummary = async (status: 'completed' | 'failed' | 'stopped', error?: string) => {
      tracker.stop();
      // Late answers of dropped stragglers, an interrupted round's updates: a resumed round trains again anyway.
      if (!fl.keep_updates) await store.deleteClientUpdates(runId);
      // Counted from the store, so that a resumed run counts what happened before the interruption too.
      const acts = await store.listActivations(runId);
      const failures = acts.filter((a) => a.status !== 'success' && a.status !== 'running').length;
      summary.status = status as RunSummary['status'];
      summary.wall_s = Math.round((Date.now() - Date.parse(String(summary.started_at))) / 10) / 100;
      summary.invocations = acts.length;
      summary.retries = counters.retries + (resumed ? Math.max(0, failures - counters.failures) : 0);
      summary.failures = failures;
      summary.call_retries = tracker.callRetries;
      summary.throttled = tracker.throttled;
      summary.keeper_peak_rss_mb = peakRssMb();
      const byPlatform = this.cost(tracker);
      summary.cost = { by_platform: byPlatform, total_usd: totalUsd(byPlatform), prices: this.prices(), prices_as_of: PRICE_DATE, note: 'this keeper life\'s activations; list prices, no free tier' };
      summary.keeper_cpu_s = cpuSeconds(process.cpuUsage(cpuAtStart));
      summary.finished_at = new Date().toISOString();
      summary.durations_by_platform = durationsBy(tracker.samples, (x) => x.platform);
      summary.durations_by_cluster = durationsBy(tracker.samples, (x) => `${x.platform}:${x.cluster}`);
      if (error) summary.error = error;
      const injected: Record<string, Record<string, number>> = {};
      for (const c of this.plan.clusters.values()) {
        const f = await c.provider.faults?.();
        if (f) injected[`${c.platform}:${c.name}`] = f;
      }
      if (Object.keys(injected).length) summary.injected_faults = injected;
      const final = await store.getGlobalWeights(runId, summary.rounds);
      if (final && summary.rounds > 0) summary.final_weights_sha256 = weightsSha256(final);
      runDir.summary(summary);
      await store.setRunStatus(runId, status);
      this.stopHook = undefined;
      runDir.event('run_done', { status, rounds: summary.rounds, final_accuracy: summary.final_accuracy, wall_s: summary.wall_s, ...(error ? { error } : {}) });
      runDir.close();
    };

    try {
      // Server init: initial weights and partitions into the store.
      const initStart = Date.now();
      const init = await this.invokeAndWait(tracker, { provider: server, functionName: 'fl_server_init', params: { ...common, numClients: fl.clients_info.total_num_clients, partition: pre.partition, seed: fl.seed } satisfies InitParams as unknown as Record<string, unknown>, round: 0, clientId: -1, attempt: 1, deadlineMs: this.deadline(this.plan.serverCluster, 'fl_server_init') }, counters);
      summary.engine = init.result.engine;
      summary.engine_threads = init.result.engineThreads;
      summary.engine_blas = init.result.engineBlas;
      summary.engine_fallback = init.result.engineFallback;
      summary.parameters = init.result.parameters;
      const blas = init.result.engineBlas ? `, ${String(init.result.engineBlas)}, ${String(init.result.engineThreads)} thread(s)` : '';
      const fallback = init.result.engineFallback ? `; native kernels unavailable: ${String(init.result.engineFallback)}` : '';
      progress({ kind: 'init_done', seconds: (Date.now() - initStart) / 1000, engine: `${String(init.result.engine)}${blas}${fallback}` });

      let best = -Infinity;
      for (const row of done) {
        summary.rounds = Number(row.round);
        summary.final_accuracy = Number(row.accuracy);
        summary.final_loss = Number(row.loss);
        best = Math.max(best, Number(row.accuracy));
        summary.best_accuracy = best;
      }
      this.stopHook = () => finishSummary('stopped', 'interrupted; continue with fedkeeper run --resume ' + runDir.dir);
      if (summary.final_accuracy !== null && summary.final_accuracy >= fl.target_accuracy) summary.reached_target = true;
      for (let round = done.length + 1; round <= fl.max_rounds && !summary.reached_target; round++) {
        this.lease?.check();
        const r = await this.runRound(round, common, store, tracker, runDir, counters, progress);
        summary.rounds = round;
        summary.final_accuracy = r.accuracy;
        summary.final_loss = r.loss;
        best = Math.max(best, r.accuracy);
        summary.best_accuracy = best;
        progress({ kind: 'round_done', round, maxRounds: fl.max_rounds, accuracy: r.accuracy, loss: r.loss, best, totalSeconds: r.totalSeconds });
        if (r.accuracy >= fl.target_accuracy) {
          summary.reached_target = true;
          runDir.event('target_reached', { round, accuracy: r.accuracy, target: fl.target_accuracy });
          break;
        }
      }
      await finishSummary('completed');
      return summary;
    } catch (e) {
      // Another keeper drives the run now: leave everything of it to that one.
      if (e instanceof LeaseLostError) throw e;
      this.lease?.check();
      if ((e as { exitCode?: number }).exitCode === 2 && summary.rounds === 0 && !resumed) {
        // The input was wrong and nothing useful was produced: leave no half-written run behind.
        runDir.discard();
        await store.deleteRun(runId);
        throw e;
      }
      await finishSummary('failed', (e as Error).message);
      throw e;
    }
  }

  private async runRound(
    round: number,
    common: CommonParams,
    store: ParameterStore,
    tracker: ActivationTracker,
    runDir: RunDirectory,
    counters: { retries: number; failures: number },
    progress: (e: ProgressEvent) => void,
  ): Promise<{ accuracy: number; loss: number; totalSeconds: number }> {
    const fl = this.cfg.scenarios.federated_learning;
    const mp = fl.model_params;
    const selected = selectClients(fl.clients_info.total_num_clients, fl.clients_info.num_clients_per_round, fl.seed, round);
    const before = { ...counters };
    runDir.event('round_started', { round, selected });
    const whereOf = (clientId: number) => {
      const c = this.plan.clusters.get(this.plan.placement[clientId]!)!;
      return `${c.platform}:${c.name}`;
    };
    const clusters: Record<string, number> = {};
    for (const c of selected) clusters[whereOf(c)] = (clusters[whereOf(c)] ?? 0) + 1;
    progress({ kind: 'round_started', round, maxRounds: fl.max_rounds, selected: selected.length, clusters });
    const tStart = Date.now();
    const cpuStart = process.cpuUsage();

    // The digest of the weights the clients start from and their partitions: warm functions skip those store reads.
    if (this.clientInputs?.runId !== common.runId || this.clientInputs.store !== store) this.clientInputs = new ClientInputs(store, common.runId);
    const inputs = this.clientInputs;
    const globalSha256 = await inputs.globalSha256(round - 1);
    await inputs.load(selected);
    const request = (clientId: number, attempt: number): InvocationRequest => {
      const partition = inputs.partition(clientId);
      const params: ClientParams = {
        ...common,
        round,
        clientId,
        attempt,
        train: { optimizer: mp.optim, lr: mp.lr, localEpochs: mp.local_epochs, batchSize: fl.data_sampling.batch_size, seed: hashSeed(fl.seed, 'train', round, clientId) },
        ...(globalSha256 !== undefined ? { globalSha256 } : {}),
        ...(partition !== undefined ? { partition } : {}),
      };
      const cluster = this.plan.clusters.get(this.plan.placement[clientId]!)!;
      const functionName = fl.clients_info.client_functions[0]!;
      if (cluster.storeAccess === 'direct') {
        return { provider: cluster.provider, functionName, params: params as unknown as Record<string, unknown>, round, clientId, attempt, deadlineMs: this.deadline(cluster.name, functionName) };
      }
      // The client cannot reach the store: the relay on the server cluster carries weights and update for it.
      const relayed: RelayParams = { ...params, target: { platform: cluster.platform, cluster: cluster.name, functionName, settings: cluster.settings } };
      return { provider: this.provider(this.plan.serverCluster), functionName: RELAY_FUNCTION, params: relayed as unknown as Record<string, unknown>, round, clientId, attempt, deadlineMs: this.deadline(this.plan.serverCluster, RELAY_FUNCTION) };
    };

    // Attempts are numbered across keeper lifetimes (a resumed round goes on from the stored activations), so a
    // late answer of an earlier attempt can never replace a newer update.
    const earlier = new Map<number, number>();
    for (const a of await store.listActivations(common.runId, round)) {
      if (a.clientId >= 0) earlier.set(a.clientId, Math.max(earlier.get(a.clientId) ?? 0, a.attempt));
    }
    const ft = fl.fault_tolerance;
    const need = Math.max(1, Math.ceil(ft.min_fit_fraction * selected.length));
    const finished = new Map<number, FinishedInvocation>();
    let failed = 0;
    let closed = false;
    let notify: () => void = () => {};
    let fatal: unknown;
    const changed = () => notify();

    // Invoke every selected client without blocking, DISPATCH_CONCURRENCY invocations at a time (a throttled or slow
    // one does not hold up the others); each chain re-invokes its client on failure until the round closes.
    const chains: Promise<void>[] = [];
    const invokes: Promise<unknown>[] = [];
    const dispatch = limiter(DISPATCH_CONCURRENCY);
    for (const clientId of selected) {
      const base = earlier.get(clientId) ?? 0;
      // The activation's end is wrapped: an async function would otherwise wait for it, not just for the id.
      const first = dispatch(async () => (closed ? undefined : { done: (await tracker.invoke(request(clientId, base + 1))).done }));
      invokes.push(first);
      chains.push(
        first.then((f) => (f ? this.withRetries(f.done, tracker, request, counters, base, () => closed) : undefined)).then(
          (f) => {
            if (f && !closed) {
              finished.set(clientId, f);
              progress({ kind: 'client_done', round, done: finished.size, selected: selected.length, failed, where: whereOf(clientId), retries: counters.retries - before.retries });
            }
            changed();
          },
          (e) => {
            failed++;
            fatal ??= e;
            changed();
          },
        ),
      );
    }
    await Promise.allSettled(invokes);
    const tInvoked = Date.now();
    const deadline = ft.round_timeout !== undefined ? tStart + ft.round_timeout : Infinity;
    // Wait for all; or, with round_timeout, until the deadline once `need` clients are done (FedLess/Flower style).
    for (;;) {
      if (finished.size === selected.length) break;
      if (fatal && (ft.round_timeout === undefined || finished.size + (selected.length - finished.size - failed) < need)) {
        closed = true;
        throw fatal;
      }
      if (Date.now() >= deadline && finished.size >= need) break;
      // Every client is done or has failed for good, and enough are done: nothing left to wait for.
      if (finished.size + failed === selected.length && finished.size >= need && ft.round_timeout !== undefined) break;
      const wake = new Promise<void>((r) => (notify = r));
      const timer = Number.isFinite(deadline) && Date.now() < deadline ? setTimeout(() => notify(), deadline - Date.now()) : undefined;
      await wake;
      if (timer) clearTimeout(timer);
    }
    closed = true;
    const fit = selected.filter((c) => finished.has(c));
    const dropped = selected.filter((c) => !finished.has(c));
    if (dropped.length) {
      const reason = Date.now() >= deadline ? `round_timeout ${ft.round_timeout} ms reached with ${fit.length} of ${selected.length} clients done` : `${dropped.length} client(s) failed for good (max_attempts); ${fit.length} of ${selected.length} done, at least ${need} needed (min_fit_fraction)`;
      runDir.event('clients_dropped', { round, dropped, reason });
    }
    const results = fit.map((c) => finished.get(c)!);
    const tTrained = Date.now();

    const server = this.provider(this.plan.serverCluster);
    this.lease?.check();
    const agg = await this.invokeAndWait(
      tracker,
      { provider: server, functionName: 'fl_server_aggregator', params: { ...common, round, clientIds: fit, attempts: Object.fromEntries(results.map((r) => [r.request.clientId, r.request.attempt])) } satisfies AggregatorParams as unknown as Record<string, unknown>, round, clientId: -1, attempt: 1, deadlineMs: this.deadline(this.plan.serverCluster, 'fl_server_aggregator') },
      counters,
    );
    // The round's updates are in the new global weights now: unless the config keeps them, their space goes back.
    if (!fl.keep_updates) await store.deleteClientUpdates(common.runId, round);
    const tEnd = Date.now();
    const accuracy = Number(agg.result.accuracy);
    const loss = Number(agg.result.loss);
    const rejected = Array.isArray(agg.result.rejected) ? (agg.result.rejected as { clientId: number; reason: string }[]) : [];
    for (const r of rejected) runDir.event('update_rejected', { round, client_id: r.clientId, reason: r.reason });
    const prom = await this.prometheusFigures(round, tStart, tEnd, [...Object.keys(clusters), `${server.platform}:${this.plan.serverCluster}`], runDir, progress);
    runDir.round({
      ...prom,
      round,
      accuracy,
      loss,
      invoke_s: (tInvoked - tStart) / 1000,
      train_s: (tTrained - tInvoked) / 1000,
      agg_s: (tEnd - tTrained) / 1000,
      total_s: (tEnd - tStart) / 1000,
      clients: fit.length - rejected.length,
      dropped: dropped.length,
      samples: results.reduce((s, r) => s + Number(r.result.numSamples ?? 0), 0),
      retries: counters.retries - before.retries,
      failures: counters.failures - before.failures,
      fedavg_s: Number(agg.result.aggSeconds ?? 0),
      eval_s: Number(agg.result.evalSeconds ?? 0),
      keeper_cpu_s: cpuSeconds(process.cpuUsage(cpuStart)),
      cost_usd: totalUsd(this.cost(tracker, round)),
    });
    runDir.event('round_done', { round, accuracy, loss, total_s: (tEnd - tStart) / 1000 });
    this.opts.metrics?.roundDone({ round, accuracy, loss, invoke_s: (tInvoked - tStart) / 1000, train_s: (tTrained - tInvoked) / 1000, agg_s: (tEnd - tTrained) / 1000, total_s: (tEnd - tStart) / 1000, retries: counters.retries - before.retries });
    return { accuracy, loss, totalSeconds: (tEnd - tStart) / 1000 };
  }

  private prometheusRounds: PrometheusRounds | undefined;
  /** The current run's client inputs (global weights digest, partitions kept as they travel). */
  private clientInputs: ClientInputs | undefined;

  /** The Prometheus servers of the clusters' prometheus_config (telemetry/prometheus-rounds.ts). */
  private prometheus(): PrometheusRounds {
    return (this.prometheusRounds ??= PrometheusRounds.fromConfig(this.cfg));
  }

  /** A round's figures from the clusters' Prometheus servers (rounds.csv fields); one that fails is a warning, never a failed round. */
  private async prometheusFigures(round: number, tStart: number, tEnd: number, active: string[], runDir: RunDirectory, progress: (e: ProgressEvent) => void): Promise<Record<string, number | ''>> {
    if (!this.prometheus().targets.length) return {};
    const f = await this.prometheus().afterRound(tStart, tEnd, new Set(active));
    runDir.event('prometheus', { round, clusters: f.clusters });
    for (const message of f.warnings) {
      runDir.event('warning', { round, message });
      progress({ kind: 'warning', message: `round ${round}: ${message}` });
    }
    return f.row;
  }

  /**
   * Follows an invocation; on failure re-invokes the same client (backoff between attempts) up to maxAttempts
   * attempts in this keeper's life. Resolves undefined if the round closed first (the client was dropped).
   */
  private async withRetries(
    first: Promise<FinishedInvocation>,
    tracker: ActivationTracker,
    request: (clientId: number, attempt: number) => InvocationRequest,
    counters: { retries: number; failures: number },
    base: number,
    roundClosed: () => boolean,
  ): Promise<FinishedInvocation | undefined> {
    let f = await first;
    while (!f.ok) {
      counters.failures++;
      this.badInputFromFunction(f);
      if (roundClosed()) return undefined;
      if (f.request.attempt - base >= this.opts.maxAttempts) {
        throw new RunFailedError(
          `client ${f.request.clientId} failed ${f.request.attempt - base} time(s) in round ${f.request.round} on ${f.request.provider.platform}:${f.request.provider.cluster}: ${f.record.error}`,
        );
      }
      counters.retries++;
      await this.backoff(f.request.attempt - base);
      if (roundClosed()) return undefined;
      f = await (await tracker.invoke(request(f.request.clientId, f.request.attempt + 1))).done;
    }
    return f;
  }

  private prices(): Record<string, PlatformPrice> {
    const given = this.cfg.scenarios.federated_learning.pricing;
    const clean: Record<string, Partial<PlatformPrice>> = {};
    for (const [p, v] of Object.entries(given)) clean[p] = Object.fromEntries(Object.entries(v).filter(([, x]) => x !== undefined)) as Partial<PlatformPrice>;
    return priceTable(clean);
  }

  /** Cost per platform of the activations this keeper saw end (of one round, or all). */
  private cost(tracker: ActivationTracker, round?: number): Record<string, PlatformCost> {
    const items = tracker.billing
      .filter((b) => round === undefined || b.round === round)
      .map((b) => ({ platform: b.platform, durationMs: b.durationMs, memoryMb: this.plan.specs.get(b.cluster)?.find((s) => s.name === b.functionName)?.memoryMb ?? 0 }));
    return costByPlatform(items, this.prices());
  }

  /** How long the keeper waits for an invocation's result: fault_tolerance.invocation_timeout, else the function's timeout + 60 s. */
  private deadline(cluster: string, fn: string): number {
    const ft = this.cfg.scenarios.federated_learning.fault_tolerance;
    if (ft.invocation_timeout !== undefined) return ft.invocation_timeout;
    const spec = this.plan.specs.get(cluster)?.find((s) => s.name === fn);
    return (spec?.timeoutMs ?? 300_000) + 60_000;
  }

  private async invokeAndWait(tracker: ActivationTracker, req: InvocationRequest, counters: { retries: number; failures: number }): Promise<FinishedInvocation> {
    let f = await (await tracker.invoke(req)).done;
    while (!f.ok) {
      counters.failures++;
      this.badInputFromFunction(f);
      if (f.request.attempt >= this.opts.maxAttempts) {
        throw new RunFailedError(`${req.functionName} failed ${f.request.attempt} time(s) on ${req.provider.platform}:${req.provider.cluster}: ${f.record.error}`);
      }
      counters.retries++;
      await this.backoff(f.request.attempt);
      f = await (await tracker.invoke({ ...req, attempt: f.request.attempt + 1 })).done;
    }
    return f;
  }

  private backoff(failedAttempt: number): Promise<void> {
    const ft = this.cfg.scenarios.federated_learning.fault_tolerance;
    return new Promise((r) => setTimeout(r, backoffMs(failedAttempt, ft.backoff_initial, ft.backoff_max)));
  }

  /** A function that failed because of the user's input (bad dataset …) is not retried: it would fail again. */
  private badInputFromFunction(f: FinishedInvocation): void {
    if (f.result.errorCode === 'bad_input') {
      throw new BadInputError(`${f.request.functionName} on ${f.request.provider.platform}:${f.request.provider.cluster}: ${f.record.error}`);
    }
  }
}

/** CPU seconds (user + system) of a process.cpuUsage() difference, rounded to ms. */
function cpuSeconds(u: NodeJS.CpuUsage): number {
  return Math.round((u.user + u.system) / 1000) / 1000;
}

/** This process's peak resident memory in MB: VmHWM where /proc has it (maxRSS may count a parent's), else maxRSS. */
function peakRssMb(): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Math.round(Number(m[1]) / 1024);
  } catch {
    // not Linux
  }
  return Math.round(process.resourceUsage().maxRSS / 1024);
}

function timestamp(): string {
  const d = new Date();
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}-${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`;
}
