/**
 * fl_server_aggregator reads a round's updates one client at a time: the real handler, called directly, against a
 * SQLite store behind the keeper's store endpoint (as a function on this machine reaches it), with a recording
 * wrapper in between that sees every read the function makes.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fedAvg } from '../../src/fl/fedavg.js';
import { mulberry32 } from '../../src/fl/rng.js';
import { totalSize, type WeightVector } from '../../src/fl/weights.js';
import { handler } from '../../src/functions/fl-server-aggregator.js';
import type { AggregatorParams, ModelParamsSpec } from '../../src/functions/params.js';
import { weightShapes } from '../../src/ml/index.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { startStoreServer, type StoreServer } from '../../src/store/store-server.js';
import type { ClientUpdate, FunctionStore } from '../../src/store/types.js';

const MODEL: ModelParamsSpec = { model: 'mnistnn', inputShape: [28, 28, 1], hiddenSize: 8, numClasses: 10 };
const SHAPES = weightShapes(MODEL);
const RUN = 'agg-stream';
const ctx = { activationId: 'agg-test', functionName: 'fl_server_aggregator', deadline: Date.now() + 600_000 };

/** Delegates to the SQLite store; records each update read and how many were outstanding at once. */
class RecordingStore implements FunctionStore {
  readonly kind = 'recording';
  reads: (readonly number[] | undefined)[] = [];
  outstanding = 0;
  maxOutstanding = 0;
  constructor(private readonly inner: SqliteStore) {}
  async getClientUpdates(runId: string, round: number, clientIds?: readonly number[]): Promise<ClientUpdate[]> {
    this.reads.push(clientIds && [...clientIds]);
    this.maxOutstanding = Math.max(this.maxOutstanding, ++this.outstanding);
    try {
      // Answer a few event-loop turns later, so that reads a function issues together are seen together.
      for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
      return await this.inner.getClientUpdates(runId, round, clientIds);
    } finally {
      this.outstanding--;
    }
  }
  putGlobalWeights = (runId: string, round: number, w: WeightVector) => this.inner.putGlobalWeights(runId, round, w);
  getGlobalWeights = (runId: string, round: number) => this.inner.getGlobalWeights(runId, round);
  putClientUpdate = (u: ClientUpdate) => this.inner.putClientUpdate(u);
  putPartition = (runId: string, clientId: number, indices: Uint32Array) => this.inner.putPartition(runId, clientId, indices);
  getPartition = (runId: string, clientId: number) => this.inner.getPartition(runId, clientId);
  close = async () => undefined;
}

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
});
after(async () => {
  await server?.close();
  await sqlite?.close();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

function update(round: number, clientId: number, extra: Partial<ClientUpdate> = {}): ClientUpdate {
  return { runId: RUN, round, clientId, weights: weights(100 * round + clientId), numSamples: 10 + 7 * clientId, metrics: {}, attempt: 1, ...extra };
}

test('one read per client, in ascending client-id order, at most two outstanding; the result is fedAvg of the accepted updates', async () => {
  const nan = update(1, 2);
  nan.weights.data[17] = Number.NaN;
  const updates = [update(1, 5), update(1, 0), update(1, 3), nan, update(1, 1), update(1, 4, { attempt: 2 }), update(1, 6)];
  for (const u of updates) await sqlite.putClientUpdate(u); // written out of order on purpose
  recording.reads = [];
  recording.maxOutstanding = 0;

  const r = await handler({ ...params, round: 1, clientIds: [5, 0, 3, 2, 1, 4, 6, 3], attempts: { '4': 1 } }, ctx);

  assert.deepEqual(recording.reads, [[0], [1], [2], [3], [4], [5], [6]], 'one client per read, ascending, each once');
  assert.ok(recording.maxOutstanding <= 2, `${recording.maxOutstanding} update reads outstanding at once`);
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
  await assert.rejects(handler({ ...params, round: 2, clientIds: [0, 1, 2, 3, 7] }, ctx), /round 2 has no update from client\(s\) 2, 7/);
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
