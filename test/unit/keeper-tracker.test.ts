/**
 * ActivationTracker's own policy, with a scripted provider (the real providers are exercised in the integration
 * and end-to-end tests): transient call errors are retried, outages during polling are ridden out, and an
 * activation with no result by the keeper's deadline ends as timed out.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { ActivationTracker } from '../../src/keeper/tracker.js';
import { ProviderError, type Activation, type Provider } from '../../src/providers/types.js';
import { openStore } from '../../src/store/index.js';
import { RunDirectory } from '../../src/telemetry/run-dir.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'fk-tracker-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function scripted(invokeFailures: number, pollFailures: number, finishes: boolean): Provider & { invokes: number } {
  let polls = 0;
  const p = {
    platform: 'test',
    cluster: 'c1',
    invokes: 0,
    async deploy() {},
    async remove() {},
    async list() {
      return [];
    },
    async invoke() {
      p.invokes++;
      if (p.invokes <= invokeFailures) throw new ProviderError('HTTP 503', 1, true);
      return 'a'.repeat(32);
    },
    async activation(id: string): Promise<Activation> {
      polls++;
      if (polls <= pollFailures) throw new ProviderError('connection refused', 1, true);
      return finishes
        ? { activationId: id, functionName: 'f', status: 'success', startTime: Date.now() - 5, endTime: Date.now(), coldStart: false, result: { numSamples: 3 } }
        : { activationId: id, functionName: 'f', status: 'running', startTime: Date.now(), endTime: null, coldStart: false };
    },
    async close() {},
  };
  return p;
}

test('transient invoke errors are retried; polling rides out an outage; a missing result times out at the deadline', { timeout: 60_000 }, async () => {
  const store = await openStore({ type: 'sqlite', path: ':memory:' });
  const runDir = RunDirectory.create(path.join(dir, 'run'));
  const tracker = new ActivationTracker(store, runDir, 'r', { retries: 3, backoff: () => 1 });
  const req = (provider: Provider, deadlineMs = 10_000) => ({ provider, functionName: 'f', params: {}, round: 1, clientId: 0, attempt: 1, deadlineMs });

  const flaky = scripted(2, 3, true);
  const ok = await (await tracker.invoke(req(flaky))).done;
  assert.equal(ok.ok, true);
  assert.equal(flaky.invokes, 3);
  assert.equal(tracker.callRetries, 2);

  await assert.rejects(tracker.invoke(req(scripted(5, 0, true))), /HTTP 503/);

  // An activation that never ends: given up at the keeper's deadline, not before (if the deadline were not kept,
  // this would wait for ever: the test's timeout ends it).
  const t0 = Date.now();
  const late = await (await tracker.invoke(req(scripted(0, 0, false), 300))).done;
  assert.equal(late.record.status, 'timed out');
  assert.ok(Date.now() - t0 >= 300 && late.record.endTime! - late.record.startTime >= 300, `gave up after ${Date.now() - t0} ms`);
  assert.equal((await store.listActivations('r', 1)).find((a) => a.activationId === late.record.activationId)?.status, 'timed out');
  assert.match(readFileSync(path.join(runDir.dir, 'events.jsonl'), 'utf8'), /"type":"call_retry"/);
  await store.close();
});
