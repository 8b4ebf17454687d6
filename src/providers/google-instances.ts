/**
 * The instances of one locally deployed Google Cloud Function, as its deployment record keeps them, and where a
 * request goes (pure bookkeeping; google-local does the I/O under the record's cross-process lock).
 *
 * As on Cloud Functions (2nd gen): an instance serves at most `concurrency` requests at a time; a request goes to an
 * instance with a free slot, else a new instance is started (a cold start) while there are fewer than the limit
 * (min(max_instances, the machine's local cap)), else it waits in a FIFO queue. Several processes (the keeper, relay
 * activations, later CLI commands) route requests to the same instances, so every slot in use is a lease in the
 * record, held by a process (pid) for one request, and every waiting request is an entry in the record's queue.
 */

/** One request's hold on a slot of an instance. */
export interface InstanceLease {
  /** The request's own random token. */
  token: string;
  /** The process that sends the request; the lease dies with it. */
  pid: number;
  since: number;
  /** The request cannot be in flight past this (start + the function's timeout + slack): a forgotten lease expires. */
  until: number;
}

/** A request waiting for an instance. */
export interface InstanceWaiter {
  token: string;
  pid: number;
  /** When it started waiting (its queue window runs from here). */
  since: number;
  /** When its process last showed it still waits; an entry not refreshed for WAITER_STALE_MS is dropped. */
  seen: number;
}

/** One instance: a functions-framework process on its own port (absent while it is being started). */
export interface LocalInstance {
  /** Short id, unique within the function: `i1`, `i2` … */
  id: string;
  pid?: number;
  port?: number;
  startedAt: number;
  /** Set while a process (this pid) is starting the instance; it has no pid and port yet. */
  starter?: number;
  /** When it last finished a request (or started). */
  lastUsed: number;
  leases: InstanceLease[];
  /** It answered a crash and may be exiting: no new request goes to it before this time. */
  suspectUntil?: number;
}

/** How a function scales here: GCF's settings plus what this machine allows. */
export interface LocalScaling {
  maxInstances: number;
  minInstances: number;
  concurrency: number;
  /** min(max_instances, the local cap): the most instances this function has at once. */
  limit: number;
  /**
   * How long a request may wait for an instance before GCF's 429; null when the limit is the machine's cap rather
   * than the function's own max_instances (Google would have started an instance: the request just waits here).
   */
  queueTimeoutMs: number | null;
  idleTimeoutMs: number;
}

export interface InstancePool {
  scaling: LocalScaling;
  /** The number of the next instance id. */
  nextInstance: number;
  instances: LocalInstance[];
  queue: InstanceWaiter[];
}

/** A running instance: one with a pid and a port. */
export type RunningInstance = LocalInstance & { pid: number; port: number };

export type Placement =
  /** A slot of a running instance is leased to the request. */
  | { kind: 'run'; instance: RunningInstance }
  /** A new instance is recorded (starter = the caller), its first slot leased to the request: start it. */
  | { kind: 'start'; instance: LocalInstance }
  /** No slot and no room: the request is (still) queued. */
  | { kind: 'wait' }
  /** Queued past the queue window: refused, as GCF's 429. */
  | { kind: 'refused'; waitedMs: number };

export interface Ticket {
  token: string;
  pid: number;
}

/** A waiter whose process has not polled for this long is gone (its process hung or forgot it). */
export const WAITER_STALE_MS = 30_000;

export function isRunning(i: LocalInstance): i is RunningInstance {
  return i.pid !== undefined && i.port !== undefined && i.starter === undefined;
}

function usable(i: LocalInstance, concurrency: number, now: number): i is RunningInstance {
  return isRunning(i) && i.leases.length < concurrency && !((i.suspectUntil ?? 0) > now);
}

/**
 * Where the request goes now (changes `pool`: leases, a new instance, the queue). FIFO: a request that is not at
 * the head of the queue waits even if a slot is free, so that the longest waiting request gets it.
 */
