/**
 * The local OpenWhisk API on the wire, with plain fetch: status codes, `{error, code}` bodies, query options the
 * `openwhisk` client does not send (result=true, timeout), and what a real controller answers to bad requests.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startOpenWhiskServer, type OpenWhiskServer } from '../../src/fabric/openwhisk-server.js';
import { ActionMetaSchema, ActionSchema, ActivationIdSchema, ActivationSchema, ErrorMessageSchema } from '../../src/fabric/schemas.js';
import { APP_ERROR, ECHO, SLEEP } from '../fixtures/fabric-actions.js';

const AUTH = 'd7e4b7a2-5b7c-4f2e-9b8a-2f1c3e4d5a6b:s3cr3tKeyOfTheTestCluster';
const BASIC = `Basic ${Buffer.from(AUTH).toString('base64')}`;
let server: OpenWhiskServer;

before(async () => {
  server = await startOpenWhiskServer({
    label: 'http-test',
    auth: AUTH,
    memoryMb: 1024,
    maxBodyBytes: 64 * 1024,
    images: { 'fedkeeper/echo:1': { code: ECHO } },
  });
});
after(() => server?.close());

interface Reply {
  status: number;
  body: unknown;
  requestId: string | null;
}

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = { Authorization: BASIC }): Promise<Reply> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)['Content-Type'] = 'application/json';
  }
  const res = await fetch(`${server.url}/api/v1${path}`, init);
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* plain text */
  }
  return { status: res.status, body: parsed, requestId: res.headers.get('x-request-id') };
}

/** An OpenWhisk error reply: the status, `{error, code}` with the transaction id also in X-Request-ID. */
function assertError(r: Reply, status: number, message?: RegExp): void {
  assert.equal(r.status, status, JSON.stringify(r.body));
  const e = ErrorMessageSchema.parse(r.body);
  assert.match(e.code!, /^[0-9a-f]{32}$/);
  assert.equal(r.requestId, e.code);
  if (message) assert.match(e.error, message);
}

const put = (name: string, body: unknown, overwrite = false) => call('PUT', `/namespaces/_/actions/${name}${overwrite ? '?overwrite=true' : ''}`, body);
const js = (code: string, limits?: Record<string, number>) => ({ exec: { kind: 'nodejs:20', code }, ...(limits ? { limits } : {}) });

describe('health and discovery', () => {
  test('GET /ping and GET /api/v1 need no key', async () => {
    const ping = await fetch(`${server.url}/ping`);
    assert.equal(ping.status, 200);
    assert.equal(await ping.text(), 'pong');
    const info = await call('GET', '', undefined, {});
    assert.equal(info.status, 200);
    assert.deepEqual((info.body as { api_paths: string[] }).api_paths, ['/api/v1']);
    assert.equal((info.body as { limits: { max_action_memory: number } }).limits.max_action_memory, 1024 * 1024 * 1024);
    const ns = await call('GET', '/namespaces');
    assert.deepEqual(ns.body, ['guest']);
  });
});

describe('401, 403, 404, 405', () => {
  test('no key, a wrong key, a non-Basic header: 401', async () => {
    assertError(await call('GET', '/namespaces/_/actions', undefined, {}), 401, /^The supplied authentication is invalid$/);
    const wrong = `Basic ${Buffer.from(`${AUTH}x`).toString('base64')}`;
    assertError(await call('GET', '/namespaces/_/actions', undefined, { Authorization: wrong }), 401);
    assertError(await call('POST', '/namespaces/_/actions/echo', {}, { Authorization: 'Bearer abc' }), 401);
    assertError(await call('GET', '/namespaces/_/activations', undefined, { Authorization: 'Basic !!!' }), 401);
  });

  test('another namespace: 403; the own one by name works like _', async () => {
    assertError(await call('GET', '/namespaces/someone/actions'), 403, /not authorized to access 'someone'/);
    assert.equal((await call('GET', '/namespaces/guest/actions')).status, 200);
  });

  test('unknown action, activation, package action or path: 404', async () => {
    const notFound = /^The requested resource does not exist\.$/;
    assertError(await call('GET', '/namespaces/_/actions/nope'), 404, notFound);
    assertError(await call('DELETE', '/namespaces/_/actions/nope'), 404, notFound);
    assertError(await call('POST', '/namespaces/_/actions/nope?blocking=true', {}), 404, notFound);
    assertError(await call('GET', '/namespaces/_/actions/pkg/nope'), 404, notFound);
    assertError(await call('PUT', '/namespaces/_/actions/pkg/nope', js(ECHO)), 404, notFound);
    for (const sub of ['', '/result', '/logs']) assertError(await call('GET', `/namespaces/_/activations/${'f'.repeat(32)}${sub}`), 404, notFound);
    assertError(await call('GET', '/namespaces/_/triggers'), 404, notFound);
  });

  test('a method a resource does not have: 405', async () => {
    assertError(await call('PATCH', '/namespaces/_/actions/echo', {}), 405);
    assertError(await call('POST', '/namespaces/_/activations', {}), 405);
  });
});

