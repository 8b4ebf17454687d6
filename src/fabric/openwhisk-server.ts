/**
 * A local OpenWhisk cluster: an HTTP server speaking the part of the OpenWhisk REST API that the `openwhisk` client
 * uses for actions and activations, with one ContainerPool (runtime/) as its invoker. Reachable only over HTTP:
 * a FedKeeper provider talks to it exactly as to a real cluster.
 *
 * Outages (`outages`, ms after the server first listened): at a window's start the controller stops listening
 * (server.close, and every open connection is cut, so any request needs a new connection and gets ECONNREFUSED);
 * at its end it listens again on the same host and port. The invoker and its containers are untouched: activations
 * already running go on, and those that end during the outage are recorded and readable afterwards.
 *
 * What an operator configures on a controller (ControllerSettings, from the cluster's profile): the ranges of action
 * limits a PUT may ask for (stock OpenWhisk's unless raised or lowered) and the namespace's throttles (none unless
 * set): invocations per minute and concurrent invocations, past which an invocation is refused with 429.
 *
 * `GET /metrics` (no key, as a Prometheus scrapes it) serves OpenWhisk's user-events metrics of this cluster
 * (openwhisk-metrics.ts).
 *
 * `GET /api/v1/fedkeeper/faults` (authenticated, FedKeeper's own) answers the faults injected so far: FaultCounts.
 * With `keepers` (a fabric's cluster), `/api/v1/fedkeeper/keepers[/PID]` (authenticated, FedKeeper's own) registers
 * the keepers that use the fabric in that registry (routes.ts, main.ts).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ContainerPool } from '../runtime/container-pool.js';
import type { ClusterProfile, InjectedFaults } from '../runtime/container-types.js';
import { ActionStore, MIN_MEMORY_MB } from './action-store.js';
import { ActivationStore } from './activation-store.js';
import { ClusterAuth } from './auth.js';
import { FabricConfigError } from './errors.js';
import { Invoker } from './invoker.js';
import { listen, scheduleOutages, stopListening, trackConnections } from './listener.js';
import type { FabricKeepers } from './main.js';
import { checkControllerSettings, checkOutages, type ActionLimitRanges, type ControllerSettings, type OutageWindow } from './profiles.js';
import { OpenWhiskMetrics } from './openwhisk-metrics.js';
import { handleRequest, type ApiContext } from './routes.js';
import { NamespaceThrottles } from './throttles.js';

type PoolOptions = ConstructorParameters<typeof ContainerPool>[0];

export interface OpenWhiskServerOptions extends ControllerSettings {
  /** Interface to bind; default 127.0.0.1. */
  host?: string;
  /** 0 (default) picks a free port. */
  port?: number;
  /** The namespace the key owns; default `guest`. */
  namespace?: string;
  /** The cluster's API key, `uuid:key`. */
  auth: string;
  /** The pool's character (cold-start delay, speed factor, injected faults). */
  profile?: Partial<ClusterProfile>;
  /** Controller outages, ms after the server first listens (see the top of this file). */
  outages?: OutageWindow[];
  /** Memory of the invoker, MB: the pool's bound (no container holds more); default 8192. */
  memoryMb?: number;
  /** Docker image → local runtime mapping for `blackbox` actions (see ContainerPool). */
  images?: PoolOptions['images'];
  /** Environment of the action containers, on top of what the pool gives them. */
  env?: Record<string, string>;
  /** Seeds the pool's failure injection. */
  seed?: number;
  /** Names the cluster in the pool's process titles and in `GET /api/v1`. */
  label: string;
  /** Largest request body, bytes (action code or invocation payload); default 50 MiB. */
  maxBodyBytes?: number;
  /** Finished activations kept in memory; default 10,000. */
  activationCapacity?: number;
  /** Longest wait of a blocking invocation before it answers 202; default 60,000 ms, as OpenWhisk. */
  blockingWaitMs?: number;
  /** Idle containers are stopped after this long (passed to the pool). */
  idleTimeoutMs?: number;
  /** Activations running at once in the pool (default: bounded by memory only, as an OpenWhisk invoker). */
  maxActive?: number;
  /** The fabric's keepers registry, answered at `/api/v1/fedkeeper/keepers`; without it that route does not exist. */
  keepers?: FabricKeepers;
}

