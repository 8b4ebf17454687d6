/**
 * A local AWS Lambda platform: an HTTP server speaking the part of AWS Lambda's API that `@aws-sdk/client-lambda`
 * uses for functions and invocations (lambda-routes.ts), SigV4-authenticated with the cluster's key, with one
 * ContainerPool (runtime/) of Lambda execution environments (runtime/lambda-environment.ts) as its workers.
 * Reachable only over HTTP: a FedKeeper provider talks to it exactly as to AWS, with the SDK's `endpoint` set to
 * its URL.
 *
 * Profiles and faults are the OpenWhisk clusters' (profiles.ts): cold-start delay and speed factor; seeded
 * failureProbability (the runtime process is killed mid-invocation: Runtime.ExitError), errorProbability (a function
 * error, the handler not called), timeoutProbability (the invocation is held past its timeout: Sandbox.Timedout,
 * the environment killed); outages (the API stops listening, running invocations go on). `GET /fedkeeper/faults`
 * (signed like any request) answers the counts. With `keepers` (a fabric's cluster), `/fedkeeper/keepers[/PID]`
 * (signed too) registers the keepers that use the fabric in that registry (lambda-routes.ts, main.ts).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ContainerPool } from '../runtime/container-pool.js';
import type { ClusterProfile, InjectedFaults } from '../runtime/container-types.js';
import { lambdaKind, type LambdaContainerAction, type LambdaInvocation } from '../runtime/lambda-environment.js';
import { FabricConfigError } from './errors.js';
import { FunctionStore } from './lambda-functions.js';
import { LambdaInvoker } from './lambda-invoker.js';
import { handleLambdaRequest, type LambdaApiContext } from './lambda-routes.js';
import { listen, scheduleOutages, stopListening, trackConnections, type OutageCounts } from './listener.js';
import type { FabricKeepers } from './main.js';
import { checkOutages, type OutageWindow } from './profiles.js';

export interface LambdaServerOptions {
  /** Names the cluster in messages and process titles. */
  label: string;
  /** Interface to bind; default 127.0.0.1. */
  host?: string;
  /** 0 (default) picks a free port. */
  port?: number;
  /** Default us-east-1: requests must be signed for it. */
  region?: string;
  /** The key requests must be signed with. */
  accessKeyId: string;
  secretAccessKey: string;
  /** The account in ARNs; default 000000000000. */
  accountId?: string;
  /** The pool's character (cold-start delay, speed factor, injected faults). */
  profile?: Partial<ClusterProfile>;
  /** API outages, ms after the server first listens. */
  outages?: OutageWindow[];
  /** Memory of the platform, MB: bounds the environments alive at once and a function's MemorySize; default 8192. */
  memoryMb?: number;
  /** The account's concurrent executions (reserved concurrency comes out of it); default 1000, as AWS's. */
  concurrency?: number;
  /** How long a created function stays Pending and an update InProgress, ms; default 0. */
  settleMs?: number;
  /** The account's code storage, bytes; default 75 GB, as AWS's. */
  codeStorageBytes?: number;
  /** Environment of the functions, on top of Lambda's (FEDKEEPER_* knobs). */
  env?: Record<string, string>;
  /** Seeds the fault injection. */
  seed?: number;
  /** Idle environments are stopped after this long (default 10 min). */
  idleTimeoutMs?: number;
  /** The fabric's keepers registry, answered at `/fedkeeper/keepers`; without it that route does not exist. */
  keepers?: FabricKeepers;
}

export interface LambdaServer {
  /** The SDK's `endpoint`, e.g. http://127.0.0.1:41234. */
  url: string;
  port: number;
  region: string;
  /** The faults injected so far (what `GET /fedkeeper/faults` answers). */
  faults(): LambdaFaultCounts;
  close(): Promise<void>;
}

/** Injected faults of one Lambda cluster: the pool's, plus its API outages (the same shape as OpenWhisk's). */
export type LambdaFaultCounts = InjectedFaults & OutageCounts;