describe('409 and 400 on PUT', () => {
  test('create twice: 409; with overwrite=true: 200 and a new version', async () => {
    const a = await put('dup', js(ECHO));
    assert.equal(a.status, 200);
    assert.equal(ActionSchema.parse(a.body).version, '0.0.1');
    assertError(await put('dup', js(ECHO)), 409, /^resource already exists$/);
    const b = await put('dup', js(ECHO), true);
    assert.equal(b.status, 200);
    assert.equal(ActionSchema.parse(b.body).version, '0.0.2');
  });

  test('kinds: nodejs:default is nodejs:20; other runtimes and unknown kinds are 400', async () => {
    const d = await put('default-kind', { exec: { kind: 'nodejs:default', code: ECHO } });
    assert.equal(ActionSchema.parse(d.body).exec.kind, 'nodejs:20');
    assertError(await put('py', { exec: { kind: 'python:3.11', code: 'def main(a): return a' } }), 400, /kind 'python:3.11' is not supported/);
    assertError(await put('cobol', { exec: { kind: 'cobol', code: 'x' } }), 400, /kind 'cobol' is not supported/);
    assertError(await put('bb', { exec: { kind: 'blackbox' } }), 400, /image/);
    assertError(await put('nocode', { exec: { kind: 'nodejs:20' } }), 400, /code/);
    assertError(await put('noexec', { parameters: [] }), 400, /exec undefined/);
    assertError(await put('bad name!', js(ECHO)), 400, /not a valid OpenWhisk entity name/);
  });

  test('limits outside the allowed ranges: 400 naming the threshold', async () => {
    const cases: Array<[Record<string, number>, RegExp]> = [
      [{ timeout: 50 }, /timeout 50 milliseconds below allowed threshold of 100 milliseconds/],
      [{ timeout: 3_600_001 }, /timeout 3600001 milliseconds exceeds allowed threshold of 3600000 milliseconds/],
      [{ memory: 64 }, /memory 64 MB below allowed threshold of 128 MB/],
      [{ memory: 2048 }, /memory 2048 MB exceeds allowed threshold of 1024 MB/],
      [{ concurrency: 0 }, /concurrency 0 below allowed threshold of 1/],
      [{ concurrency: 501 }, /concurrency 501 exceeds allowed threshold of 500/],
    ];
    for (const [limits, message] of cases) assertError(await put('limited', js(ECHO, limits)), 400, message);
    const ok = await put('limited', js(ECHO, { timeout: 3_600_000, memory: 1024, concurrency: 500 }));
    assert.equal(ok.status, 200);
  });

  test('malformed JSON, wrong field types, too large a body', async () => {
    assertError(await put('broken', '{"exec": '), 400, /^The request content was malformed:/);
    assertError(await put('typed', { exec: { kind: 'nodejs:20', code: 42 } }), 400, /exec\.code/);
    assertError(await put('typed', { exec: { kind: 'nodejs:20', code: 'x' }, limits: { timeout: 'long' } }), 400, /limits\.timeout/);
    assertError(await put('big', js(`// ${'x'.repeat(100 * 1024)}\n${ECHO}`)), 413);
  });
});

