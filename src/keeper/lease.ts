/**
 * One keeper per run. A keeper holds its run's lease in the store (pid, host, a random token, a heartbeat it
 * renews every HEARTBEAT_MS). Another keeper may take the run only when the holder is dead: on the same host its
 * pid no longer exists (a keeper suspended with Ctrl-Z still lives: it may be continued); on another host (a shared
 * PostgreSQL store) its heartbeat is older than LEASE_TTL_MS. A live holder is never displaced: `--resume` of its
 * run is refused with one line naming its pid and host.
 *
 * The token fences the lease: a keeper that was stopped for longer than the TTL (suspended laptop) and lost the
 * lease to another finds out at its next heartbeat and stops without touching the run again.
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import type { ParameterStore, RunLease } from '../store/types.js';
import { BadInputError } from './errors.js';

/** How often a holder renews its heartbeat. */
export const HEARTBEAT_MS = 5_000;
/** A heartbeat older than this means the holder is dead (the only test for a holder on another host). */
export const LEASE_TTL_MS = 60_000;
/**
 * On this host the pid says whether the holder lives; a heartbeat this old means the pid was reused by another
 * process long after the keeper died.
 */
export const SAME_HOST_TTL_MS = 30 * 60_000;

/** Whether process `pid` exists on this host (EPERM: it exists, owned by someone else). */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Whether a lease's holder lives. On this host: its process exists (a killed keeper is seen at once) and its
 * heartbeat is not so old that the pid must belong to another process now. On another host: its heartbeat is fresh.
 */
export function holderAlive(l: Pick<RunLease, 'pid' | 'host' | 'heartbeatAt'>, now = Date.now(), host = os.hostname()): boolean {
  if (l.host !== host) return now - l.heartbeatAt <= LEASE_TTL_MS;
  return now - l.heartbeatAt <= SAME_HOST_TTL_MS && pidAlive(l.pid);
}

/** "pid 123 on host h, last heartbeat 2 s ago" */
export function describeHolder(l: Pick<RunLease, 'pid' | 'host' | 'heartbeatAt'>, now = Date.now()): string {
  return `pid ${l.pid} on host ${l.host}, last heartbeat ${Math.max(0, Math.round((now - l.heartbeatAt) / 1000))} s ago`;
}

export class LeaseHeldError extends BadInputError {
  constructor(
    message: string,
    readonly holder: RunLease,
  ) {
    super(message);
  }
}

export class LeaseLostError extends Error {
  override name = 'LeaseLostError';
  readonly exitCode = 1;
}

/** A lease this process holds, renewed in the background until released. */
export class HeldLease {
  private timer: NodeJS.Timeout | undefined;
  private lostTo: RunLease | undefined;
  private released = false;
  private renewing: Promise<void> | undefined;

  private constructor(
    private readonly store: ParameterStore,
    readonly lease: RunLease,
    /** The dead keeper's lease this one replaced, if any (for the run's events). */
    readonly tookOver: RunLease | undefined,
    private readonly onLost: (by: RunLease | undefined) => void,
  ) {}

  /**
   * Takes the run's lease for this process: free, or held by a dead keeper (taken over). Throws LeaseHeldError
   * (exit 2) when a live keeper holds it; `what` starts that one line (e.g. "--resume DIR").
   */
  static async acquire(store: ParameterStore, runId: string, what: string, onLost: (by: RunLease | undefined) => void = () => {}): Promise<HeldLease> {
    const token = randomBytes(12).toString('hex');
    for (let tries = 0; ; tries++) {
      const now = Date.now();
      const mine: RunLease = { runId, token, pid: process.pid, host: os.hostname(), acquiredAt: now, heartbeatAt: now };
      const held = await store.getLease(runId);
      if (held && holderAlive(held, now)) {
        throw new LeaseHeldError(
          `${what}: run ${runId} is still driven by its keeper (${describeHolder(held, now)}); wait for it to finish, or stop it (kill ${held.pid}${held.host !== mine.host ? ` on ${held.host}` : ''}) and resume again`,
          held,
        );
      }
      if (await store.acquireLease(mine, held?.token)) {
        const h = new HeldLease(store, mine, held, onLost);
        h.start();
        return h;
      }
      // Another keeper changed the lease between our read and write: look again (it may be alive now).
      if (tries >= 5) throw new Error(`run ${runId}: could not take its lease (it keeps changing hands)`);
    }
  }

  /** The keeper that took this lease over, once it is lost. */
  get lost(): RunLease | undefined {
    return this.lostTo;
  }

  /** Throws LeaseLostError if another keeper has taken the run over. */
  check(): void {
    if (this.lostTo !== undefined) throw this.lostError();
  }

  private lostError(): LeaseLostError {
    const by = this.lostTo;
    return new LeaseLostError(
      `run ${this.lease.runId}: another keeper took it over${by?.pid ? ` (${describeHolder(by)})` : ''} while this one was not heard from; this keeper stops and leaves the run to it`,
    );
  }

  private start(): void {
    this.timer = setInterval(() => {
      this.renewing ??= this.renew().finally(() => (this.renewing = undefined));
    }, HEARTBEAT_MS);
    this.timer.unref();
  }

  private async renew(): Promise<void> {
    if (this.released || this.lostTo) return;
    let ok: boolean;
    try {
      ok = await this.store.renewLease(this.lease.runId, this.lease.token, Date.now());
    } catch {
      return; // the store did not answer this time; the next heartbeat tries again
    }
    if (ok || this.released) return;
    this.lostTo = (await this.store.getLease(this.lease.runId).catch(() => undefined)) ?? { ...this.lease, pid: 0, host: '?' };
    clearInterval(this.timer);
    this.onLost(this.lostTo);
  }

  /** Gives the lease up (idempotent); a lease lost to another keeper is left alone. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    clearInterval(this.timer);
    await this.renewing;
    if (!this.lostTo) await this.store.releaseLease(this.lease.runId, this.lease.token);
  }
}