export function place(pool: InstancePool, ticket: Ticket, now: number, leaseMs: number): Placement {
  const at = pool.queue.findIndex((w) => w.token === ticket.token);
  const waiting = at >= 0 ? pool.queue[at] : undefined;
  if (waiting) waiting.seen = now;
  const ahead = at >= 0 ? at : pool.queue.length;
  if (ahead === 0) {
    const lease: InstanceLease = { token: ticket.token, pid: ticket.pid, since: now, until: now + leaseMs };
    const free = pool.instances.find((i) => usable(i, pool.scaling.concurrency, now));
    if (free) {
      free.leases.push(lease);
      if (waiting) pool.queue.splice(at, 1);
      return { kind: 'run', instance: free };
    }
    if (pool.instances.length < pool.scaling.limit) {
      const instance: LocalInstance = { id: `i${pool.nextInstance++}`, startedAt: now, starter: ticket.pid, lastUsed: now, leases: [lease] };
      pool.instances.push(instance);
      if (waiting) pool.queue.splice(at, 1);
      return { kind: 'start', instance };
    }
  }
  const since = waiting?.since ?? now;
  if (pool.scaling.queueTimeoutMs !== null && now - since >= pool.scaling.queueTimeoutMs) {
    if (waiting) pool.queue.splice(at, 1);
    return { kind: 'refused', waitedMs: now - since };
  }
  if (!waiting) pool.queue.push({ token: ticket.token, pid: ticket.pid, since: now, seen: now });
  return { kind: 'wait' };
}

/**
 * Whether a locked place() could now do more than queue the request again (read from an unlocked copy of the
 * record, so that waiting requests do not take the lock for nothing).
 */
export function mayProceed(pool: InstancePool | undefined, ticket: Ticket, now: number): boolean {
  if (!pool) return true; // removed or redeployed: the locked attempt says what now
  const at = pool.queue.findIndex((w) => w.token === ticket.token);
  if (at < 0 || (pool.scaling.queueTimeoutMs !== null && now - pool.queue[at]!.since >= pool.scaling.queueTimeoutMs)) return true;
  if (at > 0) return false;
  return pool.instances.length < pool.scaling.limit || pool.instances.some((i) => usable(i, pool.scaling.concurrency, now));
}

/** Gives a request's slot back. Returns the instance, if it is still recorded. */
export function release(pool: InstancePool, token: string, instanceId: string, now: number): LocalInstance | undefined {
  const i = pool.instances.find((x) => x.id === instanceId);
  if (!i) return undefined;
  const before = i.leases.length;
  i.leases = i.leases.filter((l) => l.token !== token);
  if (i.leases.length !== before) i.lastUsed = now;
  return i;
}

/** Takes a request out of the queue (it gave up). */
export function leaveQueue(pool: InstancePool, token: string): void {
  pool.queue = pool.queue.filter((w) => w.token !== token);
}

export interface PruneInput {
  now: number;
  /** Whether a process lives (a lease's holder, a waiter's process, a starter). */
  pidAlive: (pid: number) => boolean;
  /** Instances whose process is gone (crashed, killed): by id. */
  dead: ReadonlySet<string>;
  /** A start older than this is abandoned. */
  startStaleMs: number;
}

/**
 * Drops what no longer holds: dead instances (a crash: the next request that needs one starts a new one),
 * abandoned starts, leases and waiters of processes that are gone or that forgot them; and returns the instances to
 * stop because they have been idle for idleTimeoutMs while more than min_instances run (oldest idle first).
 */
export function prune(pool: InstancePool, p: PruneInput): RunningInstance[] {
  pool.instances = pool.instances.filter((i) => {
    if (i.starter !== undefined) return p.pidAlive(i.starter) && p.now - i.startedAt < p.startStaleMs;
    return !p.dead.has(i.id);
  });
  for (const i of pool.instances) {
    i.leases = i.leases.filter((l) => l.until > p.now && p.pidAlive(l.pid));
    if (i.suspectUntil !== undefined && i.suspectUntil <= p.now) delete i.suspectUntil;
  }
  pool.queue = pool.queue.filter((w) => p.now - w.seen < WAITER_STALE_MS && p.pidAlive(w.pid));
  const idle = pool.instances
    .filter((i): i is RunningInstance => isRunning(i) && i.leases.length === 0 && p.now - i.lastUsed >= pool.scaling.idleTimeoutMs)
    .sort((a, b) => a.lastUsed - b.lastUsed)
    .slice(0, Math.max(0, pool.instances.length - pool.scaling.minInstances));
  if (idle.length > 0) pool.instances = pool.instances.filter((i) => !idle.includes(i as RunningInstance));
  return idle;
}
