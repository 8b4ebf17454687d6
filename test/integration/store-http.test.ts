/**
 * The keeper's store endpoint end to end: a real SqliteStore (temp file) behind startStoreServer, used through
 * HttpStore exactly as an FL function package uses it.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { WeightVector } from '../../src/fl/weights.js';
import { encodeWeights } from '../../src/fl/codec.js';
import { HttpStore, StoreEndpointError, encodeUpdateRecord } from '../../src/store/http-store.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { startStoreServer, type StoreServer } from '../../src/store/store-server.js';
import type { ClientUpdate, EncodedClientUpdate, FunctionStore } from '../../src/store/types.js';

const BIG = 575_000; // float32 values: 2.3 MB per vector

let tmp: string;
let sqlite: SqliteStore;
let server: StoreServer;
let store: HttpStore;

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fk-store-http-'));
  sqlite = new SqliteStore(path.join(tmp, 'store.db'));
  server = await startStoreServer(sqlite);
  store = new HttpStore({ url: server.url, token: server.token });
});
after(async () => {
  await store?.close();
  await server?.close();
  await sqlite?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function bitsOf(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function assertSameWeights(got: WeightVector | undefined, want: WeightVector, what = 'weights'): void {
  assert.ok(got, `${what}: missing`);
  assert.deepEqual(got.shapes, want.shapes, `${what}: shapes`);
  assert.equal(got.data.length, want.data.length, `${what}: length`);
  assert.ok(Buffer.from(bitsOf(got.data)).equals(Buffer.from(bitsOf(want.data))), `${what}: bits differ`);
}

function bigWeights(seed: number): WeightVector {
  const data = new Float32Array(BIG);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < BIG; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    data[i] = (x / 2 ** 32 - 0.5) * 4;
  }
  return { shapes: [[BIG - 1000], [10, 100]], data };
}

function update(runId: string, round: number, clientId: number, over: Partial<ClientUpdate> = {}): ClientUpdate {
  return {
    runId,
    round,
    clientId,
    weights: { shapes: [[3]], data: new Float32Array([clientId, clientId + 0.5, -clientId]) },
    numSamples: 100 + clientId,
    metrics: { loss: clientId / 10, accuracy: 0.5 },
    ...over,
  };
}

describe('weights and partitions', () => {
  test('global weights round-trip bit-exact: ±0, subnormals, infinities, NaN payloads', async () => {
    const raw = new Uint32Array([
      0x00000000, 0x80000000, // +0, -0
      0x00000001, 0x807fffff, 0x00400000, // subnormals (smallest, largest negative, middle)
      0x00800000, 0x7f7fffff, 0xff7fffff, // smallest normal, ±max
      0x7f800000, 0xff800000, // ±Infinity
      0x7fc00000, 0x7fc00001, 0xffc12345, 0x7f800001, 0x7fbfffff, // NaNs: quiet, with payloads, signalling
      0x3f800000, 0xbf000000,
    ]);
    const w: WeightVector = { shapes: [[raw.length - 1], []], data: new Float32Array(raw.buffer) };
    await store.putGlobalWeights('r1', 0, w);
    assertSameWeights(await store.getGlobalWeights('r1', 0), w);
    assert.deepEqual(Array.from(new Uint32Array((await store.getGlobalWeights('r1', 0))!.data.buffer)), Array.from(raw));
  });

  test('large weights (2.3 MB) round-trip, and a repeated write replaces', async () => {
    const a = bigWeights(1);
    const b = bigWeights(2);
    await store.putGlobalWeights('r1', 1, a);
    assertSameWeights(await store.getGlobalWeights('r1', 1), a);
    await store.putGlobalWeights('r1', 1, b);
    assertSameWeights(await store.getGlobalWeights('r1', 1), b);
    assertSameWeights(await sqlite.getGlobalWeights('r1', 1), b, 'in the wrapped store');
  });

  test('run ids that need escaping reach the store as they are', async () => {
    const w: WeightVector = { shapes: [[2]], data: new Float32Array([1, 2]) };
    const runId = 'run/with ?odd#chars%20é';
    await store.putGlobalWeights(runId, 3, w);
    assertSameWeights(await sqlite.getGlobalWeights(runId, 3), w);
    assertSameWeights(await store.getGlobalWeights(runId, 3), w);
  });

  test('partitions round-trip (empty, a view with an offset, large), a repeated write replaces', async () => {
    const big = new Uint32Array(600_000).map((_, i) => (i * 2654435761) >>> 0);
    const backing = new Uint32Array([9, 9, 4294967295, 0, 7, 9]);
    await store.putPartition('r1', 0, new Uint32Array(0));
    await store.putPartition('r1', 1, backing.subarray(2, 5));
    await store.putPartition('r1', 2, big);
    assert.deepEqual(Array.from((await store.getPartition('r1', 0))!), []);
    assert.deepEqual(Array.from((await store.getPartition('r1', 1))!), [4294967295, 0, 7]);
    assert.ok(Buffer.from((await store.getPartition('r1', 2))!.buffer).equals(Buffer.from(big.buffer)));
    await store.putPartition('r1', 1, new Uint32Array([5]));
    assert.deepEqual(Array.from((await store.getPartition('r1', 1))!), [5]);
  });

  test('missing items are undefined, a missing round has no updates', async () => {
    assert.equal(await store.getGlobalWeights('r1', 99), undefined);
    assert.equal(await store.getGlobalWeights('no-such-run', 0), undefined);
    assert.equal(await store.getPartition('r1', 99), undefined);
    assert.deepEqual(await store.getClientUpdates('r1', 99), []);
  });
});

describe('client updates', () => {
  test('upsert replaces, an older attempt is ignored, metadata survives', async () => {
    await store.putClientUpdate(update('u1', 1, 4, { attempt: 1, activationId: 'a-1', metrics: { loss: 0.4 } }));
    await store.putClientUpdate(update('u1', 1, 4, { attempt: 2, activationId: 'a-2', numSamples: 7, metrics: { loss: 0.2, 'train_s': 1.5 } }));
    await store.putClientUpdate(update('u1', 1, 4, { attempt: 1, activationId: 'a-1-late', numSamples: 1 }));
    const [u, ...rest] = await store.getClientUpdates('u1', 1);
    assert.equal(rest.length, 0);
    assert.deepEqual({ ...u, weights: undefined }, {
      runId: 'u1', round: 1, clientId: 4, numSamples: 7, metrics: { loss: 0.2, train_s: 1.5 }, activationId: 'a-2', attempt: 2, weights: undefined,
    });
    assertSameWeights(u!.weights, update('u1', 1, 4).weights);
    // Same attempt again replaces (a retried write of the same answer is harmless).
    await store.putClientUpdate(update('u1', 1, 4, { attempt: 2, activationId: 'a-2', numSamples: 8 }));
    assert.equal((await store.getClientUpdates('u1', 1))[0]!.numSamples, 8);
  });

  test('a non-finite metric does not break the write', async () => {
    await store.putClientUpdate(update('u2', 1, 0, { metrics: { loss: NaN, grad: Infinity, accuracy: 0.25 } }));
    const [u] = await store.getClientUpdates('u2', 1);
    assert.equal(u!.metrics['accuracy'], 0.25);
    assert.deepEqual(Object.keys(u!.metrics).sort(), ['accuracy', 'grad', 'loss']);
  });

  test('the wire itself keeps NaN and ±Infinity metrics as numbers', async () => {
    const kept: ClientUpdate[] = [];
    const memory: FunctionStore = {
      kind: 'memory',
      putGlobalWeights: async () => undefined,
      getGlobalWeights: async () => undefined,
      putClientUpdate: async (u) => void kept.push(u),
      getClientUpdates: async () => kept,
      streamClientUpdates: async function* () {
        yield* kept;
      },
      partitionSizes: async () => new Map(),
      putPartition: async () => undefined,
      getPartition: async () => undefined,
      close: async () => undefined,
    };
    const s = await startStoreServer(memory);
    try {
      const c = new HttpStore({ url: s.url, token: s.token });
      await c.putClientUpdate(update('m', 1, 0, { metrics: { loss: NaN, up: Infinity, down: -Infinity, acc: 0.5 } }));
      assert.deepEqual(kept[0]!.metrics, { loss: NaN, up: Infinity, down: -Infinity, acc: 0.5 });
      assert.deepEqual((await c.getClientUpdates('m', 1))[0]!.metrics, { loss: NaN, up: Infinity, down: -Infinity, acc: 0.5 });
    } finally {
      await s.close();
    }
  });

  test('sorted by client id whatever the arrival order, filtered by the id list', async () => {
    for (const c of [5, 1, 3, 0, 2]) await store.putClientUpdate(update('u3', 2, c));
    await store.putClientUpdate(update('u3', 3, 1)); // another round: never mixed in
    assert.deepEqual((await store.getClientUpdates('u3', 2)).map((u) => u.clientId), [0, 1, 2, 3, 5]);
    assert.deepEqual((await store.getClientUpdates('u3', 2, [5, 3, 9, 0])).map((u) => u.clientId), [0, 3, 5]);
    assert.deepEqual(await store.getClientUpdates('u3', 2, []), []);
    const [u3] = await store.getClientUpdates('u3', 2, [3]);
    assert.equal(u3!.round, 2);
    assertSameWeights(u3!.weights, update('u3', 2, 3).weights);
  });

  test('20 concurrent 2.3 MB updates all land, bit-exact', async () => {
    const sent = Array.from({ length: 20 }, (_, c) => update('big', 1, c, { weights: bigWeights(100 + c), attempt: 1 }));
    await Promise.all(sent.map((u) => store.putClientUpdate(u)));
    const got = await store.getClientUpdates('big', 1);
    assert.equal(got.length, 20);
    got.forEach((u, i) => {
      assert.equal(u.clientId, i);
      assertSameWeights(u.weights, sent[i]!.weights, `client ${i}`);
    });
  });
});

describe('errors', () => {
  test('a wrong token is HTTP 401, and no message carries a token', async () => {
    const wrong = 'wrong-token-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
    const bad = new HttpStore({ url: server.url, token: wrong }, { retries: 0 });
    const err = await bad.getGlobalWeights('r1', 0).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof StoreEndpointError);
    assert.equal(err.status, 401);
    assert.match(err.message, /HTTP 401/);
    assert.ok(!err.message.includes(wrong) && !err.message.includes(server.token), err.message);
    assert.ok(!err.message.includes('\n'));
    const putErr = await bad.putGlobalWeights('r1', 0, bigWeights(3)).then(() => undefined, (e: unknown) => e as Error);
    assert.match(String(putErr?.message), /HTTP 401/);
  });

  test('a missing token is HTTP 401 on the wire', async () => {
    const res = await fetch(`${server.url}/v1/runs/r1/global/0`);
    assert.equal(res.status, 401);
    const body = (await res.json()) as { error: string };
    assert.equal(typeof body.error, 'string');
    assert.ok(!JSON.stringify(body).includes(server.token));
    const basic = await fetch(`${server.url}/v1/runs/r1/global/0`, { headers: { authorization: server.token } });
    assert.equal(basic.status, 401, 'the token alone, without "Bearer", is refused');
  });

  test('bad path params are 400 {error}; unknown routes are errors, not undefined', async () => {
    const auth = { authorization: `Bearer ${server.token}` };
    for (const p of ['/v1/runs/r1/global/-1', '/v1/runs/r1/global/1.5', '/v1/runs/r1/partitions/x', '/v1/runs/r1/rounds/1/updates?clients=1,-2']) {
      const res = await fetch(server.url + p, { headers: auth });
      assert.equal(res.status, 400, p);
      assert.equal(typeof ((await res.json()) as { error: unknown }).error, 'string');
    }
    const put = await fetch(`${server.url}/v1/runs/r1/global/2`, { method: 'PUT', headers: auth, body: new Uint8Array([1, 2, 3]) });
    assert.equal(put.status, 400, 'not a weight blob');
    await put.arrayBuffer();
    const res = await fetch(`${server.url}/v1/nothing/here`, { headers: auth });
    assert.equal(res.status, 404);
    await res.arrayBuffer();
    const old = new HttpStore({ url: `${server.url}/wrong-prefix`, token: server.token }, { retries: 0 });
    await assert.rejects(old.getGlobalWeights('r1', 0), /HTTP 404/);
  });

  test('a store error is 500 with its message and no stack', async () => {
    const failing: FunctionStore = {
      kind: 'failing',
      putGlobalWeights: async () => Promise.reject(new Error('disk full\n    at somewhere (file.js:1:1)')),
      getGlobalWeights: async () => undefined,
      putClientUpdate: async () => undefined,
      getClientUpdates: async () => [],
      streamClientUpdates: async function* () {},
      partitionSizes: async () => new Map(),
      putPartition: async () => undefined,
      getPartition: async () => undefined,
      close: async () => undefined,
    };
    const s = await startStoreServer(failing);
    try {
      const c = new HttpStore({ url: s.url, token: s.token }, { retries: 0 });
      const err = await c.putGlobalWeights('r', 0, { shapes: [[1]], data: new Float32Array([1]) }).then(() => undefined, (e: unknown) => e as StoreEndpointError);
      assert.equal(err?.status, 500);
      assert.match(err!.message, /HTTP 500.*disk full/);
      assert.ok(!err!.message.includes('\n'));
    } finally {
      await s.close();
    }
  });

  test('a body over the limit is HTTP 413, not retried', async () => {
    const small = await startStoreServer(sqlite, { maxBodyBytes: 1024 * 1024 });
    try {
      // A retry would first wait a minute: ending sooner means it was not retried.
      const c = new HttpStore({ url: small.url, token: small.token }, { retries: 3, backoffMs: 60_000 });
      const t0 = Date.now();
      await assert.rejects(c.putGlobalWeights('r1', 7, bigWeights(4)), (e: unknown) => {
        assert.ok(e instanceof StoreEndpointError);
        assert.equal(e.status, 413);
        assert.match(e.message, /HTTP 413/);
        return true;
      });
      assert.ok(Date.now() - t0 < 45_000, 'not retried');
      // Under the limit on the same connection still works.
      const w: WeightVector = { shapes: [[4]], data: new Float32Array([1, 2, 3, 4]) };
      await c.putGlobalWeights('r1', 7, w);
      assertSameWeights(await c.getGlobalWeights('r1', 7), w);
    } finally {
      await small.close();
    }
  });

  test('server closed: the error names the URL after the retries', async () => {
    const s = await startStoreServer(sqlite);
    const c = new HttpStore({ url: s.url, token: s.token }, { retries: 2, backoffMs: 20 });
    await c.putPartition('c1', 0, new Uint32Array([1])); // leaves a keep-alive socket behind
    const t0 = Date.now();
    await s.close();
    assert.ok(Date.now() - t0 < 1000, 'close() does not wait for idle keep-alive sockets');
    const err = await c.getPartition('c1', 0).then(() => undefined, (e: unknown) => e as StoreEndpointError);
    assert.ok(err instanceof StoreEndpointError);
    assert.equal(err.kind, 'network');
    assert.ok(err.message.includes(s.url), err.message);
    assert.match(err.message, /after 3 attempts/);
    assert.match(err.message, /ECONNREFUSED/);
    assert.ok(!err.message.includes(s.token));
  });

  test('the token is fresh, long and URL-safe; a closed HttpStore refuses calls', async () => {
    const s = await startStoreServer(sqlite);
    try {
      assert.match(s.token, /^[A-Za-z0-9_-]{32,}$/);
      assert.notEqual(s.token, server.token);
      assert.match(s.url, /^http:\/\/127\.0\.0\.1:\d+$/);
      const c = new HttpStore({ url: s.url, token: s.token });
      await c.close();
      await assert.rejects(c.getPartition('r1', 0), /closed/);
    } finally {
      await s.close();
    }
  });
});

test('global weights served from memory are never stale: a PUT through the endpoint replaces what the next GET answers', async () => {
  const s = new SqliteStore(path.join(tmp, 'cache.db'));
  const srv = await startStoreServer(s);
  try {
    const c = new HttpStore({ url: srv.url, token: srv.token });
    const w = (v: number): WeightVector => ({ shapes: [[3]], data: new Float32Array([v, v, v]) });
    await c.putGlobalWeights('cache', 0, w(1));
    assert.deepEqual([...(await c.getGlobalWeights('cache', 0))!.data], [1, 1, 1]);
    assert.deepEqual([...(await c.getGlobalWeights('cache', 0))!.data], [1, 1, 1], 'served again (from memory)');
    await c.putGlobalWeights('cache', 0, w(2));
    assert.deepEqual([...(await c.getGlobalWeights('cache', 0))!.data], [2, 2, 2]);
    for (let r = 1; r <= 6; r++) await c.putGlobalWeights('cache', r, w(10 + r));
    for (let r = 6; r >= 0; r--) assert.equal((await c.getGlobalWeights('cache', r))!.data[0], r === 0 ? 2 : 10 + r);
  } finally {
    await srv.close();
    await s.close();
  }
});

describe('update blobs pass through the endpoint as they are', () => {
  test('a PUT reaches a blob-keeping store as the blob sent (checked, not re-encoded); the stream hands out the stored blob', async () => {
    const seen: { put?: Uint8Array; streamed: number } = { streamed: 0 };
    const inner = new SqliteStore(':memory:');
    // The SQLite store, watched: what reaches putEncodedClientUpdate, and which stream the server reads.
    const watched: FunctionStore = Object.assign(Object.create(inner) as FunctionStore, {
      putEncodedClientUpdate: async (u: EncodedClientUpdate) => {
        seen.put = Uint8Array.from(u.blob);
        return inner.putEncodedClientUpdate(u);
      },
      putClientUpdate: async () => assert.fail('a blob-keeping store gets the blob, not decoded weights'),
      streamEncodedClientUpdates: (runId: string, round: number, ids: readonly number[]) => {
        seen.streamed++;
        return inner.streamEncodedClientUpdates(runId, round, ids);
      },
      streamClientUpdates: () => assert.fail('a blob-keeping store is streamed encoded'),
    });
    const s = await startStoreServer(watched);
    try {
      const c = new HttpStore({ url: s.url, token: s.token }, { retries: 0 });
      const u = update('blob', 1, 4, { weights: bigWeights(3), activationId: 'act', attempt: 2 });
      await c.putClientUpdate(u);
      assert.ok(seen.put && Buffer.from(seen.put).equals(Buffer.from(encodeWeights(u.weights))), 'the blob as it was sent');
      const got = [];
      for await (const x of c.streamClientUpdates('blob', 1, [4, 9])) got.push(x);
      assert.equal(seen.streamed, 1);
      assert.equal(got.length, 1);
      assertSameWeights(got[0]!.weights, u.weights, 'streamed');
      assert.deepEqual({ ...got[0]!, weights: undefined }, { ...u, weights: undefined });

      // An update record whose blob is not a weight blob is refused (400) before any store sees it.
      const [head] = encodeUpdateRecord(update('blob', 1, 5));
      const view = new DataView(head!.buffer, head!.byteOffset, head!.byteLength);
      const bad = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
      view.setUint32(head!.length - 4, bad.length, true);
      seen.put = undefined;
      const res = await fetch(`${s.url}/v1/runs/blob/rounds/1/updates/5`, { method: 'PUT', headers: { authorization: `Bearer ${s.token}` }, body: Buffer.concat([head!, bad]) });
      assert.equal(res.status, 400);
      assert.match(((await res.json()) as { error: string }).error, /bad update record: not a FedKeeper weight blob/);
      assert.equal(seen.put, undefined);
    } finally {
      await s.close();
      await inner.close();
    }
  });

  test('a store without the blob methods gets decoded weights and is streamed as before', async () => {
    const inner = new SqliteStore(':memory:');
    const plain: FunctionStore = {
      kind: 'plain',
      putGlobalWeights: (r, n, w) => inner.putGlobalWeights(r, n, w),
      getGlobalWeights: (r, n) => inner.getGlobalWeights(r, n),
      putClientUpdate: (u) => inner.putClientUpdate(u),
      getClientUpdates: (r, n, ids) => inner.getClientUpdates(r, n, ids),
      streamClientUpdates: (r, n, ids) => inner.streamClientUpdates(r, n, ids),
      partitionSizes: (r, ids) => inner.partitionSizes(r, ids),
      putPartition: (r, c, i) => inner.putPartition(r, c, i),
      getPartition: (r, c) => inner.getPartition(r, c),
      close: async () => undefined,
    };
    const s = await startStoreServer(plain);
    try {
      const c = new HttpStore({ url: s.url, token: s.token }, { retries: 0 });
      const u = update('plain', 1, 2, { weights: bigWeights(5) });
      await c.putClientUpdate(u);
      assertSameWeights((await inner.getClientUpdate('plain', 1, 2))?.weights, u.weights, 'stored');
      const got = [];
      for await (const x of c.streamClientUpdates('plain', 1, [2])) got.push(x);
      assert.equal(got.length, 1);
      assertSameWeights(got[0]!.weights, u.weights, 'streamed');
    } finally {
      await s.close();
      await inner.close();
    }
  });
});
