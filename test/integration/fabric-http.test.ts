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
  test('GET /ping, GET / and GET /api/v1 need no key', async () => {
    const ping = await fetch(`${server.url}/ping`);
    assert.equal(ping.status, 200);
    assert.equal(await ping.text(), 'pong');
    const root = await fetch(`${server.url}/`);
    assert.equal(root.status, 200);
    const controller = (await root.json()) as { description: string; api_paths: string[]; limits: Record<string, number> };
    assert.equal(controller.description, 'OpenWhisk');
    assert.deepEqual(controller.api_paths, ['/api/v1']);
    // The stock controller's range, not the invoker's 1024 MB: the range is what a PUT may ask for.
    assert.equal(controller.limits.max_action_memory, 512 * 1024 * 1024);
    assert.equal(controller.limits.max_action_duration, 300_000);
    const info = await call('GET', '', undefined, {});
    assert.equal(info.status, 200);
    assert.equal((info.body as { description: string }).description, 'OpenWhisk API');
    assert.equal((info.body as { api_version_path: string }).api_version_path, 'v1');
    const ns = await call('GET', '/namespaces');
    assert.deepEqual(ns.body, ['guest']);
  });
});

describe('401, 403, 404, 405', () => {
  test('no key, a wrong key, a non-Basic header: 401', async () => {
    const missing = /^The resource requires authentication, which was not supplied with the request$/;
    assertError(await call('GET', '/namespaces/_/actions', undefined, {}), 401, missing);
    const wrong = `Basic ${Buffer.from(`${AUTH}x`).toString('base64')}`;
    assertError(await call('GET', '/namespaces/_/actions', undefined, { Authorization: wrong }), 401, /^The supplied authentication is invalid$/);
    assertError(await call('POST', '/namespaces/_/actions/echo', {}, { Authorization: 'Bearer abc' }), 401, missing);
    assertError(await call('GET', '/namespaces/_/activations', undefined, { Authorization: 'Basic !!!' }), 401, missing);
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
    assertError(await call('GET', '/namespaces/_/nothing'), 404, /^The requested resource could not be found\.$/);
  });

  test('a method a resource does not have: 405', async () => {
    assertError(await call('PATCH', '/namespaces/_/actions/echo', {}), 405, /^HTTP method not allowed, supported methods: PUT, GET, DELETE, POST$/);
    assertError(await call('POST', '/namespaces/_/activations', {}), 405, /^HTTP method not allowed, supported methods: GET$/);
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

  test("kinds: nodejs:default is nodejs:20; other runtimes and unknown kinds are 400 with the controller's text", async () => {
    const d = await put('default-kind', { exec: { kind: 'nodejs:default', code: ECHO } });
    assert.equal(ActionSchema.parse(d.body).exec.kind, 'nodejs:20');
    const py = await put('py', { exec: { kind: 'python:3.11', code: 'def main(a): return a' } });
    assertError(py, 400);
    assert.equal((py.body as { error: string }).error, "The request content was malformed:\nThe specified runtime 'python:3.11' is not supported by this platform. Valid values are: 'nodejs:20', 'sequence', 'blackbox'.");
    assertError(await put('cobol', { exec: { kind: 'cobol', code: 'x' } }), 400, /The specified runtime 'cobol' is not supported by this platform/);
    assertError(await put('bb', { exec: { kind: 'blackbox' } }), 400, /'image' must be a string defined in 'exec' for 'blackbox' actions$/);
    assertError(await put('nocode', { exec: { kind: 'nodejs:20' } }), 400, /'code' must be a string or attachment object defined in 'exec' for 'nodejs:20' actions$/);
    assertError(await put('noexec', { parameters: [] }), 400, /^exec undefined$/);
    assertError(await put('bad name!', js(ECHO)), 400, /^The name of the entity contains illegal characters\.$/);
    assertError(await put('x'.repeat(257), js(ECHO)), 400, /^Name segement longer than allowed: 257 > 256\.$/);
  });

  test("limits outside the stock controller's ranges: 400 with its message", async () => {
    const cases: Array<[Record<string, number>, string]> = [
      [{ timeout: 50 }, 'duration 50 milliseconds below allowed threshold of 100 milliseconds'],
      [{ timeout: 300_001 }, 'duration 300001 milliseconds exceeds allowed threshold of 300000 milliseconds'],
      [{ memory: 64 }, 'memory size 64 MB below allowed threshold of 128 MB'],
      [{ memory: 1024 }, 'memory size 1024 MB exceeds allowed threshold of 512 MB'],
      [{ concurrency: 0 }, 'concurrency 0 below allowed threshold of 1'],
      [{ concurrency: 2 }, 'concurrency 2 exceeds allowed threshold of 1'],
      [{ logs: 11 }, 'log size 11 MB exceeds allowed threshold of 10 MB'],
    ];
    for (const [limits, message] of cases) {
      const r = await put('limited', js(ECHO, limits));
      assertError(r, 400);
      assert.equal((r.body as { error: string }).error, message);
    }
    const ok = await put('limited', js(ECHO, { timeout: 300_000, memory: 512, concurrency: 1, logs: 0 }));
    assert.equal(ok.status, 200);
    assert.deepEqual(ActionSchema.parse(ok.body).limits, { timeout: 300_000, memory: 512, logs: 0, concurrency: 1 });
  });

  test('malformed JSON, wrong field types, too large a body', async () => {
    assertError(await put('broken', '{"exec": '), 400, /^The request content was malformed:/);
    assertError(await put('typed', { exec: { kind: 'nodejs:20', code: 42 } }), 400, /^The request content was malformed:\n'code' must be a string/);
    assertError(await put('typed', { exec: { kind: 'nodejs:20', code: 'x' }, limits: { timeout: 'long' } }), 400, /^The request content was malformed:\ntime limit malformed$/);
    assertError(await put('typed', { exec: { kind: 'nodejs:20', code: 'x' }, limits: { memory: 256.5 } }), 400, /^The request content was malformed:\nmemory limit must be whole number$/);
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

describe('what this platform leaves out answers as a controller that has none of it', () => {
  test('sequences: 403 as for a kind the operator does not allow; packages, triggers, rules: none exist, none may be created', async () => {
    const seq = await put('seq', { exec: { kind: 'sequence', components: ['/guest/echo'] } });
    assertError(seq, 403, /^The supplied authentication is not authorized to access actions of kind 'sequence'\.$/);
    assertError(await put('seq2', { exec: { kind: 'sequence' } }), 400, /'components' must be defined for sequence kind$/);
    for (const collection of ['packages', 'triggers', 'rules']) {
      const list = await call('GET', `/namespaces/_/${collection}`);
      assert.equal(list.status, 200, collection);
      assert.deepEqual(list.body, []);
      assert.deepEqual((await call('GET', `/namespaces/_/${collection}?count=true`)).body, { [collection]: 0 });
      assertError(await call('GET', `/namespaces/_/${collection}/thing`), 404, /^The requested resource does not exist\.$/);
      assertError(await call('PUT', `/namespaces/_/${collection}/thing`, {}), 403, /^The supplied authentication is not authorized to access 'guest\/thing'\.$/);
    }
    assertError(await call('POST', '/namespaces/_/packages/thing', {}), 405, /supported methods: PUT, GET, DELETE$/);
    assertError(await call('POST', '/namespaces/_/triggers/thing', {}), 404);
    assertError(await call('POST', '/namespaces/_/actions/pkg/echo', {}), 404, /^The requested resource does not exist\.$/);
    assertError(await call('GET', '/web/guest/default/echo.json', undefined, {}), 404);
  });

  test('activation ids and list parameters are read as the controller reads them', async () => {
    assertError(await call('GET', '/namespaces/_/activations/abc'), 400, /^Activation id length is 3 but must be 32\.$/);
    assertError(await call('GET', `/namespaces/_/activations/${'z'.repeat(32)}`), 400, /^The activation id is not valid\.$/);
    assertError(await call('GET', '/namespaces/_/activations?count=true&docs=true'), 400, /^The parameter 'docs' is not permitted with 'count'\.$/);
    assertError(await call('GET', '/namespaces/_/activations?since=yesterday'), 400, /^The query parameter 'since' was malformed:\nParameter is not a valid value for epoch seconds: yesterday$/);
    assertError(await call('GET', '/namespaces/_/actions?limit=ten'), 400, /^The query parameter 'limit' was malformed:\nThe value 'ten' is not an integer for actions\.$/);
    assertError(await call('GET', '/namespaces/someone/actions/echo'), 403, /^The supplied authentication is not authorized to access 'someone\/echo'\.$/);
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
