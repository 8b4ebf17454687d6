/**
 * PostgreSQL connections for PostgresStore: one `pg` Pool per store, sized for many concurrent FL functions against
 * a default server, with retries of transient connection failures and a StoreUnreachableError (password redacted)
 * when the server cannot be reached or refuses us.
 *
 * Connection budget. A default server allows max_connections = 100 (3 of them reserved for superusers). The keeper
 * holds at most KEEPER_POOL.max = 4. Each function process holds at most FUNCTION_POOL.max = 1 and
 * closes it 1 s after its last query, so a function does not hold a connection while it trains; only functions that
 * are reading or writing at that moment count. When 100 clients start a round together and the server runs out,
 * it answers 53300 too_many_connections: the connect is retried with exponential backoff and jitter.
 */
import pg from 'pg';
import type { PoolClient, QueryResult, QueryResultRow } from 'pg';
import { StoreUnreachableError } from './errors.js';
import { redactUrlPassword, urlPassword } from './store-url.js';

export interface PostgresStoreOptions {
  /** Connections the store may hold at once; default 4 (the keeper). Functions: FUNCTION_POOL. */
  max?: number;
  /** A connection idle this long (ms) is closed; default 10 s. */
  idleTimeoutMillis?: number;
  /** Give up connecting (or waiting for a free pooled connection) after this long (ms); default 10 s. */
  connectionTimeoutMillis?: number;
  /** Tries of an operation that meets a transient connection failure, the first included; default 5. */
  attempts?: number;
}

/** The keeper: a few connections, kept while it works. */
export const KEEPER_POOL = { max: 4, idleTimeoutMillis: 10_000 } as const satisfies PostgresStoreOptions;

/** A function process: one connection, closed 1 s after its last query (it must not idle through training). */
export const FUNCTION_POOL = { max: 1, idleTimeoutMillis: 1_000 } as const satisfies PostgresStoreOptions;

const DEFAULTS = { ...KEEPER_POOL, connectionTimeoutMillis: 10_000, attempts: 5 };
const BACKOFF_BASE_MS = 100;
const BACKOFF_MAX_MS = 2_000;

/** SQLSTATEs worth another try: too_many_connections, cannot_connect_now (starting up / shutting down). */
const TRANSIENT_SQLSTATES = new Set(['53300', '57P03']);
const TRANSIENT_NET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET']);
/** What `pg` says when the server closes the socket under a query or a handshake. */
const TERMINATED = /^Connection terminated( unexpectedly)?$/;

interface ErrorLike {
  code?: unknown;
  message?: unknown;
  errors?: unknown;
}

/** The error's code(s): its own and, for an AggregateError (several addresses tried), its members'. */
function codesOf(e: unknown): string[] {
  const err = (e ?? {}) as ErrorLike;
  const out: string[] = [];
  if (typeof err.code === 'string') out.push(err.code);
  if (Array.isArray(err.errors)) for (const x of err.errors) out.push(...codesOf(x));
  return out;
}

/** A failure that may go away on its own: a full or starting server, a refused or reset connection. */
export function isTransientConnectionError(e: unknown): boolean {
  const codes = codesOf(e);
  if (codes.some((c) => TRANSIENT_SQLSTATES.has(c) || TRANSIENT_NET_CODES.has(c))) return true;
  const msg = (e as ErrorLike | null)?.message;
  return typeof msg === 'string' && TERMINATED.test(msg);
}

/** Is this error about the connection itself (so the client must be discarded), not about a statement? */
function isConnectionLost(e: unknown): boolean {
  const codes = codesOf(e);
  if (codes.some((c) => c.startsWith('E') || c.startsWith('08') || c === '57P01')) return true;
  const msg = (e as ErrorLike | null)?.message;
  return typeof msg === 'string' && TERMINATED.test(msg);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Delay before try `n + 1` (n ≥ 1): exponential, capped, with jitter over its upper half. */
function backoffMs(n: number): number {
  const d = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (n - 1));
  return d / 2 + Math.random() * (d / 2);
}

/**
 * Pool limits a store URL may carry for a server with few connections to spare (the same for the keeper and every
 * function): `?connection_limit=N` (connections per process) and `?idle_timeout=MS` (close a connection idle this
 * long). They are FedKeeper's, not the server's: taken off the URL before `pg` sees it.
 */
export function poolLimitsOf(rawUrl: string): { url: string; limits: Pick<PostgresStoreOptions, 'max' | 'idleTimeoutMillis'> } {
  let u: URL;
  try {
    u = new URL(rawUrl);
  } catch {
    return { url: rawUrl, limits: {} };
  }
  const limits: Pick<PostgresStoreOptions, 'max' | 'idleTimeoutMillis'> = {};
  const max = u.searchParams.get('connection_limit');
  const idle = u.searchParams.get('idle_timeout');
  if (max === null && idle === null) return { url: rawUrl, limits };
  if (max !== null && Number.isInteger(Number(max)) && Number(max) >= 1) limits.max = Number(max);
  if (idle !== null && Number(idle) >= 1) limits.idleTimeoutMillis = Number(idle);
  u.searchParams.delete('connection_limit');
  u.searchParams.delete('idle_timeout');
  return { url: u.toString(), limits };
}

