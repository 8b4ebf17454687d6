/**
 * The Google provider in local mode, against the REAL functions-framework: each deployed function is an instance
 * process on 127.0.0.1 serving the GCF entry wrapper around an OpenWhisk-style main(params).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { createGoogleProvider, type GoogleActivation } from '../../src/providers/google.js';
import { classifyResponse } from '../../src/providers/google-invoke.js';
import { ProviderError, type FunctionSpec, type Provider } from '../../src/providers/types.js';
import { googleFixtureSource } from '../fixtures/google-functions.js';
import { packaged } from '../fixtures/packages.js';

let stateDir = '';
let gcf: Provider;

const spec = (name: string, timeoutMs = 10_000): FunctionSpec => ({ name, timeoutMs, memoryMb: 256, settings: {} });
const provider = (): Provider =>
  createGoogleProvider({ cluster: 'gcf', settings: {}, stateDir, source: googleFixtureSource });

async function settled(p: Provider, id: string, limitMs = 20_000): Promise<GoogleActivation> {
  const t0 = Date.now();
  for (;;) {
    const a = (await p.activation(id)) as GoogleActivation | undefined;
    assert.ok(a, `activation ${id} unknown`);
    if (a.status !== 'running') return a;
    assert.ok(Date.now() - t0 < limitMs, `activation ${id} still running after ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

interface Recorded {
  instances: { id: string; pid?: number; port?: number }[];
}
const deployments = (): Record<string, Recorded> =>
  JSON.parse(readFileSync(path.join(stateDir, 'google-gcf', 'deployments.json'), 'utf8')) as Record<string, Recorded>;
/** The function's one running instance (these tests use the defaults: one request at a time, one after the other). */
const only = (name: string): { pid: number; port: number } => {
  const running = deployments()[name]!.instances.filter((i) => i.pid !== undefined);
  assert.equal(running.length, 1, `${name}: ${JSON.stringify(running)}`);
  return running[0] as { pid: number; port: number };
};
const portOf = (name: string): number => only(name).port;
const pidOf = (name: string): number => only(name).pid;

function connects(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

before(async () => {
  stateDir = await mkdtemp(path.join(os.tmpdir(), 'fedkeeper-gcf-test-'));
  gcf = provider();
});

after(async () => {
  // Every instance this file started is stopped: first through the provider, then by pid as a safety net.
  const pids = existsSync(path.join(stateDir, 'google-gcf', 'deployments.json'))
    ? Object.values(deployments()).flatMap((d) => d.instances.flatMap((i) => (i.pid ? [i.pid] : [])))
    : [];
  for (const name of await gcf.list()) await gcf.remove(name);
  await gcf.close();
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already stopped */
    }
  }
  await rm(stateDir, { recursive: true, force: true });
});

test('deploy starts an instance on 127.0.0.1; invoke is non-blocking; the first request is cold, the next warm', async () => {
  await gcf.deploy(spec('echo_fn'));
  assert.deepEqual(await gcf.list(), ['echo_fn']);
  const port = portOf('echo_fn');
  assert.equal(await connects('127.0.0.1', port), true);
  const external = Object.values(os.networkInterfaces())
    .flat()
    .find((i) => i && i.family === 'IPv4' && !i.internal);
  if (external) assert.equal(await connects(external.address, port), false, 'the instance must not listen beyond loopback');

  const id = await gcf.invoke('echo_fn', { x: 1, nested: { s: 'é' } });
  assert.match(id, /^[0-9a-f]{32}$/);
  assert.equal((await gcf.activation(id))?.status, 'running', 'invoke returns before the function answers');
  const a = await settled(gcf, id);
  assert.equal(a.status, 'success');
  assert.deepEqual(a.result?.echo, { x: 1, nested: { s: 'é' } });
  assert.equal(a.result?.home, undefined, 'an instance sees nothing of fedkeeper (no FEDKEEPER_HOME)');
  assert.equal(a.result?.service, 'echo-fn');
  // OpenWhisk-style entries find their activation id and deadline where they look for them.
  assert.equal(a.result?.activationId, id);
  const deadline = Number(a.result?.deadline);
  assert.ok(deadline >= a.startTime + 9_000 && deadline <= a.startTime + 10_500, `deadline ${deadline} vs start ${a.startTime}`);
  assert.notEqual(a.result?.pid, process.pid);
  assert.equal(a.coldStart, true);
  assert.equal(a.instance, 'i1', 'the activation names the instance that served it');
  assert.equal(a.httpStatus, 200);
  assert.ok(a.endTime! >= a.startTime);

  const b = await settled(gcf, await gcf.invoke('echo_fn', { x: 2 }));
  assert.equal(b.status, 'success');
  assert.equal(b.coldStart, false);
  assert.equal(b.result?.pid, a.result?.pid, 'the same instance serves warm requests');
  assert.equal(b.instance, 'i1');
  assert.equal(await gcf.activation('0'.repeat(32)), undefined);
});

