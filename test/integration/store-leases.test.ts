/**
 * Run leases and the run list on both stores: a lease is taken only when free or from the token it replaces
 * (compare-and-set), renewed only by its holder, released only by it; listRuns reports sizes, rounds, updates and
 * the lease; deleteRun removes the lease with the run. Also the liveness rule of keeper/lease.ts and HeldLease.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { HeldLease, holderAlive, LEASE_TTL_MS, LeaseHeldError, pidAlive, SAME_HOST_TTL_MS } from '../../src/keeper/lease.js';
import { openPostgresStore } from '../../src/store/postgres-store.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import type { ParameterStore, RunLease } from '../../src/store/types.js';
import { startTestPostgres } from '../fixtures/postgres.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'fk-leases-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const weights = { shapes: [[250]], data: new Float32Array(250).fill(0.5) };

/** A pid that certainly does not exist now: a child that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(r.stdout.toString());
}

async function exercise(store: ParameterStore): Promise<void> {
  const now = Date.now();
  for (const [i, runId] of ['old', 'new'].entries()) {
    await store.createRun({ runId, name: 'n', configJson: '{}', status: 'running', createdAt: now + i, updatedAt: now + i });
  }
  const lease = (token: string, pid = process.pid): RunLease => ({ runId: 'new', token, pid, host: os.hostname(), acquiredAt: now, heartbeatAt: now });

  assert.equal(await store.getLease('new'), undefined);
  assert.equal(await store.acquireLease(lease('t1')), true, 'a free lease is taken');
  assert.equal(await store.acquireLease(lease('t2')), false, 'a held lease is not taken without naming its token');
  assert.equal(await store.acquireLease(lease('t2'), 'wrong'), false, 'nor with a token that is not the holder');
  assert.equal((await store.getLease('new'))?.token, 't1');
  assert.equal(await store.renewLease('new', 't1', now + 5000), true);
  assert.equal((await store.getLease('new'))?.heartbeatAt, now + 5000);
  assert.equal(await store.acquireLease(lease('t2', 4242), 't1'), true, 'taken over from the token it replaces');
  assert.deepEqual(await store.getLease('new'), lease('t2', 4242));
  assert.equal(await store.renewLease('new', 't1', now + 9000), false, 'the old holder finds it lost');
  await store.releaseLease('new', 't1');
  assert.equal((await store.getLease('new'))?.token, 't2', 'a release by a former holder changes nothing');

  // The run list: newest first, sizes from what is stored, the lease with it.
  await store.putGlobalWeights('new', 0, weights);
  await store.putGlobalWeights('new', 1, weights);
  await store.putClientUpdate({ runId: 'new', round: 2, clientId: 0, weights, numSamples: 3, metrics: {}, attempt: 1 });
  await store.putPartition('new', 0, new Uint32Array(100));
  const runs = await store.listRuns();
  assert.deepEqual(runs.map((r) => r.runId), ['new', 'old']);
  const [n, o] = runs;
  assert.equal(n!.rounds, 1);
  assert.equal(n!.updates, 1);
  assert.equal(n!.lease?.token, 't2');
  assert.equal(n!.lease?.pid, 4242);
  // three weight vectors of 250 float32 (1000 bytes each plus the codec header) and 400 bytes of partition
  assert.ok(n!.bytes >= 3 * 1000 + 400 && n!.bytes < 3 * 1200 + 500, `size ${n!.bytes}`);
  assert.equal(o!.rounds, null);
  assert.equal(o!.bytes, 0);
  assert.equal(o!.lease, undefined);

  await store.deleteRun('new');
  assert.equal(await store.getLease('new'), undefined, 'the lease goes with its run');
  assert.deepEqual((await store.listRuns()).map((r) => r.runId), ['old']);
}

test('SQLite: lease compare-and-set, run list, deleteRun', async () => {
  const s = new SqliteStore(path.join(dir, 'store.sqlite'));
  try {
    await exercise(s);
  } finally {
    await s.close();
  }
});

test('PostgreSQL: lease compare-and-set, run list, deleteRun', async () => {
  const pg = await startTestPostgres();
  const s = await openPostgresStore(pg.url, pg.storeOptions);
  try {
    await exercise(s);
  } finally {
    await s.close();
    await pg.close();
  }
});

test('holderAlive: this host by its pid (a reused pid only with a fresh enough heartbeat), another host by its heartbeat', () => {
  const now = Date.now();
  const host = os.hostname();
  assert.equal(pidAlive(process.pid), true);
  const dead = deadPid();
  assert.equal(pidAlive(dead), false);
  assert.equal(holderAlive({ pid: process.pid, host, heartbeatAt: now }, now), true);
  assert.equal(holderAlive({ pid: dead, host, heartbeatAt: now }, now), false, 'a killed keeper is dead at once');
  assert.equal(holderAlive({ pid: process.pid, host, heartbeatAt: now - LEASE_TTL_MS * 2 }, now), true, 'a suspended keeper on this host still lives');
  assert.equal(holderAlive({ pid: process.pid, host, heartbeatAt: now - SAME_HOST_TTL_MS - 1 }, now), false, 'so old a heartbeat: the pid is someone else now');
  assert.equal(holderAlive({ pid: dead, host: 'elsewhere', heartbeatAt: now }, now), true, 'another host: the pid says nothing');
  assert.equal(holderAlive({ pid: process.pid, host: 'elsewhere', heartbeatAt: now - LEASE_TTL_MS - 1 }, now), false);
});

test('HeldLease: refused while the holder lives (one line naming pid and host), taken over from a dead one, fenced', async () => {
  const s = new SqliteStore(path.join(dir, 'held.sqlite'));
  try {
    const now = Date.now();
    await s.createRun({ runId: 'r', name: 'n', configJson: '{}', status: 'running', createdAt: now, updatedAt: now });
    const first = await HeldLease.acquire(s, 'r', '--resume X');
    await assert.rejects(HeldLease.acquire(s, 'r', '--resume X'), (e: unknown) => {
      assert.ok(e instanceof LeaseHeldError);
      assert.equal(e.exitCode, 2);
      assert.match(e.message, new RegExp(`^--resume X: run r is still driven by its keeper \\(pid ${process.pid} on host ${os.hostname().replace(/[.]/g, '\\.')}, last heartbeat \\d+ s ago\\)`));
      assert.doesNotMatch(e.message, /\n/);
      return true;
    });
    await first.release();
    assert.equal(await s.getLease('r'), undefined, 'released');

    // A keeper that died holding the lease: taken over, and the new holder knows from whom.
    const dead = deadPid();
    await s.acquireLease({ runId: 'r', token: 'dead', pid: dead, host: os.hostname(), acquiredAt: now, heartbeatAt: now });
    const next = await HeldLease.acquire(s, 'r', '--resume X');
    assert.equal(next.tookOver?.pid, dead);
    assert.equal((await s.getLease('r'))?.pid, process.pid);
    next.check();
    await next.release();
  } finally {
    await s.close();
  }
});

test('HeldLease: a keeper whose lease was taken over learns it at its next heartbeat and must stop', async () => {
  const s = new SqliteStore(path.join(dir, 'fenced.sqlite'));
  try {
    const now = Date.now();
    await s.createRun({ runId: 'r', name: 'n', configJson: '{}', status: 'running', createdAt: now, updatedAt: now });
    let told: RunLease | undefined;
    const held = await HeldLease.acquire(s, 'r', 'run r', (by) => (told = by));
    // Another keeper (on another host, say) took it over.
    assert.equal(await s.acquireLease({ runId: 'r', token: 'other', pid: 77, host: 'elsewhere', acquiredAt: now, heartbeatAt: now }, held.lease.token), true);
    for (let i = 0; i < 400 && !held.lost; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(held.lost?.host, 'elsewhere');
    assert.equal(told?.pid, 77);
    assert.throws(() => held.check(), /another keeper took it over \(pid 77 on host elsewhere/);
    await held.release();
    assert.equal((await s.getLease('r'))?.token, 'other', 'the lost lease is left to its new holder');
  } finally {
    await s.close();
  }
});
