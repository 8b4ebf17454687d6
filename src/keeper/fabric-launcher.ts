/**
 * Starts the local clusters a config names — OpenWhisk (`providers.openwhisk.<name>.local: {profile …}`) and AWS
 * Lambda platforms — as one separate fabric process, and hands back their URLs. The keeper then reaches them over
 * HTTP with the real clients (`openwhisk`, `@aws-sdk/client-lambda` with `endpoint` = the URL), exactly as a
 * remote cluster.
 *
 * Several keepers may share a fabric. A cluster whose fixed port already answers (another keeper's fabric, or
 * `fedkeeper fabric up` in another terminal) is not started again: this keeper registers its pid at the platform's
 * keepers route (fabric/main.ts; OpenWhisk with the cluster's key, Lambda SigV4-signed), which keeps that fabric up
 * while this process lives; close() ends the registration. A platform that refuses it (not a FedKeeper fabric: a
 * real cluster, another server) is used as it is, with nothing to keep alive. One that answers 503 is a fabric
 * stopping because its last keeper left: once it has let the port go, the cluster is started here.
 *
 * The fabric this keeper starts (stdio 'pipe') runs in its own process group — a Ctrl-C meant for this keeper does
 * not reach it — with `--exit-with-keepers`: it stops once this keeper and every keeper registered with it have left
 * or died, even after a `kill -9` of all of them. close() tells it this keeper leaves: if no one else uses it, it is
 * stopped (SIGTERM, SIGKILL after 5 s) and close() waits for its exit; if other live keepers still use it, it is left
 * running for them (its pipes closed, not waited for) and ends on its own after the last of them. With stdio
 * 'inherit' the fabric runs until close() (or Ctrl-C) stops it, whoever else uses it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { signedHeaders } from '../providers/lambda-faults.js';
import { BadInputError, RunFailedError } from './errors.js';

export type LocalClusterRequest = LocalOpenWhiskRequest | LocalLambdaRequest;

/** A local OpenWhisk cluster. */
export interface LocalOpenWhiskRequest {
  kind?: 'openwhisk';
  name: string;
  profile: unknown;
  auth: string;
  /** From api_host, if the config gives one. */
  port?: number;
  memoryMb?: number;
  seed?: number;
  namespace?: string;
}

/**
 * A local AWS Lambda platform: requests must be SigV4-signed with this key for this region. Its URL is the SDK's
 * `endpoint`.
 */
export interface LocalLambdaRequest {
  kind: 'lambda';
  name: string;
  profile?: unknown;
  /** Default us-east-1. */
  region?: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** From the endpoint, if the config gives one. */
  port?: number;
  memoryMb?: number;
  seed?: number;
  /** The account's concurrent executions (default 1000); past it, or a function's reserved concurrency: 429. */
  concurrency?: number;
  /** How long a new function stays Pending and an update InProgress, ms (default 0). */
  settleMs?: number;
}

export interface LaunchedFabric {
  /** cluster name → apihost or endpoint (http://127.0.0.1:PORT) */
  urls: Map<string, string>;
  close(): Promise<void>;
}

const ENTRY = fileURLToPath(new URL('../fabric/cli-entry.js', import.meta.url));
/** Longest wait for an answer of a platform's keepers route. */
const KEEPERS_TIMEOUT_MS = 5000;
/** Longest wait for a stopping fabric to let its port go. */
const RELEASE_WAIT_MS = 30_000;
/** The fabric's stderr kept for the error message of a fabric that did not start. */
const STDERR_TAIL = 64 * 1024;

/** A cluster this keeper uses and its URL. */
interface Used {
  request: LocalClusterRequest;
  url: string;
}

/** What a fabric's keepers route answers (fabric/main.ts KeepersView). */
interface KeepersView {
  fabric_pid: number;
  keepers: number[];
  stopping: boolean;
}

function portAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * Starts the clusters not already running and registers this keeper with those that are; `env` is passed to the
 * fabric (FEDKEEPER_* reach the containers).
 */
