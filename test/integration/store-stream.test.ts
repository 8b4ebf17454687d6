/**
 * streamClientUpdates and partitionSizes, with the same assertions on every store a function can use: SQLite,
 * PostgreSQL, and HttpStore through the keeper's store endpoint (a SQLite store behind it). Then what only the
 * endpoint has: the stream route's back-pressure (a reader that pauses holds the server at a bounded number of
 * updates), the end of the server's read when the reader goes away, resumption after an answer cut short, and the
 * routes' errors.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { WeightVector } from '../../src/fl/weights.js';
import { HttpStore, StoreEndpointError } from '../../src/store/http-store.js';
import { openPostgresStore } from '../../src/store/postgres-store.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { startStoreServer } from '../../src/store/store-server.js';
import type { ClientUpdate, FunctionStore } from '../../src/store/types.js';
import { startTestPostgres } from '../fixtures/postgres.js';

let tmp: string;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fk-store-stream-'));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const SHAPES = [[3], [2]];

/** Weights that tell run, round and client apart. */
function weightsOf(runId: string, round: number, clientId: number): WeightVector {
  const r = runId.charCodeAt(0);
  return { shapes: SHAPES, data: new Float32Array([clientId, round, r, clientId / 7, -clientId - 0.25]) };
}

function update(runId: string, round: number, clientId: number): ClientUpdate {
  return {
    runId,
    round,
    clientId,
    weights: weightsOf(runId, round, clientId),
    numSamples: 10 + clientId,
    metrics: { loss: clientId / 100, accuracy: 0.5 },
    activationId: `act-${runId}-${round}-${clientId}`,
    attempt: 1 + (clientId % 3),
  };
}

async function collect(it: AsyncIterable<ClientUpdate>): Promise<ClientUpdate[]> {
  const out: ClientUpdate[] = [];
  for await (const u of it) out.push(u);
  return out;
}

function bits(w: WeightVector): Buffer {
  return Buffer.from(w.data.buffer, w.data.byteOffset, w.data.byteLength);
}

/** Stored clients of run 'a' round 1: 40 of 0..49 (more than a few chunks), written in a shuffled order. */
const STORED = Array.from({ length: 50 }, (_, c) => c).filter((c) => c % 5 !== 3);
const SHUFFLED = [...STORED].sort((x, y) => ((x * 37) % 41) - ((y * 37) % 41));