export interface OpenWhiskServer {
  /** API host for the `openwhisk` client's `apihost`, e.g. http://127.0.0.1:41234 (the API is under /api/v1). */
  url: string;
  port: number;
  namespace: string;
  /** The faults injected so far (what `GET /api/v1/fedkeeper/faults` answers). */
  faults(): FaultCounts;
  close(): Promise<void>;
}

/** Injected faults of one cluster: the pool's, plus its controller outages. */
export interface FaultCounts extends InjectedFaults {
  /** Outage windows begun. */
  outages: number;
  /** Connections open when an outage began, cut by it (refused connection attempts are not countable: nothing listens). */
  outage_cut_connections: number;
  /** Invocations refused with 429 by the namespace's throttles; only on a cluster whose profile sets throttles. */
  throttled?: number;
}

const DEFAULT_MEMORY_MB = 8192;
const DEFAULT_MAX_BODY = 50 * 1024 * 1024;
/** Stock `whisk.activation.payload.max`: 1 MB for an invocation's payload and for an action's result. */
const STOCK_PAYLOAD_MAX_MB = 1;

export async function startOpenWhiskServer(opts: OpenWhiskServerOptions): Promise<OpenWhiskServer> {
  const host = opts.host ?? '127.0.0.1';
  const namespace = opts.namespace ?? 'guest';
  const memoryMb = opts.memoryMb ?? DEFAULT_MEMORY_MB;
  if (!Number.isInteger(memoryMb) || memoryMb < MIN_MEMORY_MB) {
    throw new FabricConfigError(`cluster ${opts.label}: memoryMb must be an integer ≥ ${MIN_MEMORY_MB}, got ${memoryMb}`);
  }
  const auth = new ClusterAuth(opts.auth, namespace, `cluster ${opts.label}`);
  let outages: OutageWindow[] = [];
  let ranges: ActionLimitRanges;
  try {
    outages = checkOutages(opts.outages ?? []);
    ranges = checkControllerSettings(opts, memoryMb);
  } catch (e) {
    throw new FabricConfigError(`cluster ${opts.label}: ${(e as Error).message}`);
  }
  const throttleLimits = {
    ...(opts.invocationsPerMinute !== undefined ? { invocationsPerMinute: opts.invocationsPerMinute } : {}),
    ...(opts.concurrentInvocations !== undefined ? { concurrentInvocations: opts.concurrentInvocations } : {}),
  };

  const poolOptions: PoolOptions = { memoryMb, label: opts.label };
  if (opts.profile !== undefined) poolOptions.profile = opts.profile;
  if (opts.images !== undefined) poolOptions.images = opts.images;
  if (opts.env !== undefined) poolOptions.env = opts.env;
  if (opts.seed !== undefined) poolOptions.seed = opts.seed;
  if (opts.idleTimeoutMs !== undefined) poolOptions.idleTimeoutMs = opts.idleTimeoutMs;
  if (opts.maxActive !== undefined) poolOptions.maxActive = opts.maxActive;
  const pool = new ContainerPool(poolOptions);

  const activations = new ActivationStore(opts.activationCapacity ?? 10_000);
  const payloadMaxBytes = Math.round((opts.payloadMaxMb ?? STOCK_PAYLOAD_MAX_MB) * 1024 * 1024);
  const metrics = new OpenWhiskMetrics(namespace);
  const invoker = new Invoker(pool, activations, { namespace, subject: auth.subject, apiKey: opts.auth }, payloadMaxBytes, (rec) => metrics.activation(rec));
  const throttles = new NamespaceThrottles(throttleLimits, () => invoker.active, Date.now, (kind) => metrics.throttled(kind, namespace));
  const outageCounts = { outages: 0, outage_cut_connections: 0 };
  const faults = (): FaultCounts => ({ ...pool.faults(), ...outageCounts, ...(throttles.active ? { throttled: throttles.throttled } : {}) });
  const ctx: ApiContext = {
    auth,
    actions: new ActionStore(namespace, { ranges, ...(throttleLimits.concurrentInvocations !== undefined ? { concurrentInvocations: throttleLimits.concurrentInvocations } : {}) }),
    activations,
    invoker,
    throttles,
    maxBodyBytes: opts.maxBodyBytes ?? DEFAULT_MAX_BODY,
    payloadMaxBytes,
    blockingWaitMs: opts.blockingWaitMs ?? 60_000,
    controllerInfo: controllerInfo(ranges, throttleLimits),
    info: apiInfo(opts.label),
    namespaceLimits: namespaceLimits(ranges, throttleLimits),
    faults,
    metrics,
    ...(opts.keepers !== undefined ? { keepers: opts.keepers } : {}),
  };

  const server = createServer((req, res) => void handleRequest(ctx, req, res));
  server.keepAliveTimeout = 30_000;
  const sockets = trackConnections(server);
  try {
    await listen(server, host, opts.port ?? 0);
  } catch (e) {
    await pool.close();
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
      throw new FabricConfigError(`cluster ${opts.label}: cannot listen on ${host}:${opts.port ?? 0} (${code})`);
    }
    throw e;
  }
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  const controller = scheduleOutages(server, host, port, outages, outageCounts, sockets, () => closing !== undefined);
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    namespace,
    faults,
    close: () =>
      (closing ??= (async () => {
        await controller.stop();
        if (server.listening) await stopListening(server);
        await pool.close();
      })()),
  };
}