test('a throwing main is a developer error, decided by the X-Google-Status: crash header', async () => {
  await gcf.deploy(spec('throw_fn'));
  const a = await settled(gcf, await gcf.invoke('throw_fn', {}));
  assert.equal(a.status, 'developer error');
  assert.equal(a.httpStatus, 500);
  assert.equal(a.result?.google_status, 'crash');
  assert.match(String(a.result?.error), /boom from main/);
  // The header, not the 500, makes it a developer error: the same answer without it is the platform's failure.
  const body = Buffer.from('boom');
  assert.equal(classifyResponse(500, { 'x-google-status': 'crash' }, body).status, 'developer error');
  assert.equal(classifyResponse(500, {}, body).status, 'internal error');
  assert.equal(classifyResponse(200, { 'x-google-status': 'crash' }, Buffer.from('{}')).status, 'developer error');
});

test('an error field is an application error; a non-object result a developer error', async () => {
  await gcf.deploy(spec('app_error_fn'));
  await gcf.deploy(spec('not_object_fn'));
  const a = await settled(gcf, await gcf.invoke('app_error_fn', { why: 'no data' }));
  assert.equal(a.status, 'application error');
  assert.equal(a.result?.error, 'bad input: no data');
  const b = await settled(gcf, await gcf.invoke('not_object_fn', {}));
  assert.equal(b.status, 'developer error');
  assert.match(String(b.result?.error), /not a JSON object/);
});

