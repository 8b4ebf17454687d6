import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BadInputError } from '../../src/keeper/errors.js';
import { placeClients } from '../../src/keeper/placement.js';

const count = (p: string[]) => p.reduce<Record<string, number>>((m, c) => ((m[c] = (m[c] ?? 0) + 1), m), {});

test('without counts, clients spread evenly over every cluster in contiguous blocks', () => {
  const p = placeClients(7, [{ name: 'a', group: 'local' }, { name: 'b', group: 'ow' }, { name: 'c', group: 'gcf' }], {});
  assert.deepEqual(p, ['a', 'a', 'a', 'b', 'b', 'c', 'c']);
});

test("the seed's per-platform counts split over that platform's clusters", () => {
  const clusters = [
    { name: 'cloud1', group: 'ow' as const },
    { name: 'cloud2', group: 'ow' as const },
    { name: 'edge', group: 'edge' as const },
    { name: 'gcf', group: 'gcf' as const },
  ];
  const p = placeClients(10, clusters, { ow: 5, edge: 2, gcf: 3 });
  assert.deepEqual(count(p), { cloud1: 3, cloud2: 2, edge: 2, gcf: 3 });
  assert.equal(p.length, 10);
});

test('a cluster may fix its own clients count', () => {
  const p = placeClients(6, [{ name: 'a', group: 'ow', clients: 4 }, { name: 'b', group: 'gcf' }], {});
  assert.deepEqual(count(p), { a: 4, b: 2 });
});

test('a count for a platform with no cluster, or counts that do not add up, are refused naming the field', () => {
  assert.throws(() => placeClients(4, [{ name: 'a', group: 'ow' }], { ow: 2, gcf: 2 }), (e: Error) => e instanceof BadInputError && /gcf_clients_count: 2 client\(s\) but no Google Cloud Functions cluster/.test(e.message));
  assert.throws(() => placeClients(4, [{ name: 'a', group: 'ow', clients: 5 }, { name: 'b', group: 'ow' }], {}), /add up to 5/);
  assert.throws(() => placeClients(4, [{ name: 'a', group: 'ow', clients: 3 }], {}), /expected total_num_clients \(4\)/);
  assert.throws(() => placeClients(4, [{ name: 'a', group: 'ow' }], { ow: 3 }), /add up to 3, expected total_num_clients \(4\)/);
});
