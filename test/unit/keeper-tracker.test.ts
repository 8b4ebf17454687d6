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

test("an error object's message is shown, never [object Object]; a relayed attempt is recorded under the client's cluster, failed or not", async () => {
  const { errorText } = await import('../../src/providers/error-text.js');
  assert.equal(errorText({ name: 'Error', message: 'boom', stack: 'Error: boom\n at x' }), 'boom');
  assert.equal(errorText({ name: 'TypeError', message: 'x is not a function' }), 'TypeError: x is not a function');
  assert.equal(errorText({ errorType: 'Runtime.ExitError', errorMessage: 'exited' }), 'Runtime.ExitError: exited');
  assert.equal(errorText({ error: { message: 'nested' } }), 'nested');
  assert.equal(errorText('plain'), 'plain');
  assert.equal(errorText({ code: 7 }), '{"code":7}');

  const store = await openStore({ type: 'sqlite', path: ':memory:' });
  const runDir = RunDirectory.create(path.join(dir, 'relay-run'));
  const tracker = new ActivationTracker(store, runDir, 'r');
  const relay = (result: Record<string, unknown>, status: Activation['status']): Provider => ({
    ...scripted(0, 0, true),
    platform: 'local',
    cluster: 'server',
    async activation(id: string): Promise<Activation> {
      return { activationId: id, functionName: 'fl_invoker_weights_update', status, startTime: Date.now() - 5, endTime: Date.now(), coldStart: false, result };
    },
  });
  const target = { platform: 'google', cluster: 'gcf', functionName: 'fl_client', settings: {} };
  const req = (provider: Provider, attempt: number) => ({ provider, functionName: 'fl_invoker_weights_update', params: { target }, round: 1, clientId: 4, attempt, deadlineMs: 10_000 });
  const failed = await (await tracker.invoke(req(relay({ error: { name: 'Error', message: 'client 4 on google:gcf/fl_client: application error: bad' } }, 'application error'), 1))).done;
  assert.equal(failed.record.error, 'client 4 on google:gcf/fl_client: application error: bad');
  const done = await (await tracker.invoke(req(relay({ numSamples: 3, relayedActivationId: 'b'.repeat(32) }, 'success'), 2))).done;
  assert.equal(done.ok, true);
  runDir.flush(); // rows are written at the end of the turn that produced them; this one has not ended yet
  const [head, ...rows] = readFileSync(path.join(dir, 'relay-run', 'activations', '1.csv'), 'utf8').trim().split('\n');
  const cols = head!.split(',');
  const recs = rows.map((l) => Object.fromEntries(l.split(',').map((v, i) => [cols[i], v])));
  assert.deepEqual(recs.map((x) => [x.attempt, `${x.platform}:${x.cluster}`, x.via!.replace(/[0-9a-f]{32}$/, 'ID')]), [
    ['1', 'google:gcf', 'local:server/ID'],
    ['2', 'google:gcf', 'local:server/ID'],
  ]);
  assert.equal(recs[1]!.activation_id, 'b'.repeat(32), "the success names the client's own activation");
  await store.close();
});
