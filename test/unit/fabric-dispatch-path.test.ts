/**
 * The per-invocation path of the local OpenWhisk platform: the invoker answers before the run starts (runs start
 * right after the turn, in submission order), and the key check's fast path refuses what the slow one refuses.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { StoredAction } from '../../src/fabric/action-store.js';
import { ActivationStore } from '../../src/fabric/activation-store.js';
import { ClusterAuth } from '../../src/fabric/auth.js';
import { randomHexId } from '../../src/fabric/http.js';
import { Invoker, type ContainerRunner } from '../../src/fabric/invoker.js';
import type { ContainerRunResult } from '../../src/runtime/container-types.js';

const action = { namespace: 'guest', name: 'echo', version: '0.0.1', revision: 1, exec: { kind: 'nodejs:20', code: 'x', binary: false }, parameters: [], annotations: [], limits: { timeout: 1000, memory: 256, logs: 10, concurrency: 1 } } as unknown as StoredAction;

test('invoker: runs start after the turn that submitted them, in submission order; every id comes back first', async () => {
  const started: unknown[] = [];
  const pool: ContainerRunner = {
    run: async (_a, params) => {
      started.push(params.n);
      const now = Date.now();
      return { status: 'success', result: { n: params.n }, startTime: now, endTime: now, waitTimeMs: 0, initTimeMs: 0, coldStart: false, containerId: 'c', logs: [] } satisfies ContainerRunResult;
    },
  };
  const store = new ActivationStore();
  const invoker = new Invoker(pool, store, { namespace: 'guest', subject: 'guest', apiKey: 'k' });
  const runs = [0, 1, 2, 3, 4].map((n) => invoker.start(action, { n }, randomHexId()));
  assert.deepEqual(started, []); // nothing ran while the ids were handed out
  assert.equal(invoker.active, 5);
  assert.equal(new Set(runs.map((r) => r.activationId)).size, 5);
  const recs = await Promise.all(runs.map((r) => r.done));
  assert.deepEqual(started, [0, 1, 2, 3, 4]);
  assert.deepEqual(recs.map((r) => r.response.result.n), [0, 1, 2, 3, 4]);
  assert.equal(invoker.active, 0);
  assert.equal(store.size, 5);
});

test('invoker: a pool that throws at submission ends the activation as a whisk internal error', async () => {
  const pool: ContainerRunner = {
    run: () => {
      throw new Error('pool broken');
    },
  };
  const invoker = new Invoker(pool, new ActivationStore(), { namespace: 'guest', subject: 'guest', apiKey: 'k' });
  const rec = await invoker.start(action, {}, randomHexId()).done;
  assert.equal(rec.response.status, 'whisk internal error');
  assert.match(String(rec.response.result.error), /pool broken/);
});

test('ids from the pool: 32 lowercase hex characters, all different across pool refills', () => {
  const ids = Array.from({ length: 1000 }, () => randomHexId());
  for (const id of ids) assert.match(id, /^[0-9a-f]{32}$/);
  assert.equal(new Set(ids).size, ids.length);
});

test('key check: the exact header passes; a wrong key of the same length, other schemes and spellings as before', () => {
  const auth = new ClusterAuth('uuid-1:the-key', 'guest');
  const header = (k: string) => `Basic ${Buffer.from(k).toString('base64')}`;
  auth.check(header('uuid-1:the-key'));
  auth.check(`basic   ${Buffer.from('uuid-1:the-key').toString('base64')}`); // the slow path still reads other spellings
  assert.throws(() => auth.check(header('uuid-1:the-kez')), /invalid/);
  assert.throws(() => auth.check(header('uuid-2:the-key')), /invalid/);
  assert.throws(() => auth.check(undefined), /not supplied|required/i);
  assert.throws(() => auth.check('Bearer x'), /not supplied|required/i);
});
