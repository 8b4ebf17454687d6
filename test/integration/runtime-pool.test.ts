import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { WorkerPool } from '../../src/runtime/pool.js';

const module = new URL('../fixtures/functions.js', import.meta.url).href;
const ctx = (id: string) => ({ activationId: id, functionName: 'f', deadline: Date.now() + 10_000 });
const pool = new WorkerPool({ size: 2 });
after(() => pool.close());

test('a function runs in a separate process; the second run on a worker is warm', async () => {
  const a = await pool.run({ module, exportName: 'echo' }, { x: 1, arr: new Float32Array([1.5]) }, ctx('a1'), 5000);
  assert.equal(a.outcome, 'ok');
  assert.notEqual(a.result.pid, process.pid);
  assert.deepEqual(a.result.params, { x: 1, arr: new Float32Array([1.5]) }); // typed arrays cross intact
  assert.equal(a.result.activationId, 'a1');
  assert.equal(a.coldStart, true);
  const b = await pool.run({ module, exportName: 'echo' }, {}, ctx('a2'), 5000);
  assert.equal(b.coldStart, false);
  assert.ok(b.endTime >= b.startTime);
});

test('a throwing function is an application error, a non-object result a developer error', async () => {
  const a = await pool.run({ module, exportName: 'fail' }, {}, ctx('f'), 5000);
  assert.equal(a.outcome, 'application error');
  assert.match(String(a.result.error), /boom/);
  const b = await pool.run({ module, exportName: 'notAnObject' }, {}, ctx('n'), 5000);
  assert.equal(b.outcome, 'developer error');
  const c = await pool.run({ module, exportName: 'missing' }, {}, ctx('m'), 5000);
  assert.equal(c.outcome, 'application error');
  assert.match(String(c.result.error), /no exported function "missing"/);
});

test('a crashing runtime fails its task and is replaced', async () => {
  const a = await pool.run({ module, exportName: 'crash' }, {}, ctx('c'), 5000);
  assert.equal(a.outcome, 'developer error');
  assert.match(String(a.result.error), /exit code 3/);
  const b = await pool.run({ module, exportName: 'echo' }, {}, ctx('after'), 5000);
  assert.equal(b.outcome, 'ok');
});

test('a task past its time limit is killed as timed out; its worker is replaced', async () => {
  const t0 = Date.now();
  const a = await pool.run({ module, exportName: 'sleep' }, { ms: 5000 }, ctx('t'), 300);
  assert.equal(a.outcome, 'timed out');
  assert.ok(Date.now() - t0 < 3000);
  const b = await pool.run({ module, exportName: 'sleep' }, { ms: 10 }, ctx('t2'), 5000);
  assert.equal(b.outcome, 'ok');
  assert.deepEqual(b.logs, ['slept 10']);
});

test('at most `size` tasks run at once; the rest queue', async () => {
  const runs = await Promise.all([0, 1, 2, 3].map((i) => pool.run({ module, exportName: 'sleep' }, { ms: 300 }, ctx(`q${i}`), 5000)));
  assert.ok(runs.every((r) => r.outcome === 'ok'));
  const pids = new Set(runs.map((r) => r.result.pid));
  assert.ok(pids.size <= 2, `ran on ${pids.size} processes`);
  const sorted = runs.map((r) => r.startTime).sort((a, b) => a - b);
  // the 3rd task cannot start before one of the first two ended
  assert.ok(sorted[2]! >= Math.min(...runs.map((r) => r.endTime)) - 5);
});
