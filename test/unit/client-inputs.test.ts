/**
 * The client inputs a warm function can skip reading: the global weights kept by the sha256 of their encoding (a
 * hit only when the invocation names the digest of what was fetched; any other digest reads the store again), and
 * the partition sent along in the invocation (equal to the store's; a large one stays in the store).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { beforeEach, describe, test } from 'node:test';
import { encodeWeights } from '../../src/fl/codec.js';
import type { WeightVector } from '../../src/fl/weights.js';
import { decodePartition, encodePartition, forgetGlobalWeights, globalWeightReads, globalWeightsFor, partitionFor, weightsSha256 } from '../../src/functions/client-inputs.js';
import { FunctionParamsError } from '../../src/functions/params.js';
import { ClientInputs, PARTITION_IN_PARAMS_MAX_BYTES } from '../../src/keeper/client-inputs.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import type { FunctionStore } from '../../src/store/types.js';

const w = (seed: number): WeightVector => ({ shapes: [[2, 2], [2]], data: new Float32Array([seed, seed + 1, seed + 2, seed + 3, -seed, 0.5]) });
const sha = (x: WeightVector) => createHash('sha256').update(encodeWeights(x)).digest('hex');

/** A FunctionStore with one run's global weights per round and partitions, counting its reads. */
function countingStore(globals: Map<number, WeightVector>, partitions = new Map<number, Uint32Array>()) {
  const reads = { global: 0, partition: 0 };
  const store = {
    kind: 'counting',
    async getGlobalWeights(_runId: string, round: number) {
      reads.global++;
      const g = globals.get(round);
      return g ? { shapes: g.shapes, data: g.data.slice() } : undefined; // a fresh copy per read, as a real store
    },
    async getPartition(_runId: string, clientId: number) {
      reads.partition++;
      return partitions.get(clientId)?.slice();
    },
  } as unknown as FunctionStore;
  return { store, reads };
}

describe('functions: global weights kept by their sha256', () => {
  beforeEach(() => forgetGlobalWeights());

  test('the digest of what was fetched hits; the store is not read again, and the weights are the same', async () => {
    const { store, reads } = countingStore(new Map([[0, w(1)]]));
    const first = await globalWeightsFor(store, 'r', 0, sha(w(1)));
    assert.equal(reads.global, 1);
    const again = await globalWeightsFor(store, 'r', 0, sha(w(1)));
    assert.equal(reads.global, 1, 'a hit reads nothing');
    assert.deepEqual(again, first);
    assert.deepEqual(Array.from(again!.data), Array.from(w(1).data));
    assert.equal(weightsSha256(again!), sha(w(1)));
  });

  test('another digest (a new round, or a wrong one) reads the store again', async () => {
    const globals = new Map([[0, w(1)], [1, w(2)]]);
    const { store, reads } = countingStore(globals);
    await globalWeightsFor(store, 'r', 0, sha(w(1)));
    const next = await globalWeightsFor(store, 'r', 1, sha(w(2)));
    assert.equal(reads.global, 2, 'new weights, new digest: fetched');
    assert.deepEqual(Array.from(next!.data), Array.from(w(2).data));
    const wrong = await globalWeightsFor(store, 'r', 1, 'f'.repeat(64));
    assert.equal(reads.global, 3, 'a digest that names nothing kept: fetched');
    assert.deepEqual(Array.from(wrong!.data), Array.from(w(2).data), 'the store is the truth, whatever the digest said');
    await globalWeightsFor(store, 'r', 1, 'f'.repeat(64));
    assert.equal(reads.global, 4, 'kept under the digest of what was fetched, never under the one it was told');
    await globalWeightsFor(store, 'r', 1, sha(w(2)));
    assert.equal(reads.global, 4, 'the right digest hits');
  });

  test('without a digest every call reads the store (an invocation from a keeper that sends none)', async () => {
    const { store, reads } = countingStore(new Map([[0, w(1)]]));
    await globalWeightsFor(store, 'r', 0);
    await globalWeightsFor(store, 'r', 0);
    assert.equal(reads.global, 2);
    assert.ok(globalWeightReads.fetched >= 2);
  });

  test('weights the store lacks are not kept: the next call asks again', async () => {
    const globals = new Map<number, WeightVector>();
    const { store, reads } = countingStore(globals);
    assert.equal(await globalWeightsFor(store, 'r', 0, sha(w(1))), undefined);
    globals.set(0, w(1));
    assert.deepEqual(Array.from((await globalWeightsFor(store, 'r', 0, sha(w(1))))!.data), Array.from(w(1).data));
    assert.equal(reads.global, 2);
  });
});

describe('functions: the partition from the invocation', () => {
  test('sent along: used as is, the store is not read; absent: read from the store', async () => {
    const indices = new Uint32Array([7, 0, 4_000_000_000, 12]);
    const { store, reads } = countingStore(new Map(), new Map([[3, new Uint32Array([1, 2])]]));
    const got = await partitionFor(store, { runId: 'r', clientId: 3, partition: encodePartition(indices) }, 'fl_client');
    assert.deepEqual(Array.from(got!), Array.from(indices));
    assert.equal(reads.partition, 0);
    const fromStore = await partitionFor(store, { runId: 'r', clientId: 3 }, 'fl_client');
    assert.deepEqual(Array.from(fromStore!), [1, 2]);
    assert.equal(reads.partition, 1);
  });

  test('a partition that is not uint32s is refused as bad params', () => {
    assert.throws(() => decodePartition(Buffer.from([1, 2, 3]).toString('base64'), 'fl_client'), FunctionParamsError);
    assert.throws(() => decodePartition(42, 'fl_client'), FunctionParamsError);
  });
});

describe('keeper: ClientInputs from the run store', () => {
  test('the digest is that of the stored weights; partitions sent equal the store\'s; large ones stay in the store', async () => {
    const store = new SqliteStore(':memory:');
    try {
      await store.putGlobalWeights('r', 0, w(5));
      const big = new Uint32Array(PARTITION_IN_PARAMS_MAX_BYTES / 4 + 1).map((_, i) => i);
      await store.putPartition('r', 0, new Uint32Array([3, 1, 2]));
      await store.putPartition('r', 1, big);
      await store.putPartition('r', 2, new Uint32Array(PARTITION_IN_PARAMS_MAX_BYTES / 4).map((_, i) => i * 2));
      const inputs = new ClientInputs(store, 'r');
      assert.equal(await inputs.globalSha256(0), sha(w(5)));
      assert.equal(await inputs.globalSha256(1), undefined, 'no weights, no digest');
      await inputs.load([0, 1, 2, 9]);
      for (const c of [0, 2]) assert.deepEqual(Array.from(decodePartition(inputs.partition(c), 'test')), Array.from((await store.getPartition('r', c))!));
      assert.equal(inputs.partition(1), undefined, 'over the limit: the function reads it from the store');
      assert.equal(inputs.partition(9), undefined, 'no partition: the function reports it as before');
    } finally {
      await store.close();
    }
  });
});
