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
 * `GET /api/v1/fedkeeper/faults` (authenticated, FedKeeper's own) answers the faults injected so far: FaultCounts.
 * With `keepers` (a fabric's cluster), `/api/v1/fedkeeper/keepers[/PID]` (authenticated, FedKeeper's own) registers
 * the keepers that use the fabric in that registry (routes.ts, main.ts).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ContainerPool } from '../runtime/container-pool.js';
import type { ClusterProfile, InjectedFaults } from '../runtime/container-types.js';
import { ActionStore, LIMIT_RANGES, MIN_MEMORY_MB } from './action-store.js';
import { ActivationStore } from './activation-store.js';
import { ClusterAuth } from './auth.js';
import { FabricConfigError } from './errors.js';
import { Invoker } from './invoker.js';
import { listen, scheduleOutages, stopListening, trackConnections } from './listener.js';
import type { FabricKeepers } from './main.js';
import { checkOutages, type OutageWindow } from './profiles.js';
import { handleRequest, type ApiContext } from './routes.js';

type PoolOptions = ConstructorParameters<typeof ContainerPool>[0];

export interface OpenWhiskServerOptions {
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
  /** Memory of the invoker, MB: the pool's bound, and the largest memory limit an action may ask; default 8192. */
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
}

const DEFAULT_MEMORY_MB = 8192;
const DEFAULT_MAX_BODY = 50 * 1024 * 1024;

export async function startOpenWhiskServer(opts: OpenWhiskServerOptions): Promise<OpenWhiskServer> {
  const host = opts.host ?? '127.0.0.1';
  const namespace = opts.namespace ?? 'guest';
  const memoryMb = opts.memoryMb ?? DEFAULT_MEMORY_MB;
  if (!Number.isInteger(memoryMb) || memoryMb < MIN_MEMORY_MB) {
    throw new FabricConfigError(`cluster ${opts.label}: memoryMb must be an integer ≥ ${MIN_MEMORY_MB}, got ${memoryMb}`);
  }
  const auth = new ClusterAuth(opts.auth, namespace, `cluster ${opts.label}`);
  let outages: OutageWindow[] = [];
  try {
    outages = checkOutages(opts.outages ?? []);
  } catch (e) {
    throw new FabricConfigError(`cluster ${opts.label}: ${(e as Error).message}`);
  }

  const poolOptions: PoolOptions = { memoryMb, label: opts.label };
  if (opts.profile !== undefined) poolOptions.profile = opts.profile;
  if (opts.images !== undefined) poolOptions.images = opts.images;
  if (opts.env !== undefined) poolOptions.env = opts.env;
  if (opts.seed !== undefined) poolOptions.seed = opts.seed;
  if (opts.idleTimeoutMs !== undefined) poolOptions.idleTimeoutMs = opts.idleTimeoutMs;
  if (opts.maxActive !== undefined) poolOptions.maxActive = opts.maxActive;
  const pool = new ContainerPool(poolOptions);

  const activations = new ActivationStore(opts.activationCapacity ?? 10_000);
  const outageCounts = { outages: 0, outage_cut_connections: 0 };
  const faults = (): FaultCounts => ({ ...pool.faults(), ...outageCounts });
  const ctx: ApiContext = {
    auth,
    actions: new ActionStore(namespace, memoryMb),
    activations,
    invoker: new Invoker(pool, activations, { namespace, subject: auth.subject, apiKey: opts.auth }),
    maxBodyBytes: opts.maxBodyBytes ?? DEFAULT_MAX_BODY,
    blockingWaitMs: opts.blockingWaitMs ?? 60_000,
    info: apiInfo(opts.label, memoryMb),
    faults,
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

/** `GET /api/v1`, shaped like OpenWhisk's (limits in bytes and milliseconds). */
function apiInfo(label: string, memoryMb: number): Record<string, unknown> {
  return {
    description: `OpenWhisk API (FedKeeper local cluster "${label}")`,
    api_paths: ['/api/v1'],
    runtimes: {
      nodejs: [{ kind: 'nodejs:20', default: true }],
      blackbox: [{ kind: 'blackbox' }],
    },
    limits: {
      min_action_duration: LIMIT_RANGES.timeout.min,
      max_action_duration: LIMIT_RANGES.timeout.max,
      min_action_memory: MIN_MEMORY_MB * 1024 * 1024,
      max_action_memory: memoryMb * 1024 * 1024,
      min_action_logs: LIMIT_RANGES.logs.min * 1024 * 1024,
      max_action_logs: LIMIT_RANGES.logs.max * 1024 * 1024,
      max_action_concurrency: LIMIT_RANGES.concurrency.max,
    },
  };
}
