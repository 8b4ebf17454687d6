/**
 * The per-invocation path of the local OpenWhisk platform and of the provider that calls it: the invoker answers
 * before the run starts (runs start right after the turn, in submission order), the key check's fast path refuses
 * what the slow one refuses, and OpenWhiskRest puts on the wire what the official `openwhisk` client does.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import openwhisk from 'openwhisk';
import type { StoredAction } from '../../src/fabric/action-store.js';
import { ActivationStore } from '../../src/fabric/activation-store.js';
import { ClusterAuth } from '../../src/fabric/auth.js';
import { randomHexId } from '../../src/fabric/http.js';
import { Invoker, type ContainerRunner } from '../../src/fabric/invoker.js';
import { OpenWhiskRest } from '../../src/providers/openwhisk-rest.js';
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

test('OpenWhiskRest sends an invocation and an activation read exactly as the openwhisk client does', async () => {
  const seen: { method: string; url: string; headers: http.IncomingHttpHeaders; body: string }[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      if (req.url!.includes('/activations/')) return res.writeHead(200, { 'content-type': 'application/json' }).end('{"activationId":"a","response":{"status":"success"}}');
      if (req.url!.includes('missing')) return res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"The requested resource does not exist.","code":"t1"}');
      res.writeHead(202, { 'content-type': 'application/json' }).end('{"activationId":"0123456789abcdef0123456789abcdef"}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const apiHost = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const key = 'uuid-1:the-key';
  const agent = new http.Agent({ keepAlive: true });
  try {
    const ow = openwhisk({ apihost: apiHost, api_key: key, namespace: '_', agent });
    const rest = new OpenWhiskRest({ apiHost, apiKey: key, namespace: '_', agent });
    const params = { round: 3, nested: { a: [1, 2] }, text: 'é' };
    await ow.actions.invoke({ name: 'fl_client', params, blocking: false });
    assert.equal(await rest.invoke('fl_client', params), '0123456789abcdef0123456789abcdef');
    await ow.activations.get({ name: 'a' });
    assert.equal((await rest.activation('a')).activationId, 'a');
    const pick = (h: http.IncomingHttpHeaders) => ({ authorization: h.authorization, 'x-namespace-id': h['x-namespace-id'], 'user-agent': h['user-agent'], accept: h.accept, 'content-type': h['content-type'], 'content-length': h['content-length'] });
    for (const [client, ours] of [[seen[0]!, seen[1]!], [seen[2]!, seen[3]!]]) {
      assert.equal(ours.method, client.method);
      assert.equal(ours.url, client.url);
      assert.deepEqual(pick(ours.headers), pick(client.headers));
      assert.deepEqual(ours.body === '' ? undefined : JSON.parse(ours.body), client.body === '' ? undefined : JSON.parse(client.body));
    }
    assert.equal(seen[1]!.url, '/api/v1/namespaces/_/actions/fl_client?blocking=false');
    // A refusal carries the status and the platform's body, as the client's OpenWhiskError does.
    const err = (await rest.invoke('missing', {}).catch((e: unknown) => e)) as { statusCode?: number; error?: { error?: string } };
    assert.equal(err.statusCode, 404);
    assert.equal(err.error?.error, 'The requested resource does not exist.');
  } finally {
    agent.destroy();
    server.close();
  }
});

test('OpenWhiskRest: an unreachable platform is an error without a status (the provider calls it transient)', async () => {
  const server = http.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  const rest = new OpenWhiskRest({ apiHost: `http://127.0.0.1:${port}`, apiKey: 'u:k', namespace: '_', agent: new http.Agent() });
  const err = (await rest.activation('a').catch((e: unknown) => e)) as { statusCode?: number; message: string };
  assert.equal(err.statusCode, undefined);
  assert.match(err.message, /ECONNREFUSED/);
});
