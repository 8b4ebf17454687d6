/**
 * The Google provider in cloud mode: our provider driving Google's real client library (@google-cloud/functions,
 * REST transport), against a local server that speaks and records the Cloud Functions v2 calls.
 */
import assert from 'node:assert/strict';
import { unzipSync, strFromU8 } from 'fflate';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { createGoogleProvider, type GoogleActivation } from '../../src/providers/google.js';
import { StaticTokenAuthClient } from '../../src/providers/google-cloud-auth.js';
import { ProviderError, type FunctionSpec, type Provider } from '../../src/providers/types.js';
import { GoogleRecordingServer, type RecordedCall } from '../fixtures/google-recording-server.js';

const api = new GoogleRecordingServer();
let gcf: Provider;
const SOURCE = `exports.main = async (params) => ({ echo: params });`;
const PARENT = '/v2/projects/fedkeeper-test/locations/europe-west1';

function cloud(settings: Record<string, unknown> = {}, cluster = 'gcf'): Provider {
  return createGoogleProvider({
    cluster,
    settings: {
      project_id: 'fedkeeper-test',
      region: 'europe-west1',
      api_endpoint: api.base,
      access_token: 'api-token',
      identity_token: 'id-token',
      ...settings,
    },
    stateDir: 'unused-in-cloud-mode',
    source: () => SOURCE,
  });
}

const spec: FunctionSpec = { name: 'fl_client', timeoutMs: 300_000, memoryMb: 2048, settings: { env: { ROLE: 'client' }, max_instances: 7 } };
const json = (c: RecordedCall): Record<string, any> => JSON.parse(c.body.toString('utf8')) as Record<string, any>;

async function settled(p: Provider, id: string): Promise<GoogleActivation> {
  for (let i = 0; i < 2000; i++) {
    const a = (await p.activation(id)) as GoogleActivation;
    if (a.status !== 'running') return a;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`activation ${id} still running`);
}

before(async () => {
  await api.start();
  gcf = cloud();
});
after(async () => {
  await gcf.close();
  await api.close();
});

test('deploy: upload URL, PUT of a real zip, createFunction with the right resource, operation polled', async () => {
  await gcf.deploy(spec);
  const v2 = api.callsTo('/v2/');
  assert.deepEqual(
    v2.map((c) => `${c.method} ${c.path.replace(/op-\d+$/, 'op-N')}`),
    [
      `POST ${PARENT}/functions:generateUploadUrl`,
      `GET ${PARENT}/functions/fl-client`, // does it exist? (404: create)
      `POST ${PARENT}/functions`,
      `GET ${PARENT}/operations/op-N`, // the client library polls the long-running operation
    ],
  );
  assert.ok(v2.every((c) => c.headers.authorization === 'Bearer api-token'));

  const [put] = api.callsTo('/upload/');
  assert.equal(put!.method, 'PUT');
  assert.equal(put!.headers['content-type'], 'application/zip');
  const files = unzipSync(new Uint8Array(put!.body));
  assert.deepEqual(Object.keys(files).sort(), ['action.js', 'index.js', 'package.json']);
  const pkg = JSON.parse(strFromU8(files['package.json']!)) as Record<string, any>;
  assert.equal(pkg.main, 'index.js');
  assert.ok(pkg.dependencies['@google-cloud/functions-framework']);
  assert.match(strFromU8(files['index.js']!), /exports\.fedkeeper_http = async \(req, res\)/);
  assert.equal(strFromU8(files['action.js']!), SOURCE);

  const create = v2[2]!;
  assert.equal(create.query.get('functionId'), 'fl-client');
  const fn = json(create);
  assert.equal(fn.name, 'projects/fedkeeper-test/locations/europe-west1/functions/fl-client');
  assert.equal(fn.buildConfig.runtime, 'nodejs20');
  assert.equal(fn.buildConfig.entryPoint, 'fedkeeper_http');
  assert.deepEqual(fn.buildConfig.source.storageSource, { bucket: 'gcf-v2-uploads-test', object: put!.path.slice('/upload/'.length) });
  assert.equal(fn.serviceConfig.availableMemory, '2048M');
  assert.equal(fn.serviceConfig.timeoutSeconds, 300);
  assert.equal(fn.serviceConfig.maxInstanceCount, 7);
  assert.deepEqual(fn.serviceConfig.environmentVariables, { ROLE: 'client' });
  assert.deepEqual(fn.labels, { 'managed-by': 'fedkeeper', 'fedkeeper-function': 'fl_client' });
});

