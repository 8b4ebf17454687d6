import assert from 'node:assert/strict';
import { type ChildProcess, fork } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, afterEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import type { WeightVector } from '../../src/fl/weights.js';
import { SqliteStore, openStore } from '../../src/store/index.js';
import type { ActivationRecord, ClientUpdate, RunRecord, StoreSpec } from '../../src/store/types.js';

const WRITER = fileURLToPath(new URL('./fixtures/store-writer.js', import.meta.url));

function bits(a: Float32Array): number[] {
  return Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
}

function weights(seed: number): WeightVector {
  const data = new Float32Array([seed, seed + 0.5, -seed, 0, 1, 2, 3]);
  return { shapes: [[2, 3], []], data };
}

function run(runId: string, over: Partial<RunRecord> = {}): RunRecord {
  return { runId, name: `name-${runId}`, configJson: '{"rounds":3}', status: 'created', createdAt: 1000, updatedAt: 1000, ...over };
}

function update(runId: string, round: number, clientId: number, seed = clientId): ClientUpdate {
  return { runId, round, clientId, weights: weights(seed), numSamples: 100 + clientId, metrics: { loss: seed / 10, accuracy: 0.5 } };
}

function activation(id: string, over: Partial<ActivationRecord> = {}): ActivationRecord {
  return {
    activationId: id,
    runId: 'r1',
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

let tmp: string;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fk-store-'));
});
after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('SqliteStore (in memory)', () => {
  let store: SqliteStore;
  beforeEach(() => {
    store = new SqliteStore(':memory:');
  });
  afterEach(async () => {
    await store.close();
  });

  it('creates, reads and updates runs', async () => {
    assert.equal(store.kind, 'sqlite');
    assert.equal(await store.getRun('r1'), undefined);
    await store.createRun(run('r1'));
    assert.deepEqual(await store.getRun('r1'), run('r1'));
    await assert.rejects(store.createRun(run('r1')), /already exists/);
    const before = Date.now();
    await store.setRunStatus('r1', 'running');
    const r = await store.getRun('r1');
    assert.equal(r?.status, 'running');
    assert.equal(r?.createdAt, 1000);
    assert.ok(r!.updatedAt >= before);
    await assert.rejects(store.setRunStatus('nope', 'failed'), /no run nope/);
  });

  it('roundtrips global weights bit-exact and tracks the latest round', async () => {
    assert.equal(await store.latestGlobalRound('r1'), undefined);
    const w = weights(1);
    const u = new Uint32Array(w.data.buffer);
    u[3] = 0x80000000; // -0
    u[4] = 0x7fc0abcd; // NaN with payload
    await store.putGlobalWeights('r1', 0, w);
    await store.putGlobalWeights('r1', 2, weights(2));
    await store.putGlobalWeights('r1', 1, weights(9));
    await store.putGlobalWeights('r1', 1, weights(1)); // replaces
    await store.putGlobalWeights('other', 7, weights(7));
    const back = await store.getGlobalWeights('r1', 0);
    assert.deepEqual(back?.shapes, w.shapes);
    assert.deepEqual(bits(back!.data), bits(w.data));
    assert.deepEqual(bits((await store.getGlobalWeights('r1', 1))!.data), bits(weights(1).data));
    assert.equal(await store.getGlobalWeights('r1', 5), undefined);
    assert.equal(await store.latestGlobalRound('r1'), 2);
    assert.equal(await store.latestGlobalRound('other'), 7);
  });

  it('a repeated client update replaces and never doubles', async () => {
    await store.putClientUpdate({ ...update('r1', 1, 3, 1), activationId: 'a1', attempt: 1 });
    await store.putClientUpdate({ ...update('r1', 1, 3, 2), numSamples: 77, metrics: { loss: 0.25 } });
    const all = await store.getClientUpdates('r1', 1);
    assert.equal(all.length, 1);
    const u = all[0]!;
    assert.deepEqual(bits(u.weights.data), bits(weights(2).data));
    assert.equal(u.numSamples, 77);
    assert.deepEqual(u.metrics, { loss: 0.25 });
    assert.equal(u.activationId, undefined);
    assert.equal(u.attempt, undefined);
    assert.deepEqual(await store.getClientUpdate('r1', 1, 3), u);
    assert.equal(await store.getClientUpdate('r1', 1, 4), undefined);
  });

  it('returns client updates sorted by client id, optionally filtered', async () => {
    for (const c of [7, 2, 10, 0, 5]) await store.putClientUpdate({ ...update('r1', 1, c), activationId: `a${c}`, attempt: 2 });
    await store.putClientUpdate(update('r1', 2, 1));
    await store.putClientUpdate(update('r2', 1, 1));
    const all = await store.getClientUpdates('r1', 1);
    assert.deepEqual(all.map((u) => u.clientId), [0, 2, 5, 7, 10]);
    for (const u of all) {
      assert.deepEqual(bits(u.weights.data), bits(weights(u.clientId).data));
      assert.equal(u.numSamples, 100 + u.clientId);
      assert.equal(u.activationId, `a${u.clientId}`);
      assert.equal(u.attempt, 2);
      assert.equal(u.runId, 'r1');
      assert.equal(u.round, 1);
    }
    const some = await store.getClientUpdates('r1', 1, [10, 2, 3, 2]);
    assert.deepEqual(some.map((u) => u.clientId), [2, 10]);
    assert.deepEqual(await store.getClientUpdates('r1', 1, []), []);
    const infos = await store.listClientUpdates('r1', 1);
    assert.deepEqual(infos.map((i) => i.clientId), [0, 2, 5, 7, 10]);
    assert.ok(infos.every((i) => !('weights' in i)));
    assert.deepEqual(infos[1], { runId: 'r1', round: 1, clientId: 2, numSamples: 102, metrics: { loss: 0.2, accuracy: 0.5 }, activationId: 'a2', attempt: 2 });
  });

  it('roundtrips partitions', async () => {
    const idx = new Uint32Array([0, 5, 4294967295, 123456789, 42]);
    await store.putPartition('r1', 0, idx);
    await store.putPartition('r1', 1, new Uint32Array(0));
    await store.putPartition('r1', 2, new Uint32Array([9]));
    await store.putPartition('r1', 2, new Uint32Array([1, 2])); // replaces
    await store.putPartition('r2', 0, new Uint32Array([3]));
    const back = await store.getPartition('r1', 0);
    assert.ok(back instanceof Uint32Array);
    assert.deepEqual(Array.from(back), Array.from(idx));
    assert.equal((await store.getPartition('r1', 1))?.length, 0);
    assert.deepEqual(Array.from((await store.getPartition('r1', 2))!), [1, 2]);
    assert.equal(await store.getPartition('r1', 3), undefined);
    assert.equal(await store.countPartitions('r1'), 3);
    assert.equal(await store.countPartitions('none'), 0);
    // A subarray view at an offset stores only its own elements.
    await store.putPartition('r1', 4, idx.subarray(1, 3));
    assert.deepEqual(Array.from((await store.getPartition('r1', 4))!), [5, 4294967295]);
  });

  it('upserts activations by id and lists them per round', async () => {
    await store.putActivation(activation('a1', { startTime: 300 }));
    await store.putActivation(activation('a2', { clientId: 1, startTime: 100 }));
    await store.putActivation(activation('a0', { round: 0, clientId: -1, functionName: 'fl-init', startTime: 50 }));
    await store.putActivation(activation('x', { runId: 'r2' }));
    const done = activation('a1', { startTime: 300, endTime: 900, status: 'application error', coldStart: false, error: 'boom' });
    await store.putActivation(done);
    assert.deepEqual(await store.listActivations('r1', 1), [activation('a2', { clientId: 1, startTime: 100 }), done]);
    assert.deepEqual((await store.listActivations('r1')).map((a) => a.activationId), ['a0', 'a2', 'a1']);
    const init = (await store.listActivations('r1', 0))[0]!;
    assert.equal(init.clientId, -1);
    assert.equal(init.coldStart, true);
    assert.equal(init.endTime, null);
    assert.ok(!('error' in init));
    assert.deepEqual(await store.listActivations('r1', 5), []);
  });

  it('deleteRun removes everything of that run only', async () => {
    for (const id of ['r1', 'r2']) {
      await store.createRun(run(id));
      await store.putGlobalWeights(id, 0, weights(0));
      await store.putClientUpdate(update(id, 1, 0));
      await store.putPartition(id, 0, new Uint32Array([1]));
      await store.putActivation(activation(`act-${id}`, { runId: id }));
    }
    await store.deleteRun('r1');
    assert.equal(await store.getRun('r1'), undefined);
    assert.equal(await store.latestGlobalRound('r1'), undefined);
    assert.deepEqual(await store.getClientUpdates('r1', 1), []);
    assert.equal(await store.countPartitions('r1'), 0);
    assert.deepEqual(await store.listActivations('r1'), []);
    assert.ok(await store.getRun('r2'));
    assert.equal(await store.latestGlobalRound('r2'), 0);
    assert.equal((await store.getClientUpdates('r2', 1)).length, 1);
    assert.equal(await store.countPartitions('r2'), 1);
    assert.equal((await store.listActivations('r2')).length, 1);
    await store.deleteRun('never-existed');
  });

  it('group commit: writes asked for in one turn are committed in one transaction, each promise after its commit', async () => {
    const puts: Promise<void>[] = [];
    for (let i = 0; i < 300; i++) puts.push(store.putActivation(activation(`g${i}`, { clientId: i })));
    for (let i = 0; i < 50; i++) puts.push(store.putClientUpdate(update('r1', 1, i)));
    assert.deepEqual(store.groupCommits, { transactions: 0, writes: 0 }); // nothing committed before the turn ends
    await Promise.all(puts);
    assert.deepEqual(store.groupCommits, { transactions: 1, writes: 350 });
    assert.equal((await store.listActivations('r1', 1)).length, 300);
    assert.equal((await store.listClientUpdates('r1', 1)).length, 50);
  });

  it('group commit: a later write of the same activation in the same turn wins; reads see writes not yet committed', async () => {
    void store.putActivation(activation('a1'));
    const last = store.putActivation(activation('a1', { endTime: 900, status: 'success', coldStart: false }));
    // A read commits the waiting writes first.
    const [row] = await store.listActivations('r1', 1);
    assert.equal(row!.status, 'success');
    assert.equal(row!.endTime, 900);
    await last;
    assert.equal(store.groupCommits.writes, 2);
  });

  it('group commit: a failing write fails alone, the others of its turn are committed', async () => {
    const bad = activation('bad', { functionName: null as unknown as string }); // NOT NULL
    const results = await Promise.allSettled([store.putActivation(activation('ok1')), store.putActivation(bad), store.putActivation(activation('ok2', { clientId: 2 }))]);
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);
    assert.match(String((results[1] as PromiseRejectedResult).reason), /NOT NULL/);
    assert.deepEqual((await store.listActivations('r1', 1)).map((a) => a.activationId).sort(), ['ok1', 'ok2']);
  });

  it('group commit: close commits the waiting writes; a write after close rejects', async () => {
    const file = path.join(tmp, 'group-close.sqlite');
    const s = new SqliteStore(file);
    const put = s.putActivation(activation('c1'));
    await s.close();
    await put;
    await assert.rejects(s.putActivation(activation('c2')));
    const again = new SqliteStore(file);
    assert.equal((await again.listActivations('r1')).length, 1);
    await again.close();
  });

  it('rejects after close; close is idempotent', async () => {
    await store.close();
    await store.close();
    await assert.rejects(store.getRun('r1'));
  });
});

