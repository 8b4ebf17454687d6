/**
 * Starts the local OpenWhisk clusters a config names (`providers.openwhisk.<name>.local: {profile …}`) as a separate
 * fabric process, and hands back their API hosts. The keeper then reaches them over HTTP with the real `openwhisk`
 * client, exactly as a remote cluster. A cluster whose `api_host` port already answers (e.g. `fedkeeper fabric up`
 * running in another terminal) is used as it is and not started again.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { BadInputError, RunFailedError } from './errors.js';

export interface LocalClusterRequest {
  name: string;
  profile: unknown;
  auth: string;
  /** From api_host, if the config gives one. */
  port?: number;
  memoryMb?: number;
  seed?: number;
  namespace?: string;
}

export interface LaunchedFabric {
  /** cluster name → apihost (http://127.0.0.1:PORT) */
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
  const spec = {
    clusters: toStart.map((r) => ({
      name: r.name,
      auth: r.auth,
      ...(r.profile !== undefined ? { profile: r.profile } : {}),
      ...(r.port !== undefined ? { port: r.port } : {}),
      ...(r.memoryMb !== undefined ? { memoryMb: r.memoryMb } : {}),
      ...(r.seed !== undefined ? { seed: r.seed } : {}),
      ...(r.namespace !== undefined ? { namespace: r.namespace } : {}),
    })),
  };
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
      reject(code === 2 ? new BadInputError(`local OpenWhisk fabric: ${why}`) : new RunFailedError(`local OpenWhisk fabric did not start: ${why}`));
    };
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
  });
  child.stdout!.resume();
  return { urls, close: () => stopChild(child) };
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