describe('invocation options on the wire', () => {
  before(async () => {
    for (const [name, code] of [['echo', ECHO], ['apperr', APP_ERROR], ['sleepy', SLEEP]] as const) assert.equal((await put(name, js(code))).status, 200);
  });

  test('non-blocking: 202 {activationId}; a payload that is not an object: 400', async () => {
    const r = await call('POST', '/namespaces/_/actions/echo', { who: 'x' });
    assert.equal(r.status, 202);
    ActivationIdSchema.parse(r.body);
    assertError(await call('POST', '/namespaces/_/actions/echo', [1, 2]), 400, /JSON object/);
  });

  test('blocking=true&result=true: 200 with the result alone, 502 with the error result', async () => {
    const ok = await call('POST', '/namespaces/_/actions/echo?blocking=true&result=true', { who: 'wire' });
    assert.equal(ok.status, 200);
    assert.equal((ok.body as { greeting: string }).greeting, 'hi wire');
    const bad = await call('POST', '/namespaces/_/actions/apperr?blocking=true&result=true', { x: 1 });
    assert.equal(bad.status, 502);
    assert.deepEqual(bad.body, { error: 'bad input: 1' });
  });

  test('a blocking call past its wait answers 202; the activation is 404 until it ends, then 200', async () => {
    const r = await call('POST', '/namespaces/_/actions/sleepy?blocking=true&timeout=200', { ms: 1200 });
    assert.equal(r.status, 202);
    const { activationId } = ActivationIdSchema.parse(r.body);
    assertError(await call('GET', `/namespaces/_/activations/${activationId}`), 404);
    const listed = await call('GET', '/namespaces/_/activations?name=sleepy');
    assert.ok(!(listed.body as { activationId: string }[]).some((a) => a.activationId === activationId));
    let got: Reply;
    const t0 = Date.now();
    do {
      await new Promise((res) => setTimeout(res, 100));
      got = await call('GET', `/namespaces/_/activations/${activationId}`);
    } while (got.status === 404 && Date.now() - t0 < 10_000);
    assert.equal(got.status, 200);
    assert.equal(ActivationSchema.parse(got.body).response.status, 'success');
  });

  test('count=true and bad paging values', async () => {
    const n = await call('GET', '/namespaces/_/actions?count=true');
    assert.ok((n.body as { actions: number }).actions >= 3);
    const list = await call('GET', '/namespaces/_/actions?limit=0');
    for (const a of list.body as unknown[]) ActionMetaSchema.parse(a);
    const c = await call('GET', '/namespaces/_/activations?count=true&name=echo');
    assert.ok((c.body as { activations: number }).activations >= 1);
    assertError(await call('GET', '/namespaces/_/activations?limit=201'), 400, /range of 0 to 200/);
    assertError(await call('GET', '/namespaces/_/actions?skip=-1'), 400, /skip/);
  });

  test('blackbox actions run the local runtime their image maps to; an unknown image is a developer error', async () => {
    assert.equal((await put('boxed', { exec: { kind: 'blackbox', image: 'fedkeeper/echo:1' } })).status, 200);
    const r = await call('POST', '/namespaces/_/actions/boxed?blocking=true', { who: 'box' });
    assert.equal(r.status, 200);
    assert.equal((ActivationSchema.parse(r.body).response.result as { greeting: string }).greeting, 'hi box');
    assert.equal((await put('lost', { exec: { kind: 'blackbox', image: 'nobody/knows:1' } })).status, 200);
    const lost = await call('POST', '/namespaces/_/actions/lost?blocking=true', {});
    assert.equal(lost.status, 502);
    const a = ActivationSchema.parse(lost.body);
    assert.equal(a.response.status, 'action developer error');
    assert.match(String((a.response.result as { error: string }).error), /nobody\/knows:1/);
  });
});

describe('bounded activation memory', () => {
  test('past activationCapacity the oldest activations are forgotten (404)', async () => {
    const small = await startOpenWhiskServer({ label: 'small', auth: AUTH, activationCapacity: 2 });
    try {
      const basic = { Authorization: BASIC };
      const at = (p: string, method = 'GET', body?: unknown) =>
        fetch(`${small.url}/api/v1/namespaces/_${p}`, { method, headers: { ...basic, 'Content-Type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) });
      assert.equal((await at('/actions/echo', 'PUT', js(ECHO))).status, 200);
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        const r = await at('/actions/echo?blocking=true', 'POST', { who: i });
        ids.push(ActivationSchema.parse(await r.json()).activationId);
      }
      assert.equal((await at(`/activations/${ids[0]}`)).status, 404);
      assert.equal((await at(`/activations/${ids[2]}`)).status, 200);
      const listed = (await (await at('/activations')).json()) as { activationId: string }[];
      assert.deepEqual(listed.map((a) => a.activationId), [ids[2], ids[1]]);
    } finally {
      await small.close();
    }
  });
});
