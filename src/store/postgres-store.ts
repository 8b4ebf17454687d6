/**
 * ParameterStore over PostgreSQL (`pg`), with the semantics of SqliteStore method by method: weights are bytea
 * holding the fl/codec encoding, partitions bytea of uint32 little-endian, client updates keyed (run, round, client)
 * with an atomic upsert that ignores a write from an older attempt than the stored one. Safe for many processes at
 * once (each statement is atomic on its own; the schema migration is serialised by postgres-schema.ts).
 *
 * Bundled into function packages: imports only `pg`, fl/ and store/ files that do the same.
 */
import type { PoolClient } from 'pg';
import { decodeWeights, encodeWeights } from '../fl/codec.js';
import type { WeightVector } from '../fl/weights.js';
import { StoreUrlError } from './errors.js';
import { bytesToUint32, uint32ToBytes } from './partition-bytes.js';
import { PostgresPool, type PostgresStoreOptions } from './postgres-pool.js';
import { migrate } from './postgres-schema.js';
import { isPostgresUrl, redactUrlPassword } from './store-url.js';
import { readInChunks, sortedUniqueIds } from './update-stream.js';
import type {
  ActivationRecord,
  ActivationStatus,
  ClientUpdate,
  ClientUpdateInfo,
  ParameterStore,
  RunInfo,
  RunLease,
  RunRecord,
  RunStatus,
} from './types.js';

export { FUNCTION_POOL, KEEPER_POOL, type PostgresStoreOptions } from './postgres-pool.js';

/** bigint columns arrive as strings (pg does not guess); epoch ms and sample counts fit a double exactly. */
type Int8 = string | number;

interface RunRow {
  run_id: string;
  name: string;
  config_json: string;
  status: string;
  created_at: Int8;
  updated_at: Int8;
}

interface RunListRow {
  run_id: string;
  name: string;
  status: string;
  created_at: Int8;
  updated_at: Int8;
  rounds: number | null;
  updates: Int8;
  bytes: Int8;
}

interface LeaseRow {
  run_id: string;
  token: string;
  pid: number;
  host: string;
  acquired_at: Int8;
  heartbeat_at: Int8;
}

interface UpdateInfoRow {
  run_id: string;
  round: number;
  client_id: number;
  num_samples: Int8;
  metrics_json: string;
  activation_id: string | null;
  attempt: number | null;
}

interface UpdateRow extends UpdateInfoRow {
  blob: Uint8Array;
}

interface ActivationRow {
  activation_id: string;
  run_id: string;
  round: number;
  client_id: number;
  function_name: string;
  platform: string;
  cluster: string;
  attempt: number;
  start_time: Int8;
  end_time: Int8 | null;
  status: string;
  cold_start: boolean;
  error: string | null;
}

const UPDATE_INFO_COLS = 'run_id, round, client_id, num_samples, metrics_json, activation_id, attempt';
/** Ties broken by byte order, as SQLite does, whatever the database's collation. */
const ACTIVATION_ORDER = 'ORDER BY start_time, activation_id COLLATE "C"';

