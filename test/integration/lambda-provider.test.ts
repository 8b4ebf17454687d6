/**
 * The Lambda provider against the local Lambda platform, through the real AWS SDK: every call it makes (create,
 * update code and configuration, get, list, invoke, delete), the package Lambda records, and how answers become
 * activation statuses.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { strToU8, zipSync } from 'fflate';
import { launchLocalClusters, type LaunchedFabric } from '../../src/keeper/fabric-launcher.js';
import { LambdaProvider } from '../../src/providers/lambda.js';
import { ProviderError, type Activation, type FunctionSpec } from '../../src/providers/types.js';
import { packaged } from '../fixtures/packages.js';

const KEY = { access_key_id: 'AKIAPROVIDERTEST0001', secret_access_key: 'provider-test-secret' };
let fabric: LaunchedFabric;
let lambda: LambdaProvider;
let endpoint = '';
const dir = mkdtempSync(path.join(os.tmpdir(), 'fk-lambda-provider-'));

function zip(name: string, code: string): string {
  const f = path.join(dir, `${name}.zip`);
  writeFileSync(f, zipSync({ 'index.js': strToU8(code) }));
  return f;
}
const spec = (name: string, code: string, timeoutMs = 10_000, memoryMb = 128): FunctionSpec => ({ name, timeoutMs, memoryMb, settings: { func_path: zip(name, code) } });

async function settled(id: string): Promise<Activation> {
  for (;;) {
    const a = await lambda.activation(id);
    assert.ok(a, `activation ${id} unknown`);
    if (a.status !== 'running') return a;
    await new Promise((r) => setTimeout(r, 20));
  }
}

before(async () => {
  fabric = await launchLocalClusters([{ kind: 'lambda', name: 'aws', region: 'eu-west-1', accessKeyId: KEY.access_key_id, secretAccessKey: KEY.secret_access_key, profile: 'cloud' }], process.env);
  endpoint = fabric.urls.get('aws')!;
  lambda = new LambdaProvider({ cluster: 'aws', settings: { endpoint, region: 'eu-west-1', credentials: KEY } });
});
after(async () => {
  await lambda?.close();
  await fabric?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('deploy creates, a second deploy updates code and configuration; Lambda records the package; list and remove', async () => {
  const s = await packaged({ name: 'nodeinfo', timeoutMs: 30_000, memoryMb: 256, settings: {} }, 'lambda');
  await lambda.deploy(s);
  assert.ok((await lambda.list()).includes('nodeinfo'));
  assert.deepEqual(await lambda.deployedArtifact('nodeinfo'), { sha256: s.artifact!.sha256, size: s.artifact!.size }, "Lambda's CodeSha256 is the package's sha256");
  const first = await settled(await lambda.invoke('nodeinfo', {}));
  assert.equal(first.status, 'success', JSON.stringify(first.result));
  assert.equal(first.coldStart, true, 'the REPORT line of a first invocation has Init Duration');
  assert.equal(first.result?.activationId && typeof first.result.activationId, 'string');
  const warm = await settled(await lambda.invoke('nodeinfo', {}));
  assert.equal(warm.coldStart, false);

  const v2 = zip('nodeinfo-v2', 'exports.handler = async () => ({ v: 2, mem: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE, x: process.env.XX });');
  await lambda.deploy({ name: 'nodeinfo', timeoutMs: 30_000, memoryMb: 384, settings: { func_path: v2, env: { XX: 'y' } } });
  const updated = await settled(await lambda.invoke('nodeinfo', {}));
  assert.deepEqual(updated.result, { v: 2, mem: '384', x: 'y' }, 'new code, memory and environment');
  assert.notEqual((await lambda.deployedArtifact('nodeinfo'))?.sha256, s.artifact!.sha256);
  await lambda.remove('nodeinfo');
  assert.ok(!(await lambda.list()).includes('nodeinfo'));
  await lambda.remove('nodeinfo'); // already gone: no error
});

test('answers become statuses: application error, thrown error, crash, timeout, not deployed', async () => {
  await lambda.deploy(spec('apperr', "exports.handler = async (e) => ({ error: 'no ' + e.x });"));
  await lambda.deploy(spec('thrower', "exports.handler = async () => { throw new TypeError('boom'); };"));
  await lambda.deploy(spec('crasher', 'exports.handler = async () => { process.exit(3); };'));
  await lambda.deploy(spec('sleeper', 'exports.handler = () => new Promise((r) => setTimeout(() => r({}), 5000));', 1000));
  const [e, t, c, s] = await Promise.all(['apperr', 'thrower', 'crasher', 'sleeper'].map(async (f) => settled(await lambda.invoke(f, { x: 1 }))));
  assert.deepEqual([e!.status, e!.result?.error], ['application error', 'no 1']);
  assert.equal(t!.status, 'application error');
  assert.match(String(t!.result?.error), /^TypeError: boom/);
  assert.equal(c!.status, 'developer error');
  assert.match(String(c!.result?.error), /^Runtime\.ExitError/);
  assert.equal(s!.status, 'timed out');
  assert.match(String(s!.result?.error), /Task timed out after 1\.00 seconds/);
  const gone = await settled(await lambda.invoke('no_such_fn', {}));
  assert.equal(gone.status, 'internal error');
  assert.match(String(gone.result?.error), /lambda cluster aws: function no_such_fn: not deployed/);
});

test("bad input is refused in one line naming cluster and function: Lambda's limits, wrong credentials", async () => {
  const refused = (p: Promise<unknown>, re: RegExp) => assert.rejects(p, (e: unknown) => e instanceof ProviderError && e.exitCode === 2 && re.test(e.message) && !e.message.includes('\n'));
  await refused(lambda.deploy(spec('tiny', 'exports.handler = async () => ({});', 10_000, 64)), /^lambda cluster aws: function tiny: memory 64 MB is outside Lambda's 128–10,240 MB/);
  await refused(lambda.deploy(spec('slow', 'exports.handler = async () => ({});', 901_000)), /timeout 901 s is over Lambda's 900 s/);
  const wrong = new LambdaProvider({ cluster: 'aws', settings: { endpoint, region: 'eu-west-1', credentials: { ...KEY, secret_access_key: 'wrong-secret' } } });
  try {
    await refused(wrong.list(), /^lambda cluster aws: listing functions: the credentials were refused \(InvalidSignatureException/);
  } finally {
    await wrong.close();
  }
  const down = new LambdaProvider({ cluster: 'down', settings: { endpoint: 'http://127.0.0.1:1', region: 'eu-west-1', credentials: KEY } });
  try {
    await assert.rejects(down.list(), (e: unknown) => e instanceof ProviderError && e.transient && /^lambda cluster down: cannot reach http:\/\/127\.0\.0\.1:1/.test(e.message));
  } finally {
    await down.close();
  }
});
