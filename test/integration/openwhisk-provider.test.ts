/**
 * The OpenWhisk provider (official `openwhisk` client) against the local OpenWhisk platform, started the way the
 * keeper starts it (a separate fabric process reached over HTTP).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import openwhisk from 'openwhisk';
import { packaged } from '../fixtures/packages.js';
import { launchLocalClusters, type LaunchedFabric } from '../../src/keeper/fabric-launcher.js';
import { OpenWhiskProvider, openWhiskOptions } from '../../src/providers/openwhisk.js';
import { ProviderError, type Activation, type Provider } from '../../src/providers/types.js';

const KEY = '23bc46b1-71f6-4ed5-8c54-816aa4f8c502:secret-test-key';
const dir = mkdtempSync(path.join(os.tmpdir(), 'fk-owp-'));
let fabric: LaunchedFabric;
let ow: OpenWhiskProvider;

const file = (name: string, code: string) => {
  const f = path.join(dir, name);
  writeFileSync(f, code);
  return f;
};
const spec = (name: string, settings: Record<string, unknown> = {}, timeoutMs = 10_000) => ({ name, timeoutMs, memoryMb: 256, settings });

async function until(p: Provider, id: string): Promise<Activation> {
  for (let i = 0; i < 400; i++) {
    const a = await p.activation(id);
    assert.ok(a, `activation ${id} unknown`);
    if (a.status !== 'running') return a;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('activation did not end');
}

before(async () => {
  // Its operator allows up to 3 concurrent activations per container (stock OpenWhisk: 1), for the web-action test.
  fabric = await launchLocalClusters([{ name: 'ow1', auth: KEY, profile: { base: 'cloud', limits: { concurrency: { max: 3 } } } }], process.env);
  ow = new OpenWhiskProvider(openWhiskOptions('ow1', { api_host: fabric.urls.get('ow1'), auth: { ow_auth: KEY } }));
});
after(async () => {
  await ow?.close();
  await fabric?.close();
  rmSync(dir, { recursive: true, force: true });
});

test("config: the seed's base_url and auth are understood; TLS stays verified unless insecure: true", () => {
  const o = openWhiskOptions('c', { base_url: 'https://10.0.0.5:31001/api/v1/namespaces/guest/actions/', auth: { ow_auth: KEY } });
  assert.equal(o.apiHost, 'https://10.0.0.5:31001');
  assert.equal(o.namespace, 'guest');
  assert.equal(o.insecure, false);
  assert.equal(openWhiskOptions('c', { api_host: 'ow.example:443', auth: { ow_auth: KEY }, insecure: true }).insecure, true);
  assert.throws(() => openWhiskOptions('c', { api_host: 'http://x' }), (e: Error) => e instanceof ProviderError && e.exitCode === 2 && /ow_auth/.test(e.message));
});

test('deploy, list, invoke without blocking, poll to success, warm second call, remove', async () => {
  await ow.deploy(await packaged(spec('nodeinfo'), 'openwhisk'));
  assert.ok((await ow.list()).includes('nodeinfo'));
  const id = await ow.invoke('nodeinfo', {});
  assert.match(id, /^[0-9a-f]{32}$/);
  const a = await until(ow, id);
  assert.equal(a.status, 'success');
  assert.equal(a.coldStart, true);
  assert.equal(typeof a.result!.cores, 'number');
  assert.equal(a.result!.activationId, id, 'the function saw its own activation id');
  assert.ok(a.endTime! >= a.startTime);
  const b = await until(ow, await ow.invoke('nodeinfo', {}));
  assert.equal(b.coldStart, false);
  await ow.remove('nodeinfo');
  assert.ok(!(await ow.list()).includes('nodeinfo'));
  await ow.remove('nodeinfo'); // already gone: no error
});

test('web: true deploys a web action; limits and code reach the platform', async () => {
  const withPackage = await packaged({ name: 'nodeinfo', timeoutMs: 7000, memoryMb: 192, settings: { web: true, concurrency: 3 } }, 'openwhisk');
  await ow.deploy(withPackage);
  const client = openwhisk({ apihost: fabric.urls.get('ow1')!, api_key: KEY });
  const a = await client.actions.get({ name: 'nodeinfo' });
  const ann = (a.annotations ?? []) as { key: string; value: unknown }[];
  assert.equal(ann.find((x) => x.key === 'web-export')?.value, true);
  assert.deepEqual({ ...a.limits }, { ...a.limits, timeout: 7000, memory: 192, concurrency: 3 });
  // The package went as a zip action (binary, main "main"), and the action names the package it runs.
  assert.equal((a.exec as { binary?: boolean }).binary, true);
  assert.equal((a.exec as { main?: string }).main, 'main');
  assert.equal(ann.find((x) => x.key === 'fedkeeper-package')?.value && (ann.find((x) => x.key === 'fedkeeper-package')!.value as { sha256: string }).sha256, withPackage.artifact!.sha256);
  assert.deepEqual(await ow.deployedArtifact('nodeinfo'), { sha256: withPackage.artifact!.sha256, size: withPackage.artifact!.size });
  await ow.remove('nodeinfo');
});

test('failure classes: application error, crash, non-object result, timeout', async () => {
  await ow.deploy(spec('apperr', { func_path: file('apperr.js', "function main(p) { return { error: 'no ' + p.x }; }") }));
  await ow.deploy(spec('crash', { func_path: file('crash.js', 'function main() { process.exit(3); }') }));
  await ow.deploy(spec('num', { func_path: file('num.js', 'function main() { return 42; }') }));
  await ow.deploy(spec('slow', { func_path: file('slow.js', 'function main() { return new Promise((r) => setTimeout(() => r({}), 5000)); }') }, 300));
  const [e, c, n, t] = await Promise.all(['apperr', 'crash', 'num', 'slow'].map(async (f) => until(ow, await ow.invoke(f, { x: 1 }))));
  assert.equal(e!.status, 'application error');
  assert.equal(e!.result!.error, 'no 1');
  assert.equal(c!.status, 'developer error');
  assert.equal(n!.status, 'developer error');
  assert.equal(t!.status, 'timed out');
  assert.match(String(t!.result!.error), /exceeded its time limits of 300 milliseconds/);
});

test('an unknown action names the function and the cluster; wrong credentials give one line naming the cluster', async () => {
  await assert.rejects(ow.invoke('no_such_fn', {}), (e: Error) => e instanceof ProviderError && e.exitCode === 2 && /openwhisk cluster ow1: action no_such_fn does not exist/.test(e.message));
  const bad = new OpenWhiskProvider(openWhiskOptions('ow1', { api_host: fabric.urls.get('ow1'), auth: { ow_auth: '23bc46b1-71f6-4ed5-8c54-816aa4f8c502:wrong' } }));
  try {
    await assert.rejects(bad.list(), (e: Error) => e instanceof ProviderError && e.exitCode === 2 && /^openwhisk cluster ow1: the API key was refused \(HTTP 401\)/.test(e.message) && !e.message.includes('\n'));
  } finally {
    await bad.close();
  }
  assert.equal(await ow.activation('ffffffffffffffffffffffffffffffff'), undefined);
});

test('an unreachable cluster is a ProviderError naming the host', async () => {
  const gone = new OpenWhiskProvider(openWhiskOptions('down', { api_host: 'http://127.0.0.1:1', auth: { ow_auth: KEY } }));
  try {
    await assert.rejects(gone.invoke('x', {}), (e: Error) => e instanceof ProviderError && e.transient && /openwhisk cluster down: cannot reach http:\/\/127\.0\.0\.1:1/.test(e.message));
  } finally {
    await gone.close();
  }
});