describe('SqliteStore (file)', () => {
  it('creates parent directories, uses WAL, stores weights as BLOBs and persists across reopen', async () => {
    const file = path.join(tmp, 'nested', 'deeper', 'store.db');
    const spec: StoreSpec = { type: 'sqlite', path: file };
    const store = await openStore(spec);
    assert.equal(store.kind, 'sqlite');
    await store.putGlobalWeights('r1', 0, weights(1));
    await store.putClientUpdate(update('r1', 1, 4));
    await store.putPartition('r1', 4, new Uint32Array([1, 2, 3]));

    const raw = new Database(file, { readonly: true });
    try {
      assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
      assert.ok(Number(raw.pragma('user_version', { simple: true })) >= 1);
      assert.deepEqual(raw.prepare('SELECT typeof(blob) AS t FROM global_weights').all(), [{ t: 'blob' }]);
      assert.deepEqual(raw.prepare('SELECT typeof(blob) AS t FROM client_updates').all(), [{ t: 'blob' }]);
      assert.deepEqual(raw.prepare('SELECT typeof(indices) AS t, length(indices) AS n FROM partitions').all(), [{ t: 'blob', n: 12 }]);
    } finally {
      raw.close();
    }
    await store.close();

    const again = await openStore(spec);
    assert.deepEqual(bits((await again.getGlobalWeights('r1', 0))!.data), bits(weights(1).data));
    assert.equal((await again.getClientUpdates('r1', 1)).length, 1);
    await again.close();
  });

  it('openStore rejects an unknown store type, naming it and the supported ones', async () => {
    await assert.rejects(openStore({ type: 'redis', path: 'x' } as unknown as StoreSpec), (e: Error) => {
      assert.match(e.message, /redis/);
      assert.match(e.message, /sqlite/);
      return true;
    });
  });

  it('refuses a database whose schema is newer than this code', async () => {
    const file = path.join(tmp, 'future.db');
    const raw = new Database(file);
    raw.pragma('user_version = 999');
    raw.close();
    assert.throws(() => new SqliteStore(file), /schema version 999/);
  });
});

