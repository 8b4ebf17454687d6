/**
 * The local OpenWhisk cluster driven by the official `openwhisk` client, as FedKeeper's provider drives a real
 * cluster. Every body is checked against the schemas written from the OpenWhisk swagger.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import openwhisk from 'openwhisk';
import type { z } from 'zod';
import { Invoker } from '../../src/fabric/invoker.js';
import { ActivationStore, activationJson } from '../../src/fabric/activation-store.js';
import { ActionStore } from '../../src/fabric/action-store.js';
import { startFabric } from '../../src/fabric/main.js';
import { startOpenWhiskServer, type OpenWhiskServer } from '../../src/fabric/openwhisk-server.js';
import { CLUSTER_PROFILES, poolProfile } from '../../src/fabric/profiles.js';
import {
  ActionMetaSchema,
  ActionSchema,
  ActivationBriefSchema,
  ActivationIdSchema,
  ActivationLogsSchema,
  ActivationResultSchema,
  ActivationSchema,
  ErrorMessageSchema,
} from '../../src/fabric/schemas.js';
import { APP_ERROR, CRASH, ECHO, ECHO_V2, NOT_AN_OBJECT, SLEEP, zipAction } from '../fixtures/fabric-actions.js';

const AUTH = '23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP';
type Activation = z.infer<typeof ActivationSchema>;
interface OwError {
  name: string;
  statusCode?: number;
  error?: unknown;
}

let cloud: OpenWhiskServer;
let ow: openwhisk.Client;

before(async () => {
  // Its operator raised the concurrency limit (stock: 1) for the per-action concurrency test.
  cloud = await startOpenWhiskServer({ label: 'cloud-test', auth: AUTH, profile: poolProfile(CLUSTER_PROFILES.cloud), memoryMb: 4096, seed: 1, limits: { concurrency: { max: 3 } } });
  ow = openwhisk({ apihost: cloud.url, api_key: AUTH, namespace: '_' });
});
after(() => cloud?.close());

/** Parses with the schema (throws on mismatch) and returns the typed value. */
function valid<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  const r = schema.safeParse(body);
  assert.ok(r.success, `body does not match the schema: ${r.success ? '' : JSON.stringify(r.error.issues)}\n${JSON.stringify(body)}`);
  return r.data;
}

async function owError(p: Promise<unknown>, status: number): Promise<OwError> {
  try {
    await p;
  } catch (e) {
    const err = e as OwError;
    assert.equal(err.name, 'OpenWhiskError');
    assert.equal(err.statusCode, status, `expected HTTP ${status}, got ${err.statusCode}: ${JSON.stringify(err.error)}`);
    return err;
  }
  assert.fail(`expected HTTP ${status}, the call succeeded`);
}

async function errorBody(p: Promise<unknown>, status: number, message?: RegExp): Promise<void> {
  const err = await owError(p, status);
  const body = valid(ErrorMessageSchema, err.error);
  assert.match(body.code ?? '', /^[0-9a-f]{32}$/);
  if (message) assert.match(body.error, message);
}

