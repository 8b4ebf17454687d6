/**
 * ParameterStore over a SQLite file (better-sqlite3). Safe for several processes writing the same file at once:
 * WAL mode + busy timeout (see sqlite-schema.ts), single-statement upserts, and IMMEDIATE transactions for
 * multi-statement writes. Weights are stored as fl/codec blobs, partitions as uint32 little-endian blobs.
 */
import type Database from 'better-sqlite3';
import { decodeWeights, encodeWeights } from '../fl/codec.js';
import type { WeightVector } from '../fl/weights.js';
import { bytesToUint32, uint32ToBytes } from './partition-bytes.js';
import { openDatabase } from './sqlite-schema.js';
import { readInChunks, sortedUniqueIds } from './update-stream.js';
import type {
  ActivationRecord,
  ActivationStatus,
  ClientUpdate,
  ClientUpdateInfo,
  EncodedClientUpdate,
  ParameterStore,
  RunInfo,
  RunLease,
  RunRecord,
  RunStatus,
} from './types.js';

interface RunRow {
  run_id: string;
  name: string;
  config_json: string;
  status: string;
  created_at: number;
  updated_at: number;
}

interface RunListRow {
  run_id: string;
  name: string;
  status: string;
  created_at: number;
  updated_at: number;
  rounds: number | null;
  updates: number;
  bytes: number;
}

interface LeaseRow {
  run_id: string;
  token: string;
  pid: number;
  host: string;
  acquired_at: number;
  heartbeat_at: number;
}

interface UpdateInfoRow {
  run_id: string;
  round: number;
  client_id: number;
  num_samples: number;
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
  start_time: number;
  end_time: number | null;
  status: string;
  cold_start: number;
  error: string | null;
}

const UPDATE_INFO_COLS = 'run_id, round, client_id, num_samples, metrics_json, activation_id, attempt';