export async function launchLocalClusters(requests: readonly LocalClusterRequest[], env: NodeJS.ProcessEnv, stdio: 'pipe' | 'inherit' = 'pipe'): Promise<LaunchedFabric> {
  const urls = new Map<string, string>();
  const toStart: LocalClusterRequest[] = [];
  const registered: Used[] = [];
  try {
    for (const r of requests) {
      const url = `http://127.0.0.1:${r.port}`;
      const reuse = r.port ? await portAnswers(r.port) : false;
      const joined = reuse ? await join(r, url) : 'gone';
      if (joined === 'gone') {
        toStart.push(r);
        continue;
      }
      urls.set(r.name, url);
      if (joined === 'registered') registered.push({ request: r, url });
    }
    if (toStart.length === 0) return { urls, close: () => leaveAll(registered) };
    const child = await startFabricProcess(toStart, env, stdio, urls);
    const started = toStart.map((r) => ({ request: r, url: urls.get(r.name)! }));
    let closing: Promise<void> | undefined;
    const close = async () => {
      await leaveAll(registered);
      await (stdio === 'pipe' ? leaveOrStop(child, started) : stopChild(child));
    };
    return { urls, close: () => (closing ??= close()) };
  } catch (e) {
    await leaveAll(registered);
    throw e;
  }
}

async function startFabricProcess(toStart: LocalClusterRequest[], env: NodeJS.ProcessEnv, stdio: 'pipe' | 'inherit', urls: Map<string, string>): Promise<ChildProcess> {
  const forKeepers = stdio === 'pipe';
  const child = spawn(process.execPath, [ENTRY, '-', ...(forKeepers ? ['--exit-with-keepers'] : [])], {
    stdio: ['pipe', 'pipe', stdio === 'inherit' ? 'inherit' : 'pipe'],
    env,
    // Its own process group: a Ctrl-C meant for this keeper must not stop a fabric other keepers may be using.
    detached: forKeepers && process.platform !== 'win32',
  });
  const spec = { clusters: toStart.map(clusterSpec) };
  child.stdin!.end(JSON.stringify(spec)); // keys travel on stdin, not in the process list
  let stderr = '';
  child.stderr?.on('data', (d) => (stderr = (stderr + d).slice(-STDERR_TAIL)));
  await new Promise<void>((resolve, reject) => {
    let buf = '';
    let seen = 0;
    const onData = (d: Buffer) => {
      buf += d.toString('utf8');
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          const c = JSON.parse(line) as { name: string; url: string };
          urls.set(c.name, c.url);
          if (++seen === toStart.length) {
            child.stdout!.off('data', onData);
            child.off('exit', onExit);
            resolve();
          }
        } catch {
          // not a cluster line: ignore
        }
      }
    };
    const onExit = (code: number | null) => {
      const msg = stderr.trim().split('\n').at(-1) ?? '';
      const why = msg.replace(/^fedkeeper fabric: /, '') || `exit code ${code}`;
      reject(code === 2 ? new BadInputError(`local fabric: ${why}`) : new RunFailedError(`local fabric did not start: ${why}`));
    };
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
  });
  child.stdout!.resume();
  return child;
}

/**
 * Registers this keeper with the platform on a port that answers: 'registered' (a FedKeeper fabric, kept up for
 * this process now), 'unregistered' (not a FedKeeper fabric, or it refused: used as it is), 'gone' (nothing serves
 * the port any more: start the cluster here).
 */
async function join(r: LocalClusterRequest, url: string): Promise<'registered' | 'unregistered' | 'gone'> {
  const answer = await keepersCall(r, url, 'PUT');
  if (answer?.status === 200 && answer.view) return 'registered';
  if (answer?.status === 503 && answer.view?.stopping) {
    // A fabric whose last keeper just left: it is closing. Once the port is free, the cluster is started here.
    if (await portReleased(r.port!, RELEASE_WAIT_MS)) return 'gone';
    throw new RunFailedError(`local cluster ${r.name}: the fabric on port ${r.port} is stopping but did not let the port go within ${RELEASE_WAIT_MS / 1000} s`);
  }
  if (answer === undefined && !(await portAnswers(r.port!))) return 'gone';
  return 'unregistered';
}