/** Polls `activations.get` until the activation exists (404 while it runs, as in OpenWhisk). */
async function waitForActivation(id: string, timeoutMs = 20_000): Promise<Activation> {
  const t0 = Date.now();
  for (;;) {
    try {
      return valid(ActivationSchema, await ow.activations.get({ name: id }));
    } catch (e) {
      if ((e as OwError).statusCode !== 404 || Date.now() - t0 > timeoutMs) throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

async function invokeBlocking(name: string, params: Record<string, unknown> = {}, client = ow): Promise<Activation> {
  return valid(ActivationSchema, await client.actions.invoke({ name, params, blocking: true }));
}

function annotation(a: { annotations?: { key: string; value: unknown }[] | undefined }, key: string): unknown {
  return a.annotations?.find((kv) => kv.key === key)?.value;
}

async function create(name: string, code: string | Buffer, extra: Record<string, unknown> = {}): Promise<void> {
  valid(ActionSchema, await ow.actions.create({ name, action: code, kind: 'nodejs:20', ...extra } as never));
}

describe('actions', () => {
  test('create a JS action: 200 with the action record, code and the annotations the controller adds', async () => {
    const a = valid(
      ActionSchema,
      await ow.actions.create({
        name: 'echo',
        action: ECHO,
        kind: 'nodejs:20',
        params: { who: 'world' },
        annotations: { team: 'fl' },
        limits: { timeout: 10_000, memory: 256, concurrency: 1 },
      } as never),
    );
    assert.equal(a.namespace, 'guest');
    assert.equal(a.name, 'echo');
    assert.equal(a.version, '0.0.1');
    assert.equal(a.exec.kind, 'nodejs:20');
    assert.equal(a.exec.binary, false);
    assert.equal(a.exec.code, ECHO, 'the controller answers a PUT with the whole action, code included');
    assert.deepEqual(a.parameters, [{ key: 'who', value: 'world' }]);
    assert.deepEqual(a.annotations, [
      { key: 'team', value: 'fl' },
      { key: 'provide-api-key', value: false },
      { key: 'exec', value: 'nodejs:20' },
    ]);
    assert.deepEqual(a.limits, { timeout: 10_000, memory: 256, logs: 10, concurrency: 1 });
    assert.equal(a.publish, false);
    assert.equal(typeof a.updated, 'number');
  });

  test('create again without overwrite: 409', async () => {
    await errorBody(ow.actions.create({ name: 'echo', action: ECHO, kind: 'nodejs:20' } as never), 409, /^resource already exists$/);
  });

  test('update (overwrite, kind nodejs:default) bumps the version and keeps parameters and limits', async () => {
    const a = valid(ActionSchema, await ow.actions.update({ name: 'echo', action: ECHO_V2 } as never));
    assert.equal(a.version, '0.0.2');
    assert.equal(a.exec.kind, 'nodejs:20');
    assert.deepEqual(a.parameters, [{ key: 'who', value: 'world' }]);
    assert.equal(a.limits.timeout, 10_000);
    const r = await invokeBlocking('echo');
    assert.deepEqual(r.response.result, { greeting: 'v2 world' });
    assert.equal(r.version, '0.0.2');
    valid(ActionSchema, await ow.actions.update({ name: 'echo', action: ECHO } as never));
  });

  test('get returns the code; code=false leaves it out', async () => {
    const a = valid(ActionSchema, await ow.actions.get({ name: 'echo' }));
    assert.equal(a.exec.code, ECHO);
    const b = valid(ActionSchema, await ow.actions.get({ name: 'echo', code: false } as never));
    assert.equal(b.exec.code, undefined);
    await errorBody(ow.actions.get({ name: 'nope' }), 404, /^The requested resource does not exist\.$/);
  });

  test('list, with limit and skip', async () => {
    await create('listed-a', ECHO);
    await create('listed-b', ECHO);
    const all = (await ow.actions.list()) as unknown[];
    const metas = all.map((x) => valid(ActionMetaSchema, x));
    for (const n of ['echo', 'listed-a', 'listed-b']) assert.ok(metas.some((m) => m.name === n), n);
    assert.equal(metas[0]!.name, 'listed-b', 'newest first');
    const page = (await ow.actions.list({ limit: 1, skip: 1 })) as unknown[];
    assert.equal(page.length, 1);
    assert.equal(valid(ActionMetaSchema, page[0]).name, metas[1]!.name);
  });

  test('delete answers the record; then invoke and get are 404', async () => {
    await create('doomed', ECHO);
    const gone = valid(ActionSchema, await ow.actions.delete({ name: 'doomed' }));
    assert.equal(gone.name, 'doomed');
    await errorBody(ow.actions.invoke({ name: 'doomed', blocking: false }), 404);
    await errorBody(ow.actions.get({ name: 'doomed' }), 404);
    await errorBody(ow.actions.delete({ name: 'doomed' }), 404);
  });

  test('a wrong key is refused with 401', async () => {
    const bad = openwhisk({ apihost: cloud.url, api_key: `${AUTH.split(':')[0]}:wrong`, namespace: '_' });
    await errorBody(bad.actions.list(), 401, /^The supplied authentication is invalid$/);
    await errorBody(bad.actions.invoke({ name: 'echo' }), 401);
    await errorBody(bad.activations.list(), 401);
  });
});

describe('invocations and activations', () => {
  test('non-blocking invoke: 202 with an id, the activation appears when it ends', async () => {
    const { activationId } = valid(ActivationIdSchema, await ow.actions.invoke({ name: 'echo', params: { who: 'you' } }));
    assert.match(activationId, /^[0-9a-f]{32}$/);
    const a = await waitForActivation(activationId);
    assert.equal(a.activationId, activationId);
    assert.equal(a.name, 'echo');
    assert.equal(a.namespace, 'guest');
    assert.equal(a.subject, 'guest');
    assert.ok(!('statusCode' in a), 'a full activation has no statusCode (only the brief records of a list do)');
    assert.deepEqual(a.response, { status: 'success', success: true, result: a.response.result, size: a.response.size });
    assert.equal((a.response.result as { greeting: string }).greeting, 'hi you');
    assert.ok(a.end! >= a.start && a.duration === a.end! - a.start);
    assert.equal(annotation(a, 'path'), 'guest/echo');
    assert.equal(annotation(a, 'kind'), 'nodejs:20');
    assert.deepEqual(annotation(a, 'limits'), { timeout: 10_000, memory: 256, logs: 10, concurrency: 1 });
    assert.equal(typeof annotation(a, 'waitTime'), 'number');
  });

  test('blocking invoke: 200 with the record; default parameters fill in; cold start has initTime, warm not', async () => {
    await create('temp', ECHO, { params: { who: 'default' } });
    const cold = await invokeBlocking('temp');
    assert.equal(cold.response.status, 'success');
    assert.equal((cold.response.result as { greeting: string }).greeting, 'hi default');
    assert.equal(typeof annotation(cold, 'initTime'), 'number');
    assert.equal(typeof annotation(cold, 'waitTime'), 'number');
    const warm = await invokeBlocking('temp', { who: 'given' });
    assert.equal((warm.response.result as { greeting: string }).greeting, 'hi given');
    assert.equal(annotation(warm, 'initTime'), undefined);
    assert.equal(typeof annotation(warm, 'waitTime'), 'number');
  });

  test('blocking application error: 502, the client throws with the activation in error.error', async () => {
    await create('apperr', APP_ERROR);
    const err = await owError(ow.actions.invoke({ name: 'apperr', params: { x: 7 }, blocking: true }), 502);
    const a = valid(ActivationSchema, err.error);
    assert.ok(!('statusCode' in a) && !('statusCode' in a.response));
    assert.equal(a.response.status, 'application error');
    assert.equal(a.response.success, false);
    assert.deepEqual(a.response.result, { error: 'bad input: 7' });
  });

  test('blocking with result: just the result', async () => {
    const r = await ow.actions.invoke({ name: 'echo', params: { who: 'r' }, blocking: true, result: true });
    assert.equal((r as { greeting: string }).greeting, 'hi r');
    assert.equal((r as { activationId?: string }).activationId, undefined);
  });

  test('result and logs of an activation', async () => {
    const a = await invokeBlocking('echo', { who: 'logger' });
    const res = valid(ActivationResultSchema, await ow.activations.result({ name: a.activationId }));
    assert.deepEqual(Object.keys(res).sort(), ['result', 'size', 'status', 'success']);
    assert.equal(res.status, 'success');
    assert.deepEqual(res.result, a.response.result);
    const logs = valid(ActivationLogsSchema, await ow.activations.logs({ name: a.activationId }));
    assert.ok(logs.logs!.some((l) => l.includes('hello logger')), JSON.stringify(logs.logs));
    await errorBody(ow.activations.get({ name: '0'.repeat(32) }), 404);
    await errorBody(ow.activations.logs({ name: '0'.repeat(32) }), 404);
  });

  test('listing activations by name, newest first, with limit, skip, since/upto and docs', async () => {
    await create('counted', ECHO);
    const ids: string[] = [];
    for (const who of ['a', 'b', 'c']) ids.push((await invokeBlocking('counted', { who })).activationId);
    const brief = (await ow.activations.list({ name: 'counted', limit: 2 })) as unknown[];
    assert.equal(brief.length, 2);
    const b = brief.map((x) => valid(ActivationBriefSchema, x));
    assert.deepEqual(b.map((x) => x.activationId), [ids[2], ids[1]]);
    assert.deepEqual(b.map((x) => x.statusCode), [0, 0], 'the brief records carry the statusCode');
    for (const x of brief) assert.ok(!('response' in (x as object)) && !('logs' in (x as object)), 'brief: no response, no logs');
    const skipped = (await ow.activations.list({ name: 'counted', limit: 2, skip: 2 })) as unknown[];
    assert.deepEqual(skipped.map((x) => valid(ActivationBriefSchema, x).activationId), [ids[0]]);
    const docs = (await ow.activations.list({ name: 'counted', docs: true })) as unknown[];
    assert.equal(docs.length, 3);
    for (const d of docs) assert.equal(valid(ActivationSchema, d).response.status, 'success');
    const first = valid(ActivationSchema, docs[2]);
    const since = (await ow.activations.list({ name: 'counted', since: first.start + 1 } as never)) as unknown[];
    assert.ok(!since.some((x) => valid(ActivationBriefSchema, x).activationId === ids[0]));
    const upto = (await ow.activations.list({ name: 'counted', upto: first.start } as never)) as unknown[];
    assert.ok(upto.some((x) => valid(ActivationBriefSchema, x).activationId === ids[0]));
    const none = (await ow.activations.list({ name: 'never-invoked' })) as unknown[];
    assert.deepEqual(none, []);
  });
});

describe('failures and limits', () => {
  test('a crashing action and a non-object result are action developer errors', async () => {
    await create('crash', CRASH);
    await create('number', NOT_AN_OBJECT);
    for (const name of ['crash', 'number']) {
      const err = await owError(ow.actions.invoke({ name, blocking: true }), 502);
      const a = valid(ActivationSchema, err.error);
      assert.equal(a.response.success, false, name);
      assert.equal(a.response.status, 'action developer error', name);
      assert.equal(typeof (a.response.result as { error?: unknown }).error, 'string', name);
    }
  });

  test('past its time limit an activation is a developer error with OpenWhisk\'s message', async () => {
    await create('slow', SLEEP, { limits: { timeout: 500 } });
    // The action would sleep 50 s, under the 60 s a blocking call waits: a 502 with the activation means the
    // platform ended it at its limit, not that the action ended (that would be 200) or the wait did (202).
    const err = await owError(ow.actions.invoke({ name: 'slow', params: { ms: 50_000 }, blocking: true }), 502);
    const a = valid(ActivationSchema, err.error);
    assert.ok(Number(a.duration) >= 500 && Number(a.duration) < 50_000, `ran ${a.duration} ms`);
    assert.equal(a.response.status, 'action developer error');
    assert.deepEqual(a.response.result, { error: 'The action exceeded its time limits of 500 milliseconds.' });
    assert.equal(annotation(a, 'timeout'), true);
  });

  test('a zip (binary) action', async () => {
    const a = valid(ActionSchema, await ow.actions.create({ name: 'zipped', action: zipAction(), kind: 'nodejs:20' } as never));
    assert.equal(a.exec.binary, true);
    const r = await invokeBlocking('zipped', { n: 21 });
    assert.deepEqual(r.response.result, { zipped: true, doubled: 42 });
  });

  test('per-action concurrency: concurrency 3 shares one warm container, concurrency 1 does not', async () => {
    await create('shared', SLEEP, { limits: { concurrency: 3, timeout: 10_000 } });
    await create('single', SLEEP, { limits: { concurrency: 1, timeout: 10_000 } });
    for (const name of ['shared', 'single']) await invokeBlocking(name, { ms: 0 }); // warm one container each
    const run3 = (name: string) => Promise.all([0, 1, 2].map(() => invokeBlocking(name, { ms: 600 })));
    const shared = (await run3('shared')).map((a) => a.response.result as { pid: number; start: number; end: number });
    assert.equal(new Set(shared.map((r) => r.pid)).size, 1, 'concurrency 3: one container runs all three');
    assert.ok(Math.max(...shared.map((r) => r.start)) < Math.min(...shared.map((r) => r.end)), 'and at the same time');
    const single = (await run3('single')).map((a) => a.response.result as { pid: number });
    assert.equal(new Set(single.map((r) => r.pid)).size, 3, 'concurrency 1: one container per activation');
  });
});

describe('cluster profiles', () => {
  let edge: OpenWhiskServer;
  before(async () => {
    edge = await startOpenWhiskServer({ label: 'edge-test', auth: AUTH, profile: poolProfile(CLUSTER_PROFILES.edge), memoryMb: 2048 });
  });
  after(() => edge?.close());

  test('the edge profile\'s cold start is slower than the cloud\'s', async () => {
    const edgeOw = openwhisk({ apihost: edge.url, api_key: AUTH, namespace: '_' });
    const coldCost = (a: Activation) => Number(annotation(a, 'initTime') ?? 0) + Number(annotation(a, 'waitTime') ?? 0);
    valid(ActionSchema, await edgeOw.actions.create({ name: 'p', action: ECHO, kind: 'nodejs:20' } as never));
    await create('p', ECHO);
    const e = await invokeBlocking('p', { who: 'edge' }, edgeOw);
    const c = await invokeBlocking('p', { who: 'cloud' });
    assert.equal(typeof annotation(e, 'initTime'), 'number');
    assert.ok(coldCost(e) >= coldCost(c) + CLUSTER_PROFILES.edge.coldStartDelayMs * 0.8, `edge ${coldCost(e)} ms vs cloud ${coldCost(c)} ms`);
  });
});

describe('answers field for field as the controller gives them', () => {
  const raw = async (server: OpenWhiskServer, method: string, p: string, body?: unknown) => {
    const res = await fetch(`${server.url}/api/v1/namespaces/_${p}`, {
      method,
      headers: { Authorization: `Basic ${Buffer.from(AUTH).toString('base64')}`, 'Content-Type': 'application/json' },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, unknown> };
  };

  test('create: version 0.0.1 and the default limits; GET has the code, code=false not; update: 0.0.2, merged annotations, limits kept', async () => {
    const created = valid(ActionSchema, await ow.actions.create({ name: 'fields', action: ECHO, kind: 'nodejs:default', annotations: { a: 1, b: 2 } } as never));
    assert.equal(created.version, '0.0.1');
    assert.deepEqual(created.limits, { timeout: 60_000, memory: 256, logs: 10, concurrency: 1 }, 'the stock defaults');
    assert.equal(created.exec.code, ECHO);
    assert.equal(valid(ActionSchema, await ow.actions.get({ name: 'fields' })).exec.code, ECHO);
    const meta = valid(ActionSchema, await ow.actions.get({ name: 'fields', code: false } as never));
    assert.ok(!('code' in meta.exec), 'code=false leaves exec.code out');
    assert.equal(meta.exec.kind, 'nodejs:20');

    // An update names only what changes: the rest is the action's; annotations are merged, `exec` set again.
    const r = await raw(cloud, 'PUT', '/actions/fields?overwrite=true', { annotations: [{ key: 'b', value: 3 }], delAnnotations: ['a'], limits: { memory: 512 }, publish: true });
    assert.equal(r.status, 200);
    const updated = valid(ActionSchema, r.body);
    assert.equal(updated.version, '0.0.2');
    assert.equal(updated.exec.code, ECHO, 'the exec is kept, and the answer carries its code');
    assert.deepEqual(updated.limits, { timeout: 60_000, memory: 512, logs: 10, concurrency: 1 });
    assert.equal(updated.publish, true);
    assert.deepEqual(updated.annotations, [
      { key: 'b', value: 3 },
      { key: 'provide-api-key', value: false },
      { key: 'exec', value: 'nodejs:20' },
    ]);
    assert.ok(updated.updated! >= created.updated!);
    const again = valid(ActionSchema, (await raw(cloud, 'PUT', '/actions/fields?overwrite=true', { version: '2.1.0' })).body);
    assert.equal(again.version, '2.1.0', "the body's version is taken as it is");
    assert.equal(valid(ActionSchema, (await raw(cloud, 'PUT', '/actions/fields?overwrite=true', {})).body).version, '2.1.1');
    const gone = await raw(cloud, 'DELETE', '/actions/fields');
    assert.equal(valid(ActionSchema, gone.body).version, '2.1.1');
  });

  test('the limits a PUT asks for are checked before the conflict: 400, then 409 without overwrite', async () => {
    await create('guarded', ECHO);
    const tooBig = await raw(cloud, 'PUT', '/actions/guarded', { exec: { kind: 'nodejs:20', code: ECHO }, limits: { memory: 1024 } });
    assert.equal(tooBig.status, 400);
    assert.equal(tooBig.body.error, 'memory size 1024 MB exceeds allowed threshold of 512 MB');
    assert.match(String(tooBig.body.code), /^[0-9a-f]{32}$/);
    const conflict = await raw(cloud, 'PUT', '/actions/guarded', { exec: { kind: 'nodejs:20', code: ECHO } });
    assert.equal(conflict.status, 409);
    assert.deepEqual(Object.keys(conflict.body).sort(), ['code', 'error']);
    await errorBody(ow.actions.create({ name: 'guarded2', action: ECHO, kind: 'nodejs:20', limits: { timeout: 400_000 } } as never), 400, /^duration 400000 milliseconds exceeds allowed threshold of 300000 milliseconds$/);
  });

  test('an invocation answers with the activation id header; blocking with result=true the result alone', async () => {
    const nb = await raw(cloud, 'POST', '/actions/echo', { who: 'h' });
    assert.equal(nb.status, 202);
    assert.deepEqual(Object.keys(nb.body), ['activationId']);
    assert.equal(nb.headers.get('x-openwhisk-activation-id'), nb.body.activationId);
    const b = await raw(cloud, 'POST', '/actions/echo?blocking=true&result=true', { who: 'h' });
    assert.equal(b.status, 200);
    assert.equal(b.body.greeting, 'hi h');
    assert.match(String(b.headers.get('x-openwhisk-activation-id')), /^[0-9a-f]{32}$/);
    const badWait = await raw(cloud, 'POST', '/actions/echo?blocking=true&timeout=60001', {});
    assert.equal(badWait.status, 400);
    assert.equal(badWait.body.error, "The query parameter 'timeout' was malformed:\nTimeout must be number of milliseconds up to 60000.");
  });

  test('a blocking invocation that outlasts the blocking wait answers 202 with the activation id', async () => {
    const quick = await startOpenWhiskServer({ label: 'short-wait', auth: AUTH, memoryMb: 1024, blockingWaitMs: 300 });
    try {
      const client = openwhisk({ apihost: quick.url, api_key: AUTH, namespace: '_' });
      valid(ActionSchema, await client.actions.create({ name: 'sleepy', action: SLEEP, kind: 'nodejs:20' } as never));
      // 5 s of sleep against a 300 ms wait: the wait ends first whatever this machine's speed.
      const r = valid(ActivationIdSchema, await client.actions.invoke({ name: 'sleepy', params: { ms: 5000 }, blocking: true }));
      assert.deepEqual(Object.keys(r), ['activationId']);
      assert.match(r.activationId, /^[0-9a-f]{32}$/);
    } finally {
      await quick.close();
    }
  });

  test("status strings and success: success, application error, action developer error, whisk internal error", async () => {
    const statuses = new Map<string, boolean>();
    for (const [name, code] of [['s-ok', ECHO], ['s-app', APP_ERROR], ['s-dev', CRASH]] as const) {
      await create(name, code);
      const a = await ow.actions.invoke({ name, blocking: true }).then(
        (x) => valid(ActivationSchema, x),
        (e: OwError) => valid(ActivationSchema, e.error),
      );
      statuses.set(a.response.status!, a.response.success!);
    }
    // A whisk internal error: the invoker itself failed (its container pool threw), as the controller records it.
    const store = new ActivationStore();
    const actions = new ActionStore('guest');
    const action = actions.put('broken', { exec: { kind: 'nodejs:20', code: ECHO } }, false);
    const invoker = new Invoker({ run: () => Promise.reject(new Error('no invoker')) }, store, { namespace: 'guest', subject: 'guest', apiKey: AUTH });
    const rec = activationJson(await invoker.start(action, {}, 'tid').done);
    const internal = valid(ActivationSchema, rec);
    statuses.set(internal.response.status!, internal.response.success!);
    assert.deepEqual(Object.fromEntries(statuses), {
      success: true,
      'application error': false,
      'action developer error': false,
      'whisk internal error': false,
    });
  });

  test('a profile that raises the limits, as an operator would, accepts 1024 MB; the namespace limits say so', async () => {
    const fabric = await startFabric([{ name: 'raised', auth: AUTH, profile: { base: 'cloud', limits: { memory: { max: 2048 }, timeout: { max: 600_000 } } } }]);
    try {
      const url = fabric.clusters[0]!.url;
      const client = openwhisk({ apihost: url, api_key: AUTH, namespace: '_' });
      const big = valid(ActionSchema, await client.actions.create({ name: 'big', action: ECHO, kind: 'nodejs:20', limits: { memory: 1024, timeout: 400_000 } } as never));
      assert.deepEqual(big.limits, { timeout: 400_000, memory: 1024, logs: 10, concurrency: 1 });
      await errorBody(client.actions.create({ name: 'bigger', action: ECHO, kind: 'nodejs:20', limits: { memory: 4096 } } as never), 400, /^memory size 4096 MB exceeds allowed threshold of 2048 MB$/);
      await errorBody(client.actions.create({ name: 'small', action: ECHO, kind: 'nodejs:20', limits: { memory: 64 } } as never), 400, /^memory size 64 MB below allowed threshold of 128 MB$/);
      const res = await fetch(`${url}/api/v1/namespaces/_/limits`, { headers: { Authorization: `Basic ${Buffer.from(AUTH).toString('base64')}` } });
      const limits = (await res.json()) as Record<string, number>;
      assert.equal(limits.maxActionMemory, 2048);
      assert.equal(limits.minActionMemory, 128);
      assert.equal(limits.maxActionTimeout, 600_000);
      assert.equal(limits.maxActionConcurrency, 1);
      assert.equal(limits.invocationsPerMinute, undefined, 'no throttle unless the profile sets one');
    } finally {
      await fabric.close();
    }
  });
});

describe("the activation payload limit (stock 1 MB; a profile's payloadMaxMb raises it)", () => {
  const BIG_RESULT = "function main(p) { return { blob: 'x'.repeat(p.n) }; }";
  test('an invocation over 1 MB is refused with 413 and the controller\'s text; a result over it is a developer error', async () => {
    await ow.actions.update({ name: 'big-result', action: BIG_RESULT });
    await errorBody(ow.actions.invoke({ name: 'big-result', params: { n: 1, pad: 'y'.repeat(1_100_000) } }), 413, /^Request larger than allowed: \d+ > 1048576 bytes\.$/);
    const small = await ow.actions.invoke({ name: 'big-result', params: { n: 1000 }, blocking: true, result: true });
    assert.equal((small as { blob: string }).blob.length, 1000);
    const big = valid(ActivationSchema, (await owError(ow.actions.invoke({ name: 'big-result', params: { n: 1_500_000 }, blocking: true }), 502)).error);
    assert.equal(big.response.status, 'action developer error');
    const said = String((big.response.result as { error: string }).error);
    const head = 'The action produced a response that exceeded the allowed length: 1500011 > 1048576 bytes. The truncated response was: {"blob":"xxx';
    assert.equal(said.slice(0, head.length), head);
    assert.equal(said.length, head.length - 12 + 1_048_576, 'the first 1 MB of the response');
  });

  test('a cluster whose operator raised it takes both', async () => {
    const raised = await startOpenWhiskServer({ label: 'raised-payload', auth: AUTH, memoryMb: 1024, payloadMaxMb: 4 });
    try {
      const c = openwhisk({ apihost: raised.url, api_key: AUTH, namespace: '_' });
      await c.actions.update({ name: 'big-result', action: BIG_RESULT });
      const r = await c.actions.invoke({ name: 'big-result', params: { n: 1_500_000, pad: 'y'.repeat(1_100_000) }, blocking: true, result: true });
      assert.equal((r as { blob: string }).blob.length, 1_500_000);
    } finally {
      await raised.close();
    }
  });
});