const REGION = /^[a-z]{2}(-gov|-iso|-isob)?-[a-z]+-\d{1,2}$/;

export async function startLambdaServer(opts: LambdaServerOptions): Promise<LambdaServer> {
  const host = opts.host ?? '127.0.0.1';
  const region = opts.region ?? 'us-east-1';
  const memoryMb = opts.memoryMb ?? 8192;
  const where = `lambda cluster ${opts.label}`;
  if (!REGION.test(region)) throw new FabricConfigError(`${where}: region must look like us-east-1, got ${region}`);
  if (!/^[A-Za-z0-9]{1,128}$/.test(opts.accessKeyId ?? '')) throw new FabricConfigError(`${where}: accessKeyId must be 1–128 letters and digits`);
  if (!/^\S{1,128}$/.test(opts.secretAccessKey ?? '')) throw new FabricConfigError(`${where}: secretAccessKey must be 1–128 characters, no spaces`);
  if (!Number.isInteger(memoryMb) || memoryMb < 128) throw new FabricConfigError(`${where}: memoryMb must be an integer ≥ 128, got ${memoryMb}`);
  const concurrency = opts.concurrency ?? 1000;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new FabricConfigError(`${where}: concurrency must be an integer ≥ 1, got ${concurrency}`);
  const accountId = opts.accountId ?? '000000000000';
  if (!/^\d{12}$/.test(accountId)) throw new FabricConfigError(`${where}: accountId must be 12 digits, got ${accountId}`);
  let outages: OutageWindow[];
  try {
    outages = checkOutages(opts.outages ?? []);
  } catch (e) {
    throw new FabricConfigError(`${where}: ${(e as Error).message}`);
  }

  const pool = new ContainerPool<LambdaContainerAction, LambdaInvocation>({
    memoryMb,
    label: opts.label,
    kind: lambdaKind,
    ...(opts.profile !== undefined ? { profile: opts.profile } : {}),
    ...(opts.env !== undefined ? { env: opts.env } : {}),
    ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
    ...(opts.idleTimeoutMs !== undefined ? { idleTimeoutMs: opts.idleTimeoutMs } : {}),
  });
  const functions = new FunctionStore({
    region,
    accountId,
    memoryMb,
    concurrency,
    ...(opts.settleMs !== undefined ? { settleMs: opts.settleMs } : {}),
    ...(opts.codeStorageBytes !== undefined ? { codeStorageBytes: opts.codeStorageBytes } : {}),
  });
  let url = '';
  const key = { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey };
  const invoker = new LambdaInvoker(pool, functions, { credentials: key, endpoint: () => url });
  const outageCounts: OutageCounts = { outages: 0, outage_cut_connections: 0 };
  const faults = (): LambdaFaultCounts => ({ ...pool.faults(), ...outageCounts });
  const ctx: LambdaApiContext = { key, region, functions, invoker, faults, url: () => url, ...(opts.keepers !== undefined ? { keepers: opts.keepers } : {}) };

  const server = createServer((req, res) => void handleLambdaRequest(ctx, req, res));
  server.keepAliveTimeout = 30_000;
  // An invocation may run for up to 900 s: no request timeout.
  server.requestTimeout = 0;
  const sockets = trackConnections(server);
  try {
    await listen(server, host, opts.port ?? 0);
  } catch (e) {
    await pool.close();
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') throw new FabricConfigError(`${where}: cannot listen on ${host}:${opts.port ?? 0} (${code})`);
    throw e;
  }
  const port = (server.address() as AddressInfo).port;
  url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  let closing: Promise<void> | undefined;
  const controller = scheduleOutages(server, host, port, outages, outageCounts, sockets, () => closing !== undefined);
  return {
    url,
    port,
    region,
    faults,
    close: () =>
      (closing ??= (async () => {
        await controller.stop();
        invoker.close();
        if (server.listening) await stopListening(server);
        await pool.close();
      })()),
  };
}