interface WriterMsg {
  type: 'ready' | 'done' | 'error';
  code?: string | null;
  message?: string;
}

/** Forks a writer, resolves once it has opened the store and is waiting for 'go'. */
function startWriter(file: string, runId: string, round: number, first: number, count: number) {
  const child: ChildProcess = fork(WRITER, [file, runId, String(round), String(first), String(count), '20000'], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const messages: WriterMsg[] = [];
  const ready = new Promise<void>((resolve, reject) => {
    child.on('message', (m: WriterMsg) => {
      messages.push(m);
      if (m.type === 'ready') resolve();
      if (m.type === 'error') reject(new Error(`writer failed: ${m.code} ${m.message}`));
    });
    child.on('error', reject);
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, messages, ready, exited };
}

async function runWriters(file: string, jobs: [string, number, number, number][]) {
  const writers = jobs.map(([runId, round, first, count]) => startWriter(file, runId, round, first, count));
  await Promise.all(writers.map((w) => w.ready));
  for (const w of writers) w.child.send('go');
  const codes = await Promise.all(writers.map((w) => w.exited));
  for (const [i, w] of writers.entries()) {
    const errors = w.messages.filter((m) => m.type === 'error');
    assert.deepEqual(errors, [], `writer ${i} reported errors`);
    assert.equal(codes[i], 0, `writer ${i} exit code`);
    assert.ok(w.messages.some((m) => m.type === 'done'), `writer ${i} finished`);
  }
}

describe('SqliteStore (concurrent processes)', () => {
  it('two processes writing 50 updates each into a fresh file at the same time: 100 rows, no SQLITE_BUSY', async () => {
    const file = path.join(tmp, 'concurrent', 'store.db');
    // Both children also race to create the file and its schema.
    await runWriters(file, [
      ['r1', 1, 0, 50],
      ['r1', 1, 50, 50],
    ]);
    const store = new SqliteStore(file);
    const all = await store.getClientUpdates('r1', 1);
    assert.equal(all.length, 100);
    assert.deepEqual(all.map((u) => u.clientId), Array.from({ length: 100 }, (_, i) => i));
    for (const u of all) {
      assert.equal(u.weights.data.length, 20000);
      assert.equal(u.weights.data[19999], u.clientId);
      assert.equal(u.numSamples, 10 + u.clientId);
    }
    await store.close();
    const raw = new Database(file, { readonly: true });
    assert.deepEqual(raw.prepare('SELECT COUNT(*) AS n FROM client_updates').get(), { n: 100 });
    raw.close();
  });

  it('two processes writing the same 50 client ids at the same time: 50 rows, never doubled', async () => {
    const file = path.join(tmp, 'overlap.db');
    await runWriters(file, [
      ['r1', 3, 0, 50],
      ['r1', 3, 0, 50],
    ]);
    const store = new SqliteStore(file);
    assert.equal((await store.listClientUpdates('r1', 3)).length, 50);
    await store.close();
  });
});

it('a late write of an older attempt never replaces a newer update', async () => {
  const store = await openStore({ type: 'sqlite', path: ':memory:' });
  const w = (v: number) => ({ shapes: [[1]], data: Float32Array.of(v) });
  const put = (attempt: number, v: number) => store.putClientUpdate({ runId: 'r', round: 1, clientId: 4, weights: w(v), numSamples: 3, metrics: {}, attempt });
  await put(2, 2);
  await put(1, 1); // the superseded attempt answers late
  assert.equal((await store.getClientUpdate('r', 1, 4))!.attempt, 2);
  assert.equal((await store.getClientUpdate('r', 1, 4))!.weights.data[0], 2);
  await put(3, 3);
  assert.equal((await store.getClientUpdate('r', 1, 4))!.weights.data[0], 3);
  assert.equal((await store.listClientUpdates('r', 1)).length, 1);
  await store.close();
});
