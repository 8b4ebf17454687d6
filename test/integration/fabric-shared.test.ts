/**
 * A fabric shared by concurrent keepers: the keepers route of its platforms (register, leave, list; the cluster's key
 * for OpenWhisk, SigV4 for Lambda; 503 once stopping), and — with real processes — two keepers with the same fixed
 * ports: the first starts the fabric, the second reuses it; the first closes and exits, the platforms keep serving
 * the second; after a `kill -9` of the second the fabric stops on its own. A keeper alone stops its fabric at close().
 * A platform that is not a FedKeeper fabric is used as it is; a fabric stopping on a port is waited for, then replaced.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { test, type TestContext } from 'node:test';
import { ListFunctionsCommand } from '@aws-sdk/client-lambda';
import { FabricKeepers, startFabric } from '../../src/fabric/main.js';
import { launchLocalClusters } from '../../src/keeper/fabric-launcher.js';
import { KEY, REGION, lambdaClient, signedFetch } from '../fixtures/lambda-functions.js';

const OW_AUTH = 'aaaaaaaa-0000-4000-8000-000000000001:keyOfClusterA';
const BASIC = `Basic ${Buffer.from(OW_AUTH).toString('base64')}`;
const LAUNCHER = new URL('../../src/keeper/fabric-launcher.js', import.meta.url).href;
/** Generous bound for anything a slow machine may take (the fabric notices dead keepers within ~0.5 s). */
const DEADLINE_MS = 20_000;

/** A keeper process: launches the clusters of FK_TEST_REQUESTS, then obeys `close` / `exit` lines on stdin. */
const KEEPER = `
const { launchLocalClusters } = await import(${JSON.stringify(LAUNCHER)});
const { createInterface } = await import('node:readline');
const say = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
let fabric;
try {
  fabric = await launchLocalClusters(JSON.parse(process.env.FK_TEST_REQUESTS), process.env);
} catch (e) {
  say({ event: 'error', message: String(e && e.message) });
  process.exit(1);
}
say({ event: 'up', urls: Object.fromEntries(fabric.urls) });
for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'close') {
    await fabric.close();
    say({ event: 'closed' });
  }
  if (line === 'exit') break;
}
process.exit(0);
`;

interface Keeper {
  proc: ChildProcess;
  /** The next event line (skipping others), or a failure naming what the keeper wrote on stderr. */
  next(event: string): Promise<Record<string, unknown>>;
  send(line: string): void;
}

function startKeeper(t: TestContext, requests: unknown[]): Keeper {
  const proc = spawn(process.execPath, ['--input-type=module', '-e', KEEPER], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, FK_TEST_REQUESTS: JSON.stringify(requests) } });
  t.after(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const lines = createInterface({ input: proc.stdout! })[Symbol.asyncIterator]();
  return {
    proc,
    async next(event) {
      const timer = setTimeout(() => proc.kill('SIGKILL'), 120_000); // a keeper that hangs: fail, do not hang the suite
      try {
        for (;;) {
          const r = await lines.next();
          if (r.done) throw new Error(`keeper ${proc.pid} ended before "${event}": ${stderr.trim()}`);
          const o = JSON.parse(r.value) as Record<string, unknown>;
          if (o.event === 'error') throw new Error(`keeper ${proc.pid}: ${String(o.message)}`);
          if (o.event === event) return o;
        }
      } finally {
        clearTimeout(timer);
      }
    },
    send(line) {
      proc.stdin!.write(`${line}\n`);
    },
  };
}

/** Free ports on 127.0.0.1 (listened on with port 0, then closed). */
async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, async () => {
      const s = net.createServer();
      s.listen(0, '127.0.0.1');
      await once(s, 'listening');
      return s;
    }),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

function portAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** The process no longer exists (or is a zombie nobody has reaped yet). */
function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