const MB = 1024 * 1024;

/** `GET /`: the controller's info (Controller.info; limits in bytes and milliseconds, throttles when set). */
function controllerInfo(r: ActionLimitRanges, t: ControllerSettings): Record<string, unknown> {
  return {
    description: 'OpenWhisk',
    support: { github: 'https://github.com/apache/openwhisk/issues', slack: 'http://slack.openwhisk.org' },
    api_paths: ['/api/v1'],
    limits: {
      ...(t.invocationsPerMinute !== undefined ? { actions_per_minute: t.invocationsPerMinute } : {}),
      ...(t.concurrentInvocations !== undefined ? { concurrent_actions: t.concurrentInvocations } : {}),
      default_min_action_duration: r.timeout.min,
      default_max_action_duration: r.timeout.max,
      default_min_action_memory: r.memory.min * MB,
      default_max_action_memory: r.memory.max * MB,
      default_min_action_logs: r.logs.min * MB,
      default_max_action_logs: r.logs.max * MB,
      min_action_duration: r.timeout.min,
      max_action_duration: r.timeout.max,
      min_action_memory: r.memory.min * MB,
      max_action_memory: r.memory.max * MB,
      min_action_logs: r.logs.min * MB,
      max_action_logs: r.logs.max * MB,
    },
    runtimes: {
      nodejs: [{ kind: 'nodejs:20', image: 'openwhisk/action-nodejs-v20:nightly', deprecated: false, default: true, attached: true, requireMain: false }],
    },
  };
}

/** `GET /api/v1`: the API's info (RestAPIVersion.info). */
function apiInfo(label: string): Record<string, unknown> {
  return {
    description: 'OpenWhisk API',
    api_version: '1.0.0',
    api_version_path: 'v1',
    build: `FedKeeper local cluster "${label}"`,
    buildno: 'fedkeeper',
    swagger_paths: { ui: '/api/v1/docs', 'api-docs': '/api/v1/api-docs' },
  };
}

/** `GET /api/v1/namespaces/NS/limits` (the namespace's UserLimits, as the controller fills them in). */
function namespaceLimits(r: ActionLimitRanges, t: ControllerSettings): Record<string, unknown> {
  return {
    ...(t.invocationsPerMinute !== undefined ? { invocationsPerMinute: t.invocationsPerMinute } : {}),
    ...(t.concurrentInvocations !== undefined ? { concurrentInvocations: t.concurrentInvocations } : {}),
    minActionMemory: r.memory.min,
    maxActionMemory: r.memory.max,
    minActionLogs: r.logs.min,
    maxActionLogs: r.logs.max,
    minActionTimeout: r.timeout.min,
    maxActionTimeout: r.timeout.max,
    minActionConcurrency: r.concurrency.min,
    maxActionConcurrency: r.concurrency.max,
    ...(t.concurrentInvocations !== undefined ? { maxActionInstances: t.concurrentInvocations } : {}),
  };
}