async function exercise(store: FunctionStore): Promise<void> {
  for (const c of SHUFFLED) await store.putClientUpdate(update('a', 1, c));
  for (const c of STORED) {
    await store.putClientUpdate(update('a', 2, c)); // another round
    await store.putClientUpdate(update('b', 1, c)); // another run
  }
  await store.putClientUpdate(update('b', 1, 60)); // a client only another run has

  // Everything asked (unsorted, with duplicates and ids without an update): the stored ones, ascending, each once.
  const asked = [...Array.from({ length: 70 }, (_, c) => 69 - c), 7, 7, 0, 60];
  const all = await collect(store.streamClientUpdates('a', 1, asked));
  assert.deepEqual(all.map((u) => u.clientId), STORED, 'ascending, each once, missing ones absent');
  for (const u of all) {
    const want = update('a', 1, u.clientId);
    assert.deepEqual({ ...u, weights: undefined }, { ...want, weights: undefined }, `client ${u.clientId}: metadata`);
    assert.deepEqual(u.weights.shapes, SHAPES);
    assert.ok(bits(u.weights).equals(bits(want.weights)), `client ${u.clientId}: weights of run a round 1`);
  }

  // Only the asked ids, whatever their order; another round and another run are never mixed in.
  assert.deepEqual((await collect(store.streamClientUpdates('a', 1, [17, 2, 2, 49, 3, 99, 0, 60]))).map((u) => u.clientId), [0, 2, 17, 49]);
  const round2 = await collect(store.streamClientUpdates('a', 2, [5, 1]));
  assert.deepEqual(round2.map((u) => [u.runId, u.round, u.clientId]), [['a', 2, 1], ['a', 2, 5]]);
  assert.ok(bits(round2[1]!.weights).equals(bits(weightsOf('a', 2, 5))));
  const runB = await collect(store.streamClientUpdates('b', 1, [60, 1]));
  assert.deepEqual(runB.map((u) => [u.runId, u.clientId]), [['b', 1], ['b', 60]]);
  assert.ok(bits(runB[0]!.weights).equals(bits(weightsOf('b', 1, 1))));

  // Nothing asked, nothing stored: nothing.
  assert.deepEqual(await collect(store.streamClientUpdates('a', 1, [])), []);
  assert.deepEqual(await collect(store.streamClientUpdates('a', 1, [3, 8, 13, 70])), []);
  assert.deepEqual(await collect(store.streamClientUpdates('a', 7, STORED)), []);
  assert.deepEqual(await collect(store.streamClientUpdates('no-run', 1, STORED)), []);

  // Two streams read in turns, with writes in between, and one left early: all work, the store stays usable.
  const s1 = store.streamClientUpdates('a', 1, STORED)[Symbol.asyncIterator]();
  const s2 = store.streamClientUpdates('a', 2, STORED)[Symbol.asyncIterator]();
  const got1: number[] = [];
  const got2: number[] = [];
  for (let i = 0; ; i++) {
    const [x, y] = [await s1.next(), await s2.next()];
    if (x.done || y.done) {
      assert.ok(x.done && y.done);
      break;
    }
    got1.push(x.value.clientId);
    got2.push(y.value.clientId);
    if (i % 10 === 0) await store.putClientUpdate(update('c', 1, i));
  }
  assert.deepEqual(got1, STORED);
  assert.deepEqual(got2, STORED);
  for await (const u of store.streamClientUpdates('a', 1, STORED)) {
    if (u.clientId >= 6) break; // left early
  }
  assert.deepEqual((await store.getClientUpdates('c', 1)).map((u) => u.clientId), [0, 10, 20, 30]);
  assert.deepEqual((await collect(store.streamClientUpdates('a', 1, [1, 0]))).map((u) => u.clientId), [0, 1]);

  // Partition sizes: exact, only the asked clients that have one, only this run's.
  const sizes: Record<number, number> = { 0: 0, 1: 1, 2: 1000, 5: 60_000, 11: 3 };
  for (const [c, n] of Object.entries(sizes)) await store.putPartition('a', Number(c), Uint32Array.from({ length: n }, (_, i) => i * 7));
  await store.putPartition('b', 3, new Uint32Array(9));
  await store.putPartition('a', 11, new Uint32Array(4)); // a repeated write replaces
  const got = await store.partitionSizes('a', [5, 2, 1, 0, 3, 2, 11, 400]);
  assert.deepEqual([...got].sort((x, y) => x[0] - y[0]), [[0, 0], [1, 1], [2, 1000], [5, 60_000], [11, 4]]);
  assert.deepEqual([...(await store.partitionSizes('a', []))], []);
  assert.deepEqual([...(await store.partitionSizes('b', [3, 5]))], [[3, 9]]);
  assert.deepEqual([...(await store.partitionSizes('no-run', [0, 1]))], []);
}

describe('the same assertions on every store', () => {
  test('SQLite', async () => {
    const s = new SqliteStore(path.join(tmp, 'sqlite.db'));
    try {
      await exercise(s);
    } finally {
      await s.close();
    }
  });

  test('PostgreSQL', async () => {
    const pg = await startTestPostgres();
    const s = await openPostgresStore(pg.url, pg.storeOptions);
    try {
      await exercise(s);
    } finally {
      await s.close();
      await pg.close();
    }
  });

  test('HttpStore through the store endpoint', async () => {
    const sqlite = new SqliteStore(path.join(tmp, 'http.db'));
    const server = await startStoreServer(sqlite);
    const s = new HttpStore({ url: server.url, token: server.token });
    try {
      await exercise(s);
    } finally {
      await s.close();
      await server.close();
      await sqlite.close();
    }
  });
});

/**
 * The store behind the endpoint, with its streams watched: how many updates they handed to the server, whether they
 * were ended, and with what ids they were asked for. `failAfter` makes the next stream fail after that many updates.
 */