const SQL = {
  insertRun: `INSERT INTO runs (run_id, name, config_json, status, created_at, updated_at)
              VALUES ($1, $2, $3, $4, $5, $6)`,
  getRun: 'SELECT * FROM runs WHERE run_id = $1',
  setRunStatus: 'UPDATE runs SET status = $1, updated_at = $2 WHERE run_id = $3',
  // One statement, so one transaction: every data-modifying CTE runs to completion.
  deleteRun: `WITH u AS (DELETE FROM client_updates WHERE run_id = $1),
                   g AS (DELETE FROM global_weights WHERE run_id = $1),
                   p AS (DELETE FROM partitions WHERE run_id = $1),
                   a AS (DELETE FROM activations WHERE run_id = $1),
                   l AS (DELETE FROM run_leases WHERE run_id = $1)
              DELETE FROM runs WHERE run_id = $1`,
  // pg_column_size: the bytes a value takes as stored (after TOAST compression), without reading it.
  listRuns: `SELECT r.run_id, r.name, r.status, r.created_at, r.updated_at,
               (SELECT MAX(round) FROM global_weights g WHERE g.run_id = r.run_id) AS rounds,
               (SELECT COUNT(*) FROM client_updates u WHERE u.run_id = r.run_id) AS updates,
               (SELECT COALESCE(SUM(pg_column_size(blob)), 0) FROM global_weights g WHERE g.run_id = r.run_id)
                 + (SELECT COALESCE(SUM(pg_column_size(blob)), 0) FROM client_updates u WHERE u.run_id = r.run_id)
                 + (SELECT COALESCE(SUM(pg_column_size(indices)), 0) FROM partitions p WHERE p.run_id = r.run_id) AS bytes,
               l.token, l.pid, l.host, l.acquired_at, l.heartbeat_at
             FROM runs r LEFT JOIN run_leases l ON l.run_id = r.run_id
             ORDER BY r.created_at DESC, r.run_id COLLATE "C"`,
  getLease: 'SELECT * FROM run_leases WHERE run_id = $1',
  insertLease: `INSERT INTO run_leases (run_id, token, pid, host, acquired_at, heartbeat_at)
                VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (run_id) DO NOTHING`,
  replaceLease: `UPDATE run_leases SET token = $2, pid = $3, host = $4, acquired_at = $5, heartbeat_at = $6
                 WHERE run_id = $1 AND token = $7`,
  renewLease: 'UPDATE run_leases SET heartbeat_at = $1 WHERE run_id = $2 AND token = $3',
  releaseLease: 'DELETE FROM run_leases WHERE run_id = $1 AND token = $2',
  putGlobal: `INSERT INTO global_weights (run_id, round, blob) VALUES ($1, $2, $3)
              ON CONFLICT (run_id, round) DO UPDATE SET blob = EXCLUDED.blob`,
  getGlobal: 'SELECT blob FROM global_weights WHERE run_id = $1 AND round = $2',
  latestGlobal: 'SELECT MAX(round) AS r FROM global_weights WHERE run_id = $1',
  // The WHERE of DO UPDATE is evaluated against the row as locked by the upsert: atomic under concurrency.
  putUpdate: `INSERT INTO client_updates
                (run_id, round, client_id, blob, num_samples, metrics_json, activation_id, attempt)
              VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
              ON CONFLICT (run_id, round, client_id) DO UPDATE SET
                blob = EXCLUDED.blob, num_samples = EXCLUDED.num_samples, metrics_json = EXCLUDED.metrics_json,
                activation_id = EXCLUDED.activation_id, attempt = EXCLUDED.attempt
              WHERE EXCLUDED.attempt IS NULL OR client_updates.attempt IS NULL
                OR EXCLUDED.attempt >= client_updates.attempt`,
  getUpdate: `SELECT ${UPDATE_INFO_COLS}, blob FROM client_updates WHERE run_id = $1 AND round = $2 AND client_id = $3`,
  getUpdates: `SELECT ${UPDATE_INFO_COLS}, blob FROM client_updates WHERE run_id = $1 AND round = $2
               ORDER BY client_id`,
  getUpdatesFor: `SELECT ${UPDATE_INFO_COLS}, blob FROM client_updates WHERE run_id = $1 AND round = $2
                    AND client_id = ANY($3::integer[])
                  ORDER BY client_id`,
  listUpdates: `SELECT ${UPDATE_INFO_COLS} FROM client_updates WHERE run_id = $1 AND round = $2 ORDER BY client_id`,
  putPartition: `INSERT INTO partitions (run_id, client_id, indices) VALUES ($1, $2, $3)
                 ON CONFLICT (run_id, client_id) DO UPDATE SET indices = EXCLUDED.indices`,
  getPartition: 'SELECT indices FROM partitions WHERE run_id = $1 AND client_id = $2',
  // octet_length of a bytea reads the size from the value's (TOAST) header: the indices are neither fetched nor
  // decompressed.
  partitionSizes: `SELECT client_id, octet_length(indices) / 4 AS n FROM partitions
                   WHERE run_id = $1 AND client_id = ANY($2::integer[])`,
  countPartitions: 'SELECT COUNT(*) AS n FROM partitions WHERE run_id = $1',
  putActivation: `INSERT INTO activations (activation_id, run_id, round, client_id, function_name, platform, cluster,
                    attempt, start_time, end_time, status, cold_start, error)
                  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                  ON CONFLICT (activation_id) DO UPDATE SET
                    run_id = EXCLUDED.run_id, round = EXCLUDED.round, client_id = EXCLUDED.client_id,
                    function_name = EXCLUDED.function_name, platform = EXCLUDED.platform,
                    cluster = EXCLUDED.cluster, attempt = EXCLUDED.attempt, start_time = EXCLUDED.start_time,
                    end_time = EXCLUDED.end_time, status = EXCLUDED.status, cold_start = EXCLUDED.cold_start,
                    error = EXCLUDED.error`,
  listActivations: `SELECT * FROM activations WHERE run_id = $1 ${ACTIVATION_ORDER}`,
  listActivationsRound: `SELECT * FROM activations WHERE run_id = $1 AND round = $2 ${ACTIVATION_ORDER}`,
} as const;

