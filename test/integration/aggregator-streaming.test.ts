/**
 * fl_server_aggregator reads a round's updates as one stream: the real handler, called directly, against a SQLite
 * store behind the keeper's store endpoint (as a function on this machine reaches it), with a recording wrapper
 * behind the endpoint that sees every read the function makes, and a watch on the function's own store (the
 * HttpStore it gets from storeFor) and on the accumulator, to see that it takes the next update only once the
 * previous one is added.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { FedAvgAccumulator, type WeightedUpdate } from '../../src/fl/accumulator.js';
import { fedAvg } from '../../src/fl/fedavg.js';
import { mulberry32 } from '../../src/fl/rng.js';
import { totalSize, type WeightVector } from '../../src/fl/weights.js';
import { handler } from '../../src/functions/fl-server-aggregator.js';
import type { AggregatorParams, ModelParamsSpec } from '../../src/functions/params.js';
import { storeFor } from '../../src/functions/shared.js';
import { weightShapes } from '../../src/ml/index.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { startStoreServer, type StoreServer } from '../../src/store/store-server.js';
import type { ClientUpdate, FunctionStore } from '../../src/store/types.js';

const MODEL: ModelParamsSpec = { model: 'mnistnn', inputShape: [28, 28, 1], hiddenSize: 8, numClasses: 10 };
const SHAPES = weightShapes(MODEL);
const RUN = 'agg-stream';
const ctx = { activationId: 'agg-test', functionName: 'fl_server_aggregator', deadline: Date.now() + 600_000 };

/** Delegates to the SQLite store; records every call that reads updates or partitions, and what the streams hand out. */
class RecordingStore implements FunctionStore {
  readonly kind = 'recording';
  calls: string[] = [];
  streamed: number[] = [];
  constructor(private readonly inner: SqliteStore) {}
  reset(): void {
    this.calls = [];
    this.streamed = [];
  }
  async getClientUpdates(runId: string, round: number, clientIds?: readonly number[]): Promise<ClientUpdate[]> {
    this.calls.push(`getClientUpdates ${clientIds?.join(',')}`);
    return this.inner.getClientUpdates(runId, round, clientIds);
  }
  async *streamClientUpdates(runId: string, round: number, clientIds: readonly number[]): AsyncGenerator<ClientUpdate> {
    this.calls.push(`streamClientUpdates ${clientIds.join(',')}`);
    for await (const u of this.inner.streamClientUpdates(runId, round, clientIds)) {
      this.streamed.push(u.clientId);
      yield u;
    }
  }
  getPartition(runId: string, clientId: number) {
    this.calls.push(`getPartition ${clientId}`);
    return this.inner.getPartition(runId, clientId);
  }
  partitionSizes(runId: string, clientIds: readonly number[]) {
    this.calls.push(`partitionSizes ${clientIds.join(',')}`);
    return this.inner.partitionSizes(runId, clientIds);
  }
  putGlobalWeights = (runId: string, round: number, w: WeightVector) => this.inner.putGlobalWeights(runId, round, w);
  getGlobalWeights = (runId: string, round: number) => this.inner.getGlobalWeights(runId, round);
  putClientUpdate = (u: ClientUpdate) => this.inner.putClientUpdate(u);
  putPartition = (runId: string, clientId: number, indices: Uint32Array) => this.inner.putPartition(runId, clientId, indices);
  close = async () => undefined;
}

/**
 * The function's side: every update its stream hands to the handler, with the client ids the accumulator had added
 * by the time the handler asked for the NEXT update (so an update the handler kept without adding it shows).
 */
interface Handout {
  clientId: number;
  addedWhenNextAsked?: number[];
}
const handouts: Handout[] = [];
const added: number[] = [];
const originalAdd = FedAvgAccumulator.prototype.add;

let tmp: string;
let sqlite: SqliteStore;
let recording: RecordingStore;
let server: StoreServer;
let params: Omit<AggregatorParams, 'round' | 'clientIds'>;