const SQL = {
  insertRun: `INSERT INTO runs (run_id, name, config_json, status, created_at, updated_at)
              VALUES (@runId, @name, @configJson, @status, @createdAt, @updatedAt)`,
  getRun: 'SELECT * FROM runs WHERE run_id = ?',
  setRunStatus: 'UPDATE runs SET status = ?, updated_at = ? WHERE run_id = ?',
  deleteRun: [
    'DELETE FROM client_updates WHERE run_id = ?',
    'DELETE FROM global_weights WHERE run_id = ?',
    'DELETE FROM partitions WHERE run_id = ?',
    'DELETE FROM activations WHERE run_id = ?',
    'DELETE FROM run_leases WHERE run_id = ?',
    'DELETE FROM runs WHERE run_id = ?',
  ],
  // length() of a BLOB reads its size from the record header, not its pages.
  listRuns: `SELECT r.run_id, r.name, r.status, r.created_at, r.updated_at,
               (SELECT MAX(round) FROM global_weights g WHERE g.run_id = r.run_id) AS rounds,
               (SELECT COUNT(*) FROM client_updates u WHERE u.run_id = r.run_id) AS updates,
               (SELECT COALESCE(SUM(length(blob)), 0) FROM global_weights g WHERE g.run_id = r.run_id)
                 + (SELECT COALESCE(SUM(length(blob)), 0) FROM client_updates u WHERE u.run_id = r.run_id)
                 + (SELECT COALESCE(SUM(length(indices)), 0) FROM partitions p WHERE p.run_id = r.run_id) AS bytes,
               l.token, l.pid, l.host, l.acquired_at, l.heartbeat_at
             FROM runs r LEFT JOIN run_leases l ON l.run_id = r.run_id
             ORDER BY r.created_at DESC, r.run_id`,
  getLease: 'SELECT * FROM run_leases WHERE run_id = ?',
  insertLease: `INSERT INTO run_leases (run_id, token, pid, host, acquired_at, heartbeat_at)
                VALUES (@runId, @token, @pid, @host, @acquiredAt, @heartbeatAt) ON CONFLICT (run_id) DO NOTHING`,
  replaceLease: `UPDATE run_leases SET token = @token, pid = @pid, host = @host, acquired_at = @acquiredAt,
                   heartbeat_at = @heartbeatAt
                 WHERE run_id = @runId AND token = @replacing`,
  renewLease: 'UPDATE run_leases SET heartbeat_at = ? WHERE run_id = ? AND token = ?',
  releaseLease: 'DELETE FROM run_leases WHERE run_id = ? AND token = ?',
  putGlobal: `INSERT INTO global_weights (run_id, round, blob) VALUES (?, ?, ?)
              ON CONFLICT (run_id, round) DO UPDATE SET blob = excluded.blob`,
  getGlobal: 'SELECT blob FROM global_weights WHERE run_id = ? AND round = ?',
  latestGlobal: 'SELECT MAX(round) AS r FROM global_weights WHERE run_id = ?',
  putUpdate: `INSERT INTO client_updates
                (run_id, round, client_id, blob, num_samples, metrics_json, activation_id, attempt)
              VALUES (@runId, @round, @clientId, @blob, @numSamples, @metricsJson, @activationId, @attempt)
              ON CONFLICT (run_id, round, client_id) DO UPDATE SET
                blob = excluded.blob, num_samples = excluded.num_samples, metrics_json = excluded.metrics_json,
                activation_id = excluded.activation_id, attempt = excluded.attempt
              WHERE excluded.attempt IS NULL OR client_updates.attempt IS NULL
                OR excluded.attempt >= client_updates.attempt`,
  getUpdate: `SELECT ${UPDATE_INFO_COLS}, blob FROM client_updates WHERE run_id = ? AND round = ? AND client_id = ?`,
  getUpdates: `SELECT ${UPDATE_INFO_COLS}, blob FROM client_updates WHERE run_id = ? AND round = ?
               ORDER BY client_id`,
  getUpdatesFor: `SELECT ${UPDATE_INFO_COLS}, blob FROM client_updates WHERE run_id = ? AND round = ?
                    AND client_id IN (SELECT value FROM json_each(?))
                  ORDER BY client_id`,
  listUpdates: `SELECT ${UPDATE_INFO_COLS} FROM client_updates WHERE run_id = ? AND round = ? ORDER BY client_id`,
  putPartition: `INSERT INTO partitions (run_id, client_id, indices) VALUES (?, ?, ?)
                 ON CONFLICT (run_id, client_id) DO UPDATE SET indices = excluded.indices`,
  getPartition: 'SELECT indices FROM partitions WHERE run_id = ? AND client_id = ?',
  // length() of a BLOB reads its size from the record header: the indices themselves are not read.
  partitionSizes: `SELECT client_id, length(indices) / 4 AS n FROM partitions
                   WHERE run_id = ? AND client_id IN (SELECT value FROM json_each(?))`,
  countPartitions: 'SELECT COUNT(*) AS n FROM partitions WHERE run_id = ?',
  putActivation: `INSERT INTO activations (activation_id, run_id, round, client_id, function_name, platform, cluster,
                    attempt, start_time, end_time, status, cold_start, error)
                  VALUES (@activationId, @runId, @round, @clientId, @functionName, @platform, @cluster,
                    @attempt, @startTime, @endTime, @status, @coldStart, @error)
                  ON CONFLICT (activation_id) DO UPDATE SET
                    run_id = excluded.run_id, round = excluded.round, client_id = excluded.client_id,
                    function_name = excluded.function_name, platform = excluded.platform,
                    cluster = excluded.cluster, attempt = excluded.attempt, start_time = excluded.start_time,
                    end_time = excluded.end_time, status = excluded.status, cold_start = excluded.cold_start,
                    error = excluded.error`,
  listActivations: 'SELECT * FROM activations WHERE run_id = ? ORDER BY start_time, activation_id',
  listActivationsRound: 'SELECT * FROM activations WHERE run_id = ? AND round = ? ORDER BY start_time, activation_id',
} as const;