class CountingStore implements FunctionStore {
  readonly kind = 'counting';
  handedOut = 0;
  ended = 0;
  asked: number[][] = [];
  failAfter: number | undefined;
  failAtOnce = false;
  constructor(private readonly inner: SqliteStore) {}
  async *streamClientUpdates(runId: string, round: number, clientIds: readonly number[]): AsyncGenerator<ClientUpdate> {
    this.asked.push([...clientIds]);
    const failAfter = this.failAfter;
    this.failAfter = undefined;
    if (this.failAtOnce) throw new Error('disk on fire\n    at somewhere (file.js:1:1)');
    let n = 0;
    try {
      for await (const u of this.inner.streamClientUpdates(runId, round, clientIds)) {
        if (failAfter !== undefined && n === failAfter) throw new Error('disk on fire');
        this.handedOut++;
        n++;
        yield u;
      }
    } finally {
      this.ended++;
    }
  }
  getClientUpdates = (runId: string, round: number, ids?: readonly number[]) => this.inner.getClientUpdates(runId, round, ids);
  partitionSizes = (runId: string, ids: readonly number[]) => this.inner.partitionSizes(runId, ids);
  putGlobalWeights = (runId: string, round: number, w: WeightVector) => this.inner.putGlobalWeights(runId, round, w);
  getGlobalWeights = (runId: string, round: number) => this.inner.getGlobalWeights(runId, round);
  putClientUpdate = (u: ClientUpdate) => this.inner.putClientUpdate(u);
  putPartition = (runId: string, clientId: number, indices: Uint32Array) => this.inner.putPartition(runId, clientId, indices);
  getPartition = (runId: string, clientId: number) => this.inner.getPartition(runId, clientId);
  close = async () => undefined;
}

/** Polls `cond` every 25 ms until it holds or `ms` passed (a generous deadline, not a measurement). */
async function eventually(cond: () => boolean, ms = 20_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
  return true;
}

