/**
 * SQLite connection setup and schema migrations for SqliteStore. Several processes (the keeper and the containers
 * running the functions) open the same file concurrently, so opening is safe to race: WAL mode, a busy timeout, and
 * migrations applied inside an IMMEDIATE transaction that re-reads the schema version after taking the write lock.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';

/** How long a statement waits for another process's write lock before failing with SQLITE_BUSY. */
export const BUSY_TIMEOUT_MS = 10_000;

/**
 * Migrations, in order. Migration i brings the schema from version i to version i + 1 (PRAGMA user_version).
 * Append only: never edit a migration that has shipped.
 */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE runs (
    run_id      TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    config_json TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE global_weights (
    run_id TEXT    NOT NULL,
    round  INTEGER NOT NULL,
    blob   BLOB    NOT NULL,
    PRIMARY KEY (run_id, round)
  ) STRICT;

  CREATE TABLE client_updates (
    run_id        TEXT    NOT NULL,
    round         INTEGER NOT NULL,
    client_id     INTEGER NOT NULL,
    blob          BLOB    NOT NULL,
    num_samples   INTEGER NOT NULL,
    metrics_json  TEXT    NOT NULL,
    activation_id TEXT,
    attempt       INTEGER,
    PRIMARY KEY (run_id, round, client_id)
  ) STRICT;

  CREATE TABLE partitions (
    run_id    TEXT    NOT NULL,
    client_id INTEGER NOT NULL,
    indices   BLOB    NOT NULL,
    PRIMARY KEY (run_id, client_id)
  ) STRICT;

  CREATE TABLE activations (
    activation_id TEXT    PRIMARY KEY,
    run_id        TEXT    NOT NULL,
    round         INTEGER NOT NULL,
    client_id     INTEGER NOT NULL,
    function_name TEXT    NOT NULL,
    platform      TEXT    NOT NULL,
    cluster       TEXT    NOT NULL,
    attempt       INTEGER NOT NULL,
    start_time    INTEGER NOT NULL,
    end_time      INTEGER,
    status        TEXT    NOT NULL,
    cold_start    INTEGER NOT NULL,
    error         TEXT
  ) STRICT;

  CREATE INDEX activations_run_round ON activations (run_id, round);
  `,
  // 1 → 2: the lease that makes one keeper the only one driving a run (keeper/lease.ts).
  `
  CREATE TABLE run_leases (
    run_id       TEXT    PRIMARY KEY,
    token        TEXT    NOT NULL,
    pid          INTEGER NOT NULL,
    host         TEXT    NOT NULL,
    acquired_at  INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
  ) STRICT;
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** Opens (creating if needed) and configures a database file, and brings its schema up to date. */
export function openDatabase(file: string): Database.Database {
  const inMemory = file === ':memory:' || file === '';
  if (!inMemory) fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const db = new Database(file);
  try {
    // busy_timeout first, so everything after it waits for other processes' locks instead of failing.
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    if (!inMemory) {
      // Switching to WAL needs an exclusive lock; the first opener of a fresh file may race others for it.
      const mode = retryBusy(() => db.pragma('journal_mode = WAL', { simple: true }));
      if (String(mode).toLowerCase() !== 'wal') throw new Error(`SQLite store ${file}: could not enable WAL (got ${mode})`);
    }
    // NORMAL is safe from corruption in WAL mode; only the last commits may be lost on power loss.
    db.pragma('synchronous = NORMAL');
    if (!inMemory) incrementalVacuum(db);
    migrate(db, file);
    return db;
  } catch (e) {
    db.close();
    throw e;
  }
}

/**
 * Deleted client updates must give their space back to the file system: auto_vacuum = INCREMENTAL, so that
 * `PRAGMA incremental_vacuum` releases free pages. A new file gets it before its first table; a store made before
 * is converted once with a VACUUM.
 */
function incrementalVacuum(db: Database.Database): void {
  const INCREMENTAL = 2;
  if (Number(db.pragma('auto_vacuum', { simple: true })) === INCREMENTAL) return;
  const { n } = db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table'").get() as { n: number };
  const hasTables = n > 0;
  db.pragma(`auto_vacuum = ${INCREMENTAL}`);
  if (hasTables) retryBusy(() => db.exec('VACUUM'));
}

function migrate(db: Database.Database, file: string): void {
  const version = () => Number(db.pragma('user_version', { simple: true }));
  if (version() === SCHEMA_VERSION) return;
  // IMMEDIATE takes the write lock up front; the version is re-read under it, so racing openers migrate once.
  const run = db.transaction(() => {
    const current = version();
    if (current > SCHEMA_VERSION) {
      throw new Error(`SQLite store ${file}: schema version ${current} is newer than this FedKeeper (${SCHEMA_VERSION})`);
    }
    for (let v = current; v < SCHEMA_VERSION; v++) db.exec(MIGRATIONS[v]!);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  });
  retryBusy(() => run.immediate());
}

/**
 * Retries fn while SQLite reports a busy/locked database, up to BUSY_TIMEOUT_MS. Only for the few operations the
 * busy handler does not cover (a journal-mode switch); ordinary statements rely on busy_timeout.
 */
function retryBusy<T>(fn: () => T): T {
  const deadline = Date.now() + BUSY_TIMEOUT_MS;
  for (let delay = 5; ; delay = Math.min(delay * 2, 200)) {
    try {
      return fn();
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      const busy = typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
      if (!busy || Date.now() + delay > deadline) throw e;
      sleepSync(delay);
    }
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