export class PostgresPool {
  /** The URL with its password redacted: the only form of it that may appear in messages. */
  readonly redactedUrl: string;
  private readonly pool: pg.Pool;
  private readonly attempts: number;
  private readonly timeoutMs: number;
  private readonly password: string | undefined;
  private ended = false;

  constructor(rawUrl: string, options: PostgresStoreOptions = {}) {
    const { url, limits } = poolLimitsOf(rawUrl);
    const o = { ...DEFAULTS, ...stripUndefined(options), ...limits };
    this.redactedUrl = redactUrlPassword(url);
    this.password = urlPassword(url);
    this.attempts = Math.max(1, o.attempts);
    this.timeoutMs = o.connectionTimeoutMillis;
    this.pool = new pg.Pool({
      connectionString: url,
      max: o.max,
      idleTimeoutMillis: o.idleTimeoutMillis,
      connectionTimeoutMillis: o.connectionTimeoutMillis,
      allowExitOnIdle: true,
      application_name: 'fedkeeper',
    });
    // An idle pooled connection that dies (server restart) is dropped by the pool; without a listener the
    // 'error' event would crash the process.
    this.pool.on('error', () => {});
  }

  /**
   * Runs `fn` on a pooled connection. Connecting is retried on transient failures and ends in a
   * StoreUnreachableError. `fn` itself is retried (on a fresh connection) after a transient failure only when
   * `idempotent`: a statement whose connection broke may or may not have been applied.
   */
  async withClient<T>(fn: (c: PoolClient) => Promise<T>, idempotent = true): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      if (this.ended) throw new Error(`PostgreSQL store ${this.redactedUrl} is closed`);
      let client: PoolClient;
      try {
        client = await this.pool.connect();
      } catch (e) {
        if (this.ended) throw new Error(`PostgreSQL store ${this.redactedUrl} is closed`);
        if (attempt < this.attempts && isTransientConnectionError(e)) {
          await sleep(backoffMs(attempt));
          continue;
        }
        throw this.unreachable(e);
      }
      let broken: Error | undefined;
      try {
        return await fn(client);
      } catch (e) {
        if (isConnectionLost(e)) broken = e instanceof Error ? e : new Error(String(e));
        if (idempotent && attempt < this.attempts && isTransientConnectionError(e)) {
          await sleep(backoffMs(attempt));
          continue;
        }
        throw e;
      } finally {
        // A connection that failed under us is destroyed rather than returned to the pool.
        client.release(broken);
      }
    }
  }

  query<R extends QueryResultRow>(text: string, values?: unknown[], idempotent = true): Promise<QueryResult<R>> {
    return this.withClient((c) => c.query<R>(text, values), idempotent);
  }

  async end(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    await this.pool.end();
  }

  /** The one-line error for a server that does not answer or refuses us; never contains the password. */
  unreachable(e: unknown): StoreUnreachableError {
    const codes = codesOf(e);
    const cause = this.scrub(describeCause(e));
    const fix = hintFor(codes, cause, this.timeoutMs);
    return new StoreUnreachableError(
      `cannot connect to the PostgreSQL store ${this.redactedUrl}: ${cause}; ${fix}`,
      this.redactedUrl,
    );
  }

  /** A third-party message with the password (and any URL's password) taken out, on one line. */
  private scrub(text: string): string {
    let out = text.split('\n')[0]!.trim();
    if (this.password !== undefined && this.password.length >= 3) out = out.split(this.password).join('***');
    return redactUrlPassword(out);
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function describeCause(e: unknown): string {
  const err = (e ?? {}) as ErrorLike;
  const msg = typeof err.message === 'string' && err.message !== '' ? err.message : undefined;
  if (msg !== undefined) return msg;
  if (Array.isArray(err.errors) && err.errors.length > 0) return describeCause(err.errors[0]);
  const code = codesOf(e)[0];
  return code ?? String(e);
}

function hintFor(codes: readonly string[], cause: string, timeoutMs: number): string {
  const has = (c: string) => codes.includes(c);
  if (has('28P01') || has('28000')) return 'fix the user and password in store.url';
  if (has('3D000')) return 'create that database (createdb) or fix the database name in store.url';
  if (has('53300')) return 'the server has no free connection (max_connections); retry later, raise max_connections or run fewer functions at once';
  if (has('57P03')) return 'the server is starting up or shutting down; retry when it is up';
  if (has('ENOTFOUND') || has('EAI_AGAIN')) return 'fix the host name in store.url';
  if (/timeout/i.test(cause)) {
    return `the server did not answer within ${timeoutMs} ms; check the host and port in store.url and that no firewall is in the way`;
  }
  return 'start PostgreSQL (pg_isready tells whether it answers) or fix the host and port in store.url';
}
