/**
 * Throttles on both sides, with a scripted clock and provider: the controller's namespace throttles (one-minute
 * windows of the clock that count every request, concurrency checked after the rate), and the keeper's pacing
 * (a throttled call waits and is repeated until taken, counted apart: no call retry, no client attempt).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { checkControllerSettings, resolveProfile } from '../../src/fabric/profiles.js';
import { parseFabricSpec } from '../../src/fabric/spec.js';
import { NamespaceThrottles } from '../../src/fabric/throttles.js';
import { ActivationTracker, throttleBackoffMs } from '../../src/keeper/tracker.js';
import { ThrottledError } from '../../src/providers/throttled.js';
import { ProviderError, type Activation, type Provider } from '../../src/providers/types.js';
import { openStore } from '../../src/store/index.js';
import { RunDirectory } from '../../src/telemetry/run-dir.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'fk-throttles-unit-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('invocations per minute: counted in windows of the clock minute, refused requests count too', () => {
  let now = 10 * 60_000 + 58_000;
  const t = new NamespaceThrottles({ invocationsPerMinute: 2 }, () => 0, () => now);
  assert.equal(t.check(), undefined);
  assert.equal(t.check(), undefined);
  assert.equal(t.check(), 'Too many requests in the last minute (count: 3, allowed: 2).');
  assert.equal(t.check(), 'Too many requests in the last minute (count: 4, allowed: 2).');
  now += 2000; // the next minute of the clock: a new window, whatever came 2 s before
  assert.equal(t.check(), undefined);
  assert.equal(t.throttled, 2);
  assert.equal(t.active, true);
  assert.equal(new NamespaceThrottles({}, () => 1000).active, false);
  assert.equal(new NamespaceThrottles({}, () => 1000).check(), undefined, 'no limits: no throttle');
});

test('concurrent invocations: refused while as many are in flight; the rate is charged first', () => {
  let inFlight = 1;
  const c = new NamespaceThrottles({ concurrentInvocations: 2 }, () => inFlight);
  assert.equal(c.check(), undefined);
  inFlight = 2;
  assert.equal(c.check(), 'Too many concurrent requests in flight (count: 2, allowed: 2).');
  const both = new NamespaceThrottles({ invocationsPerMinute: 1, concurrentInvocations: 1 }, () => inFlight, () => 5 * 60_000);
  inFlight = 1;
  assert.equal(both.check(), 'Too many concurrent requests in flight (count: 1, allowed: 1).');
  inFlight = 0;
  assert.equal(both.check(), 'Too many requests in the last minute (count: 2, allowed: 1).', 'the request refused for concurrency was counted');
});

test('profile fields: limits and throttles are checked with one line naming the field; Lambda profiles have none', () => {
  const AUTH = 'aaaaaaaa-0000-0000-0000-000000000001:k';
  assert.deepEqual(checkControllerSettings({}), { memory: { min: 128, max: 512 }, timeout: { min: 100, max: 300_000 }, concurrency: { min: 1, max: 1 }, logs: { min: 0, max: 10 } });
  assert.deepEqual(checkControllerSettings({ limits: { memory: { max: 2048 }, concurrency: { max: 10 } } }).memory, { min: 128, max: 2048 });
  const c = resolveProfile({ base: 'cloud', limits: { memory: { max: 2048 } }, invocationsPerMinute: 60, concurrentInvocations: 30 });
  assert.deepEqual([c.limits, c.invocationsPerMinute, c.concurrentInvocations], [{ memory: { max: 2048 } }, 60, 30]);
  assert.equal('limits' in resolveProfile('cloud'), false, 'unset: nothing added to the character');
  const bad = (profile: unknown, re: RegExp) => assert.throws(() => parseFabricSpec([{ name: 'c', auth: AUTH, profile }]), (e: Error) => re.test(e.message) && !e.message.includes('\n'), JSON.stringify(profile));
  bad({ limits: { memory: { min: 600 } } }, /^fabric spec: 0\.profile: limits\.memory: min \(600\) must be ≤ max \(512\)/);
  bad({ limits: { memory: { max: 16_384 } } }, /^fabric spec: 0\.profile: limits\.memory\.max \(16384 MB\) must be ≤ memoryMb \(8192 MB/);
  bad({ limits: { cpu: { max: 2 } } }, /^fabric spec: 0\.profile\.limits: .*cpu/);
  bad({ limits: { timeout: { max: 1.5 } } }, /^fabric spec: 0\.profile\.limits\.timeout\.max: /);
  bad({ invocationsPerMinute: 0 }, /^fabric spec: 0\.profile\.invocationsPerMinute: /);
  bad({ concurrentInvocations: 'many' }, /^fabric spec: 0\.profile\.concurrentInvocations: /);
  assert.throws(
    () => parseFabricSpec([{ kind: 'lambda', name: 'l', accessKeyId: 'AKIA1', secretAccessKey: 's', profile: { invocationsPerMinute: 5 } }]),
    (e: Error) => /^fabric spec: 0\.profile: .*invocationsPerMinute/.test(e.message),
  );
});

/** A provider whose invoke is throttled `times` times (with `retryAfterMs`, if given), then taken. */
function throttling(times: number, retryAfterMs?: number): Provider & { invokes: number } {
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
      if (p.invokes <= times) throw new ThrottledError('HTTP 429: Too many requests in the last minute (count: 61, allowed: 60).', retryAfterMs);
      return 'a'.repeat(32);
    },
    async activation(id: string): Promise<Activation> {
      return { activationId: id, functionName: 'f', status: 'success', startTime: Date.now() - 5, endTime: Date.now(), coldStart: false, result: {} };
    },
    async close() {},
  };
  return p;
}

