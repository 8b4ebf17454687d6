/** The streaming FedAvg accumulator (fl/accumulator.ts): its arithmetic, its order rule, and what it refuses. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AggregationError, FedAvgAccumulator, type AggregationStrategy, type WeightedUpdate } from '../../src/fl/accumulator.js';
import { fedAvg } from '../../src/fl/fedavg.js';
import { mulberry32 } from '../../src/fl/rng.js';
import type { WeightVector } from '../../src/fl/weights.js';

const SHAPES = [[3, 4], [4], [4, 2], [2]];
const SIZE = 12 + 4 + 8 + 2;

function randomUpdates(count: number, size: number, seed: number, shapes: number[][] = [[size]]): WeightedUpdate[] {
  const r = mulberry32(seed);
  return Array.from({ length: count }, (_, c) => ({
    clientId: 3 * c + 1,
    numSamples: 1 + Math.floor(r() * 600),
    weights: { shapes, data: Float32Array.from({ length: size }, () => (r() * 2 - 1) * 2 ** Math.floor(r() * 8 - 4)) },
  }));
}

function bits(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

function run(strategy: AggregationStrategy, shapes: number[][], updates: readonly WeightedUpdate[]): WeightVector {
  strategy.begin(shapes);
  for (const u of updates) strategy.add(u);
  return strategy.finish();
}

/** The float32 value as an exact BigInt numerator over 2^SCALE. */
const SCALE = 200n;
function exact(x: number): bigint {
  if (x === 0) return 0n;
  const f = new Float64Array([x]);
  const u = new BigUint64Array(f.buffer)[0]!;
  const negative = u >> 63n === 1n;
  const exp = Number((u >> 52n) & 0x7ffn);
  const mant = (u & ((1n << 52n) - 1n)) | (1n << 52n);
  const shift = BigInt(exp - 1075) + SCALE;
  const v = shift >= 0n ? mant << shift : mant >> -shift;
  return negative ? -v : v;
}

test('the result is the weighted mean: bit for bit a plain float64 Σ n_i·w_i / N, and within half a float32 ulp of the exact mean', () => {
  const updates = randomUpdates(7, 4000, 11);
  const acc = new FedAvgAccumulator();
  const out = run(acc, [[4000]], updates);
  assert.deepEqual(out.shapes, [[4000]]);
  assert.equal(acc.name, 'fedavg');

  // Reference 1: the same definition written out independently, element by element, in float64.
  const N = updates.reduce((s, u) => s + u.numSamples, 0);
  const ref = new Float32Array(4000);
  for (let i = 0; i < 4000; i++) {
    let s = 0;
    for (const u of updates) s += u.numSamples * u.weights.data[i]!;
    ref[i] = s / N;
  }
  assert.ok(bits(out.data).equals(bits(ref)), 'differs from the float64 reference');

  // Reference 2: the exact rational mean (BigInt): every value is a correctly rounded float32 of it.
  for (let i = 0; i < 4000; i++) {
    let sum = 0n;
    for (const u of updates) sum += BigInt(u.numSamples) * exact(u.weights.data[i]!);
    const got = out.data[i]!;
    const ulp = 2 ** (Math.floor(Math.log2(Math.abs(got))) - 23);
    const err = exact(got) * BigInt(N) - sum;
    assert.ok((err < 0n ? -err : err) * 2n <= exact(ulp) * BigInt(N), `element ${i}: ${got} is more than half an ulp from the exact mean`);
  }
});

test('an exact mean halfway between two float32 values rounds half to even; the earlier Σ (n_i/N)·w_i did not', () => {
  // Found by search among random pairs: (10·w1 + 2·w2) / 12 lies exactly between two float32 values.
  const w1 = 0.07950536161661148;
  const w2 = 0.08635516464710236;
  assert.equal(Math.fround(w1), w1);
  assert.equal(Math.fround(w2), w2);
  const got = fedAvg([
    { clientId: 0, numSamples: 10, weights: { shapes: [[1]], data: Float32Array.of(w1) } },
    { clientId: 1, numSamples: 2, weights: { shapes: [[1]], data: Float32Array.of(w2) } },
  ]).data[0]!;
  const earlier = Math.fround(0 + (10 / 12) * w1 + (2 / 12) * w2); // fedAvg before streaming aggregation
  assert.notEqual(got, earlier, 'the last bit changed');
  const sum = 10n * exact(w1) + 2n * exact(w2);
  const dist = (x: number) => {
    const d = exact(x) * 12n - sum;
    return d < 0n ? -d : d;
  };
  assert.equal(dist(got), dist(earlier), 'both are the float32 neighbours of an exact tie');
  assert.ok(dist(got) > 0n);
  assert.equal(new Uint32Array(Float32Array.of(got).buffer)[0]! & 1, 0, 'the even neighbour');
});