test('list gives back the functions FedKeeper deployed, by their FedKeeper names', async () => {
  api.functions.set('projects/fedkeeper-test/locations/europe-west1/functions/someone-else', {
    name: 'projects/fedkeeper-test/locations/europe-west1/functions/someone-else',
  });
  assert.deepEqual(await gcf.list(), ['fl_client']);
});

test('invoke: non-blocking POST of JSON to the function URL with the identity token; the answer is recorded', async () => {
  const before = api.callsTo('/fn/').length;
  const id = await gcf.invoke('fl_client', { round: 3, blob: 'x'.repeat(1000) });
  assert.match(id, /^[0-9a-f]{32}$/);
  const a = await settled(gcf, id);
  assert.equal(a.status, 'success');
  assert.deepEqual(a.result, { echo: { round: 3, blob: 'x'.repeat(1000) }, function: 'fl-client' });
  assert.match(a.executionId ?? '', /^exec\d+$/, 'the function-execution-id header is kept');
  const calls = api.callsTo('/fn/').slice(before);
  assert.equal(calls.length, 1);
  assert.equal(calls[0]!.path, '/fn/fl-client');
  assert.equal(calls[0]!.method, 'POST');
  assert.equal(calls[0]!.headers.authorization, 'Bearer id-token');
  assert.equal(calls[0]!.headers['content-type'], 'application/json');
});

test('answers are classified: crash header → developer error; bare 5xx → internal; 4xx → application; 504 → timed out', async () => {
  const status = async (params: Record<string, unknown>): Promise<GoogleActivation> => settled(gcf, await gcf.invoke('fl_client', params));
  const crash = await status({ mode: 'crash' });
  assert.equal(crash.status, 'developer error');
  assert.equal(crash.result?.google_status, 'crash');
  assert.equal((await status({ mode: 'status', status: 500 })).status, 'internal error');
  assert.equal((await status({ mode: 'status', status: 429 })).status, 'application error');
  assert.equal((await status({ mode: 'status', status: 504 })).status, 'timed out');
});

test('a provider that did not deploy finds the function through the API; redeploying updates it', async () => {
  const other = cloud();
  try {
    const a = await settled(other, await other.invoke('fl_client', { n: 1 }));
    assert.equal(a.status, 'success');
    const n = api.calls.length;
    await other.deploy({ ...spec, memoryMb: 4096 });
    const patch = api.calls.slice(n).find((c) => c.method === 'PATCH');
    assert.ok(patch, 'an existing function is updated, not created again');
    assert.equal(patch.path, `${PARENT}/functions/fl-client`);
    assert.equal(json(patch).serviceConfig.availableMemory, '4096M');
  } finally {
    await other.close();
  }
});

test('an injected auth client and identity-token source are used; the token audience is the function URL', async () => {
  const audiences: string[] = [];
  const p = createGoogleProvider({
    cluster: 'gcf',
    settings: { project_id: 'fedkeeper-test', region: 'europe-west1', api_endpoint: api.base },
    stateDir: 'unused',
    source: () => SOURCE,
    authClient: new StaticTokenAuthClient('api-token'),
    idToken: async (audience) => {
      audiences.push(audience);
      return 'minted-id-token';
    },
  });
  try {
    const a = await settled(p, await p.invoke('fl_client', { n: 2 }));
    assert.equal(a.status, 'success');
    assert.deepEqual(audiences, [`${api.base}/fn/fl-client`]);
    assert.equal(api.callsTo('/fn/').at(-1)!.headers.authorization, 'Bearer minted-id-token');
  } finally {
    await p.close();
  }
});

