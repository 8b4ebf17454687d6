/**
 * One container: a forked action-runtime process, its port, its logs, and the HTTP calls of the action-runtime
 * contract. It knows nothing about scheduling (that is container-pool.ts); it reports faults as typed errors.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FAULT_INJECTION_FLAG, type InitBody, type ListeningMessage, type RunBody } from './action-contract.js';
import { ActivationLogs } from './activation-logs.js';

const RUNTIME_ENTRY = fileURLToPath(new URL('./action-runtime.js', import.meta.url));
const START_TIMEOUT_MS = 30_000;

/** The container could not do what was asked: it did not start, the connection broke, or it answered non-JSON. */
export class ContainerFault extends Error {
  override name = 'ContainerFault';
}

/** The request itself cannot be sent (its payload is not JSON): nothing reached the container. */
export class PayloadError extends Error {
  override name = 'PayloadError';
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface HttpAnswer {
  status: number;
  body: Record<string, unknown>;
}

export interface ContainerOptions {
  id: string;
  /** Action name + version: which runs may reuse this container. */
  key: string;
  memoryMb: number;
  concurrency: number;
  /** Full environment of the process. */
  env: Record<string, string>;
  agent: http.Agent;
  /** Start the runtime with FAULT_INJECTION_FLAG: it then honours RunBody.fedkeeper_fault. */
  faultInjection?: boolean;
}

export const describeExit = (e: ExitInfo): string => (e.signal ? `killed by ${e.signal}` : `exit code ${e.code}`);

export class Container {
  readonly id: string;
  readonly key: string;
  readonly memoryMb: number;
  readonly concurrency: number;
  readonly pid: number | undefined;
  readonly logs: ActivationLogs;
  /** Runs assigned to it (waiting for it to start, or running). */
  active = 0;
  lastUsed = Date.now();
  state: 'starting' | 'ready' | 'dead' = 'starting';
  /** Set by the pool once it has started /init: resolves with the ms /init took. */
  ready!: Promise<number>;
  idleTimer: NodeJS.Timeout | undefined;
  readonly exited: Promise<ExitInfo>;
  private exit: ExitInfo | undefined;
  private readonly proc: ChildProcess;
  private readonly dir: string;
  private readonly listening: Promise<number>;
  private readonly agent: http.Agent;

  constructor(opts: ContainerOptions) {
    this.id = opts.id;
    this.key = opts.key;
    this.memoryMb = opts.memoryMb;
    this.concurrency = opts.concurrency;
    this.agent = opts.agent;
    // The pool owns the directory the action is unpacked into, so that it is removed even after a SIGKILL.
    this.dir = mkdtempSync(path.join(os.tmpdir(), 'fk-container-'));
    this.proc = fork(RUNTIME_ENTRY, [this.dir, opts.id, ...(opts.faultInjection ? [FAULT_INJECTION_FLAG] : [])], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env: opts.env,
      // A fresh runtime, not the parent's flags; the V8 heap is capped at the action's memory limit, the nearest
      // local analogue of the container's memory limit (wasm and ArrayBuffer memory are outside it).
      execArgv: [`--max-old-space-size=${Math.max(64, Math.floor(opts.memoryMb))}`],
    });
    this.pid = this.proc.pid;
    this.logs = new ActivationLogs(this.proc.stdout!, this.proc.stderr!);
    this.exited = new Promise((resolve) => {
      this.proc.once('exit', (code, signal) => {
        this.exit = { code, signal };
        this.state = 'dead';
        rmSync(this.dir, { recursive: true, force: true });
        resolve(this.exit);
      });
    });
    this.proc.on('error', () => {}); // a failed spawn also emits 'exit'
    this.listening = new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.kill();
        reject(new ContainerFault(`the action's runtime did not start within ${START_TIMEOUT_MS} ms`));
      }, START_TIMEOUT_MS);
      this.proc.on('message', (m: ListeningMessage) => {
        if (m?.type !== 'listening') return;
        clearTimeout(timer);
        resolve(m.port);
      });
      void this.exited.then((e) => {
        clearTimeout(timer);
        reject(new ContainerFault(`the action's runtime exited while starting (${describeExit(e)})`));
      });
    });
    this.listening.catch(() => {});
  }

  get alive(): boolean {
    return this.state !== 'dead';
  }

  /** Resolves once the runtime listens. */
  async started(): Promise<void> {
    await this.listening;
  }

  init(body: InitBody, timeoutMs: number): Promise<HttpAnswer> {
    return this.post('/init', body, timeoutMs);
  }

  /** POST /run. onSent: called once the request is on the wire (the activation is starting in the runtime). */
  run(body: RunBody, onSent?: () => void): Promise<HttpAnswer> {
    return this.post('/run', body, undefined, onSent);
  }

  /** After a successful /init; a container killed meanwhile stays dead. */
  markReady(): void {
    if (this.state === 'dead') throw new ContainerFault("the action's container was stopped while it initialised");
    this.state = 'ready';
  }

  /** SIGKILL: a real, immediate death, as a container's OOM kill or timeout. Never reused afterwards. */
  kill(): void {
    if (this.state === 'dead') return;
    this.state = 'dead';
    clearTimeout(this.idleTimer);
    if (this.exit === undefined) this.proc.kill('SIGKILL');
  }

  /** How the process ended, waiting up to ms for it to end; undefined if it is still running. */
  async exitInfo(ms: number): Promise<ExitInfo | undefined> {
    if (this.exit) return this.exit;
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([this.exited, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)))]);
    clearTimeout(timer);
    return r;
  }

  private async post(route: string, payload: unknown, timeoutMs?: number, onSent?: () => void): Promise<HttpAnswer> {
    let data: Buffer;
    try {
      data = Buffer.from(JSON.stringify(payload));
    } catch (e) {
      throw new PayloadError(`the parameters cannot be sent as JSON: ${(e as Error).message}`);
    }
    const port = await this.listening;
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: route,
          agent: this.agent,
          headers: { 'content-type': 'application/json', 'content-length': data.length },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (e) => reject(new ContainerFault(`the connection to the action's runtime broke: ${e.message}`)));
          res.on('close', () => {
            if (!res.complete) return reject(new ContainerFault("the action's runtime closed the connection before answering"));
            const text = Buffer.concat(chunks).toString('utf8');
            try {
              const body = JSON.parse(text) as unknown;
              if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new Error('not an object');
              resolve({ status: res.statusCode ?? 0, body: body as Record<string, unknown> });
            } catch {
              reject(new ContainerFault(`the action's runtime answered ${route} with HTTP ${res.statusCode} and no JSON object: ${text.slice(0, 200)}`));
            }
          });
        },
      );
      req.on('error', (e) => reject(new ContainerFault(`the connection to the action's runtime broke: ${e.message}`)));
      if (timeoutMs !== undefined && Number.isFinite(timeoutMs)) {
        req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer to ${route} within ${timeoutMs} ms`)));
      }
      if (onSent) req.on('finish', onSent);
      req.end(data);
    });
  }
}