test('fedAvg is the accumulator fed in client-id order, bit for bit, whatever order it is given', () => {
  const updates = randomUpdates(9, SIZE, 5, SHAPES);
  const streamed = run(new FedAvgAccumulator(), SHAPES, updates);
  const shuffled = [updates[4]!, updates[8]!, updates[0]!, updates[6]!, updates[2]!, updates[7]!, updates[1]!, updates[5]!, updates[3]!];
  assert.ok(bits(fedAvg(shuffled).data).equals(bits(streamed.data)));
  assert.deepEqual(fedAvg(shuffled).shapes, SHAPES);
});

test('updates must come in ascending client-id order: a later smaller id is refused, naming both clients', () => {
  const [a, b] = randomUpdates(2, SIZE, 2, SHAPES);
  const acc = new FedAvgAccumulator();
  acc.begin(SHAPES);
  acc.add(b!);
  assert.throws(
    () => acc.add(a!),
    (e: unknown) => e instanceof AggregationError && /client 1 was added after client 4: updates must be added in ascending client-id order/.test(e.message),
  );
});

test('refuses a duplicate client, other shapes, zero/negative/NaN samples, a non-integer client id', () => {
  const [u] = randomUpdates(1, SIZE, 3, SHAPES);
  const acc = new FedAvgAccumulator();
  acc.begin(SHAPES);
  acc.add(u!);
  assert.throws(() => acc.add(u!), (e: unknown) => e instanceof AggregationError && /client 1 appears twice/.test(e.message));
  const next = (patch: Partial<WeightedUpdate>): WeightedUpdate => ({ ...u!, clientId: 10, ...patch });
  assert.throws(() => acc.add(next({ weights: { shapes: [[4, 3], [4], [4, 2], [2]], data: u!.weights.data } })), /shapes differ/);
  assert.throws(() => acc.add(next({ weights: { shapes: SHAPES, data: u!.weights.data.subarray(1) } })), /shapes differ/);
  assert.throws(() => acc.add(next({ weights: { shapes: SHAPES.slice(1), data: u!.weights.data } })), /shapes differ/);
  for (const numSamples of [0, -5, Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.throws(() => acc.add(next({ numSamples })), (e: unknown) => e instanceof AggregationError && /need a positive count/.test(e.message), String(numSamples));
  }
  assert.throws(() => acc.add(next({ clientId: 10.5 })), /not an integer/);
  assert.throws(() => acc.add(next({ clientId: Number.NaN })), /not an integer/);
  // Nothing refused was counted: the result is client 1's weights alone.
  assert.equal(acc.count, 1);
  assert.equal(acc.samples, u!.numSamples);
  assert.ok(bits(acc.finish().data).equals(bits(u!.weights.data)));
});

test('finish() without an update, add() or finish() before begin() or after finish() are refused', () => {
  const acc = new FedAvgAccumulator();
  const [u] = randomUpdates(1, SIZE, 4, SHAPES);
  assert.throws(() => acc.add(u!), (e: unknown) => e instanceof AggregationError && /before begin/.test(e.message));
  assert.throws(() => acc.finish(), /before begin/);
  acc.begin(SHAPES);
  assert.throws(() => acc.finish(), (e: unknown) => e instanceof AggregationError && /at least one update/.test(e.message));
  acc.begin(SHAPES);
  acc.add(u!);
  acc.finish();
  assert.throws(() => acc.add({ ...u!, clientId: 99 }), /before begin/, 'a finished round takes no more updates');
  assert.throws(() => fedAvg([]), AggregationError);
});

test('one instance serves round after round: begin() resets the sum, the sample count and the order', () => {
  const acc = new FedAvgAccumulator();
  const round1 = randomUpdates(4, SIZE, 6, SHAPES);
  const round2 = randomUpdates(3, SIZE, 7, SHAPES);
  const first = run(acc, SHAPES, round1);
  const second = run(acc, SHAPES, round2); // client ids start again at 1
  assert.ok(bits(first.data).equals(bits(fedAvg(round1).data)));
  assert.ok(bits(second.data).equals(bits(fedAvg(round2).data)));
  assert.equal(acc.count, 3);
});

test('neither the updates nor the shapes given to begin() are changed or aliased by the result', () => {
  const shapes = SHAPES.map((s) => [...s]);
  const updates = randomUpdates(3, SIZE, 8, SHAPES);
  const copies = updates.map((u) => u.weights.data.slice());
  const out = run(new FedAvgAccumulator(), shapes, updates);
  updates.forEach((u, i) => assert.ok(bits(u.weights.data).equals(bits(copies[i]!))));
  shapes[0]![0] = 99;
  assert.deepEqual(out.shapes, SHAPES);
  assert.ok(updates.every((u) => u.weights.data.buffer !== out.data.buffer));
});
