/**
 * Cuts a runtime process's stdout and stderr into per-activation logs at ACTIVATION_SENTINEL, as OpenWhisk's
 * invoker does. Each stream's text up to its next sentinel is one activation's share; the two shares are merged in
 * arrival order.
 *
 * Attribution is exact when a container runs one activation at a time (concurrency 1). With intra-container
 * concurrency > 1 the activations' lines interleave in one stream and the n-th activation to finish gets the text
 * up to the n-th sentinel: logs are then approximate (OpenWhisk itself does not collect logs per activation for
 * concurrent actions).
 */
import type { Readable } from 'node:stream';
import { ACTIVATION_SENTINEL } from './action-contract.js';

interface Line {
  t: number;
  text: string;
}

class StreamCutter {
  private partial = '';
  private current: Line[] = [];
  private dropped = 0;
  private readonly done: Line[][] = [];
  private waiters: (() => void)[] = [];
  /** Sentinels still to come for shares already taken without one (see take). */
  private skip = 0;
  ended = false;
  private readonly whenClosed: Promise<void>;

  constructor(
    stream: Readable,
    private readonly maxLines: number,
  ) {
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => this.push(chunk));
    this.whenClosed = new Promise((resolve) =>
      stream.on('close', () => {
        this.ended = true;
        this.wake();
        resolve();
      }),
    );
  }

  private push(chunk: string): void {
    const parts = (this.partial + chunk).split('\n');
    this.partial = parts.pop()!;
    const t = Date.now();
    for (const text of parts) {
      if (text === ACTIVATION_SENTINEL) {
        this.cut();
      } else if (this.current.length < this.maxLines) {
        this.current.push({ t, text });
      } else {
        this.dropped++;
      }
    }
  }

  private cut(): void {
    const share = this.current;
    if (this.dropped > 0) share.push({ t: Date.now(), text: `[${this.dropped} more log lines dropped: the limit is ${this.maxLines} per activation]` });
    this.current = [];
    this.dropped = 0;
    if (this.skip > 0) this.skip--; // the share was already handed out
    else this.done.push(share);
    this.wake();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** The next activation's share: waits up to graceMs for its sentinel, else takes what has come so far. */
  async take(graceMs: number): Promise<Line[]> {
    if (this.done.length === 0 && !this.ended) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    if (this.done.length > 0) return this.done.shift()!;
    const share = this.rest();
    if (!this.ended) this.skip++; // its sentinel is late: do not hand out what precedes it twice
    return share;
  }

  /** Everything not yet handed out (the process is gone). */
  rest(): Line[] {
    if (this.partial) this.current.push({ t: Date.now(), text: this.partial });
    this.partial = '';
    const share = [...this.done.flat(), ...this.current];
    this.done.length = 0;
    this.current = [];
    return share;
  }

  /** Resolves when the stream closed, or after ms. */
  async closed(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.whenClosed, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
    clearTimeout(timer);
  }
}

const merge = (a: Line[], b: Line[]): string[] => [...a, ...b].sort((x, y) => x.t - y.t).map((l) => l.text);

export class ActivationLogs {
  private readonly out: StreamCutter;
  private readonly err: StreamCutter;

  constructor(stdout: Readable, stderr: Readable, maxLines = 1000) {
    this.out = new StreamCutter(stdout, maxLines);
    this.err = new StreamCutter(stderr, maxLines);
  }

  /** Logs of the activation that just ended normally (the runtime printed its sentinels). */
  async next(graceMs = 1000): Promise<string[]> {
    const [a, b] = await Promise.all([this.out.take(graceMs), this.err.take(graceMs)]);
    return merge(a, b);
  }

  /** Logs of an activation whose container was killed or crashed: whatever it printed before dying. */
  async last(graceMs = 500): Promise<string[]> {
    await Promise.all([this.out.closed(graceMs), this.err.closed(graceMs)]);
    return merge(this.out.rest(), this.err.rest());
  }
}
