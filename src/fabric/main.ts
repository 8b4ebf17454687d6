/**
 * The fabric's entry point: starts one local OpenWhisk cluster (HTTP server + container pool) per cluster
 * description and hands back their API hosts. The CLI (`fedkeeper fabric up`) calls `startFabric`; nothing else in
 * FedKeeper imports fabric/ — the keeper reaches the clusters over HTTP.
 */
import { FabricConfigError } from './errors.js';
import { startOpenWhiskServer, type OpenWhiskServer, type OpenWhiskServerOptions } from './openwhisk-server.js';
import { poolProfile, resolveProfile, type ClusterCharacter } from './profiles.js';
import { checkUniqueNames, type FabricClusterSpec } from './spec.js';

export type { FabricClusterSpec } from './spec.js';
export { parseFabricSpec } from './spec.js';
export { FabricConfigError } from './errors.js';

export interface RunningCluster {
  name: string;
  /** `apihost` for the `openwhisk` client: http://HOST:PORT. */
  url: string;
  namespace: string;
  profile: ClusterCharacter;
}

export interface Fabric {
  clusters: RunningCluster[];
  /** Stops every server and its containers. Safe to call more than once. */
  close(): Promise<void>;
}

/**
 * Starts the clusters one after the other; if one cannot start, the ones already started are closed and the error
 * (a FabricConfigError for a bad description or a busy port) is thrown.
 *
 * `env`: the variables named `FEDKEEPER_*` (engine knobs, and FEDKEEPER_NATIVE_ADDON: the native kernels' opt-in
 * on this machine) are handed to every cluster's containers; nothing else of it is.
 */
export interface FabricOptions {
  /** Docker image → local runtime, for `blackbox` actions on every cluster (see runtime/action-code.ts). */
  images?: OpenWhiskServerOptions['images'];
}

export async function startFabric(
  clusters: FabricClusterSpec[],
  env: Record<string, string | undefined> = {},
  opts: FabricOptions = {},
): Promise<Fabric> {
  if (clusters.length === 0) throw new FabricConfigError('fabric spec: no clusters');
  checkUniqueNames(clusters);
  const containerEnv = fedkeeperEnv(env);
  const started: Array<{ spec: RunningCluster; server: OpenWhiskServer }> = [];
  try {
    for (const c of clusters) {
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
      started.push({ spec: { name: c.name, url: server.url, namespace: server.namespace, profile: character }, server });
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

function fedkeeperEnv(env: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (k.startsWith('FEDKEEPER_') && v !== undefined) out[k] = v;
  return out;
}
