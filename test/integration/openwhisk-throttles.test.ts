/**
 * The namespace throttles of a local OpenWhisk cluster on the wire (429 with the controller's texts, before the
 * action is even looked up, counted in the cluster's faults route), and the keeper's side against it: the OpenWhisk
 * provider's ThrottledError, and the tracker waiting until the cluster takes the call — no call retry used.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import openwhisk from 'openwhisk';
import { startOpenWhiskServer, type OpenWhiskServer } from '../../src/fabric/openwhisk-server.js';
import { ActivationTracker } from '../../src/keeper/tracker.js';
import { OpenWhiskProvider, openWhiskOptions } from '../../src/providers/openwhisk.js';
import { ThrottledError } from '../../src/providers/throttled.js';
import { openStore } from '../../src/store/index.js';
import { RunDirectory } from '../../src/telemetry/run-dir.js';
import { ECHO } from '../fixtures/fabric-actions.js';

const AUTH = '5f0c8a7e-1b2d-4c3e-9f4a-6b7c8d9e0f1a:throttle-test-key';
const BASIC = { Authorization: `Basic ${Buffer.from(AUTH).toString('base64')}`, 'Content-Type': 'application/json' };
const work = mkdtempSync(path.join(os.tmpdir(), 'fk-ow-throttles-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** Runs until the file `gate` exists (at most 50 s): an activation that stays in flight until the test lets it go. */
const HOLD = `const fs = require('fs');
async function main(params) {
  const t0 = Date.now();
  while (!fs.existsSync(params.gate) && Date.now() - t0 < 50000) await new Promise(function (r) { setTimeout(r, 20); });
  return { released: fs.existsSync(params.gate) };
}`;

async function post(server: OpenWhiskServer, name: string, query = ''): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${server.url}/api/v1/namespaces/_/actions/${name}${query}`, { method: 'POST', headers: BASIC, body: '{}' });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function get(server: OpenWhiskServer, p: string): Promise<Record<string, unknown>> {
  const res = await fetch(`${server.url}${p}`, { headers: BASIC });
  assert.equal(res.status, 200, p);
  return (await res.json()) as Record<string, unknown>;
}

test('invocations per minute: past the limit 429 with the controller text, before the action is looked up; counted', async () => {
  const minute = () => Math.floor(Date.now() / 60_000);
  // The windows are the clock's minutes: if one begins between the requests, the run is repeated on a new cluster.
  for (let tries = 1; ; tries++) {
    const server = await startOpenWhiskServer({ label: 'rate', auth: AUTH, memoryMb: 1024, invocationsPerMinute: 2 });
    try {
      const client = openwhisk({ apihost: server.url, api_key: AUTH, namespace: '_' });
      await client.actions.create({ name: 'echo', action: ECHO, kind: 'nodejs:20' } as never);
      const m0 = minute();
      const replies = [];
      for (let i = 0; i < 3; i++) replies.push(await post(server, 'echo'));
      const missing = await post(server, 'nope');
      let viaClient: { statusCode?: number; error?: { error?: string } } | undefined;
      await client.actions.invoke({ name: 'echo' }).catch((e: typeof viaClient) => (viaClient = e));
      if (minute() !== m0 && tries < 3) continue;
      assert.deepEqual(replies.map((r) => r.status), [202, 202, 429]);
      assert.deepEqual(Object.keys(replies[2]!.body).sort(), ['code', 'error']);
      assert.equal(replies[2]!.body.error, 'Too many requests in the last minute (count: 3, allowed: 2).');
      assert.match(String(replies[2]!.body.code), /^[0-9a-f]{32}$/);
      assert.equal(missing.status, 429, 'the throttle is charged before the action is looked up');
      assert.equal(missing.body.error, 'Too many requests in the last minute (count: 4, allowed: 2).');
      assert.equal(viaClient?.statusCode, 429);
      assert.equal(viaClient?.error?.error, 'Too many requests in the last minute (count: 5, allowed: 2).');
      assert.equal(server.faults().throttled, 3);
      assert.equal((await get(server, '/api/v1/fedkeeper/faults')).throttled, 3);
      assert.equal((await get(server, '/api/v1/namespaces/_/limits')).invocationsPerMinute, 2);
      assert.equal(((await get(server, '/')).limits as Record<string, number>).actions_per_minute, 2);
      // Reading is not activating: lists and gets are never throttled.
      assert.ok(Array.isArray(await get(server, '/api/v1/namespaces/_/actions')));
      return;
    } finally {
      await server.close();
    }
  }
});

test('concurrent invocations: 429 while the limit is in flight; the provider says throttled; the tracker waits until taken', { timeout: 120_000 }, async () => {
  const server = await startOpenWhiskServer({ label: 'concurrent', auth: AUTH, memoryMb: 1024, concurrentInvocations: 1 });
  const provider = new OpenWhiskProvider(openWhiskOptions('concurrent', { api_host: server.url, auth: { ow_auth: AUTH } }));
  const store = await openStore({ type: 'sqlite', path: ':memory:' });
  const gate = path.join(work, 'gate');
  try {
    const client = openwhisk({ apihost: server.url, api_key: AUTH, namespace: '_' });
    await client.actions.create({ name: 'hold', action: HOLD, kind: 'nodejs:20' } as never);
    await client.actions.create({ name: 'echo', action: ECHO, kind: 'nodejs:20' } as never);
    const held = await client.actions.invoke({ name: 'hold', params: { gate } }); // in flight until the gate opens

    const r = await post(server, 'echo', '?blocking=true');
    assert.equal(r.status, 429);
    assert.equal(r.body.error, 'Too many concurrent requests in flight (count: 1, allowed: 1).');
    await assert.rejects(
      provider.invoke('echo', {}),
      (e: Error) => e instanceof ThrottledError && e.transient && e.retryAfterMs === undefined && /^openwhisk cluster concurrent: invoking action echo was throttled \(HTTP 429: Too many concurrent requests in flight \(count: 1, allowed: 1\)\.\)$/.test(e.message),
    );

    // The keeper's tracker, with no call retries at all: it waits, repeats, and the call goes through once the
    // held activation has ended.
    const tracker = new ActivationTracker(store, RunDirectory.create(path.join(work, 'run')), 'r', { retries: 0, backoff: () => 1, throttleBackoff: () => 20 });
    const invoked = tracker.invoke({ provider, functionName: 'echo', params: { who: 'paced' }, round: 1, clientId: 0, attempt: 1, deadlineMs: 60_000 });
    while (tracker.throttled < 2) await new Promise((res) => setTimeout(res, 10));
    writeFileSync(gate, 'open');
    const f = await (await invoked).done;
    assert.equal(f.ok, true);
    assert.equal((f.result as { greeting?: string }).greeting, 'hi paced');
    assert.equal(tracker.callRetries, 0);
    assert.equal(server.faults().throttled, 2 + tracker.throttled, 'every 429 the cluster answered was one the tracker counted (plus the two above)');
    const a = await provider.activation(held.activationId);
    assert.equal(a?.status, 'success');
    assert.deepEqual(a?.result, { released: true });
  } finally {
    writeFileSync(gate, 'open');
    await provider.close();
    await store.close();
    await server.close();
  }
});
