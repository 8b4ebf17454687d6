/**
 * PostgresStore when the server does not answer or refuses: StoreUnreachableError (exit code 2, one line, the URL
 * with its password redacted), retries of too_many_connections, and a URL that is not a PostgreSQL URL. The cases
 * that need a real server (a missing database, a connection limit) use the local one and are skipped without it.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { StoreUnreachableError, StoreUrlError } from '../../src/store/errors.js';
import { openStore } from '../../src/store/index.js';
import { PostgresStore, openPostgresStore } from '../../src/store/postgres-store.js';
import { startTestServerDatabase, type TestPostgres } from '../fixtures/postgres.js';

/** A fresh database on the local server, or undefined (no server, or FEDKEEPER_TEST_PGLITE=1). */
let db: TestPostgres | undefined;
before(async () => {
  db = await startTestServerDatabase();
});
after(async () => {
  await db?.close();
});

async function raw<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client(url);
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

describe('PostgresStore: a server that does not answer or refuses', () => {
  /** A port on which nothing listens (just released by us). */
  async function deadPort(): Promise<number> {
    const s = net.createServer();
    await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', () => resolve()));
    const { port } = s.address() as net.AddressInfo;
    await new Promise<void>((resolve) => s.close(() => resolve()));
    return port;
  }

  function assertUnreachable(e: unknown, shownUrl: string, ...secrets: string[]): true {
    assert.ok(e instanceof StoreUnreachableError, `expected StoreUnreachableError, got ${String(e)}`);
    assert.equal(e.exitCode, 2);
    assert.equal(e.name, 'StoreUnreachableError');
    assert.equal(e.message.includes('\n'), false, 'one line');
    assert.ok(e.message.includes(shownUrl), `message names ${shownUrl}: ${e.message}`);
    assert.equal(e.url, shownUrl);
    for (const s of secrets) {
      assert.equal(e.message.includes(s), false, `password in message: ${e.message}`);
      assert.equal(JSON.stringify(e).includes(s), false, 'password in the error object');
      assert.equal(String(e.stack).includes(s), false, 'password in the stack');
    }
    return true;
  }

  it('nothing listens on the port: StoreUnreachableError, exit code 2, password redacted', async () => {
    const port = await deadPort();
    const t0 = Date.now();
    await Promise.all([
      assert.rejects(openPostgresStore(`postgres://fk:s3cr3t-pw@127.0.0.1:${port}/fl`), (e) => {
        assertUnreachable(e, `postgres://fk:***@127.0.0.1:${port}/fl`, 's3cr3t-pw');
        assert.match((e as Error).message, /ECONNREFUSED/);
        assert.match((e as Error).message, /start PostgreSQL|store\.url/);
        return true;
      }),
      assert.rejects(openStore({ type: 'postgres', url: `postgresql://fk@127.0.0.1:${port}/fl?password=s3cr3t-pw&sslmode=disable` }), (e) =>
        assertUnreachable(e, `postgresql://fk@127.0.0.1:${port}/fl?password=***&sslmode=disable`, 's3cr3t-pw'),
      ),
    ]);
    // a few retries with backoff, not an endless wait
    assert.ok(Date.now() - t0 < 5_000, `took ${Date.now() - t0} ms`);
  });

  it('a database that does not exist: StoreUnreachableError saying so', async (t) => {
    if (!db) return t.skip('needs the local PostgreSQL server (PGlite serves one database whatever the URL names)');
    const url = new URL(db.url);
    url.pathname = '/fk_no_such_database';
    url.password = 'n0t-a-real-pw';
    const shown = db.url.replace(/@/, ':***@').replace(/\/[^/]+$/, '/fk_no_such_database');
    await assert.rejects(openPostgresStore(url.toString()), (e) => {
      assertUnreachable(e, shown, 'n0t-a-real-pw');
      assert.match((e as Error).message, /does not exist/);
      assert.match((e as Error).message, /createdb/);
      return true;
    });
  });

  it('too_many_connections (53300) is retried with backoff until a connection frees up, then reported', async (t) => {
    if (!db) return t.skip('needs the local PostgreSQL server (PGlite has no connection limits)');
    // A role allowed one connection: its second connection is refused with SQLSTATE 53300.
    const role = `fk_limited_${randomUUID().slice(0, 8)}`;
    // The schema is created by its owner; a role with only table privileges then uses it (no migration needed).
    await (await openPostgresStore(db.url)).close();
    try {
      await raw(db.url, async (c) => {
        await c.query(`CREATE ROLE ${role} LOGIN CONNECTION LIMIT 1`);
        await c.query(`GRANT ALL ON ALL TABLES IN SCHEMA public TO ${role}`);
      });
    } catch (e) {
      return t.skip(`cannot create a role here: ${(e as Error).message}`);
    }
    const url = new URL(db.url);
    url.username = role;
    url.password = 'l1mited-pw';
    try {
      // A holds its connection 300 ms after its last query; B, opened meanwhile, is refused and retries.
      const a = await openPostgresStore(url.toString(), { max: 1, idleTimeoutMillis: 300 });
      const t0 = Date.now();
      const b = await openPostgresStore(url.toString(), { max: 1, idleTimeoutMillis: 300 });
      assert.ok(Date.now() - t0 >= 200, `B connected after ${Date.now() - t0} ms, before A let go: was it refused?`);
      await b.putPartition('limited', 0, new Uint32Array([1]));
      assert.equal(await a.countPartitions('limited'), 1);
      await Promise.all([a.close(), b.close()]);
      // A holds on (10 s idle): B gives up after its retries, saying what is wrong.
      const holder = await openPostgresStore(url.toString(), { max: 1, idleTimeoutMillis: 10_000 });
      await assert.rejects(openPostgresStore(url.toString(), { attempts: 3 }), (e) => {
        assertUnreachable(e, `postgres://${role}:***@${url.host}${url.pathname}`, 'l1mited-pw');
        assert.match((e as Error).message, /too many connections/);
        assert.match((e as Error).message, /max_connections/);
        return true;
      });
      await holder.close();
    } finally {
      await raw(db.url, async (c) => {
        await c.query(`DROP OWNED BY ${role}`);
        await c.query(`DROP ROLE ${role}`);
      });
    }
  });

  it('a URL that is not a postgres URL: StoreUrlError without the password', () => {
    assert.throws(() => new PostgresStore('mysql://fk:s3cr3t-pw@db/fl'), (e: unknown) => {
      assert.ok(e instanceof StoreUrlError);
      assert.equal(e.exitCode, 2);
      assert.match(e.message, /mysql:\/\/fk:\*\*\*@db\/fl/);
      assert.equal(e.message.includes('s3cr3t'), false);
      return true;
    });
  });
});
