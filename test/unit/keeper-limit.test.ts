/** limiter: at most n calls at once, the others in order, a failing call frees its slot. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { limiter } from '../../src/keeper/limit.js';

test('at most n at once, in order; a rejection frees its slot', async () => {
  const run = limiter(3);
  let active = 0;
  let peak = 0;
  const started: number[] = [];
  const gates: (() => void)[] = [];
  const calls = Array.from({ length: 10 }, (_, i) =>
    run(async () => {
      started.push(i);
      active++;
      peak = Math.max(peak, active);
      await new Promise<void>((r) => gates.push(r));
      active--;
      if (i === 1) throw new Error('one fails');
      return i;
    }),
  );
  for (const c of calls) c.catch(() => {});
  while (started.length < 10) {
    await new Promise((r) => setImmediate(r));
    assert.ok(active <= 3);
    gates.shift()?.();
  }
  for (const g of gates) g();
  const results = await Promise.allSettled(calls);
  assert.equal(peak, 3);
  assert.deepEqual(started, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(results.filter((r) => r.status === 'rejected').length, 1);
  assert.deepEqual(results.map((r) => (r.status === 'fulfilled' ? r.value : 'x')), [0, 'x', 2, 3, 4, 5, 6, 7, 8, 9]);
});