async function eventually(what: string, cond: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + DEADLINE_MS;
  while (!(await cond())) {
    if (Date.now() > deadline) assert.fail(`not within ${DEADLINE_MS / 1000} s: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Kills a fabric a failed test left behind (it is no child of the test: the keepers started it). */
function killLeftover(pid: number | undefined): void {
  if (pid !== undefined && !processGone(pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

async function owKeepers(port: number, method = 'GET', pid?: number, auth = BASIC): Promise<{ status: number; body: any }> {
  const res = await fetch(`http://127.0.0.1:${port}/api/v1/fedkeeper/keepers${pid !== undefined ? `/${pid}` : ''}`, { method, headers: { authorization: auth } });
  return { status: res.status, body: await res.json() };
}

async function owActions(port: number): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/api/v1/namespaces/_/actions`, { headers: { authorization: BASIC } });
  await res.arrayBuffer();
  return res.status;
}

function requestsFor(owPort: number, lambdaPort: number): unknown[] {
  return [
    { name: 'ow', auth: OW_AUTH, profile: 'cloud', port: owPort },
    { kind: 'lambda', name: 'aws', region: REGION, ...KEY, profile: 'cloud', port: lambdaPort },
  ];
}

test('the keepers route: register, leave and list keepers, with the cluster key (OpenWhisk) or SigV4 (Lambda); 503 once stopping', async (t) => {
  const keepers = new FabricKeepers();
  const fabric = await startFabric([{ name: 'ow', auth: OW_AUTH }, { kind: 'lambda', name: 'aws', region: REGION, ...KEY }], {}, { keepers });
  // in this process, the fabric is this process: another process plays the keeper
  const other = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  t.after(() => other.kill('SIGKILL'));
  try {
    assert.equal(fabric.keepers, keepers);
    const owPort = Number(new URL(fabric.clusters[0]!.url).port);
    const lambdaUrl = fabric.clusters[1]!.url;
    const pid = other.pid!;
    assert.deepEqual(await owKeepers(owPort), { status: 200, body: { fabric_pid: process.pid, keepers: [], stopping: false } });
    // two uses by that process (one per platform): it counts until both have ended
    assert.deepEqual((await owKeepers(owPort, 'PUT', pid)).body.keepers, [pid]);
    const put = await signedFetch(lambdaUrl, 'PUT', `/fedkeeper/keepers/${pid}`);
    assert.equal(put.status, 200);
    assert.deepEqual(put.json(), { fabric_pid: process.pid, keepers: [pid], stopping: false });
    assert.deepEqual((await signedFetch(lambdaUrl, 'DELETE', `/fedkeeper/keepers/${pid}`)).json().keepers, [pid]);
    assert.deepEqual((await owKeepers(owPort, 'DELETE', pid)).body.keepers, []);
    // registered again, then dead: it no longer counts
    assert.deepEqual((await owKeepers(owPort, 'PUT', pid)).body.keepers, [pid]);
    other.kill('SIGKILL');
    await once(other, 'exit');
    assert.deepEqual((await owKeepers(owPort)).body.keepers, []);
    // the key is needed; a pid must be one (and not the fabric's own)
    assert.equal((await owKeepers(owPort, 'PUT', pid, `Basic ${Buffer.from('x:y').toString('base64')}`)).status, 401);
    assert.equal((await signedFetch(lambdaUrl, 'PUT', `/fedkeeper/keepers/${pid}`, { key: { ...KEY, secretAccessKey: 'wrong' } })).status, 403);
    assert.equal((await fetch(`http://127.0.0.1:${owPort}/api/v1/fedkeeper/keepers/-3`, { method: 'PUT', headers: { authorization: BASIC } })).status, 400);
    assert.equal((await owKeepers(owPort, 'PUT', process.pid)).status, 400);
    assert.equal((await signedFetch(lambdaUrl, 'PUT', '/fedkeeper/keepers/abc')).status, 400);
    assert.equal((await owKeepers(owPort, 'POST', pid)).status, 405);
    // stopping: registrations are refused with 503, the answer says so
    keepers.stop();
    const refused = await owKeepers(owPort, 'PUT', pid);
    assert.equal(refused.status, 503);
    assert.equal(refused.body.stopping, true);
    const refusedLambda = await signedFetch(lambdaUrl, 'PUT', `/fedkeeper/keepers/${pid}`);
    assert.equal(refusedLambda.status, 503);
    assert.equal(refusedLambda.json().stopping, true);
  } finally {
    await fabric.close();
  }
});

test('two keepers share a fabric on fixed ports: the first leaves, the platforms serve the second; after its kill -9 the fabric stops', async (t) => {
  const [owPort, lambdaPort] = await freePorts(2);
  const requests = requestsFor(owPort!, lambdaPort!);
  let fabricPid: number | undefined;
  t.after(() => killLeftover(fabricPid));

  const a = startKeeper(t, requests);
  const upA = await a.next('up');
  assert.deepEqual(upA.urls, { ow: `http://127.0.0.1:${owPort}`, aws: `http://127.0.0.1:${lambdaPort}` });
  const before = await owKeepers(owPort!);
  fabricPid = before.body.fabric_pid as number;
  assert.deepEqual(before.body.keepers, [a.proc.pid]); // the keeper that started it, implicitly

  const b = startKeeper(t, requests);
  assert.deepEqual((await b.next('up')).urls, upA.urls);
  assert.deepEqual(new Set((await owKeepers(owPort!)).body.keepers), new Set([a.proc.pid, b.proc.pid]));
  const lambdaView = (await signedFetch(`http://127.0.0.1:${lambdaPort}`, 'GET', '/fedkeeper/keepers')).json();
  assert.equal(lambdaView.fabric_pid, fabricPid); // one fabric process hosts both platforms

  a.send('close');
  await a.next('closed');
  a.send('exit');
  await once(a.proc, 'exit');
  // past several of the fabric's checks: it has seen its parent gone, and serves the second keeper
  await new Promise((r) => setTimeout(r, 1500));
  assert.ok(!processGone(fabricPid), 'the fabric still runs');
  assert.equal(await owActions(owPort!), 200);
  assert.deepEqual((await lambdaClient(`http://127.0.0.1:${lambdaPort}`).send(new ListFunctionsCommand({}))).Functions, []);
  assert.deepEqual((await owKeepers(owPort!)).body.keepers, [b.proc.pid]);

  b.proc.kill('SIGKILL');
  await once(b.proc, 'exit');
  await eventually('the fabric stops once no keeper lives', async () => processGone(fabricPid!) && !(await portAnswers(owPort!)) && !(await portAnswers(lambdaPort!)));
});