/** Ends this keeper's registrations with fabrics it reused; what does not answer is left to notice this keeper's death. */
async function leaveAll(registered: readonly Used[]): Promise<void> {
  await Promise.all(registered.map((u) => keepersCall(u.request, u.url, 'DELETE')));
}

/**
 * Tells the fabric this keeper started that it leaves (at the first of its clusters that answers). No other live
 * keeper uses it → it is stopping: SIGTERM and wait for its exit (as when it does not answer). Others use it → left
 * running for them: its pipes are closed (it tolerates that) and this process no longer waits for it.
 */
async function leaveOrStop(child: ChildProcess, started: readonly Used[]): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  for (const u of started) {
    const answer = await keepersCall(u.request, u.url, 'DELETE');
    if (answer?.status !== 200 || !answer.view) continue;
    if (answer.view.keepers.length > 0 && !answer.view.stopping) {
      child.stdout?.destroy();
      child.stderr?.destroy();
      child.stdin?.destroy();
      child.unref();
      return;
    }
    break;
  }
  await stopChild(child);
}

/** A request of this keeper (its pid) to a platform's keepers route; undefined when the platform did not answer. */
async function keepersCall(r: LocalClusterRequest, base: string, method: 'PUT' | 'DELETE'): Promise<{ status: number; view: KeepersView | undefined } | undefined> {
  const url = new URL(`${base}${r.kind === 'lambda' ? '' : '/api/v1'}/fedkeeper/keepers/${process.pid}`);
  const headers =
    r.kind === 'lambda'
      ? signedHeaders(method, url, r.region ?? 'us-east-1', { accessKeyId: r.accessKeyId, secretAccessKey: r.secretAccessKey })
      : { authorization: `Basic ${Buffer.from(r.auth, 'utf8').toString('base64')}` };
  try {
    const res = await fetch(url, { method, headers, signal: AbortSignal.timeout(KEEPERS_TIMEOUT_MS) });
    const body: unknown = await res.json().catch(() => undefined);
    return { status: res.status, view: isKeepersView(body) ? body : undefined };
  } catch {
    return undefined;
  }
}

function isKeepersView(v: unknown): v is KeepersView {
  const o = v as Partial<KeepersView> | null;
  return typeof o === 'object' && o !== null && typeof o.fabric_pid === 'number' && Array.isArray(o.keepers) && typeof o.stopping === 'boolean';
}

/** True once nothing answers on the port (polled), false if it still answers after `ms`. */
async function portReleased(port: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (await portAnswers(port)) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
  return true;
}

/** The fabric's description of a cluster (fabric/spec.ts). */
function clusterSpec(r: LocalClusterRequest): Record<string, unknown> {
  const common = {
    name: r.name,
    ...(r.profile !== undefined ? { profile: r.profile } : {}),
    ...(r.port !== undefined ? { port: r.port } : {}),
    ...(r.memoryMb !== undefined ? { memoryMb: r.memoryMb } : {}),
    ...(r.seed !== undefined ? { seed: r.seed } : {}),
  };
  if (r.kind === 'lambda') {
    return {
      kind: 'lambda',
      ...common,
      accessKeyId: r.accessKeyId,
      secretAccessKey: r.secretAccessKey,
      ...(r.region !== undefined ? { region: r.region } : {}),
      ...(r.concurrency !== undefined ? { concurrency: r.concurrency } : {}),
      ...(r.settleMs !== undefined ? { settleMs: r.settleMs } : {}),
    };
  }
  return { ...common, auth: r.auth, ...(r.namespace !== undefined ? { namespace: r.namespace } : {}) };
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
