/**
 * PostgreSQL schema of PostgresStore and its migrations. Many processes (the keeper and up to hundreds of function
 * processes) may open a fresh database at the same moment, so migrating is safe to race: it runs in one transaction
 * that first takes a transaction-level advisory lock, then re-reads the schema version under that lock; the losers
 * of the race find the schema already up to date. A process that finds the version current does not lock at all.
 */
import type { PoolClient } from 'pg';

/**
 * Migrations, in order. Migration i brings the schema from version i to version i + 1 (table schema_version).
 * Append only: never edit a migration that has shipped. Same tables and columns as sqlite-schema.ts; times are
 * epoch ms (bigint), blobs are bytea.
 */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE runs (
    run_id      text   PRIMARY KEY,
    name        text   NOT NULL,
    config_json text   NOT NULL,
    status      text   NOT NULL,
    created_at  bigint NOT NULL,
    updated_at  bigint NOT NULL
  );

  CREATE TABLE global_weights (
    run_id text    NOT NULL,
    round  integer NOT NULL,
    blob   bytea   NOT NULL,
    PRIMARY KEY (run_id, round)
  );

  CREATE TABLE client_updates (
    run_id        text    NOT NULL,
    round         integer NOT NULL,
    client_id     integer NOT NULL,
    blob          bytea   NOT NULL,
    num_samples   bigint  NOT NULL,
    metrics_json  text    NOT NULL,
    activation_id text,
    attempt       integer,
    PRIMARY KEY (run_id, round, client_id)
  );

  CREATE TABLE partitions (
    run_id    text    NOT NULL,
    client_id integer NOT NULL,
    indices   bytea   NOT NULL,
    PRIMARY KEY (run_id, client_id)
  );

  CREATE TABLE activations (
    activation_id text    PRIMARY KEY,
    run_id        text    NOT NULL,
    round         integer NOT NULL,
    client_id     integer NOT NULL,
    function_name text    NOT NULL,
    platform      text    NOT NULL,
    cluster       text    NOT NULL,
    attempt       integer NOT NULL,
    start_time    bigint  NOT NULL,
    end_time      bigint,
    status        text    NOT NULL,
    cold_start    boolean NOT NULL,
    error         text
  );

  CREATE INDEX activations_run_round ON activations (run_id, round);
  `,
  // 1 → 2: the lease that makes one keeper the only one driving a run (keeper/lease.ts).
  `
  CREATE TABLE run_leases (
    run_id       text    PRIMARY KEY,
    token        text    NOT NULL,
    pid          integer NOT NULL,
    host         text    NOT NULL,
    acquired_at  bigint  NOT NULL,
    heartbeat_at bigint  NOT NULL
  );
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** Key of the advisory lock that serialises migrations ("FKSCHEMA" as ASCII, a bigint). */
export const MIGRATION_LOCK_KEY = '5065233754348670273';

export class SchemaVersionError extends Error {
  override name = 'SchemaVersionError';
  readonly exitCode = 2;
}

/** The schema version recorded in the database; 0 when the schema_version table does not exist yet. */
async function readVersion(c: PoolClient): Promise<number> {
  const t = await c.query<{ t: string | null }>(`SELECT to_regclass('schema_version')::text AS t`);
  if (t.rows[0]?.t == null) return 0;
  const v = await c.query<{ version: number }>('SELECT version FROM schema_version');
  return v.rows[0]?.version ?? 0;
}

/** Brings the database's schema up to SCHEMA_VERSION; `where` names the store (password redacted) in errors. */
export async function migrate(c: PoolClient, where: string): Promise<void> {
  const tooNew = (v: number) =>
    new SchemaVersionError(
      `PostgreSQL store ${where}: schema version ${v} is newer than this FedKeeper (${SCHEMA_VERSION}); upgrade FedKeeper or use another database`,
    );
  const seen = await readVersion(c);
  if (seen === SCHEMA_VERSION) return;
  if (seen > SCHEMA_VERSION) throw tooNew(seen);

  await c.query('BEGIN');
  try {
    await c.query('SELECT pg_advisory_xact_lock($1::bigint)', [MIGRATION_LOCK_KEY]);
    await c.query(`CREATE TABLE IF NOT EXISTS schema_version (
                     one     boolean PRIMARY KEY DEFAULT true CHECK (one),
                     version integer NOT NULL
                   )`);
    await c.query('INSERT INTO schema_version (version) VALUES (0) ON CONFLICT (one) DO NOTHING');
    const current = (await c.query<{ version: number }>('SELECT version FROM schema_version')).rows[0]!.version;
    if (current > SCHEMA_VERSION) throw tooNew(current);
    for (let v = current; v < SCHEMA_VERSION; v++) await c.query(MIGRATIONS[v]!);
    if (current !== SCHEMA_VERSION) await c.query('UPDATE schema_version SET version = $1', [SCHEMA_VERSION]);
    await c.query('COMMIT');
  } catch (e) {
    await c.query('ROLLBACK').catch(() => {});
    throw e;
  }
}