test('the uploaded zip is a working GCF source: served by the real functions-framework at its entry point', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'fedkeeper-gcf-build-'));
  api.runSourcesIn = dir;
  const sources: Record<string, string> = {
    fl_echo: `exports.main = async (params) => ({ echo: params });`,
    fl_throw: `exports.main = async () => { throw new Error('thrown in main'); };`,
  };
  const p = createGoogleProvider({
    cluster: 'gcf',
    settings: { project_id: 'fedkeeper-test', region: 'europe-west1', api_endpoint: api.base, access_token: 'api-token', identity_token: 'id-token' },
    stateDir: 'unused',
    source: (name) => sources[name]!,
  });
  try {
    await p.deploy({ ...spec, name: 'fl_echo', settings: {} });
    await p.deploy({ ...spec, name: 'fl_throw', settings: {} });
    const a = await settled(p, await p.invoke('fl_echo', { weights: 'AAAA', round: 1 }));
    assert.equal(a.status, 'success');
    assert.deepEqual(a.result, { echo: { weights: 'AAAA', round: 1 } });
    assert.equal(a.coldStart, true, 'the wrapper reports the instance\'s first request');
    assert.equal((await settled(p, await p.invoke('fl_echo', {}))).coldStart, false);
    const t = await settled(p, await p.invoke('fl_throw', {}));
    assert.equal(t.status, 'developer error');
    assert.equal(t.result?.google_status, 'crash');
    await p.remove('fl_echo');
    await p.remove('fl_throw');
  } finally {
    api.runSourcesIn = undefined;
    await p.close();
    await api.stopInstances();
    await rm(dir, { recursive: true, force: true });
  }
});

test('an unknown function is a ProviderError naming the function and the cluster', async () => {
  await assert.rejects(gcf.invoke('fl_server_init', {}), (e: unknown) => {
    assert.ok(e instanceof ProviderError);
    assert.match(e.message, /^google cluster gcf: function fl_server_init is not deployed/);
    assert.equal(e.exitCode, 2);
    return true;
  });
});

test('refused credentials (401 or 403 from the API) are exit code 2 with one line naming the cluster', async () => {
  const wrong = cloud({ access_token: 'expired-token' }, 'gcp-eu');
  try {
    for (const code of [401, 403] as const) {
      api.refuseWith = code;
      for (const attempt of [() => wrong.deploy(spec), () => wrong.list()]) {
        await assert.rejects(attempt(), (e: unknown) => {
          assert.ok(e instanceof ProviderError);
          assert.equal(e.exitCode, 2);
          assert.match(e.message, /^google cluster gcp-eu: /);
          assert.match(e.message, code === 401 ? /credentials refused/ : /permission denied/);
          assert.ok(!e.message.includes('\n'), 'one line');
          return true;
        });
      }
    }
  } finally {
    api.refuseWith = 401;
    await wrong.close();
  }
});

test('no token is ever sent over plain http beyond this machine', async () => {
  api.functionUrlBase = 'http://10.9.8.7';
  const p = cloud();
  try {
    await p.deploy({ ...spec, name: 'fl_relay' }).then(
      () => assert.fail('deploy must refuse an http function URL off this machine'),
      (e: unknown) => assert.match(String(e), /google cluster gcf: refusing the URL of function fl_relay http:\/\/10\.9\.8\.7/),
    );
  } finally {
    api.functionUrlBase = undefined;
    await p.close();
  }
});

test('remove deletes the function (and is idempotent); list is then empty of it', async () => {
  await gcf.remove('fl_client');
  const del = api.calls.filter((c) => c.method === 'DELETE');
  assert.equal(del.at(-1)?.path, `${PARENT}/functions/fl-client`);
  assert.ok(!(await gcf.list()).includes('fl_client'));
  await gcf.remove('fl_client');
  await gcf.remove('fl_relay');
  await assert.rejects(gcf.invoke('fl_client', {}), /google cluster gcf: function fl_client is not deployed/);
});

test('config: cloud mode wants a project; mode and keys are checked', () => {
  assert.throws(() => createGoogleProvider({ cluster: 'x', settings: { mode: 'cloud' }, stateDir: '.' }), /google cluster x: project_id is required/);
  assert.throws(() => createGoogleProvider({ cluster: 'x', settings: { projectid: 'p' }, stateDir: '.' }), /google cluster x: unknown key projectid/);
  assert.equal(createGoogleProvider({ cluster: 'x', settings: {}, stateDir: '.' }).platform, 'google');
});
