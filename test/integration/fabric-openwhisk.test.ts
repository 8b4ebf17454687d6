/**
 * The local OpenWhisk cluster driven by the official `openwhisk` client, as FedKeeper's provider drives a real
 * cluster. Every body is checked against the schemas written from the OpenWhisk swagger.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import openwhisk from 'openwhisk';
import type { z } from 'zod';
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
  cloud = await startOpenWhiskServer({ label: 'cloud-test', auth: AUTH, profile: poolProfile(CLUSTER_PROFILES.cloud), memoryMb: 4096, seed: 1 });
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
  test('create a JS action: 200 with the action record, code left out', async () => {
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
    assert.equal(a.exec.code, undefined);
    assert.deepEqual(a.parameters, [{ key: 'who', value: 'world' }]);
    assert.equal(annotation(a, 'team'), 'fl');
    assert.deepEqual(a.limits, { timeout: 10_000, memory: 256, logs: 10, concurrency: 1 });
    assert.equal(a.publish, false);
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
    assert.equal(a.statusCode, 0);
    assert.deepEqual(a.response, { status: 'success', statusCode: 0, success: true, result: a.response.result, size: a.response.size });
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
    assert.equal(a.statusCode, 1);
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
      assert.equal(a.statusCode, 2, name);
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
    assert.deepEqual(a.response.result, { error: 'The action exceeded its time limit of 500 milliseconds.' });
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
