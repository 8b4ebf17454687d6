/**
 * PostgresStore against a real PostgreSQL engine (test/fixtures/postgres.ts: the local server, or PGlite with
 * FEDKEEPER_TEST_PGLITE=1 or when no server answers): the behaviours test/unit/store-sqlite.test.ts checks, plus
 * stores racing each other (as function processes do) and the schema migration racing. A server that does not
 * answer or refuses: store-postgres-errors.test.ts.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { encodeWeights } from '../../src/fl/codec.js';
import type { WeightVector } from '../../src/fl/weights.js';
import { openStore, SUPPORTED_STORE_TYPES } from '../../src/store/index.js';
import { FUNCTION_POOL, PostgresStore, openPostgresStore, type PostgresStoreOptions } from '../../src/store/postgres-store.js';
import { SCHEMA_VERSION } from '../../src/store/postgres-schema.js';
import type { ActivationRecord, ClientUpdate, RunRecord } from '../../src/store/types.js';
import { startTestPostgres, type TestPostgres } from '../fixtures/postgres.js';

function bits(a: Float32Array): number[] {
  return Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
}

function weights(seed: number): WeightVector {
  return { shapes: [[2, 3], []], data: new Float32Array([seed, seed + 0.5, -seed, 0, 1, 2, 3]) };
}

function run(runId: string, over: Partial<RunRecord> = {}): RunRecord {
  return { runId, name: `name-${runId}`, configJson: '{"rounds":3}', status: 'created', createdAt: 1000, updatedAt: 1000, ...over };
}

function update(runId: string, round: number, clientId: number, seed = clientId): ClientUpdate {
  return { runId, round, clientId, weights: weights(seed), numSamples: 100 + clientId, metrics: { loss: seed / 10, accuracy: 0.5 } };
}

function activation(id: string, runId: string, over: Partial<ActivationRecord> = {}): ActivationRecord {
  return {
    activationId: id,
    runId,
    round: 1,
    clientId: 0,
    functionName: 'fl-client',
    platform: 'openwhisk',
    cluster: 'local',
    attempt: 1,
    startTime: 5000,
    endTime: null,
    status: 'running',
    coldStart: true,
    ...over,
  };
}

/** Run ids of one test, unique in the shared database. */
function ids() {
  const u = randomUUID().slice(0, 8);
  return { r1: `r1-${u}`, r2: `r2-${u}`, other: `other-${u}` };
}

let db: TestPostgres;
const opts = (extra: PostgresStoreOptions = {}): PostgresStoreOptions => ({ ...extra, ...db.storeOptions });
const open = (extra?: PostgresStoreOptions) => openPostgresStore(db.url, opts(extra));

/** Runs `fn` on a plain pg.Client of the test database. */
async function raw<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client(db.url);
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

before(async () => {
  db = await startTestPostgres();
  console.log(`# PostgreSQL engine: ${db.engine}`);
});
after(async () => {
  await db?.close();
});