export class PostgresStore implements ParameterStore {
  readonly kind = 'postgres';
  /** The store's URL with its password redacted (safe to print). */
  readonly url: string;
  private readonly pool: PostgresPool;
  private schema: Promise<void> | undefined;

  /**
   * Connects lazily: the first operation connects and creates or migrates the schema. `openPostgresStore` does
   * that eagerly and is what callers want. Keeper: default options; function processes: FUNCTION_POOL.
   */
  constructor(url: string, options: PostgresStoreOptions = {}) {
    if (!isPostgresUrl(url)) {
      throw new StoreUrlError(
        `PostgreSQL store: expected a postgres:// or postgresql:// URL such as postgres://user:password@host:5432/db, found ${JSON.stringify(redactUrlPassword(url))}`,
      );
    }
    this.pool = new PostgresPool(url, options);
    this.url = this.pool.redactedUrl;
  }

  /** Connects and brings the schema up to date (once per store; again after a failure). */
  async connect(): Promise<void> {
    this.schema ??= this.pool.withClient((c) => migrate(c, this.url));
    try {
      await this.schema;
    } catch (e) {
      this.schema = undefined;
      throw e;
    }
  }

  async createRun(run: RunRecord): Promise<void> {
    const values = [run.runId, run.name, run.configJson, run.status, run.createdAt, run.updatedAt];
    try {
      // Not idempotent: after a connection lost mid-statement a retry could report "already exists" falsely.
      await this.run((c) => c.query(SQL.insertRun, values), false);
    } catch (e) {
      if ((e as { code?: unknown }).code === '23505') throw new Error(`run ${run.runId} already exists`);
      throw e;
    }
  }

  async getRun(runId: string): Promise<RunRecord | undefined> {
    const r = (await this.query<RunRow>(SQL.getRun, [runId]))[0];
    if (!r) return undefined;
    return {
      runId: r.run_id,
      name: r.name,
      configJson: r.config_json,
      status: r.status as RunStatus,
      createdAt: Number(r.created_at),
      updatedAt: Number(r.updated_at),
    };
  }

  async setRunStatus(runId: string, status: RunStatus): Promise<void> {
    const { rowCount } = await this.run((c) => c.query(SQL.setRunStatus, [status, Date.now(), runId]));
    if (!rowCount) throw new Error(`setRunStatus: no run ${runId}`);
  }

  async deleteRun(runId: string): Promise<void> {
    await this.query(SQL.deleteRun, [runId]);
  }

  async listRuns(): Promise<RunInfo[]> {
    return (await this.query<RunListRow & Partial<LeaseRow>>(SQL.listRuns, [])).map((r) => {
      const info: RunInfo = {
        runId: r.run_id,
        name: r.name,
        status: r.status as RunStatus,
        createdAt: Number(r.created_at),
        updatedAt: Number(r.updated_at),
        rounds: r.rounds,
        updates: Number(r.updates),
        bytes: Number(r.bytes),
      };
      if (r.token != null) info.lease = toLease({ ...(r as LeaseRow) });
      return info;
    });
  }

  async getLease(runId: string): Promise<RunLease | undefined> {
    const r = (await this.query<LeaseRow>(SQL.getLease, [runId]))[0];
    return r ? toLease(r) : undefined;
  }

