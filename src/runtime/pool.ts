/**
 * A bounded pool of worker processes that run function code. Used by the `local` provider (and by the local
 * platforms of the fabric): one pool implementation, not two. Each task runs in one worker; a task past its
 * deadline gets its worker killed (the platform's timeout), a worker that dies mid-task fails that task as a
 * developer error, and a dead worker is replaced on demand. Worker output is kept per task as its logs.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { FunctionCode, InvocationContext, RunReply, RunRequest } from './protocol.js';

export type TaskOutcome = 'ok' | 'application error' | 'developer error' | 'timed out';

export interface TaskResult {
  outcome: TaskOutcome;
  result: Record<string, unknown>;
  coldStart: boolean;
  workerId: number;
  /** Epoch ms when a worker picked the task up (queue wait excluded). */
  startTime: number;
  endTime: number;
  logs: string[];
}

export interface PoolOptions {
  size: number;
  /** Extra environment for the workers. */
  env?: Record<string, string>;
  /** Max log lines kept per task. */
  maxLogLines?: number;
}

interface Task {
  id: number;
  code: FunctionCode;
  params: Record<string, unknown>;
  context: InvocationContext;
  timeoutMs: number;
  resolve: (r: TaskResult) => void;
}

interface Worker {
  id: number;
  proc: ChildProcess;
  ready: Promise<void>;
  task?: Task & { startTime: number; timer?: NodeJS.Timeout; logs: string[] };
  dead: boolean;
}

const WORKER_ENTRY = fileURLToPath(new URL('./worker.js', import.meta.url));

export class WorkerPool {
  private readonly workers: Worker[] = [];
  private readonly queue: Task[] = [];
  private nextTaskId = 1;
  private nextWorkerId = 1;
  private closed = false;

  constructor(private readonly opts: PoolOptions) {
    if (!(Number.isInteger(opts.size) && opts.size >= 1)) throw new RangeError(`pool size must be ≥ 1, got ${opts.size}`);
  }

  get size(): number {
    return this.opts.size;
  }

  /** Number of tasks waiting for a free worker. */
  get queued(): number {
    return this.queue.length;
  }

  run(code: FunctionCode, params: Record<string, unknown>, context: InvocationContext, timeoutMs: number): Promise<TaskResult> {
    if (this.closed) return Promise.reject(new Error('worker pool is closed'));
    return new Promise((resolve) => {
      this.queue.push({ id: this.nextTaskId++, code, params, context, timeoutMs, resolve });
      this.dispatch();
    });
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      let w = this.workers.find((x) => !x.dead && !x.task);
      if (!w) {
        if (this.workers.filter((x) => !x.dead).length >= this.opts.size) return;
        w = this.spawn();
      }
      this.start(w, this.queue.shift()!);
    }
  }

  private spawn(): Worker {
    const proc = fork(WORKER_ENTRY, [], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      serialization: 'advanced',
      env: { ...process.env, ...this.opts.env },
    });
    const w: Worker = { id: this.nextWorkerId++, proc, dead: false, ready: Promise.resolve() };
    w.ready = new Promise((resolve) => {
      const onMsg = (m: RunReply) => {
        if (m?.type === 'ready') {
          proc.off('message', onMsg);
          resolve();
        }
      };
      proc.on('message', onMsg);
      proc.once('exit', () => resolve());
    });
    const keep = (chunk: Buffer) => {
      const t = w.task;
      if (!t) return;
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.length === 0) continue;
        t.logs.push(line);
        if (t.logs.length > (this.opts.maxLogLines ?? 200)) t.logs.shift();
      }
    };
    proc.stdout!.on('data', keep);
    proc.stderr!.on('data', keep);
    proc.on('message', (m: RunReply) => {
      if (m?.type !== 'done' || !w.task || w.task.id !== m.taskId) return;
      this.finish(w, { outcome: m.outcome, result: m.result, coldStart: m.coldStart });
    });
    proc.on('exit', (code, signal) => {
      w.dead = true;
      const i = this.workers.indexOf(w);
      if (i >= 0) this.workers.splice(i, 1);
      if (w.task) {
        this.finish(w, {
          outcome: 'developer error',
          result: { error: `The action's runtime exited unexpectedly (${signal ?? `exit code ${code}`}).` },
          coldStart: false,
        });
      }
      if (!this.closed) this.dispatch();
    });
    this.workers.push(w);
    return w;
  }

  private start(w: Worker, task: Task): void {
    const running: NonNullable<Worker['task']> = { ...task, startTime: Date.now(), logs: [] };
    w.task = running;
    if (task.timeoutMs > 0 && Number.isFinite(task.timeoutMs)) {
      running.timer = setTimeout(() => {
        if (w.task !== running) return;
        this.finish(w, {
          outcome: 'timed out',
          result: { error: `The action exceeded its time limit of ${task.timeoutMs} milliseconds.` },
          coldStart: false,
        });
        w.dead = true;
        w.proc.kill('SIGKILL');
      }, task.timeoutMs);
    }
    void w.ready.then(() => {
      if (w.task !== running || w.dead) return;
      const req: RunRequest = { type: 'run', taskId: task.id, code: task.code, params: task.params, context: task.context };
      try {
        w.proc.send(req);
      } catch (e) {
        this.finish(w, { outcome: 'developer error', result: { error: `could not reach the runtime: ${(e as Error).message}` }, coldStart: false });
      }
    });
  }

  private finish(w: Worker, r: Pick<TaskResult, 'outcome' | 'result' | 'coldStart'>): void {
    const t = w.task;
    if (!t) return;
    if (t.timer) clearTimeout(t.timer);
    w.task = undefined;
    t.resolve({ ...r, workerId: w.id, startTime: t.startTime, endTime: Date.now(), logs: t.logs });
    if (!this.closed) queueMicrotask(() => this.dispatch());
  }

  /** Kills every worker; queued tasks fail as internal errors. */
  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.queue.splice(0)) {
      t.resolve({ outcome: 'developer error', result: { error: 'worker pool closed' }, coldStart: false, workerId: 0, startTime: Date.now(), endTime: Date.now(), logs: [] });
    }
    await Promise.all(
      this.workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            if (w.proc.exitCode !== null || w.proc.signalCode !== null) return resolve();
            w.proc.once('exit', () => resolve());
            w.proc.kill('SIGKILL');
          }),
      ),
    );
  }
}