function weights(seed: number): WeightVector {
  const r = mulberry32(seed);
  return { shapes: SHAPES, data: Float32Array.from({ length: totalSize(SHAPES) }, () => (r() - 0.5) * 0.2) };
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fk-agg-stream-'));
  sqlite = new SqliteStore(path.join(tmp, 'store.sqlite'));
  recording = new RecordingStore(sqlite);
  server = await startStoreServer(recording);
  params = { runId: RUN, store: { type: 'http', url: server.url, token: server.token }, dataset: { dataset: 'mnist', test_fraction: 0.2 }, model: MODEL };
  await sqlite.putGlobalWeights(RUN, 0, weights(1));
  for (let c = 0; c < 8; c++) await sqlite.putPartition(RUN, c, Uint32Array.from({ length: 100 }, (_, i) => c * 100 + i));

  // The very store the handler will use (storeFor caches one per spec), watched.
  const fnStore = await storeFor(params.store);
  const stream = fnStore.streamClientUpdates.bind(fnStore);
  fnStore.streamClientUpdates = async function* (runId, round, clientIds) {
    for await (const u of stream(runId, round, clientIds)) {
      const h: Handout = { clientId: u.clientId };
      handouts.push(h);
      yield u;
      h.addedWhenNextAsked = [...added];
    }
  };
  FedAvgAccumulator.prototype.add = function (this: FedAvgAccumulator, u: WeightedUpdate) {
    added.push(u.clientId);
    return originalAdd.call(this, u);
  };
});
after(async () => {
  FedAvgAccumulator.prototype.add = originalAdd;
  await server?.close();
  await sqlite?.close();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

function update(round: number, clientId: number, extra: Partial<ClientUpdate> = {}): ClientUpdate {
  return { runId: RUN, round, clientId, weights: weights(100 * round + clientId), numSamples: 10 + 7 * clientId, metrics: {}, attempt: 1, ...extra };
}

test('one partitionSizes call and one stream, in ascending client-id order, one update taken at a time; the result is fedAvg of the accepted updates', async () => {
  const nan = update(1, 2);
  nan.weights.data[17] = Number.NaN;
  const updates = [update(1, 5), update(1, 0), update(1, 3), nan, update(1, 1), update(1, 4, { attempt: 2 }), update(1, 6)];
  for (const u of updates) await sqlite.putClientUpdate(u); // written out of order on purpose
  recording.reset();
  handouts.length = 0;
  added.length = 0;

  const r = await handler({ ...params, round: 1, clientIds: [5, 0, 3, 2, 1, 4, 6, 3], attempts: { '4': 1 } }, ctx);

  assert.deepEqual(
    recording.calls,
    ['partitionSizes 0,1,2,3,4,5,6', 'streamClientUpdates 0,1,2,3,4,5,6'],
    'one call for the partition sizes, one stream for the updates (ids ascending, each once), no per-client reads',
  );
  assert.deepEqual(recording.streamed, [0, 1, 2, 3, 4, 5, 6], 'the store hands the updates out in ascending order');
  assert.deepEqual(
    handouts.map((h) => h.clientId),
    [0, 1, 2, 3, 4, 5, 6],
    'the function gets them in ascending order, each once',
  );
  assert.deepEqual(added, [0, 1, 3, 5, 6], 'the accepted ones are added, in order');
  // Held at most one at a time: before the handler asks for the next update, the current one is added (or was
  // rejected and dropped): no update is kept back to be added later.
  for (const h of handouts) {
    const accepted = added.includes(h.clientId);
    assert.equal(h.addedWhenNextAsked?.includes(h.clientId), accepted, `client ${h.clientId}: added before the next was asked for`);
    assert.deepEqual(h.addedWhenNextAsked, added.filter((c) => c <= h.clientId), `client ${h.clientId}: nothing added ahead of time`);
  }
  assert.equal(r.clients, 5);
  assert.deepEqual(
    (r.rejected as { clientId: number; reason: string }[]).map((x) => x.clientId),
    [2, 4],
  );
  assert.match((r.rejected as { reason: string }[])[0]!.reason, /^client 2: variable 0 .* is NaN/);
  assert.match((r.rejected as { reason: string }[])[1]!.reason, /attempt 2, the keeper accepted attempt 1/);
  const accepted = updates.filter((u) => [0, 1, 3, 5, 6].includes(u.clientId));
  assert.equal(r.samples, accepted.reduce((s, u) => s + u.numSamples, 0));
  const stored = await sqlite.getGlobalWeights(RUN, 1);
  const want = fedAvg(accepted);
  assert.ok(stored);
  assert.deepEqual(stored.shapes, SHAPES);
  assert.ok(Buffer.from(stored.data.buffer, stored.data.byteOffset, stored.data.byteLength).equals(Buffer.from(want.data.buffer)), 'bit for bit fedAvg');

  assert.equal(r.testSamples, 2000);
  assert.ok(Number(r.accuracy) >= 0 && Number(r.accuracy) <= 1);
  assert.ok(Number.isFinite(r.loss) && Number(r.loss) > 0);
  for (const k of ['aggSeconds', 'fedavgSeconds', 'evalSeconds', 'seconds']) assert.equal(typeof r[k], 'number', k);
  // Nested intervals of one clock: FedAvg is part of the aggregation, both are part of the whole.
  assert.ok(Number(r.fedavgSeconds) <= Number(r.aggSeconds));
  assert.ok(Number(r.aggSeconds) + Number(r.evalSeconds) <= Number(r.seconds));
});

test('missing updates fail the round naming every missing client, and nothing is written', async () => {
  await sqlite.putGlobalWeights(RUN, 1, weights(1));
  for (const c of [0, 1, 3]) await sqlite.putClientUpdate(update(2, c));
  recording.reset();
  await assert.rejects(handler({ ...params, round: 2, clientIds: [0, 1, 2, 3, 7] }, ctx), /round 2 has no update from client\(s\) 2, 7/);
  assert.deepEqual(recording.calls, ['partitionSizes 0,1,2,3,7', 'streamClientUpdates 0,1,2,3,7']);
  assert.deepEqual(recording.streamed, [0, 1, 3]);
  recording.reset();
  await assert.rejects(handler({ ...params, round: 2, clientIds: [4, 6] }, ctx), /round 2 has no update from client\(s\) 4, 6/, 'no update at all');
  assert.equal(await sqlite.getGlobalWeights(RUN, 2), undefined);
});

test('every update rejected: the round fails with every reason', async () => {
  await sqlite.putGlobalWeights(RUN, 2, weights(1));
  await sqlite.putClientUpdate(update(3, 0, { numSamples: 1000 }));
  await sqlite.putClientUpdate(update(3, 1, { attempt: 3 }));
  await assert.rejects(
    handler({ ...params, round: 3, clientIds: [0, 1], attempts: { '1': 2 } }, ctx),
    /every update of round 3 was rejected: client 0: numSamples 1000 is larger than the client's partition of 100 samples; client 1: .*attempt 3/,
  );
  assert.equal(await sqlite.getGlobalWeights(RUN, 3), undefined);
});
