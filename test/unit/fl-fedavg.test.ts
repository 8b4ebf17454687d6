import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AggregationError, fedAvg } from '../../src/fl/fedavg.js';
import { selectClients } from '../../src/fl/selection.js';
import type { WeightVector } from '../../src/fl/weights.js';

const w = (...values: number[]): WeightVector => ({ shapes: [[values.length]], data: Float32Array.from(values) });

test('FedAvg weights by sample count', () => {
  const out = fedAvg([
    { clientId: 0, numSamples: 1, weights: w(0, 10) },
    { clientId: 1, numSamples: 3, weights: w(4, 2) },
  ]);
  assert.deepEqual([...out.data], [3, 4]);
  assert.deepEqual(out.shapes, [[2]]);
});

test('FedAvg is bit-identical whatever the arrival order', () => {
  const rnd = (seed: number) => {
    let s = seed;
    return () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
  };
  const r = rnd(9);
  const ups = Array.from({ length: 9 }, (_, c) => ({
    clientId: c,
    numSamples: 1 + c * 37,
    weights: { shapes: [[100, 3]], data: Float32Array.from({ length: 300 }, () => r() * 1e3) },
  }));
  const a = fedAvg(ups);
  const b = fedAvg([...ups].reverse());
  const c = fedAvg([ups[4]!, ups[0]!, ups[8]!, ups[2]!, ups[6]!, ups[1]!, ups[7]!, ups[3]!, ups[5]!]);
  assert.deepEqual(Buffer.from(a.data.buffer), Buffer.from(b.data.buffer));
  assert.deepEqual(Buffer.from(a.data.buffer), Buffer.from(c.data.buffer));
});

test('FedAvg refuses mismatched shapes, duplicates, zero samples, and no updates', () => {
  assert.throws(() => fedAvg([]), AggregationError);
  assert.throws(() => fedAvg([{ clientId: 0, numSamples: 1, weights: w(1, 2) }, { clientId: 1, numSamples: 1, weights: w(1, 2, 3) }]), /shapes differ/);
  assert.throws(() => fedAvg([{ clientId: 0, numSamples: 1, weights: w(1) }, { clientId: 0, numSamples: 1, weights: w(1) }]), /twice/);
  assert.throws(() => fedAvg([{ clientId: 0, numSamples: 0, weights: w(1) }]), /positive count/);
});

test('client selection: k distinct sorted ids, reproducible per (seed, round), varying across rounds', () => {
  const a = selectClients(100, 10, 42, 1);
  assert.equal(new Set(a).size, 10);
  assert.deepEqual(a, [...a].sort((x, y) => x - y));
  assert.ok(a.every((c) => c >= 0 && c < 100));
  assert.deepEqual(selectClients(100, 10, 42, 1), a);
  assert.notDeepEqual(selectClients(100, 10, 42, 2), a);
  assert.notDeepEqual(selectClients(100, 10, 43, 1), a);
  assert.deepEqual(selectClients(5, 5, 1, 1), [0, 1, 2, 3, 4]);
  assert.throws(() => selectClients(5, 6, 1, 1), RangeError);
});