test('the keeper paces itself: a throttled invoke waits and is repeated until taken, without call retries or attempts', async () => {
  const store = await openStore({ type: 'sqlite', path: ':memory:' });
  const runDir = RunDirectory.create(path.join(dir, 'run'));
  const waits: number[] = [];
  // No call retries at all: a throttled call must not need one.
  const tracker = new ActivationTracker(store, runDir, 'r', { retries: 0, backoff: () => 1, throttleBackoff: (n) => (waits.push(n), 1) });
  const req = (provider: Provider) => ({ provider, functionName: 'f', params: {}, round: 1, clientId: 0, attempt: 1, deadlineMs: 10_000 });

  const busy = throttling(5);
  const f = await (await tracker.invoke(req(busy))).done;
  assert.equal(f.ok, true);
  assert.equal(f.record.attempt, 1, 'the same attempt');
  assert.equal(busy.invokes, 6);
  assert.equal(tracker.throttled, 5);
  assert.equal(tracker.callRetries, 0);
  assert.deepEqual(waits, [1, 2, 3, 4, 5], 'the backoff grows with each throttle in a row');

  // A Retry-After the platform gave is what the call waits, not the keeper's backoff.
  const told = throttling(1, 30);
  await (await tracker.invoke(req(told))).done;
  assert.equal(waits.length, 5, 'no backoff of its own when the platform said how long');
  const events = readFileSync(path.join(runDir.dir, 'events.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const throttled = events.filter((e) => e.type === 'call_throttled');
  assert.equal(throttled.length, 6);
  assert.equal(throttled.at(-1).wait_ms, 30);
  assert.ok(!events.some((e) => e.type === 'call_retry'));

  // Other transient errors still use call retries (none here: it fails at once).
  const down: Provider = { ...throttling(0), invoke: () => Promise.reject(new ProviderError('HTTP 503', 1, true)) };
  await assert.rejects(tracker.invoke(req(down)), /HTTP 503/);

  // Once the run is over, a throttled call is given up instead of waiting on.
  tracker.stop();
  await assert.rejects(tracker.invoke(req(throttling(1))), (e: Error) => e instanceof ProviderError && /the run ended while the platform was throttling/.test(e.message));
  await store.close();
});

test("the default backoff after a throttle grows from 250 ms to 4 s, jittered within its upper half", () => {
  assert.deepEqual([1, 2, 3, 4, 5, 6, 10].map((n) => throttleBackoffMs(n, () => 1)), [250, 500, 1000, 2000, 4000, 4000, 4000]);
  assert.deepEqual([1, 5].map((n) => throttleBackoffMs(n, () => 0)), [125, 2000]);
});