test('the second keeper leaves (close) while still alive: the fabric, whose starter is gone, stops at once', async (t) => {
  const [owPort, lambdaPort] = await freePorts(2);
  const requests = requestsFor(owPort!, lambdaPort!);
  let fabricPid: number | undefined;
  t.after(() => killLeftover(fabricPid));

  const a = startKeeper(t, requests);
  await a.next('up');
  fabricPid = (await owKeepers(owPort!)).body.fabric_pid as number;
  const b = startKeeper(t, requests);
  await b.next('up');
  a.send('close');
  await a.next('closed');
  a.send('exit');
  await once(a.proc, 'exit');
  assert.equal(await owActions(owPort!), 200);

  b.send('close');
  await b.next('closed');
  await eventually('the fabric stops once its last keeper has left', async () => processGone(fabricPid!) && !(await portAnswers(owPort!)));
  assert.equal(b.proc.exitCode, null, 'the second keeper still lives');
  b.send('exit');
  await once(b.proc, 'exit');
});

test('a keeper alone: close() stops the fabric it started, and waits for it', async (t) => {
  const [owPort, lambdaPort] = await freePorts(2);
  let fabricPid: number | undefined;
  t.after(() => killLeftover(fabricPid));
  const a = startKeeper(t, requestsFor(owPort!, lambdaPort!));
  await a.next('up');
  fabricPid = (await owKeepers(owPort!)).body.fabric_pid as number;
  a.send('close');
  await a.next('closed');
  assert.equal(await portAnswers(owPort!), false);
  assert.equal(await portAnswers(lambdaPort!), false);
  await eventually('the fabric process is gone', () => processGone(fabricPid!));
  a.send('exit');
  assert.equal((await once(a.proc, 'exit'))[0], 0);
});

test('a platform that is not a FedKeeper fabric is used as it is; one stopping is waited for, then started here', async () => {
  // not a fabric: everything is 404 — nothing to keep alive, and no error
  const other = createServer((req, res) => {
    req.resume();
    res.writeHead(404).end('{}');
  });
  other.listen(0, '127.0.0.1');
  await once(other, 'listening');
  const otherPort = (other.address() as AddressInfo).port;
  try {
    const launched = await launchLocalClusters([{ name: 'ow', auth: OW_AUTH, profile: 'cloud', port: otherPort }, { kind: 'lambda', name: 'aws', ...KEY, port: otherPort }], process.env);
    assert.deepEqual([...launched.urls.values()], [`http://127.0.0.1:${otherPort}`, `http://127.0.0.1:${otherPort}`]);
    await launched.close();
  } finally {
    await new Promise((r) => other.close(r));
  }

  // a fabric stopping (503, stopping: true) that lets its port go a little later: the cluster is then started here
  const stopping = createServer((req, res) => {
    req.resume();
    res.writeHead(503, { 'Content-Type': 'application/json' }).end(JSON.stringify({ error: 'the fabric is stopping', fabric_pid: 1, keepers: [], stopping: true }));
    setTimeout(() => {
      stopping.close();
      stopping.closeAllConnections();
    }, 300);
  });
  stopping.listen(0, '127.0.0.1');
  await once(stopping, 'listening');
  const port = (stopping.address() as AddressInfo).port;
  try {
    const launched = await launchLocalClusters([{ name: 'ow', auth: OW_AUTH, profile: 'cloud', port }], process.env);
    try {
      assert.equal(launched.urls.get('ow'), `http://127.0.0.1:${port}`);
      const view = await owKeepers(port);
      assert.equal(view.status, 200);
      assert.notEqual(view.body.fabric_pid, process.pid);
      assert.deepEqual(view.body.keepers, [process.pid]);
    } finally {
      await launched.close();
    }
    assert.equal(await portAnswers(port), false);
  } finally {
    stopping.close();
    stopping.closeAllConnections();
  }
});
