/**
 * The fabric's entry point: starts one local cluster (HTTP server + container pool) per cluster description — a
 * local OpenWhisk cluster, or a local AWS Lambda platform — and hands back their URLs. The CLI (`fedkeeper fabric
 * up`) calls `startFabric`; nothing else in FedKeeper imports fabric/ — the keeper reaches the clusters over HTTP.
 *
 * `FabricKeepers`: the keeper processes that use the fabric, by pid. Every cluster of the fabric answers FedKeeper's
 * own keepers route (OpenWhisk: `/api/v1/fedkeeper/keepers[/PID]`, Basic auth; Lambda: `/fedkeeper/keepers[/PID]`,
 * SigV4-signed): `PUT …/PID` registers one use by that keeper, `DELETE …/PID` ends one, `GET …/keepers` lists them.
 * A fabric run for keepers (cli-entry.ts `--exit-with-keepers`) stops once every registered keeper has left or died.
 */
import { readFileSync } from 'node:fs';
import { FabricConfigError } from './errors.js';
import { startLambdaServer } from './lambda-server.js';
import { startOpenWhiskServer, type OpenWhiskServerOptions } from './openwhisk-server.js';
import { controllerSettings, poolProfile, resolveProfile, type ClusterCharacter } from './profiles.js';
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
  /** The keepers registered with the fabric's clusters (the one given in FabricOptions, or a new one). */
  keepers: FabricKeepers;
  /** Stops every server and its containers. Safe to call more than once. */
  close(): Promise<void>;
}

export interface FabricOptions {
  /** Docker image → local runtime, for `blackbox` actions on every cluster (see runtime/action-code.ts). */
  images?: OpenWhiskServerOptions['images'];
  /** Where the clusters' keepers route registers keepers; default a new, empty registry. */
  keepers?: FabricKeepers;
}

/** What the keepers route answers: the fabric's pid, the live keepers (pids), whether the fabric is stopping. */
export interface KeepersView {
  fabric_pid: number;
  keepers: number[];
  stopping: boolean;
}

/**
 * The keepers that use a fabric: pid → number of uses not yet ended. A keeper counts until it has ended all its
 * uses or is dead: `process.kill(pid, 0)` fails with ESRCH (EPERM: alive, someone else's), or — where /proc exists —
 * it is a zombie or its start time is no longer the one seen at registration (the pid was reused).
 */
export class FabricKeepers {
  private readonly uses = new Map<number, { count: number; started: string | undefined }>();
  private readonly changeListeners: Array<() => void> = [];
  private stopped = false;

  /** True once the fabric is stopping: registrations are refused (the keepers route answers 503). */
  get stopping(): boolean {
    return this.stopped;
  }

  /** Refuses registrations from now on. */
  stop(): void {
    this.stopped = true;
  }

  /** One more use by `pid`; false (nothing registered) once the fabric is stopping. */
  register(pid: number): boolean {
    if (this.stopped) return false;
    const u = this.uses.get(pid);
    if (u) u.count++;
    else this.uses.set(pid, { count: 1, started: procStat(pid)?.started });
    return true;
  }

  /** One use by `pid` ended; the listeners are told (the fabric may stop at once if it was the last). */
  leave(pid: number): void {
    const u = this.uses.get(pid);
    if (u && --u.count <= 0) this.uses.delete(pid);
    this.changed();
  }

  /** Every use by `pid` ended (e.g. the process that started the fabric is gone). */
  forget(pid: number): void {
    if (this.uses.delete(pid)) this.changed();
  }

  /** The registered keepers still alive (the dead are dropped). */
  live(): number[] {
    for (const [pid, u] of this.uses) if (!alive(pid, u.started)) this.uses.delete(pid);
    return [...this.uses.keys()];
  }

  /** The pid a keepers route names in its last segment: a positive integer, not this process; else undefined. */
  pidOf(segment: string): number | undefined {
    if (!/^[1-9]\d{0,9}$/.test(segment)) return undefined;
    const pid = Number(segment);
    return pid <= 0x7fffffff && pid !== process.pid ? pid : undefined;
  }

  view(): KeepersView {
    return { fabric_pid: process.pid, keepers: this.live(), stopping: this.stopped };
  }

  /** `fn` runs after every leave or forget. */
  onChange(fn: () => void): void {
    this.changeListeners.push(fn);
  }

  private changed(): void {
    for (const fn of this.changeListeners) fn();
  }
}

function alive(pid: number, started: string | undefined): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const now = procStat(pid);
  if (now?.state === 'Z') return false;
  return started === undefined || now?.started === started;
}

/** State and start time of a process from /proc/PID/stat (Linux); undefined where there is no such file. */
function procStat(pid: number): { state: string; started: string } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid …": comm may hold spaces and parentheses; fields after it start at `state` (field 3).
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0] ?? '', started: fields[19] ?? '' };
  } catch {
    return undefined;
  }
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
  const keepers = opts.keepers ?? new FabricKeepers();
  const started: Started[] = [];
  try {
    for (const c of clusters) {
      started.push(c.kind === 'lambda' ? await startLambda(c, containerEnv, keepers) : await startOpenWhisk(c, containerEnv, opts, keepers));
    }
  } catch (e) {
    await Promise.allSettled(started.map((s) => s.server.close()));
    throw e;
  }
  let closing: Promise<void> | undefined;
  return {
    clusters: started.map((s) => s.spec),
    keepers,
    close: () =>
      (closing ??= Promise.allSettled(started.map((s) => s.server.close())).then((rs) => {
        const failed = rs.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failed) throw failed.reason;
      })),
  };
}

async function startOpenWhisk(c: OpenWhiskClusterSpec, containerEnv: Record<string, string>, opts: FabricOptions, keepers: FabricKeepers): Promise<Started> {
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
    ...controllerSettings(character),
    ...(character.outages !== undefined ? { outages: character.outages } : {}),
    memoryMb: character.memoryMb,
    env: containerEnv,
    ...(opts.images !== undefined ? { images: opts.images } : {}),
    keepers,
  });
  return { spec: { kind: 'openwhisk', name: c.name, url: server.url, namespace: server.namespace, profile: character }, server };
}

async function startLambda(c: LambdaClusterSpec, containerEnv: Record<string, string>, keepers: FabricKeepers): Promise<Started> {
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
    keepers,
  });
  return { spec: { kind: 'lambda', name: c.name, url: server.url, region: server.region, profile: character }, server };
}

function fedkeeperEnv(env: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (k.startsWith('FEDKEEPER_') && v !== undefined) out[k] = v;
  return out;
}