export class SqliteStore implements ParameterStore {
  readonly kind = 'sqlite';
  readonly path: string;
  private readonly db: Database.Database;
  private readonly stmts = new Map<string, Database.Statement>();
  private readonly deleteRunTx: (runId: string) => void;
  /** Writes waiting for the group commit at the end of this turn of the event loop (see writeBatched). */
  private pending: { run: () => void; resolve: () => void; reject: (e: unknown) => void }[] = [];
  private flushing = false;
  private readonly batchTx: (batch: { run: () => void }[]) => void;
  /** Transactions committed by the group commit, and the writes in them (for tests and benchmarks). */
  readonly groupCommits = { transactions: 0, writes: 0 };

  /** Opens (creating file, parent directories and schema if needed) the store at `file`; ':memory:' for tests. */
  constructor(file: string) {
    this.path = file;
    this.db = openDatabase(file);
    this.deleteRunTx = this.db.transaction((runId: string) => {
      for (const sql of SQL.deleteRun) this.stmt(sql).run(runId);
    }).immediate;
    this.batchTx = this.db.transaction((batch: { run: () => void }[]) => {
      for (const w of batch) w.run();
    }).immediate;
  }

  /**
   * Group commit of the per-client writes (activation rows, client updates): the writes asked for in one turn of the
   * event loop are committed in one transaction right after it, and each promise resolves once its write is
   * committed, as before. A thousand clients cost a few commits instead of thousands of them (each one a WAL append
   * and its locks, on the event loop). If the transaction fails, every write of it is repeated alone, so that only
   * the failing write fails. Any other statement commits the waiting writes first: reads see them.
   */
  private writeBatched(run: () => void): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.pending.push({ run, resolve, reject }) === 1) setImmediate(() => this.flushWrites());
    });
  }

  private flushWrites(): void {
    if (this.flushing || this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    this.flushing = true;
    try {
      if (!this.db.open) {
        for (const w of batch) w.reject(new Error('the SQLite store is closed'));
        return;
      }
      try {
        this.batchTx(batch);
        this.groupCommits.transactions++;
        this.groupCommits.writes += batch.length;
        for (const w of batch) w.resolve();
      } catch {
        for (const w of batch) {
          try {
            w.run();
            w.resolve();
          } catch (e) {
            w.reject(e);
          }
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  async createRun(run: RunRecord): Promise<void> {
    try {
      this.stmt(SQL.insertRun).run({ ...run });
    } catch (e) {
      if ((e as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
        throw new Error(`run ${run.runId} already exists`);
      }
      throw e;
    }
  }

  async getRun(runId: string): Promise<RunRecord | undefined> {
    const r = this.stmt(SQL.getRun).get(runId) as RunRow | undefined;
    if (!r) return undefined;
    return {
      runId: r.run_id,
      name: r.name,
      configJson: r.config_json,
      status: r.status as RunStatus,
      createdAt: r.created_at,
      updatedAt: r.updated_at,
    };
  }

  async setRunStatus(runId: string, status: RunStatus): Promise<void> {
    const { changes } = this.stmt(SQL.setRunStatus).run(status, Date.now(), runId);
    if (changes === 0) throw new Error(`setRunStatus: no run ${runId}`);
  }

  async deleteRun(runId: string): Promise<void> {
    this.flushWrites();
    this.deleteRunTx(runId);
    this.giveSpaceBack();
  }

  async listRuns(): Promise<RunInfo[]> {
    return (this.stmt(SQL.listRuns).all() as (RunListRow & Partial<LeaseRow>)[]).map((r) => {
      const info: RunInfo = {
        runId: r.run_id,
        name: r.name,
        status: r.status as RunStatus,
        createdAt: r.created_at,
        updatedAt: r.updated_at,
        rounds: r.rounds,
        updates: r.updates,
        bytes: r.bytes,
      };
      if (r.token != null) info.lease = toLease({ ...(r as LeaseRow) });
      return info;
    });
  }

  async getLease(runId: string): Promise<RunLease | undefined> {
    const r = this.stmt(SQL.getLease).get(runId) as LeaseRow | undefined;
    return r ? toLease(r) : undefined;
  }

  async acquireLease(lease: RunLease, replacing?: string): Promise<boolean> {
    const row = { runId: lease.runId, token: lease.token, pid: lease.pid, host: lease.host, acquiredAt: lease.acquiredAt, heartbeatAt: lease.heartbeatAt };
    const { changes } = replacing === undefined ? this.stmt(SQL.insertLease).run(row) : this.stmt(SQL.replaceLease).run({ ...row, replacing });
    return changes === 1;
  }

  async renewLease(runId: string, token: string, now: number): Promise<boolean> {
    return this.stmt(SQL.renewLease).run(now, runId, token).changes === 1;
  }

  async releaseLease(runId: string, token: string): Promise<void> {
    this.stmt(SQL.releaseLease).run(runId, token);
  }

  async deleteClientUpdates(runId: string, upToRound = Number.MAX_SAFE_INTEGER): Promise<number> {
    const { changes } = this.stmt('DELETE FROM client_updates WHERE run_id = ? AND round <= ?').run(runId, upToRound);
    if (changes > 0) this.giveSpaceBack();
    return changes;
  }

  /** Freed pages go back to the file system (auto_vacuum = INCREMENTAL), the WAL is truncated when no reader holds it. */
  private giveSpaceBack(): void {
    this.db.pragma('incremental_vacuum');
    this.db.pragma('wal_checkpoint(TRUNCATE)');
  }

  async putGlobalWeights(runId: string, round: number, weights: WeightVector): Promise<void> {
    this.stmt(SQL.putGlobal).run(runId, round, encodeWeights(weights));
  }

  async getGlobalWeights(runId: string, round: number): Promise<WeightVector | undefined> {
    const r = this.stmt(SQL.getGlobal).get(runId, round) as { blob: Uint8Array } | undefined;
    return r ? decodeWeights(r.blob) : undefined;
  }

  async latestGlobalRound(runId: string): Promise<number | undefined> {
    const r = this.stmt(SQL.latestGlobal).get(runId) as { r: number | null };
    return r.r ?? undefined;
  }

  async putClientUpdate(u: ClientUpdate): Promise<void> {
    const { weights, ...info } = u;
    return this.putEncodedClientUpdate({ ...info, blob: encodeWeights(weights) });
  }

  /** The blob goes into the row as it is (the store endpoint checked it). */
  async putEncodedClientUpdate(u: EncodedClientUpdate): Promise<void> {
    const row = {
      runId: u.runId,
      round: u.round,
      clientId: u.clientId,
      blob: u.blob,
      numSamples: u.numSamples,
      metricsJson: JSON.stringify(u.metrics),
      activationId: u.activationId ?? null,
      attempt: u.attempt ?? null,
    };
    return this.writeBatched(() => this.stmt(SQL.putUpdate).run(row));
  }

  async getClientUpdate(runId: string, round: number, clientId: number): Promise<ClientUpdate | undefined> {
    const r = this.stmt(SQL.getUpdate).get(runId, round, clientId) as UpdateRow | undefined;
    return r ? toUpdate(r) : undefined;
  }

  async getClientUpdates(runId: string, round: number, clientIds?: readonly number[]): Promise<ClientUpdate[]> {
    const rows = (
      clientIds === undefined
        ? this.stmt(SQL.getUpdates).all(runId, round)
        : this.stmt(SQL.getUpdatesFor).all(runId, round, JSON.stringify(clientIds))
    ) as UpdateRow[];
    return rows.map(toUpdate);
  }

  /**
   * One query per chunk of ids (update-stream.ts), each run to completion with all(): an open iterate() would hold
   * the connection busy across the consumer's awaits, and every other statement on it (the keeper serves other
   * requests meanwhile) would throw. A chunk is held as stored blobs and decoded one update at a time.
   */
  streamClientUpdates(runId: string, round: number, clientIds: readonly number[]): AsyncIterable<ClientUpdate> {
    return readInChunks(
      sortedUniqueIds(clientIds),
      (chunk) => this.stmt(SQL.getUpdatesFor).all(runId, round, JSON.stringify(chunk)) as UpdateRow[],
      (r) => r.blob.length,
      toUpdate,
    );
  }

  /** As streamClientUpdates, the stored blobs handed out as they are (no decoding). */
  streamEncodedClientUpdates(runId: string, round: number, clientIds: readonly number[]): AsyncIterable<EncodedClientUpdate> {
    return readInChunks(
      sortedUniqueIds(clientIds),
      (chunk) => this.stmt(SQL.getUpdatesFor).all(runId, round, JSON.stringify(chunk)) as UpdateRow[],
      (r) => r.blob.length,
      (r) => ({ ...toUpdateInfo(r), blob: r.blob }),
    );
  }

  async listClientUpdates(runId: string, round: number): Promise<ClientUpdateInfo[]> {
    return (this.stmt(SQL.listUpdates).all(runId, round) as UpdateInfoRow[]).map(toUpdateInfo);
  }

  async putPartition(runId: string, clientId: number, indices: Uint32Array): Promise<void> {
    this.stmt(SQL.putPartition).run(runId, clientId, uint32ToBytes(indices));
  }

  async getPartition(runId: string, clientId: number): Promise<Uint32Array | undefined> {
    const r = this.stmt(SQL.getPartition).get(runId, clientId) as { indices: Uint8Array } | undefined;
    return r ? bytesToUint32(r.indices) : undefined;
  }

  async partitionSizes(runId: string, clientIds: readonly number[]): Promise<Map<number, number>> {
    const rows = this.stmt(SQL.partitionSizes).all(runId, JSON.stringify(sortedUniqueIds(clientIds))) as { client_id: number; n: number }[];
    return new Map(rows.map((r) => [r.client_id, r.n]));
  }

  async countPartitions(runId: string): Promise<number> {
    return (this.stmt(SQL.countPartitions).get(runId) as { n: number }).n;
  }

  async putActivation(a: ActivationRecord): Promise<void> {
    const row = {
      activationId: a.activationId,
      runId: a.runId,
      round: a.round,
      clientId: a.clientId,
      functionName: a.functionName,
      platform: a.platform,
      cluster: a.cluster,
      attempt: a.attempt,
      startTime: a.startTime,
      endTime: a.endTime,
      status: a.status,
      coldStart: a.coldStart ? 1 : 0,
      error: a.error ?? null,
    };
    return this.writeBatched(() => this.stmt(SQL.putActivation).run(row));
  }

  async listActivations(runId: string, round?: number): Promise<ActivationRecord[]> {
    const rows = (
      round === undefined
        ? this.stmt(SQL.listActivations).all(runId)
        : this.stmt(SQL.listActivationsRound).all(runId, round)
    ) as ActivationRow[];
    return rows.map(toActivation);
  }

  async close(): Promise<void> {
    if (!this.db.open) return;
    this.flushWrites();
    this.stmts.clear();
    this.db.close();
  }

  /** Prepared statements, prepared on first use and cached for the connection's lifetime. */
  private stmt(sql: string): Database.Statement {
    if (this.pending.length > 0 && !this.flushing) this.flushWrites();
    let s = this.stmts.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.stmts.set(sql, s);
    }
    return s;
  }
}

function toLease(r: LeaseRow): RunLease {
  return { runId: r.run_id, token: r.token, pid: r.pid, host: r.host, acquiredAt: r.acquired_at, heartbeatAt: r.heartbeat_at };
}

function toUpdateInfo(r: UpdateInfoRow): ClientUpdateInfo {
  const info: ClientUpdateInfo = {
    runId: r.run_id,
    round: r.round,
    clientId: r.client_id,
    numSamples: r.num_samples,
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
    startTime: r.start_time,
    endTime: r.end_time,
    status: r.status as ActivationStatus,
    coldStart: r.cold_start !== 0,
  };
  if (r.error !== null) a.error = r.error;
  return a;
}

/** Opens a SqliteStore (async for symmetry with stores that connect over the network). */
export async function openSqliteStore(file: string): Promise<SqliteStore> {
  return new SqliteStore(file);
}