  async acquireLease(lease: RunLease, replacing?: string): Promise<boolean> {
    const values = [lease.runId, lease.token, lease.pid, lease.host, lease.acquiredAt, lease.heartbeatAt];
    // Not idempotent: after a connection lost mid-statement a retry would answer false for our own insert.
    const r = await this.run((c) => (replacing === undefined ? c.query(SQL.insertLease, values) : c.query(SQL.replaceLease, [...values, replacing])), false);
    return r.rowCount === 1;
  }

  async renewLease(runId: string, token: string, now: number): Promise<boolean> {
    return (await this.run((c) => c.query(SQL.renewLease, [now, runId, token]))).rowCount === 1;
  }

  async releaseLease(runId: string, token: string): Promise<void> {
    await this.query(SQL.releaseLease, [runId, token]);
  }

  /** The deleted rows' space is reused by the table (PostgreSQL's autovacuum); it is not handed back to the OS. */
  async deleteClientUpdates(runId: string, upToRound?: number): Promise<number> {
    const rows =
      upToRound === undefined
        ? await this.query<{ n: string }>('WITH d AS (DELETE FROM client_updates WHERE run_id = $1 RETURNING 1) SELECT count(*) AS n FROM d', [runId])
        : await this.query<{ n: string }>('WITH d AS (DELETE FROM client_updates WHERE run_id = $1 AND round <= $2 RETURNING 1) SELECT count(*) AS n FROM d', [runId, upToRound]);
    return Number(rows[0]?.n ?? 0);
  }

  async putGlobalWeights(runId: string, round: number, weights: WeightVector): Promise<void> {
    await this.query(SQL.putGlobal, [runId, round, encodeWeights(weights)]);
  }

  async getGlobalWeights(runId: string, round: number): Promise<WeightVector | undefined> {
    const r = (await this.query<{ blob: Uint8Array }>(SQL.getGlobal, [runId, round]))[0];
    return r ? decodeWeights(r.blob) : undefined;
  }

  async latestGlobalRound(runId: string): Promise<number | undefined> {
    const r = (await this.query<{ r: number | null }>(SQL.latestGlobal, [runId]))[0];
    return r?.r ?? undefined;
  }

  async putClientUpdate(u: ClientUpdate): Promise<void> {
    await this.query(SQL.putUpdate, [
      u.runId,
      u.round,
      u.clientId,
      encodeWeights(u.weights),
      u.numSamples,
      JSON.stringify(u.metrics),
      u.activationId ?? null,
      u.attempt ?? null,
    ]);
  }

  async getClientUpdate(runId: string, round: number, clientId: number): Promise<ClientUpdate | undefined> {
    const r = (await this.query<UpdateRow>(SQL.getUpdate, [runId, round, clientId]))[0];
    return r ? toUpdate(r) : undefined;
  }

  async getClientUpdates(runId: string, round: number, clientIds?: readonly number[]): Promise<ClientUpdate[]> {
    const rows =
      clientIds === undefined
        ? await this.query<UpdateRow>(SQL.getUpdates, [runId, round])
        : await this.query<UpdateRow>(SQL.getUpdatesFor, [runId, round, [...clientIds]]);
    return rows.map(toUpdate);
  }

  /**
   * One query per chunk of ids (update-stream.ts), the next chunk's query running while the current chunk is handed
   * out. Chunks rather than a cursor: a cursor needs one connection inside an open transaction for the whole stream,
   * held while the consumer works between reads ("idle in transaction"); a function's pool has ONE connection
   * (FUNCTION_POOL), which its other queries would then wait for, and a lost connection would end the stream, while
   * a chunk is an ordinary idempotent query that PostgresPool retries. The price, a round trip per chunk, is
   * hidden by the prefetch.
   */
  streamClientUpdates(runId: string, round: number, clientIds: readonly number[]): AsyncIterable<ClientUpdate> {
    return readInChunks(
      sortedUniqueIds(clientIds),
      (chunk) => this.query<UpdateRow>(SQL.getUpdatesFor, [runId, round, chunk]),
      (r) => r.blob.length,
      toUpdate,
      { prefetch: true },
    );
  }

  async listClientUpdates(runId: string, round: number): Promise<ClientUpdateInfo[]> {
    return (await this.query<UpdateInfoRow>(SQL.listUpdates, [runId, round])).map(toUpdateInfo);
  }