describe('PostgresStore schema', () => {
  it('several stores opened at once on a fresh database race the migration: all open, one schema', async () => {
    // First test of the file: the database is still empty, so every opener finds no schema and migrates.
    const stores = await Promise.all(Array.from({ length: 6 }, () => open(FUNCTION_POOL)));
    try {
      assert.ok(stores.every((s) => s.kind === 'postgres'));
      await Promise.all(stores.map((s, i) => s.putGlobalWeights(`race-${i}`, 0, weights(i))));
      for (const [i, s] of stores.entries()) assert.equal(await s.latestGlobalRound(`race-${(i + 1) % 6}`), 0);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
    await raw(async (c) => {
      assert.deepEqual((await c.query('SELECT version FROM schema_version')).rows, [{ version: SCHEMA_VERSION }]);
      const tables = await c.query(
        `SELECT table_name AS t FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1`,
      );
      assert.deepEqual(tables.rows.map((r) => r.t), ['activations', 'client_updates', 'global_weights', 'partitions', 'run_leases', 'runs', 'schema_version']);
    });
  });

  it('stores weights, updates and partitions as bytea holding the codec bytes', async () => {
    const { r1 } = ids();
    const store = await open();
    const w = weights(3);
    await store.putGlobalWeights(r1, 0, w);
    await store.putClientUpdate(update(r1, 1, 4));
    await store.putPartition(r1, 4, new Uint32Array([1, 2, 0xffffffff]));
    await store.close();
    await raw(async (c) => {
      const types = await c.query(
        `SELECT table_name || '.' || column_name AS col, data_type AS t FROM information_schema.columns
          WHERE column_name IN ('blob', 'indices') AND table_schema = current_schema() ORDER BY 1`,
      );
      assert.deepEqual(types.rows, [
        { col: 'client_updates.blob', t: 'bytea' },
        { col: 'global_weights.blob', t: 'bytea' },
        { col: 'partitions.indices', t: 'bytea' },
      ]);
      const blob = (await c.query('SELECT blob FROM global_weights WHERE run_id = $1', [r1])).rows[0].blob as Buffer;
      assert.deepEqual(new Uint8Array(blob), encodeWeights(w));
      const idx = (await c.query('SELECT indices FROM partitions WHERE run_id = $1', [r1])).rows[0].indices as Buffer;
      assert.deepEqual([...idx], [1, 0, 0, 0, 2, 0, 0, 0, 255, 255, 255, 255]);
    });
  });
});

describe('PostgresStore', () => {
  let store: PostgresStore;
  before(async () => {
    store = await open();
  });
  after(async () => {
    await store.close();
  });

  it('creates, reads and updates runs', async () => {
    const { r1 } = ids();
    assert.equal(store.kind, 'postgres');
    assert.equal(await store.getRun(r1), undefined);
    await store.createRun(run(r1));
    assert.deepEqual(await store.getRun(r1), run(r1));
    await assert.rejects(store.createRun(run(r1)), new RegExp(`run ${r1} already exists`));
    const t0 = Date.now();
    await store.setRunStatus(r1, 'running');
    const r = await store.getRun(r1);
    assert.equal(r?.status, 'running');
    assert.equal(r?.createdAt, 1000);
    assert.ok(r!.updatedAt >= t0);
    await assert.rejects(store.setRunStatus('nope', 'failed'), /no run nope/);
  });

  it('roundtrips global weights bit-exact and tracks the latest round', async () => {
    const { r1, other } = ids();
    assert.equal(await store.latestGlobalRound(r1), undefined);
    const w = weights(1);
    const u = new Uint32Array(w.data.buffer);
    u[3] = 0x80000000; // -0
    u[4] = 0x7fc0abcd; // NaN with payload
    await store.putGlobalWeights(r1, 0, w);
    await store.putGlobalWeights(r1, 2, weights(2));
    await store.putGlobalWeights(r1, 1, weights(9));
    await store.putGlobalWeights(r1, 1, weights(1)); // replaces
    await store.putGlobalWeights(other, 7, weights(7));
    const back = await store.getGlobalWeights(r1, 0);
    assert.deepEqual(back?.shapes, w.shapes);
    assert.deepEqual(bits(back!.data), bits(w.data));
    assert.deepEqual(bits((await store.getGlobalWeights(r1, 1))!.data), bits(weights(1).data));
    assert.equal(await store.getGlobalWeights(r1, 5), undefined);
    assert.equal(await store.latestGlobalRound(r1), 2);
    assert.equal(await store.latestGlobalRound(other), 7);
  });

  it('roundtrips the paper CNN\'s 2.3 MB of weights bit-exact', async () => {
    const { r1 } = ids();
    const data = new Float32Array(582_026);
    for (let i = 0; i < data.length; i++) data[i] = Math.sin(i) * 1e-3 * (i % 7);
    const w: WeightVector = { shapes: [[data.length]], data };
    await store.putGlobalWeights(r1, 0, w);
    const back = await store.getGlobalWeights(r1, 0);
    assert.deepEqual(back!.shapes, w.shapes);
    assert.ok(Buffer.from(back!.data.buffer).equals(Buffer.from(data.buffer)));
  });

  it('a repeated client update replaces and never doubles', async () => {
    const { r1 } = ids();
    await store.putClientUpdate({ ...update(r1, 1, 3, 1), activationId: 'a1', attempt: 1 });
    await store.putClientUpdate({ ...update(r1, 1, 3, 2), numSamples: 77, metrics: { loss: 0.25 } });
    const all = await store.getClientUpdates(r1, 1);
    assert.equal(all.length, 1);
    const u = all[0]!;
    assert.deepEqual(bits(u.weights.data), bits(weights(2).data));
    assert.equal(u.numSamples, 77);
    assert.deepEqual(u.metrics, { loss: 0.25 });
    assert.equal(u.activationId, undefined);
    assert.equal(u.attempt, undefined);
    assert.deepEqual(await store.getClientUpdate(r1, 1, 3), u);
    assert.equal(await store.getClientUpdate(r1, 1, 4), undefined);
  });

  it('a late write of an older attempt never replaces a newer update; a write without attempt always does', async () => {
    const { r1 } = ids();
    const w = (v: number) => ({ shapes: [[1]], data: Float32Array.of(v) });
    const put = (attempt: number | undefined, v: number) =>
      store.putClientUpdate({ runId: r1, round: 1, clientId: 4, weights: w(v), numSamples: 3, metrics: {}, ...(attempt === undefined ? {} : { attempt }) });
    const now = async () => (await store.getClientUpdate(r1, 1, 4))!;
    await put(2, 2);
    await put(1, 1); // the superseded attempt answers late
    assert.equal((await now()).attempt, 2);
    assert.equal((await now()).weights.data[0], 2);
    await put(2, 2.5); // the same attempt again replaces
    assert.equal((await now()).weights.data[0], 2.5);
    await put(3, 3);
    assert.equal((await now()).weights.data[0], 3);
    await put(undefined, 9); // as in SqliteStore: no attempt on either side → replace
    assert.equal((await now()).attempt, undefined);
    await put(1, 1);
    assert.equal((await now()).attempt, 1);
    assert.equal((await store.listClientUpdates(r1, 1)).length, 1);
  });

  it('returns client updates sorted by client id, optionally filtered', async () => {
    const { r1, r2 } = ids();
    for (const c of [7, 2, 10, 0, 5]) await store.putClientUpdate({ ...update(r1, 1, c), activationId: `a${c}`, attempt: 2 });
    await store.putClientUpdate(update(r1, 2, 1));
    await store.putClientUpdate(update(r2, 1, 1));
    const all = await store.getClientUpdates(r1, 1);
    assert.deepEqual(all.map((u) => u.clientId), [0, 2, 5, 7, 10]);
    for (const u of all) {
      assert.deepEqual(bits(u.weights.data), bits(weights(u.clientId).data));
      assert.equal(u.numSamples, 100 + u.clientId);
      assert.equal(u.activationId, `a${u.clientId}`);
      assert.equal(u.attempt, 2);
      assert.equal(u.runId, r1);
      assert.equal(u.round, 1);
    }
    const some = await store.getClientUpdates(r1, 1, [10, 2, 3, 2]);
    assert.deepEqual(some.map((u) => u.clientId), [2, 10]);
    assert.deepEqual(await store.getClientUpdates(r1, 1, []), []);
    const infos = await store.listClientUpdates(r1, 1);
    assert.deepEqual(infos.map((i) => i.clientId), [0, 2, 5, 7, 10]);
    assert.ok(infos.every((i) => !('weights' in i)));
    assert.deepEqual(infos[1], { runId: r1, round: 1, clientId: 2, numSamples: 102, metrics: { loss: 0.2, accuracy: 0.5 }, activationId: 'a2', attempt: 2 });
  });

  it('roundtrips partitions', async () => {
    const { r1, r2 } = ids();
    const idx = new Uint32Array([0, 5, 4294967295, 123456789, 42]);
    await store.putPartition(r1, 0, idx);
    await store.putPartition(r1, 1, new Uint32Array(0));
    await store.putPartition(r1, 2, new Uint32Array([9]));
    await store.putPartition(r1, 2, new Uint32Array([1, 2])); // replaces
    await store.putPartition(r2, 0, new Uint32Array([3]));
    const back = await store.getPartition(r1, 0);
    assert.ok(back instanceof Uint32Array);
    assert.deepEqual(Array.from(back), Array.from(idx));
    assert.equal((await store.getPartition(r1, 1))?.length, 0);
    assert.deepEqual(Array.from((await store.getPartition(r1, 2))!), [1, 2]);
    assert.equal(await store.getPartition(r1, 3), undefined);
    assert.equal(await store.countPartitions(r1), 3);
    assert.equal(await store.countPartitions('none'), 0);
    // A subarray view at an offset stores only its own elements.
    await store.putPartition(r1, 4, idx.subarray(1, 3));
    assert.deepEqual(Array.from((await store.getPartition(r1, 4))!), [5, 4294967295]);
  });

  it('upserts activations by id and lists them per round', async () => {
    const { r1, r2 } = ids();
    const a = (id: string, over: Partial<ActivationRecord> = {}) => activation(`${id}-${r1}`, r1, over);
    await store.putActivation(a('a1', { startTime: 300 }));
    await store.putActivation(a('a2', { clientId: 1, startTime: 100 }));
    await store.putActivation(a('a0', { round: 0, clientId: -1, functionName: 'fl-init', startTime: 50 }));
    await store.putActivation(a('Zz', { clientId: 2, startTime: 300 })); // same start as a1: byte order puts Z before a
    await store.putActivation(activation(`x-${r1}`, r2));
    const done = a('a1', { startTime: 300, endTime: 900, status: 'application error', coldStart: false, error: 'boom' });
    await store.putActivation(done);
    assert.deepEqual(await store.listActivations(r1, 1), [a('a2', { clientId: 1, startTime: 100 }), a('Zz', { clientId: 2, startTime: 300 }), done]);
    assert.deepEqual((await store.listActivations(r1)).map((x) => x.activationId.split('-')[0]), ['a0', 'a2', 'Zz', 'a1']);
    const init = (await store.listActivations(r1, 0))[0]!;
    assert.equal(init.clientId, -1);
    assert.equal(init.coldStart, true);
    assert.equal(init.endTime, null);
    assert.ok(!('error' in init));
    assert.deepEqual(await store.listActivations(r1, 5), []);
    // epoch ms beyond 32 bits survive
    await store.putActivation(a('big', { startTime: 1_750_000_000_123, endTime: 1_750_000_000_456 }));
    const big = (await store.listActivations(r1)).find((x) => x.activationId.startsWith('big'))!;
    assert.equal(big.startTime, 1_750_000_000_123);
    assert.equal(big.endTime, 1_750_000_000_456);
  });

  it('deleteRun removes everything of that run only', async () => {
    const { r1, r2 } = ids();
    for (const id of [r1, r2]) {
      await store.createRun(run(id));
      await store.putGlobalWeights(id, 0, weights(0));
      await store.putClientUpdate(update(id, 1, 0));
      await store.putPartition(id, 0, new Uint32Array([1]));
      await store.putActivation(activation(`act-${id}`, id));
    }
    await store.deleteRun(r1);
    assert.equal(await store.getRun(r1), undefined);
    assert.equal(await store.latestGlobalRound(r1), undefined);
    assert.deepEqual(await store.getClientUpdates(r1, 1), []);
    assert.equal(await store.countPartitions(r1), 0);
    assert.deepEqual(await store.listActivations(r1), []);
    assert.ok(await store.getRun(r2));
    assert.equal(await store.latestGlobalRound(r2), 0);
    assert.equal((await store.getClientUpdates(r2, 1)).length, 1);
    assert.equal(await store.countPartitions(r2), 1);
    assert.equal((await store.listActivations(r2)).length, 1);
    await store.deleteRun('never-existed');
  });

  it('openStore opens {type: postgres, url}; rejects after close; close is idempotent', async () => {
    assert.ok((SUPPORTED_STORE_TYPES as readonly string[]).includes('postgres'));
    const s = await openStore({ type: 'postgres', url: db.url }, db.storeOptions);
    assert.equal(s.kind, 'postgres');
    const { r1 } = ids();
    await s.putPartition(r1, 0, new Uint32Array([7]));
    assert.deepEqual(Array.from((await store.getPartition(r1, 0))!), [7]);
    await s.close();
    await s.close();
    await assert.rejects(s.getRun(r1), /closed/);
  });
});

describe('PostgresStore (concurrent stores, as function processes)', () => {
  const bigWeights = (clientId: number, v: number): WeightVector => {
    const data = new Float32Array(20_000).fill(v);
    data[19_999] = clientId;
    return { shapes: [[20_000]], data };
  };

  it('two stores writing 25 updates each of one round at the same time: 50 rows, sorted', async () => {
    const { r1 } = ids();
    const [a, b] = await Promise.all([open(FUNCTION_POOL), open(FUNCTION_POOL)]);
    const write = (s: PostgresStore, first: number) =>
      Promise.all(
        Array.from({ length: 25 }, (_, i) =>
          s.putClientUpdate({ runId: r1, round: 1, clientId: first + i, weights: bigWeights(first + i, 1), numSamples: 10 + first + i, metrics: { loss: i } }),
        ),
      );
    await Promise.all([write(a, 0), write(b, 25)]);
    await Promise.all([a.close(), b.close()]);
    const keeper = await open();
    const all = await keeper.getClientUpdates(r1, 1);
    await keeper.close();
    assert.deepEqual(all.map((u) => u.clientId), Array.from({ length: 50 }, (_, i) => i));
    for (const u of all) {
      assert.equal(u.weights.data.length, 20_000);
      assert.equal(u.weights.data[19_999], u.clientId);
      assert.equal(u.numSamples, 10 + u.clientId);
    }
  });

  it('two stores writing the same 20 clients at once with attempts 1 and 2: 20 rows, attempt 2 wins', async () => {
    const { r1 } = ids();
    const [a, b] = await Promise.all([open(FUNCTION_POOL), open(FUNCTION_POOL)]);
    const write = (s: PostgresStore, attempt: number) =>
      Promise.all(
        Array.from({ length: 20 }, (_, c) =>
          s.putClientUpdate({ runId: r1, round: 2, clientId: c, weights: bigWeights(c, attempt), numSamples: attempt, metrics: {}, attempt, activationId: `act-${c}-${attempt}` }),
        ),
      );
    // Both orders of arrival happen: the older attempt first for some clients, last for others.
    await Promise.all([write(b, 2), write(a, 1)]);
    await write(a, 1); // and a late retry of the superseded attempt for every client
    await Promise.all([a.close(), b.close()]);
    const keeper = await open();
    const infos = await keeper.listClientUpdates(r1, 2);
    const all = await keeper.getClientUpdates(r1, 2);
    await keeper.close();
    assert.equal(infos.length, 20);
    assert.ok(infos.every((u) => u.attempt === 2 && u.numSamples === 2 && u.activationId === `act-${u.clientId}-2`));
    assert.ok(all.every((u) => u.weights.data[0] === 2 && u.weights.data[19_999] === u.clientId));
  });
});

describe('PostgresStore schema version', () => {
  it('refuses a database whose schema is newer than this code', async () => {
    await raw((c) => c.query('UPDATE schema_version SET version = 999'));
    try {
      await assert.rejects(open(), /schema version 999 is newer than this FedKeeper/);
    } finally {
      await raw((c) => c.query('UPDATE schema_version SET version = $1', [SCHEMA_VERSION]));
    }
    const s = await open();
    await s.close();
  });
});
