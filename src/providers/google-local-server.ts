/**
 * One function instance of the local Google fabric: a child process running the REAL functions-framework
 * (`functions-framework --target=… --source=… --port=0 --signature-type=http`, i.e. what Google's Node.js runtime
 * starts), serving one function's source directory on 127.0.0.1.
 *
 * The framework binds every interface and has no host flag, so a small preload (`--require`) patches
 * `http.Server#listen` to bind loopback and tells the provider the port it got over the IPC channel. The process
 * is detached so that a deployed function outlives the CLI command that deployed it (`deploy`, `start` and `remove`
 * are separate commands, as on a real platform); it is identified afterwards by pid + its command line. A function
 * may have several instances, all started from its one source directory (google-local).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, fstatSync, openSync } from 'node:fs';
import { readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { ENTRY_POINT } from './google-entry.js';

export interface ServerRecord {
  pid: number;
  port: number;
  startedAt: number;
}

export interface StartRequest {
  /** The function's source directory (index.js, action.js, package.json). */
  sourceDir: string;
  /** stdout and stderr of the instance go here (appended). */
  logFile: string;
  /** Where the loopback preload is written (once per cluster). */
  preloadFile: string;
  env: Record<string, string>;
  startupTimeoutMs: number;
  /** The exported function to serve; default the GCF entry wrapper's. */
  target?: string;
  /**
   * The framework's CLI entry (frameworkMain() of the process that deployed the function): another process, e.g. a
   * relay running from its own package, may not resolve the framework itself. Default: this process's.
   */
  frameworkMain?: string;
}

export class ServerStartError extends Error {
  override name = 'ServerStartError';
}

/** Runs inside the instance before the framework's main(): bind loopback, report the port, once. */
const LOOPBACK_PRELOAD = `'use strict';
// FedKeeper (generated): functions-framework listens on all interfaces and has no host flag; bind 127.0.0.1 instead
// and report the port to the provider that started this process.
const http = require('http');
const listen = http.Server.prototype.listen;
http.Server.prototype.listen = function (port, ...rest) {
  http.Server.prototype.listen = listen;
  const cb = rest.find((a) => typeof a === 'function');
  this.once('listening', () => {
    const { port } = this.address();
    console.log('fedkeeper: serving on http://127.0.0.1:' + port + '/');
    if (process.send) process.send({ fedkeeperReady: port });
  });
  return listen.call(this, Number(port) || 0, '127.0.0.1', cb);
};
`;

/** The framework's CLI entry (its package exports only '.', so resolve that and take main.js beside it). */
export function frameworkMain(): string {
  const index = createRequire(import.meta.url).resolve('@google-cloud/functions-framework');
  return path.join(path.dirname(index), 'main.js');
}

/** What the instance printed since `from` (its own start), without stack frames: the framework's own words. */
async function logTail(logFile: string, from: number): Promise<string> {
  try {
    const text = (await readFile(logFile)).subarray(from).toString('utf8');
    const lines = text
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('at '));
    return lines.slice(-6).join(' | ') || '(no output)';
  } catch {
    return '(no output)';
  }
}

/** Instances spawned by this process, by pid: their exit is seen directly (no pid reuse, no zombies). */
const children = new Map<number, ChildProcess>();

/** Starts an instance and resolves once it listens on 127.0.0.1. */
export async function startFunctionServer(req: StartRequest): Promise<ServerRecord> {
  // Atomically: another instance may be loading the same preload file at this moment (and instances of a function
  // start in parallel: the temporary name is this start's own).
  const tmp = `${req.preloadFile}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(tmp, LOOPBACK_PRELOAD);
  await rename(tmp, req.preloadFile);
  const log = openSync(req.logFile, 'a');
  const from = fstatSync(log).size;
  let child: ChildProcess;
  try {
    child = spawn(
      process.execPath,
      ['--require', req.preloadFile, req.frameworkMain ?? frameworkMain(), `--target=${req.target ?? ENTRY_POINT}`, `--source=${req.sourceDir}`, '--port=0', '--signature-type=http'],
      { cwd: req.sourceDir, env: req.env, detached: true, stdio: ['ignore', log, log, 'ipc'] },
    );
  } finally {
    closeSync(log);
  }
  const startedAt = Date.now();
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.removeAllListeners('exit');
      child.kill('SIGKILL');
      void logTail(req.logFile, from).then((t) => reject(new ServerStartError(`did not listen within ${req.startupTimeoutMs} ms: ${t}`)));
    }, req.startupTimeoutMs);
    child.on('message', (m: unknown) => {
      const p = (m as { fedkeeperReady?: unknown } | null)?.fedkeeperReady;
      if (typeof p === 'number') {
        clearTimeout(timer);
        resolve(p);
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      void logTail(req.logFile, from).then((t) => reject(new ServerStartError(`exited (${signal ?? `code ${code}`}) before listening: ${t}`)));
    });
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new ServerStartError(`could not be spawned: ${e.message}`));
    });
  });
  // Let the instance live on its own: no IPC channel or handle keeps this process (or its event loop) tied to it.
  child.removeAllListeners('exit');
  child.disconnect();
  child.unref();
  const pid = child.pid!;
  children.set(pid, child);
  child.once('exit', () => children.delete(pid));
  return { pid, port, startedAt };
}

/**
 * Is the recorded instance still running? A pid alone could have been reused after the instance died, so on
 * Linux its command line must still name the function's source directory (which also rules out zombies).
 */
export async function isServerAlive(rec: ServerRecord, sourceDir: string): Promise<boolean> {
  const own = children.get(rec.pid);
  if (own) return own.exitCode === null && own.signalCode === null;
  try {
    process.kill(rec.pid, 0);
  } catch {
    return false;
  }
  let cmdline: string;
  try {
    cmdline = await readFile(`/proc/${rec.pid}/cmdline`, 'utf8');
  } catch {
    // Linux: the process is gone (or a zombie's cmdline is unreadable). Elsewhere there is no /proc: trust the pid.
    return process.platform !== 'linux';
  }
  return cmdline.includes(`--source=${sourceDir}`);
}

/** Stops an instance: SIGTERM (the framework answers in-flight requests with a crash and exits), then SIGKILL. */
export async function stopFunctionServer(rec: ServerRecord, sourceDir: string, graceMs = 2000): Promise<void> {
  if (!(await isServerAlive(rec, sourceDir))) return;
  try {
    process.kill(rec.pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    if (!(await isServerAlive(rec, sourceDir))) return;
  }
  try {
    process.kill(rec.pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
}

/**
 * The pids of every instance serving `sourceDir`, recorded or not (e.g. one a process was still starting when the
 * function was removed): on Linux, every process whose command line has `--source=<sourceDir>`. Elsewhere none.
 */
export async function findServersBySource(sourceDir: string): Promise<number[]> {
  let entries: string[];
  try {
    entries = await readdir('/proc');
  } catch {
    return [];
  }
  const arg = `--source=${sourceDir}`;
  const found: number[] = [];
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (pid === process.pid) continue;
    try {
      if ((await readFile(`/proc/${e}/cmdline`, 'utf8')).split('\0').includes(arg)) found.push(pid);
    } catch {
      /* gone meanwhile, or not ours to read */
    }
  }
  return found;
}

/** Stops every instance serving `sourceDir` that findServersBySource finds (the safety net of remove and redeploy). */
export async function stopServersBySource(sourceDir: string, graceMs = 2000): Promise<void> {
  const pids = await findServersBySource(sourceDir);
  await Promise.all(pids.map((pid) => stopFunctionServer({ pid, port: 0, startedAt: 0 }, sourceDir, graceMs)));
}