test('past its timeout a call is timed out and abandoned; the function itself runs on, as on GCF', async () => {
  await gcf.deploy(spec('slow_fn', 300));
  const marker = path.join(stateDir, 'slow-finished');
  const a = await settled(gcf, await gcf.invoke('slow_fn', { ms: 2000, marker }));
  assert.equal(a.status, 'timed out');
  assert.match(String(a.result?.error), /does not stop/);
  assert.equal(existsSync(marker), false, 'the caller gives up at the timeout, before the function ends');
  for (let i = 0; i < 600 && !existsSync(marker); i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(existsSync(marker), true, 'the abandoned function finished anyway');
  const b = await settled(gcf, await gcf.invoke('slow_fn', { ms: 10 }));
  assert.equal(b.status, 'success');
});

test('a ~2 MB base64 payload arrives intact', async () => {
  await gcf.deploy(spec('digest_fn'));
  const bytes = randomBytes(1_500_000);
  const blob = bytes.toString('base64');
  assert.ok(blob.length > 1_900_000);
  const { createHash } = await import('node:crypto');
  const a = await settled(gcf, await gcf.invoke('digest_fn', { blob }));
  assert.equal(a.status, 'success');
  assert.equal(a.result?.length, blob.length);
  assert.equal(a.result?.sha256, createHash('sha256').update(blob).digest('hex'));
});

test('an instance that dies is a developer error; the next invoke starts a new, cold one', async () => {
  await gcf.deploy(spec('exit_fn'));
  const before = pidOf('exit_fn');
  const a = await settled(gcf, await gcf.invoke('exit_fn', { exit: true }));
  assert.equal(a.status, 'developer error');
  const b = await settled(gcf, await gcf.invoke('exit_fn', {}));
  assert.equal(b.status, 'success');
  assert.equal(b.coldStart, true);
  assert.notEqual(b.result?.pid, before);
  assert.notEqual(b.instance, a.instance, 'a new instance replaced the dead one');
  assert.equal(pidOf('exit_fn'), b.result?.pid, 'the dead instance is no longer recorded');
});

test('redeploying restarts the instance with the new code', async () => {
  const first = pidOf('echo_fn');
  await gcf.deploy(spec('echo_fn'));
  assert.notEqual(pidOf('echo_fn'), first);
  assert.equal(await connects('127.0.0.1', portOf('echo_fn')), true);
  const a = await settled(gcf, await gcf.invoke('echo_fn', { again: true }));
  assert.equal(a.coldStart, true);
  assert.deepEqual(a.result?.echo, { again: true });
});

test('deployments outlive the provider object: another one (a later CLI command) invokes and lists them', async () => {
  const other = provider();
  try {
    assert.ok((await other.list()).includes('echo_fn'));
    const a = await settled(other, await other.invoke('echo_fn', { from: 'other' }));
    assert.equal(a.status, 'success');
    assert.equal(a.coldStart, false, 'the running instance is reused, not restarted');
  } finally {
    await other.close();
  }
});

test('remove stops the instance: its port refuses, list forgets it, invoke names function and cluster', async () => {
  const port = portOf('echo_fn');
  await gcf.remove('echo_fn');
  assert.equal(await connects('127.0.0.1', port), false);
  assert.ok(!(await gcf.list()).includes('echo_fn'));
  await gcf.remove('echo_fn'); // removing twice is fine
  await assert.rejects(gcf.invoke('echo_fn', {}), (e: unknown) => {
    assert.ok(e instanceof ProviderError);
    assert.match(e.message, /^google cluster gcf: function echo_fn is not deployed/);
    assert.equal(e.exitCode, 2);
    return true;
  });
});

test('FedKeeper\'s own functions run from their GCF package under the framework: nodeinfo answers', async () => {
  const own = createGoogleProvider({ cluster: 'gcf', settings: {}, stateDir }); // no source: packages only
  try {
    await own.deploy(await packaged(spec('nodeinfo'), 'gcf'));
    assert.equal((await own.deployedArtifact!('nodeinfo'))?.sha256, (await packaged(spec('nodeinfo'), 'gcf')).artifact!.sha256);
    const id = await own.invoke('nodeinfo', {});
    const a = await settled(own, id);
    assert.equal(a.status, 'success', JSON.stringify(a.result));
    assert.equal(a.result?.activationId, id);
    assert.equal(typeof a.result?.cores, 'number');
    assert.equal(a.result?.engine, 'wasm', 'a package trains on the wasm engine');
    await assert.rejects(own.deploy(spec('fl_nothing')), (e: unknown) => e instanceof ProviderError && e.exitCode === 2 && /no code for function fl_nothing/.test(e.message));
  } finally {
    await own.remove('nodeinfo');
    await own.close();
  }
});

test('code that does not load fails the deploy with the framework\'s own words', async () => {
  await assert.rejects(gcf.deploy(spec('syntax_error_fn')), (e: unknown) => {
    assert.ok(e instanceof ProviderError);
    assert.match(e.message, /^google cluster gcf: function syntax_error_fn did not start: .*(syntax error|SyntaxError)/);
    return true;
  });
  await assert.rejects(gcf.deploy(spec('Bad_Name')), /google cluster gcf: function name Bad_Name/);
});
