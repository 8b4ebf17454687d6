/**
 * Local GCF instances without processes: where a request goes (free slot, new instance, FIFO queue, GCF's 429), what
 * pruning drops, the machine's cap, and the scaling settings as Cloud Functions checks them.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { functionScaling, localInstanceCap, parseGoogleCluster } from '../../src/providers/google-config.js';
import { leaveQueue, mayProceed, place, prune, release, type InstancePool, type LocalScaling } from '../../src/providers/google-instances.js';
import { ProviderError } from '../../src/providers/types.js';

const scaling = (over: Partial<LocalScaling> = {}): LocalScaling => ({
  maxInstances: 2,
  minInstances: 0,
  concurrency: 1,
  limit: 2,
  queueTimeoutMs: 60_000,
  idleTimeoutMs: 900_000,
  ...over,
});
const pool = (over: Partial<LocalScaling> = {}): InstancePool => ({ scaling: scaling(over), nextInstance: 1, instances: [], queue: [] });
const t = (token: string, pid = 100) => ({ token, pid });
const LEASE = 10_000;

/** Places a request and, when it starts an instance, marks that instance running as the starter would. */
function placeAndStart(p: InstancePool, token: string, now: number) {
  const r = place(p, t(token), now, LEASE);
  if (r.kind === 'start') Object.assign(r.instance, { pid: 1000 + p.instances.length, port: 2000 + p.instances.length, starter: undefined });
  return r;
}

test('a request takes a free slot, else starts an instance below the limit, else queues', () => {
  const p = pool();
  assert.equal(placeAndStart(p, 'a', 0).kind, 'start');
  assert.equal(placeAndStart(p, 'b', 1).kind, 'start');
  assert.deepEqual(p.instances.map((i) => i.id), ['i1', 'i2']);
  assert.equal(place(p, t('c'), 2, LEASE).kind, 'wait');
  assert.deepEqual(p.queue.map((w) => w.token), ['c']);
  // a's slot comes back: c (queued) gets i1, warm
  release(p, 'a', 'i1', 3);
  const c = place(p, t('c'), 4, LEASE);
  assert.equal(c.kind, 'run');
  assert.equal(c.kind === 'run' && c.instance.id, 'i1');
  assert.deepEqual(p.queue, []);
});

test('FIFO: a newcomer does not overtake a queued request, even when a slot is free', () => {
  const p = pool({ limit: 1, maxInstances: 1 });
  placeAndStart(p, 'a', 0);
  assert.equal(place(p, t('b'), 1, LEASE).kind, 'wait');
  release(p, 'a', 'i1', 2);
  assert.equal(mayProceed(p, t('b'), 3), true, 'the head of the queue may go');
  assert.equal(place(p, t('late'), 3, LEASE).kind, 'wait', 'the newcomer queues behind b');
  assert.equal(mayProceed(p, t('late'), 3), false);
  assert.equal(place(p, t('b'), 4, LEASE).kind, 'run');
  assert.deepEqual(p.queue.map((w) => w.token), ['late']);
});

test('concurrency 2: one instance takes two requests before another starts', () => {
  const p = pool({ concurrency: 2 });
  placeAndStart(p, 'a', 0);
  const b = place(p, t('b'), 1, LEASE);
  assert.equal(b.kind, 'run');
  assert.equal(p.instances.length, 1);
  assert.equal(p.instances[0]!.leases.length, 2);
  assert.equal(placeAndStart(p, 'c', 2).kind, 'start');
});

test('past the queue window a queued request is refused (GCF 429); without a window it waits on', () => {
  const p = pool({ limit: 1, maxInstances: 1, queueTimeoutMs: 1000 });
  placeAndStart(p, 'a', 0);
  assert.equal(place(p, t('b'), 10, LEASE).kind, 'wait');
  assert.equal(place(p, t('b'), 500, LEASE).kind, 'wait');
  const r = place(p, t('b'), 1010, LEASE);
  assert.deepEqual(r, { kind: 'refused', waitedMs: 1000 });
  assert.deepEqual(p.queue, []);

  const capped = pool({ limit: 1, maxInstances: 100, queueTimeoutMs: null });
  placeAndStart(capped, 'a', 0);
  assert.equal(place(capped, t('b'), 10, LEASE).kind, 'wait');
  assert.equal(place(capped, t('b'), 10_000_000, LEASE).kind, 'wait');
});