  async putPartition(runId: string, clientId: number, indices: Uint32Array): Promise<void> {
    await this.query(SQL.putPartition, [runId, clientId, uint32ToBytes(indices)]);
  }

  async getPartition(runId: string, clientId: number): Promise<Uint32Array | undefined> {
    const r = (await this.query<{ indices: Uint8Array }>(SQL.getPartition, [runId, clientId]))[0];
    return r ? bytesToUint32(r.indices) : undefined;
  }

  async partitionSizes(runId: string, clientIds: readonly number[]): Promise<Map<number, number>> {
    const rows = await this.query<{ client_id: number; n: Int8 }>(SQL.partitionSizes, [runId, sortedUniqueIds(clientIds)]);
    return new Map(rows.map((r) => [r.client_id, Number(r.n)]));
  }

  async countPartitions(runId: string): Promise<number> {
    return Number((await this.query<{ n: Int8 }>(SQL.countPartitions, [runId]))[0]!.n);
  }

  async putActivation(a: ActivationRecord): Promise<void> {
    await this.query(SQL.putActivation, [
      a.activationId,
      a.runId,
      a.round,
      a.clientId,
      a.functionName,
      a.platform,
      a.cluster,
      a.attempt,
      a.startTime,
      a.endTime,
      a.status,
      a.coldStart,
      a.error ?? null,
    ]);
  }

  async listActivations(runId: string, round?: number): Promise<ActivationRecord[]> {
    const rows =
      round === undefined
        ? await this.query<ActivationRow>(SQL.listActivations, [runId])
        : await this.query<ActivationRow>(SQL.listActivationsRound, [runId, round]);
    return rows.map(toActivation);
  }

  /** Closes the pool; idempotent. Later operations reject. */
  async close(): Promise<void> {
    await this.pool.end();
  }

  /** Runs `fn` on a pooled connection once the schema is ready (see PostgresPool.withClient for retries). */
  private async run<T>(fn: (c: PoolClient) => Promise<T>, idempotent = true): Promise<T> {
    await this.connect();
    return this.pool.withClient(fn, idempotent);
  }

  private async query<R extends object>(sql: string, values: unknown[]): Promise<R[]> {
    return (await this.run((c) => c.query(sql, values))).rows as R[];
  }
}

function toLease(r: LeaseRow): RunLease {
  return { runId: r.run_id, token: r.token, pid: r.pid, host: r.host, acquiredAt: Number(r.acquired_at), heartbeatAt: Number(r.heartbeat_at) };
}

function toUpdateInfo(r: UpdateInfoRow): ClientUpdateInfo {
  const info: ClientUpdateInfo = {
    runId: r.run_id,
    round: r.round,
    clientId: r.client_id,
    numSamples: Number(r.num_samples),
    metrics: JSON.parse(r.metrics_json) as Record<string, number>,
  };
  if (r.activation_id !== null) info.activationId = r.activation_id;
  if (r.attempt !== null) info.attempt = r.attempt;
  return info;
}

function toUpdate(r: UpdateRow): ClientUpdate {
  return { ...toUpdateInfo(r), weights: decodeWeights(r.blob) };
}

function toActivation(r: ActivationRow): ActivationRecord {
  const a: ActivationRecord = {
    activationId: r.activation_id,
    runId: r.run_id,
    round: r.round,
    clientId: r.client_id,
    functionName: r.function_name,
    platform: r.platform,
    cluster: r.cluster,
    attempt: r.attempt,
    startTime: Number(r.start_time),
    endTime: r.end_time === null ? null : Number(r.end_time),
    status: r.status as ActivationStatus,
    coldStart: r.cold_start,
  };
  if (r.error !== null) a.error = r.error;
  return a;
}

/**
 * Opens a PostgresStore and connects and migrates at once, so that a wrong or unreachable URL fails here: a
 * StoreUnreachableError (exit code 2) whose message names the URL with its password redacted.
 */
export async function openPostgresStore(url: string, options?: PostgresStoreOptions): Promise<PostgresStore> {
  const store = new PostgresStore(url, options);
  try {
    await store.connect();
  } catch (e) {
    await store.close().catch(() => {});
    throw e;
  }
  return store;
}
