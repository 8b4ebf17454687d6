/**
 * The fabric's entry point: starts one local cluster (HTTP server + container pool) per cluster description — a
 * local OpenWhisk cluster, or a local AWS Lambda platform — and hands back their URLs. The CLI (`fedkeeper fabric
 * up`) calls `startFabric`; nothing else in FedKeeper imports fabric/ — the keeper reaches the clusters over HTTP.
 */
import { FabricConfigError } from './errors.js';
import { startLambdaServer } from './lambda-server.js';
import { startOpenWhiskServer, type OpenWhiskServerOptions } from './openwhisk-server.js';
import { poolProfile, resolveProfile, type ClusterCharacter } from './profiles.js';
import { checkUniqueNames, type FabricClusterSpec, type LambdaClusterSpec, type OpenWhiskClusterSpec } from './spec.js';

export type { FabricClusterSpec, LambdaClusterSpec, OpenWhiskClusterSpec } from './spec.js';
export { parseFabricSpec } from './spec.js';
export { FabricConfigError } from './errors.js';

interface RunningClusterBase {
  name: string;
  profile: ClusterCharacter;
}

/** A local OpenWhisk cluster: `url` is the `openwhisk` client's `apihost` (http://HOST:PORT). */
export interface RunningOpenWhiskCluster extends RunningClusterBase {
  kind: 'openwhisk';
  url: string;
  namespace: string;
}

/** A local Lambda platform: `url` is `@aws-sdk/client-lambda`'s `endpoint` (http://HOST:PORT), requests signed for `region`. */
export interface RunningLambdaCluster extends RunningClusterBase {
  kind: 'lambda';
  url: string;
  region: string;
}

export type RunningCluster = RunningOpenWhiskCluster | RunningLambdaCluster;

interface Started {
  spec: RunningCluster;
  server: { close(): Promise<void> };
}

export interface Fabric {
  clusters: RunningCluster[];
  /** Stops every server and its containers. Safe to call more than once. */
  close(): Promise<void>;
}

export interface FabricOptions {
  /** Docker image → local runtime, for `blackbox` actions on every cluster (see runtime/action-code.ts). */
  images?: OpenWhiskServerOptions['images'];
}

/**
 * Starts the clusters one after the other; if one cannot start, the ones already started are closed and the error
 * (a FabricConfigError for a bad description or a busy port) is thrown.
 *
 * `env`: the variables named `FEDKEEPER_*` (engine knobs, and FEDKEEPER_NATIVE_ADDON: the native kernels' opt-in
 * on this machine) are handed to every cluster's containers and execution environments; nothing else of it is.
 */
export async function startFabric(
  clusters: FabricClusterSpec[],
  env: Record<string, string | undefined> = {},
  opts: FabricOptions = {},
): Promise<Fabric> {
  if (clusters.length === 0) throw new FabricConfigError('fabric spec: no clusters');
  checkUniqueNames(clusters);
  const containerEnv = fedkeeperEnv(env);
  const started: Started[] = [];
  try {
    for (const c of clusters) {
      started.push(c.kind === 'lambda' ? await startLambda(c, containerEnv) : await startOpenWhisk(c, containerEnv, opts));
    }
  } catch (e) {
    await Promise.allSettled(started.map((s) => s.server.close()));
    throw e;
  }
  let closing: Promise<void> | undefined;
  return {
    clusters: started.map((s) => s.spec),
    close: () =>
      (closing ??= Promise.allSettled(started.map((s) => s.server.close())).then((rs) => {
        const failed = rs.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failed) throw failed.reason;
      })),
  };
}

async function startOpenWhisk(c: OpenWhiskClusterSpec, containerEnv: Record<string, string>, opts: FabricOptions): Promise<Started> {
  const character = resolveProfile(c.profile ?? 'cloud', c.memoryMb !== undefined ? { memoryMb: c.memoryMb } : {});
  const server = await startOpenWhiskServer({
    label: c.name,
    auth: c.auth,
    ...(c.host !== undefined ? { host: c.host } : {}),
    ...(c.port !== undefined ? { port: c.port } : {}),
    ...(c.namespace !== undefined ? { namespace: c.namespace } : {}),
    ...(c.seed !== undefined ? { seed: c.seed } : {}),
    ...(c.maxActive !== undefined ? { maxActive: c.maxActive } : {}),
    profile: poolProfile(character),
    ...(character.outages !== undefined ? { outages: character.outages } : {}),
    memoryMb: character.memoryMb,
    env: containerEnv,
    ...(opts.images !== undefined ? { images: opts.images } : {}),
  });
  return { spec: { kind: 'openwhisk', name: c.name, url: server.url, namespace: server.namespace, profile: character }, server };
}

async function startLambda(c: LambdaClusterSpec, containerEnv: Record<string, string>): Promise<Started> {
  const character = resolveProfile(c.profile ?? 'cloud', c.memoryMb !== undefined ? { memoryMb: c.memoryMb } : {});
  const server = await startLambdaServer({
    label: c.name,
    accessKeyId: c.accessKeyId,
    secretAccessKey: c.secretAccessKey,
    ...(c.region !== undefined ? { region: c.region } : {}),
    ...(c.host !== undefined ? { host: c.host } : {}),
    ...(c.port !== undefined ? { port: c.port } : {}),
    ...(c.seed !== undefined ? { seed: c.seed } : {}),
    ...(c.concurrency !== undefined ? { concurrency: c.concurrency } : {}),
    ...(c.settleMs !== undefined ? { settleMs: c.settleMs } : {}),
    profile: poolProfile(character),
    ...(character.outages !== undefined ? { outages: character.outages } : {}),
    memoryMb: character.memoryMb,
    env: containerEnv,
  });
  return { spec: { kind: 'lambda', name: c.name, url: server.url, region: server.region, profile: character }, server };
}

function fedkeeperEnv(env: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (k.startsWith('FEDKEEPER_') && v !== undefined) out[k] = v;
  return out;
}
