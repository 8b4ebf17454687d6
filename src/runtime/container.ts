/**
 * One OpenWhisk container: a forked action-runtime process, its port, its logs, and the HTTP calls of the
 * action-runtime contract (`POST /init` once, `POST /run` per activation). It knows nothing about scheduling (that is
 * container-pool.ts); it reports faults as typed errors (container-kind.ts). `openWhiskKind` makes them for the pool.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FAULT_INJECTION_FLAG, type InitBody, type ListeningMessage, type RunBody } from './action-contract.js';
import { resolveCode, runtimeEnv, type ImageMap } from './action-code.js';
import { ActivationLogs } from './activation-logs.js';
import {
  ContainerFault,
  PayloadError,
  type ContainerKind,
  type ContainerSetup,
  type ExitInfo,
  type PoolContainer,
  type RunAnswer,
  type RunRequest,
  type UnansweredResult,
} from './container-kind.js';
import type { ContainerAction, RunMeta } from './container-types.js';

export { ContainerFault, PayloadError, type ExitInfo } from './container-kind.js';

const RUNTIME_ENTRY = fileURLToPath(new URL('./action-runtime.js', import.meta.url));
const START_TIMEOUT_MS = 30_000;

/** An OpenWhisk activation's input: its parameters. */
export type ActionParams = Record<string, unknown>;

export interface HttpAnswer {
  status: number;
  body: Record<string, unknown>;
}

/** OpenWhisk containers for nodejs and blackbox actions (blackbox images mapped to local runtimes by `images`). */
export function openWhiskKind(images: ImageMap = {}): ContainerKind<ContainerAction, ActionParams> {
  return {
    prepare(action, label) {
      const code = resolveCode(action, images, label);
      if (typeof code === 'string') return code;
      const init: InitBody = { value: { name: action.name, main: code.main, code: code.code, binary: code.binary, env: action.env ?? {} } };
      return (setup: ContainerSetup) =>
        new Container({
          id: setup.id,
          key: setup.key,
          memoryMb: action.limits.memoryMb,
          concurrency: Math.max(1, Math.floor(action.limits.concurrency)),
          env: runtimeEnv(setup.env),
          agent: setup.agent,
          faultInjection: setup.faultInjection,
          init,
        });
    },
  };
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
  /** The `POST /init` body. */
  init: InitBody;
}

export const describeExit = (e: ExitInfo): string => (e.signal ? `killed by ${e.signal}` : `exit code ${e.code}`);

export class Container implements PoolContainer<ActionParams> {
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
  private readonly initBody: InitBody;

  constructor(opts: ContainerOptions) {
    this.initBody = opts.init;
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

  /** POST /init: the action's code is loaded, or the runtime's error is thrown as a ContainerFault. */
  async init(timeoutMs: number, _first?: RunMeta): Promise<void> {
    const r = await this.post('/init', this.initBody, timeoutMs);
    if (r.status !== 200) throw new ContainerFault(String(r.body.error ?? `/init answered HTTP ${r.status}`));
  }

  /**
   * POST /run. onSent: called once the request is on the wire (the activation is starting in the runtime). A result
   * with an `error` field is an application error; any answer but 200 a developer error.
   */
  async run(request: RunRequest<ActionParams>, onSent?: () => void): Promise<RunAnswer> {
    const { meta } = request;
    const body: RunBody = {
      value: request.input,
      namespace: meta.namespace,
      action_name: meta.actionName,
      activation_id: meta.activationId,
      transaction_id: meta.transactionId ?? meta.activationId,
      deadline: String(request.deadline),
      ...(meta.apiKey ? { api_key: meta.apiKey } : {}),
      ...(request.fault ? { fedkeeper_fault: request.fault } : {}),
    };
    const answer = await this.post('/run', body, undefined, onSent);
    if (answer.status === 200) return { status: 'error' in answer.body ? 'application error' : 'success', result: answer.body };
    return { status: 'developer error', result: { error: String(answer.body.error ?? `the action's runtime answered HTTP ${answer.status}`) } };
  }

  timedOut(_request: RunRequest<ActionParams>, timeoutMs: number): UnansweredResult {
    return { result: { error: `The action exceeded its time limit of ${timeoutMs} milliseconds.` } };
  }

  crashed(_request: RunRequest<ActionParams>, exit: ExitInfo | undefined, why: string, note: string): UnansweredResult {
    const how = exit ? `exited unexpectedly (${describeExit(exit)})` : `failed: ${why}`;
    return { result: { error: `The action's runtime ${how} while running the activation${note}.` } };
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
