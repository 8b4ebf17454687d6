import assert from 'node:assert/strict';
import { test } from 'node:test';
import { labelCounts, partition, PartitionError } from '../../src/fl/partition.js';

/** 1,000 samples, 10 classes, 100 each, in class order. */
const labels = Uint8Array.from({ length: 1000 }, (_, i) => Math.floor(i / 100));

function assertDisjointCover(parts: Uint32Array[], n: number, exact = true): void {
  const seen = new Uint8Array(n);
  for (const p of parts) for (const i of p) {
    assert.equal(seen[i], 0, `index ${i} given to two clients`);
    seen[i] = 1;
  }
  if (exact) assert.equal(seen.reduce((a, b) => a + b, 0), n, 'every sample assigned');
}

test('iid: near-equal disjoint parts covering every sample, each with most classes', () => {
  const parts = partition(labels, 7, { kind: 'iid' }, 1);
  assert.equal(parts.length, 7);
  assertDisjointCover(parts, 1000);
  for (const p of parts) assert.ok(p.length === 142 || p.length === 143);
  for (const p of parts) assert.ok(labelCounts(labels, p, 10).filter((c) => c > 0).length >= 8);
});

test('iid: same seed same partition, other seed another', () => {
  const a = partition(labels, 5, { kind: 'iid' }, 3);
  const b = partition(labels, 5, { kind: 'iid' }, 3);
  const c = partition(labels, 5, { kind: 'iid' }, 4);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
});

test('shards: each client gets shards_per_client label-sorted shards, so at most that many classes (shard ≤ class)', () => {
  const parts = partition(labels, 10, { kind: 'shards', shardsPerClient: 2 }, 7);
  assertDisjointCover(parts, 1000);
  for (const p of parts) {
    assert.equal(p.length, 100);
    const classes = labelCounts(labels, p, 10).filter((c) => c > 0).length;
    assert.ok(classes >= 1 && classes <= 2, `client has ${classes} classes`);
  }
  // Non-IID: on average far fewer classes per client than IID.
  const iidClasses = partition(labels, 10, { kind: 'iid' }, 7).map((p) => labelCounts(labels, p, 10).filter((c) => c > 0).length);
  assert.ok(Math.min(...iidClasses) > 2);
});

test('shards: remainder samples are dropped, not doubled', () => {
  const parts = partition(labels, 3, { kind: 'shards', shardsPerClient: 2 }, 1); // 6 shards of 166
  assertDisjointCover(parts, 1000, false);
  for (const p of parts) assert.equal(p.length, 332);
});

test('shards: more shards than samples is a PartitionError naming what to lower', () => {
  assert.throws(() => partition(labels, 600, { kind: 'shards', shardsPerClient: 2 }, 1), (e: Error) => e instanceof PartitionError && /lower total_num_clients/.test(e.message));
});

test('dirichlet: small alpha skews labels, large alpha approaches IID; all samples assigned once', () => {
  const skewed = partition(labels, 10, { kind: 'dirichlet', alpha: 0.1 }, 5);
  const even = partition(labels, 10, { kind: 'dirichlet', alpha: 100 }, 5);
  assertDisjointCover(skewed, 1000);
  assertDisjointCover(even, 1000);
  const dominant = (ps: Uint32Array[]) =>
    ps.reduce((s, p) => s + Math.max(...labelCounts(labels, p, 10)) / p.length, 0) / ps.length;
  assert.ok(dominant(skewed) > 0.5, `skewed dominant share ${dominant(skewed)}`);
  assert.ok(dominant(even) < 0.25, `even dominant share ${dominant(even)}`);
  assert.deepEqual(partition(labels, 10, { kind: 'dirichlet', alpha: 0.1 }, 5), skewed);
});

test('more clients than samples is refused', () => {
  assert.throws(() => partition(labels, 1001, { kind: 'iid' }, 1), PartitionError);
  assert.throws(() => partition(labels, 0, { kind: 'iid' }, 1), PartitionError);
});