describe('the stream route', () => {
  let sqlite: SqliteStore;
  let counting: CountingStore;
  let server: Awaited<ReturnType<typeof startStoreServer>>;
  let store: HttpStore;
  const BIG_CLIENTS = 120;
  const BIG_VALUES = 131_072; // 512 KiB per update: 60 MiB for the round, far more than a socket buffers

  before(async () => {
    sqlite = new SqliteStore(path.join(tmp, 'route.db'));
    counting = new CountingStore(sqlite);
    server = await startStoreServer(counting);
    store = new HttpStore({ url: server.url, token: server.token }, { backoffMs: 1 });
    for (let c = 0; c < BIG_CLIENTS; c++) {
      const data = new Float32Array(BIG_VALUES).fill(c + 0.5);
      data[0] = c;
      await sqlite.putClientUpdate({ runId: 'big', round: 1, clientId: c, weights: { shapes: [[BIG_VALUES]], data }, numSamples: 1, metrics: {} });
    }
  });
  after(async () => {
    await store?.close();
    await server?.close();
    await sqlite?.close();
  });

  test('back-pressure: a reader that pauses after one update holds the server at a bounded number of updates', async () => {
    counting.handedOut = 0;
    counting.ended = 0;
    const ids = Array.from({ length: BIG_CLIENTS }, (_, c) => c);
    const it = store.streamClientUpdates('big', 1, ids)[Symbol.asyncIterator]();
    const first = await it.next();
    assert.equal(first.done, false);
    assert.equal(first.value!.clientId, 0);

    // Paused: watch what the server takes from its store until it stops taking more (it waits for 'drain'). Without
    // back-pressure it would take all 120 at once and buffer 60 MiB.
    let last = -1;
    let still = 0;
    let max = 0;
    const settled = await eventually(() => {
      max = Math.max(max, counting.handedOut);
      still = counting.handedOut === last ? still + 1 : 0;
      last = counting.handedOut;
      return still >= 40 || max > 64; // unchanged for 40 polls, or over the bound already
    }, 60_000);
    assert.ok(settled, 'the server settled');
    assert.ok(max <= 64, `the server took ${max} updates of ${BIG_CLIENTS} from its store for a reader that paused after one`);
    assert.equal(counting.ended, 0, 'its stream is still open');

    // Reading on, the server goes on: every update, ascending, each once.
    const rest: number[] = [];
    for (let r = await it.next(); !r.done; r = await it.next()) {
      assert.equal(r.value.weights.data[0], r.value.clientId);
      assert.equal(r.value.weights.data[BIG_VALUES - 1], r.value.clientId + 0.5);
      rest.push(r.value.clientId);
    }
    assert.deepEqual(rest, ids.slice(1));
    assert.equal(counting.handedOut, BIG_CLIENTS);
    assert.ok(await eventually(() => counting.ended === 1), 'the server ended its store stream');
  });

  test('a reader that stops early: the server ends its store stream instead of reading on', async () => {
    counting.handedOut = 0;
    counting.ended = 0;
    const ids = Array.from({ length: BIG_CLIENTS }, (_, c) => c);
    for await (const u of store.streamClientUpdates('big', 1, ids)) {
      if (u.clientId === 2) break;
    }
    assert.ok(await eventually(() => counting.ended === 1), 'the server ended its store stream');
    assert.ok(counting.handedOut < BIG_CLIENTS, `the server took ${counting.handedOut} updates`);
    // The endpoint and the store are still fine.
    assert.deepEqual((await collect(store.streamClientUpdates('big', 1, [5, 3]))).map((u) => u.clientId), [3, 5]);
  });

  test('an answer cut short mid-stream is asked again for the clients after the last one handed out', async () => {
    counting.asked = [];
    counting.failAfter = 30;
    const ids = Array.from({ length: 60 }, (_, c) => c);
    const got = (await collect(store.streamClientUpdates('big', 1, [...ids].reverse()))).map((u) => u.clientId);
    assert.deepEqual(got, ids, 'every update once, ascending');
    assert.equal(counting.asked.length, 2, 'one more request');
    assert.deepEqual(counting.asked[0], ids);
    const resumedFrom = counting.asked[1]![0]!;
    assert.ok(resumedFrom > 0 && resumedFrom <= 30, `resumed from client ${resumedFrom}`);
    assert.deepEqual(counting.asked[1], ids.slice(resumedFrom), 'only the clients not handed out yet');
  });

  test('a store that fails at once: HTTP 500 with its message, one line', async () => {
    counting.failAtOnce = true;
    try {
      const err = await collect(store.streamClientUpdates('big', 1, [0, 1])).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof StoreEndpointError);
      assert.equal(err.status, 500);
      assert.match(err.message, /HTTP 500.*disk on fire/);
      assert.ok(!err.message.includes('\n') && !err.message.includes(server.token));
    } finally {
      counting.failAtOnce = false;
    }
  });

  test('the routes on the wire: end mark only for no clients, JSON sizes, 400 without clients, 401 without token, 405', async () => {
    const auth = { authorization: `Bearer ${server.token}` };
    const none = await fetch(`${server.url}/v1/runs/big/rounds/1/update-stream?clients=`, { headers: auth });
    assert.equal(none.status, 200);
    assert.deepEqual([...new Uint8Array(await none.arrayBuffer())], [0, 0, 0, 0]);

    await sqlite.putPartition('big', 4, new Uint32Array(6));
    const sizes = await fetch(`${server.url}/v1/runs/big/partition-sizes?clients=9,4`, { headers: auth });
    assert.equal(sizes.status, 200);
    assert.deepEqual(await sizes.json(), { sizes: [[4, 6]] });

    for (const p of ['/v1/runs/big/rounds/1/update-stream', '/v1/runs/big/partition-sizes', '/v1/runs/big/rounds/1/update-stream?clients=1,x']) {
      const res = await fetch(server.url + p, { headers: auth });
      assert.equal(res.status, 400, p);
      assert.equal(typeof ((await res.json()) as { error: unknown }).error, 'string');
    }
    for (const p of ['/v1/runs/big/rounds/1/update-stream?clients=1', '/v1/runs/big/partition-sizes?clients=1']) {
      const res = await fetch(server.url + p);
      assert.equal(res.status, 401, p);
      assert.ok(!(await res.text()).includes(server.token));
      const put = await fetch(server.url + p, { method: 'PUT', headers: auth, body: new Uint8Array(4) });
      assert.equal(put.status, 405, p);
      await put.arrayBuffer();
    }
    const bad = new HttpStore({ url: server.url, token: 'wrong-token-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }, { retries: 0 });
    await assert.rejects(collect(bad.streamClientUpdates('big', 1, [0])), /HTTP 401/);
    await assert.rejects(bad.partitionSizes('big', [0]), /HTTP 401/);
  });
});
