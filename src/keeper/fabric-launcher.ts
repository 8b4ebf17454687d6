/**
 * Starts the local clusters a config names — OpenWhisk (`providers.openwhisk.<name>.local: {profile …}`) and AWS
 * Lambda platforms — as one separate fabric process, and hands back their URLs. The keeper then reaches them over
 * HTTP with the real clients (`openwhisk`, `@aws-sdk/client-lambda` with `endpoint` = the URL), exactly as a
 * remote cluster. A cluster whose port already answers (e.g. `fedkeeper fabric up` running in another terminal)
 * is used as it is and not started again.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
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

/** Starts the clusters not already running; `env` is passed to the fabric (FEDKEEPER_* reach the containers). */
export async function launchLocalClusters(requests: readonly LocalClusterRequest[], env: NodeJS.ProcessEnv, stdio: 'pipe' | 'inherit' = 'pipe'): Promise<LaunchedFabric> {
  const urls = new Map<string, string>();
  const toStart: LocalClusterRequest[] = [];
  for (const r of requests) {
    if (r.port && (await portAnswers(r.port))) urls.set(r.name, `http://127.0.0.1:${r.port}`);
    else toStart.push(r);
  }
  if (toStart.length === 0) return { urls, close: async () => {} };

  const child = spawn(process.execPath, [ENTRY, '-', ...(stdio === 'pipe' ? ['--exit-with-parent'] : [])], { stdio: ['pipe', 'pipe', stdio === 'inherit' ? 'inherit' : 'pipe'], env });
  const spec = { clusters: toStart.map(clusterSpec) };
  child.stdin!.end(JSON.stringify(spec)); // keys travel on stdin, not in the process list
  let stderr = '';
  child.stderr?.on('data', (d) => (stderr += d));
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
  return { urls, close: () => stopChild(child) };
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
