/**
 * A local OpenWhisk cluster's own `/metrics`: OpenWhisk user-events' metric names, labels and types, counted from
 * the activations it ran (cold and warm, success and application error) and the requests its throttles refused;
 * two clusters in one process keep their own counts.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import openwhisk from 'openwhisk';
import { startOpenWhiskServer, type OpenWhiskServer } from '../../src/fabric/openwhisk-server.js';
import { CLUSTER_PROFILES, poolProfile } from '../../src/fabric/profiles.js';
import { APP_ERROR, ECHO } from '../fixtures/fabric-actions.js';

const AUTH = 'aaaaaaaa-1111-2222-3333-444444444444:metrics-test-key';
let a: OpenWhiskServer;
let b: OpenWhiskServer;

before(async () => {
  a = await startOpenWhiskServer({ label: 'metrics-a', auth: AUTH, profile: poolProfile(CLUSTER_PROFILES.cloud), memoryMb: 2048, seed: 1, concurrentInvocations: 1 });
  b = await startOpenWhiskServer({ label: 'metrics-b', auth: AUTH, profile: poolProfile(CLUSTER_PROFILES.cloud), memoryMb: 2048, seed: 1 });
});
after(() => Promise.all([a?.close(), b?.close()]));

/** The value of one sample line (`name{labels} value`), labels in the order given. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

async function scrape(s: OpenWhiskServer): Promise<string> {
  const res = await fetch(`${s.url}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return res.text();
}

test('GET /metrics: activations, cold starts, statuses, waits, init and run times with user-events names and labels', async () => {
  const ow = openwhisk({ apihost: a.url, api_key: AUTH, namespace: '_' });
  await ow.actions.create({ name: 'echo', action: ECHO, kind: 'nodejs:20', limits: { memory: 256 } } as never);
  await ow.actions.create({ name: 'oops', action: APP_ERROR, kind: 'nodejs:20' } as never);
  for (let i = 0; i < 3; i++) await ow.actions.invoke({ name: 'echo', blocking: true, params: { who: i } });
  await ow.actions.invoke({ name: 'oops', blocking: true }).catch(() => undefined);
  const text = await scrape(a);
  const echo = 'namespace="guest",initiator="guest",action="echo"';
  assert.equal(sample(text, `openwhisk_action_activations_total{${echo},kind="nodejs:20",memory="256"}`), 3);
  assert.equal(sample(text, `openwhisk_action_coldStarts_total{${echo}}`), 1, 'one container, warm after the first');
  assert.equal(sample(text, `openwhisk_action_status{${echo},status="success"}`), 3);
  assert.equal(sample(text, 'openwhisk_action_status{namespace="guest",initiator="guest",action="oops",status="application_error"}'), 1);
  assert.equal(sample(text, `openwhisk_action_duration_seconds_count{${echo}}`), 3);
  assert.equal(sample(text, `openwhisk_action_waitTime_seconds_count{${echo}}`), 3);
  assert.equal(sample(text, `openwhisk_action_initTime_seconds_count{${echo}}`), 1);
  assert.ok(sample(text, `openwhisk_action_initTime_seconds_sum{${echo}}`)! > 0);
  assert.equal(sample(text, `openwhisk_action_memory{${echo}}`), 256);
  assert.match(text, /^# TYPE openwhisk_action_activations_total counter$/m);
  assert.match(text, /^# TYPE openwhisk_action_duration_seconds histogram$/m);
  assert.match(text, new RegExp(`^openwhisk_action_duration_seconds_bucket\\{le="0.075",${echo}\\} \\d+$`, 'm'), "the Java client's default buckets");
  // the same activations as the API lists them
  const listed = await ow.activations.list({ name: 'echo', limit: 10 } as never);
  assert.equal((listed as unknown[]).length, 3);

  // the other cluster in this process has counted nothing
  const other = await scrape(b);
  assert.doesNotMatch(other, /^openwhisk_action_activations_total\{/m);
  assert.equal((await fetch(`${a.url}/metrics`, { method: 'POST' })).status, 405);
});

test('throttled requests count in openwhisk_action_limit_concurrent_total', async () => {
  const ow = openwhisk({ apihost: a.url, api_key: AUTH, namespace: '_' });
  await ow.actions.create({ name: 'slow', action: 'async function main() { await new Promise((r) => setTimeout(r, 1500)); return {}; }', kind: 'nodejs:20' } as never);
  const first = await ow.actions.invoke({ name: 'slow' }); // non-blocking: in flight
  const refused = await ow.actions.invoke({ name: 'slow' }).then(
    () => undefined,
    (e: { statusCode?: number }) => e.statusCode,
  );
  assert.equal(refused, 429);
  assert.equal(sample(await scrape(a), 'openwhisk_action_limit_concurrent_total{namespace="guest"}'), 1);
  assert.ok(first.activationId);
});