test('prune drops dead instances, abandoned starts, leases and waiters of gone processes, and idle instances above min', () => {
  const p = pool({ limit: 4, maxInstances: 4, minInstances: 1, idleTimeoutMs: 1000 });
  for (const k of ['a', 'b', 'c']) placeAndStart(p, k, 0);
  const starting = place(p, t('d', 999), 0, LEASE); // a start by process 999, which then dies
  assert.equal(starting.kind, 'start');
  release(p, 'a', 'i1', 100);
  release(p, 'b', 'i2', 200);
  p.instances[2]!.leases[0]!.pid = 555; // c's sender died
  p.instances[2]!.lastUsed = 500; // and i3 was busy until lately
  leaveQueue(p, 'nobody');
  const idle = prune(p, { now: 100 + 1000, pidAlive: (pid) => pid !== 999 && pid !== 555, dead: new Set(['i2']), startStaleMs: 60_000 });
  assert.deepEqual(p.instances.map((i) => i.id), ['i3'], 'i2 died, i4 was abandoned, i1 idle (i3 stays: min_instances 1)');
  assert.deepEqual(idle.map((i) => i.id), ['i1']);
  assert.deepEqual(p.instances[0]!.leases, [], "c's lease went with its process");

  // a lease past its bound is forgotten; a waiter that stopped polling is dropped
  const q = pool({ limit: 1, maxInstances: 1 });
  placeAndStart(q, 'a', 0);
  place(q, t('b'), 0, LEASE);
  prune(q, { now: LEASE + 1, pidAlive: () => true, dead: new Set(), startStaleMs: 60_000 });
  assert.deepEqual(q.instances[0]!.leases, []);
  prune(q, { now: 60_000, pidAlive: () => true, dead: new Set(), startStaleMs: 60_000 });
  assert.deepEqual(q.queue, []);
});

test('the local cap: two instances per core, at most half the free memory at 256 MB each, at least one', () => {
  const GiB = 1024 ** 3;
  assert.equal(localInstanceCap(2, 23 * GiB), 4);
  assert.equal(localInstanceCap(16, 4 * GiB), 8);
  assert.equal(localInstanceCap(8, 0.2 * GiB), 1);
  assert.ok(localInstanceCap() >= 1);
});

function refused(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ProviderError);
    assert.equal(e.exitCode, 2);
    assert.match(e.message, message);
    assert.ok(!e.message.includes('\n'), 'one line');
    return true;
  });
}

test('max_instances, min_instances and concurrency are checked as Cloud Functions checks them', () => {
  assert.deepEqual(functionScaling('g', 'fl_client', {}, 512), { maxInstances: 100, minInstances: 0, concurrency: 1 });
  assert.deepEqual(functionScaling('g', 'fl_client', { max_instances: 4, min_instances: '1', concurrency: 8 }, 2048), { maxInstances: 4, minInstances: 1, concurrency: 8 });
  refused(() => functionScaling('g', 'fl_client', { max_instances: 0 }, 512), /^google cluster g: max_instances of function fl_client must be a whole number ≥ 1, got 0$/);
  refused(() => functionScaling('g', 'fl_client', { max_instances: 2.5 }, 512), /max_instances of function fl_client must be a whole number/);
  refused(() => functionScaling('g', 'fl_client', { min_instances: -1 }, 512), /min_instances of function fl_client must be a whole number ≥ 0/);
  refused(() => functionScaling('g', 'fl_client', { max_instances: 2, min_instances: 3 }, 512), /^google cluster g: min_instances 3 of function fl_client exceeds its max_instances 2$/);
  refused(() => functionScaling('g', 'fl_client', { concurrency: 1001 }, 4096), /concurrency of function fl_client must be a whole number 1–1000, got 1001/);
  refused(() => functionScaling('g', 'fl_client', { concurrency: 2 }, 1024), /concurrency 2 of function fl_client needs at least 1 vCPU.*2048 MB.*it has 1024 MB/);
  refused(() => parseGoogleCluster('g', { max_local_instances: 0 }), /^google cluster g: max_local_instances must be a whole number ≥ 1, got 0$/);
  refused(() => parseGoogleCluster('g', { queue_timeout: 'soon' }), /^google cluster g: queue_timeout must be a number of ms ≥ 0/);
  assert.deepEqual(parseGoogleCluster('g', { max_local_instances: 3, queue_timeout: 100, idle_timeout: 0 }), {
    mode: 'local',
    startupTimeoutMs: 30_000,
    maxLocalInstances: 3,
    queueTimeoutMs: 100,
    idleTimeoutMs: 0,
  });
});
