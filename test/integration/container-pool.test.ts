/**
 * The container runtime: one action-runtime process spoken to directly over HTTP (the OpenWhisk action-runtime
 * contract), then the ContainerPool that starts, reuses, bounds and kills them.
 */
import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { strToU8, zipSync } from 'fflate';
import { ACTIVATION_SENTINEL } from '../../src/runtime/action-contract.js';
import { ContainerPool, type ContainerPoolOptions } from '../../src/runtime/container-pool.js';
import type { ContainerAction, ContainerRunResult, RunMeta } from '../../src/runtime/container-types.js';

const RUNTIME = fileURLToPath(new URL('../../src/runtime/action-runtime.js', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- one runtime, over HTTP

interface Runtime {
  proc: ChildProcess;
  post: (route: string, body: unknown) => Promise<{ status: number; body: Record<string, unknown> }>;
  stdout: () => string;
}
const runtimes: ChildProcess[] = [];
const scratch = mkdtempSync(path.join(os.tmpdir(), 'fk-runtime-test-'));
after(() => {
  runtimes.forEach((p) => p.kill('SIGKILL'));
  rmSync(scratch, { recursive: true, force: true });
});

async function startRuntime(): Promise<Runtime> {
  // A directory of ours: the runtime cannot clean up its own after a SIGKILL.
  const proc = fork(RUNTIME, [mkdtempSync(path.join(scratch, 'rt-'))], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  runtimes.push(proc);
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.resume();
  const port = await new Promise<number>((resolve) => proc.on('message', (m: { type: string; port: number }) => m.type === 'listening' && resolve(m.port)));
  const post = async (route: string, body: unknown) => {
    const r = await fetch(`http://127.0.0.1:${port}${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  };
  return { proc, post, stdout: () => out };
}

const runBody = (value: unknown, id = 'act1') => ({ value, namespace: 'guest', action_name: 'probe', activation_id: id, transaction_id: 'tx1', deadline: '1999999999999' });

test('runtime: /run before /init is 403, /init happens once, /run answers the result and sets __OW_*', async () => {
  const rt = await startRuntime();
  assert.equal((await rt.post('/run', runBody({}))).status, 403);
  const code = `function main(params) {
    if (params.throw) throw new Error('thrown ' + params.throw);
    if ('ret' in params) return params.ret;
    return { got: params, id: process.env.__OW_ACTIVATION_ID, deadline: process.env.__OW_DEADLINE, ns: process.env.__OW_NAMESPACE,
             action: process.env.__OW_ACTION_NAME, tx: process.env.__OW_TRANSACTION_ID, mine: process.env.MY_VAR };
  }`; // OpenWhisk style: declared, not exported
  const init = await rt.post('/init', { value: { name: 'probe', main: 'main', code, binary: false, env: { MY_VAR: 'v1' } } });
  assert.equal(init.status, 200, JSON.stringify(init.body));
  const again = await rt.post('/init', { value: { name: 'probe', main: 'main', code, binary: false } });
  assert.deepEqual(again, { status: 403, body: { error: 'Internal error. Cannot initialize the action more than once.' } });

  const ok = await rt.post('/run', runBody({ a: 1 }));
  assert.equal(ok.status, 200);
  assert.deepEqual(ok.body, { got: { a: 1 }, id: 'act1', deadline: '1999999999999', ns: 'guest', action: 'probe', tx: 'tx1', mine: 'v1' });
  assert.deepEqual(await rt.post('/run', runBody({ throw: 'x' })), { status: 200, body: { error: 'thrown x' } });
  assert.deepEqual(await rt.post('/run', runBody({ ret: { error: 'mine' } })), { status: 200, body: { error: 'mine' } });
  for (const ret of [42, [1, 2], null]) {
    assert.deepEqual(await rt.post('/run', runBody({ ret })), { status: 502, body: { error: 'The action did not return a dictionary.' } });
  }
  // the sentinel follows every activation (6 runs so far; 403 before init is not one)
  await sleep(50);
  assert.equal(rt.stdout().split('\n').filter((l) => l === ACTIVATION_SENTINEL).length, 6);
});

test('runtime: bad code is a 502 at /init, and /run after it is 403', async () => {
  for (const [code, msg] of [
    ['exports.main = function (', /SyntaxError/],
    ['exports.other = () => ({})', /exports no function "main"/],
  ] as const) {
    const rt = await startRuntime();
    const init = await rt.post('/init', { value: { name: 'bad', main: 'main', code, binary: false } });
    assert.equal(init.status, 502);
    assert.match(String(init.body.error), msg);
    assert.equal((await rt.post('/run', runBody({}))).status, 403);
  }
});

test('runtime: large bodies (tens of MB) go both ways', async () => {
  const rt = await startRuntime();
  await rt.post('/init', { value: { name: 'big', main: 'main', code: 'exports.main = (p) => ({ len: p.blob.length, back: p.blob })', binary: false } });
  const blob = 'x'.repeat(30 * 1024 * 1024);
  const r = await rt.post('/run', runBody({ blob }));
  assert.equal(r.status, 200);
  assert.equal(r.body.len, blob.length);
  assert.equal(r.body.back, blob);
});

// ---------------------------------------------------------------- the pool

const pools: ContainerPool[] = [];
after(() => Promise.all(pools.map((p) => p.close())));
function newPool(opts: Partial<ContainerPoolOptions> = {}): ContainerPool {
  const p = new ContainerPool({ memoryMb: 2048, label: 'test cluster', ...opts });
  pools.push(p);
  return p;
}

let ids = 0;
const meta = (): RunMeta => ({ activationId: `a${++ids}`, namespace: 'guest', actionName: 'probe' });
function action(name: string, code: string, over: Partial<ContainerAction['limits']> = {}, exec: Partial<ContainerAction['exec']> = {}): ContainerAction {
  return { name, version: 'v1', exec: { kind: 'nodejs:20', code, ...exec }, limits: { timeoutMs: 5000, memoryMb: 256, concurrency: 1, ...over } };
}
const SLEEPER = `exports.main = async (p) => { const t0 = Date.now(); await new Promise((r) => setTimeout(r, p.ms ?? 0)); return { pid: process.pid, slept: Date.now() - t0 }; }`;

test('pool: zip (binary) actions: package.json main, index.js exporting a function, ES modules; ES module source', async () => {
  const pool = newPool();
  const withPkg = Buffer.from(
    zipSync({
      'package.json': strToU8(JSON.stringify({ name: 'z', main: 'lib/entry.js' })),
      'lib/entry.js': strToU8('const h = require("./helper"); exports.main = (p) => ({ zipped: true, n: p.n, x: h.x });'),
      'lib/helper.js': strToU8('exports.x = 7;'),
    }),
  ).toString('base64');
  const a = await pool.run(action('zip1', withPkg, {}, { binary: true }), { n: 3 }, meta());
  assert.equal(a.status, 'success', JSON.stringify(a.result));
  assert.deepEqual(a.result, { zipped: true, n: 3, x: 7 });
  const indexOnly = Buffer.from(zipSync({ 'index.js': strToU8('module.exports = (p) => ({ plain: p.v });') })).toString('base64');
  const b = await pool.run(action('zip2', indexOnly, {}, { binary: true }), { v: 'ok' }, meta());
  assert.deepEqual(b.result, { plain: 'ok' });
  const esmZip = Buffer.from(
    zipSync({ 'package.json': strToU8('{"type":"module"}'), 'index.js': strToU8('export async function main(p) { return { esm: true, p }; }') }),
  ).toString('base64');
  assert.deepEqual((await pool.run(action('zip-esm', esmZip, {}, { binary: true }), { q: 1 }, meta())).result, { esm: true, p: { q: 1 } });
  const esmSource = await pool.run(action('src-esm', 'export function main(p) { return { esmSource: p.q }; }'), { q: 2 }, meta());
  assert.deepEqual(esmSource.result, { esmSource: 2 });
  const empty = Buffer.from(zipSync({ 'README.md': strToU8('no code') })).toString('base64');
  const c = await pool.run(action('zip3', empty, {}, { binary: true }), {}, meta());
  assert.equal(c.status, 'developer error');
  assert.match(String(c.result.error), /index\.js/);
});

test('pool: the second run is warm on the same container; a thrown error is an application error', async () => {
  const pool = newPool();
  const echo = action('echo', 'exports.main = (p) => { if (p.fail) throw new Error("boom"); return { pid: process.pid, id: process.env.__OW_ACTIVATION_ID }; }');
  const m1 = meta();
  const a = await pool.run(echo, {}, m1);
  assert.equal(a.status, 'success');
  assert.equal(a.coldStart, true);
  assert.ok(a.initTimeMs > 0);
  assert.equal(a.result.id, m1.activationId);
  assert.notEqual(a.result.pid, process.pid);
  const b = await pool.run(echo, {}, meta());
  assert.equal(b.coldStart, false);
  assert.equal(b.initTimeMs, 0);
  assert.equal(b.containerId, a.containerId);
  assert.ok(b.endTime >= b.startTime);
  const c = await pool.run(echo, { fail: true }, meta());
  assert.equal(c.status, 'application error');
  assert.equal(c.result.error, 'boom');
  assert.equal((await pool.run(echo, {}, meta())).containerId, a.containerId, 'an application error keeps the container');
  const notJson = await pool.run(echo, { n: 1n }, meta());
  assert.equal(notJson.status, 'developer error');
  assert.match(String(notJson.result.error), /cannot be sent as JSON/);
  assert.equal((await pool.run(echo, {}, meta())).containerId, a.containerId, 'nothing was sent: the container is kept');
  // a new version never reuses the old version's container
  const v2 = await pool.run({ ...echo, version: 'v2' }, {}, meta());
  assert.equal(v2.coldStart, true);
  assert.notEqual(v2.containerId, a.containerId);
});

test('pool: a crash is a developer error and the container is replaced; a non-object result too', async () => {
  const pool = newPool();
  const act = action('crashy', 'exports.main = (p) => { if (p.crash) { console.error("about to die"); process.exit(3); } return p.ret ?? { pid: process.pid }; }');
  const a = await pool.run(act, {}, meta());
  const b = await pool.run(act, { crash: true }, meta());
  assert.equal(b.status, 'developer error');
  assert.match(String(b.result.error), /exited unexpectedly \(exit code 3\)/);
  assert.ok(b.logs.includes('about to die'), JSON.stringify(b.logs));
  const c = await pool.run(act, {}, meta());
  assert.equal(c.status, 'success');
  assert.equal(c.coldStart, true);
  assert.notEqual(c.containerId, a.containerId);
  const d = await pool.run(act, { ret: 7 }, meta());
  assert.equal(d.status, 'developer error');
  assert.equal(d.result.error, 'The action did not return a dictionary.');
});

test('pool: a run past its time limit is killed as timed out', async () => {
  const pool = newPool();
  const act = action('sleeper', SLEEPER, { timeoutMs: 300 });
  const sleepMs = 60_000;
  const t0 = Date.now();
  const a = await pool.run(act, { ms: sleepMs }, meta());
  assert.equal(a.status, 'timed out');
  assert.equal(a.result.error, 'The action exceeded its time limit of 300 milliseconds.');
  // Held until its limit, and ended by the pool long before the action would have ended by itself.
  assert.ok(a.endTime - a.startTime >= 300, `held ${a.endTime - a.startTime} ms`);
  assert.ok(Date.now() - t0 < sleepMs, `took ${Date.now() - t0} ms: the pool waited for the action`);
  const b = await pool.run(act, { ms: 10 }, meta());
  assert.equal(b.status, 'success');
  assert.notEqual(b.containerId, a.containerId);
});

test('pool: concurrency 2 runs two activations in one container at once', async () => {
  const pool = newPool();
  const act = action('conc', SLEEPER, { concurrency: 2 });
  await pool.run(act, { ms: 0 }, meta()); // warm it
  const [a, b] = await Promise.all([pool.run(act, { ms: 300 }, meta()), pool.run(act, { ms: 300 }, meta())]);
  assert.equal(a.containerId, b.containerId);
  assert.ok(a.startTime < b.endTime && b.startTime < a.endTime, 'the two runs overlapped');
  assert.equal(pool.stats().containers, 1);
});

test('pool: memory bound: never more containers than fit; a new action evicts the least recently used idle one', async () => {
  const pool = newPool({ memoryMb: 512 });
  let maxSeen = 0;
  const watch = setInterval(() => (maxSeen = Math.max(maxSeen, pool.stats().containers)), 5);
  const [A, B, C] = ['A', 'B', 'C'].map((n) => action(n, SLEEPER));
  const all = await Promise.all([A, B, C].map((x) => pool.run(x!, { ms: 200 }, meta())));
  assert.ok(all.every((r) => r.status === 'success'));
  const c = all[2]!;
  assert.ok(c.waitTimeMs >= 150, `C waited ${c.waitTimeMs} ms for memory`);
  const s = pool.stats();
  assert.deepEqual([s.containers, s.busy, s.queued, s.memoryUsedMb], [2, 0, 0, 512]);
  // Use B (warm or not), then a new action D must evict the other, least recently used, idle container: B stays.
  const b = await pool.run(B!, {}, meta());
  const d = await pool.run(action('D', SLEEPER), {}, meta());
  assert.equal(d.coldStart, true);
  const again = await pool.run(B!, {}, meta());
  assert.equal(again.coldStart, false, 'B was used more recently than the other, so it stayed');
  assert.equal(again.containerId, b.containerId);
  clearInterval(watch);
  assert.equal(maxSeen, 2);
  assert.equal(pool.stats().memoryUsedMb, 512);
  const tooBig = await pool.run(action('huge', SLEEPER, { memoryMb: 1024 }), {}, meta());
  assert.equal(tooBig.status, 'developer error');
  assert.match(String(tooBig.result.error), /test cluster: action huge needs 1024 MB/);
});

test('pool: maxActive queues the rest in order', async () => {
  const pool = newPool({ maxActive: 1 });
  const act = action('q', SLEEPER, { concurrency: 4 });
  const runs = [0, 1, 2].map(() => pool.run(act, { ms: 150 }, meta()));
  await sleep(20);
  assert.equal(pool.stats().queued, 2);
  const r = await Promise.all(runs);
  for (let i = 1; i < r.length; i++) assert.ok(r[i]!.startTime >= r[i - 1]!.endTime - 2, `run ${i} started before run ${i - 1} ended`);
});

test('pool: profile: cold-start delay, speed factor, injected failures (seeded)', async () => {
  const slowStart = newPool({ profile: { coldStartDelayMs: 300 } });
  const act = action('p', SLEEPER);
  const cold = await slowStart.run(act, {}, meta());
  assert.ok(cold.initTimeMs >= 300 && cold.waitTimeMs >= 300, `init ${cold.initTimeMs} ms, wait ${cold.waitTimeMs} ms`);
  const warm = await slowStart.run(act, {}, meta());
  assert.ok(warm.waitTimeMs < 100);

  const slow = newPool({ profile: { speedFactor: 3 } });
  await slow.run(act, {}, meta());
  const t = await slow.run(act, { ms: 100 }, meta());
  assert.ok(t.endTime - t.startTime >= 300, `took ${t.endTime - t.startTime} ms`);
  assert.ok(Number(t.result.slept) < 200);

  const doomed = newPool({ profile: { failureProbability: 1 } });
  const f = await doomed.run(act, {}, meta());
  assert.equal(f.status, 'developer error');
  assert.match(String(f.result.error), /exited unexpectedly \(killed by SIGKILL\).*failureProbability 1/);

  const pattern = async () => {
    const p = newPool({ profile: { failureProbability: 0.5 }, seed: 7 });
    const out: string[] = [];
    for (let i = 0; i < 8; i++) out.push((await p.run(act, {}, meta())).status);
    await p.close();
    return out;
  };
  const first = await pattern();
  assert.deepEqual(await pattern(), first);
  assert.ok(first.includes('success') && first.includes('developer error'), first.join());
});

test('pool: injected application errors and timeouts are answered (or not) by the runtime itself', async () => {
  const act = action('f', SLEEPER, { timeoutMs: 400 });
  const erring = newPool({ profile: { errorProbability: 1 } });
  const e1 = await erring.run(act, { ms: 0 }, meta());
  assert.equal(e1.status, 'application error');
  assert.deepEqual(e1.result, { error: 'injected fault' });
  assert.ok(e1.logs.some((l) => /fault injected by the cluster profile/.test(l)), e1.logs.join(' | '));
  const e2 = await erring.run(act, { ms: 0 }, meta());
  assert.equal(e2.containerId, e1.containerId, 'an application error keeps the container');
  assert.equal(e2.coldStart, false);

  const holding = newPool({ profile: { timeoutProbability: 1 } });
  const t = await holding.run(act, { ms: 0 }, meta());
  assert.equal(t.status, 'timed out');
  assert.equal(t.result.error, 'The action exceeded its time limit of 400 milliseconds.');
  assert.ok(t.endTime - t.startTime >= 400, `held ${t.endTime - t.startTime} ms`);
  assert.equal(holding.stats().containers, 0, 'the container was killed');
  // no finite time limit: nothing would end a held activation, so no timeout is injected
  const unlimited = await holding.run(action('f', SLEEPER, { timeoutMs: Infinity }), { ms: 0 }, meta());
  assert.equal(unlimited.status, 'success');
  assert.deepEqual(holding.faults(), { activations: 2, crash: 0, error: 0, timeout: 1 });
  assert.deepEqual(erring.faults(), { activations: 2, crash: 0, error: 2, timeout: 0 });

  assert.throws(() => newPool({ profile: { failureProbability: 0.6, errorProbability: 0.6 } }), /must be ≤ 1/);
  assert.throws(() => newPool({ profile: { timeoutProbability: 2 } }), /timeoutProbability must be in \[0, 1\]/);
});

test('pool: fault draws follow the order of submission, not timing', async () => {
  const act = action('d', SLEEPER, { concurrency: 4 });
  const profile = { errorProbability: 0.5 };
  const sequential = newPool({ profile, seed: 3, label: 'drawn' });
  const one: string[] = [];
  for (let i = 0; i < 12; i++) one.push((await sequential.run(act, { ms: 0 }, meta())).status);
  const concurrent = newPool({ profile, seed: 3, label: 'drawn' });
  const all = await Promise.all(Array.from({ length: 12 }, (_, i) => concurrent.run(act, { ms: (i * 37) % 90 }, meta())));
  assert.deepEqual(all.map((r) => r.status), one);
  assert.ok(one.includes('success') && one.includes('application error'), one.join());
  const otherCluster = newPool({ profile, seed: 3, label: 'drawn elsewhere' });
  const other: string[] = [];
  for (let i = 0; i < 12; i++) other.push((await otherCluster.run(act, { ms: 0 }, meta())).status);
  assert.notDeepEqual(other, one, 'the cluster name is part of the stream');
});

test('runtime: without the fault-injection flag a fedkeeper_fault in /run is ignored', async () => {
  const rt = await startRuntime();
  await rt.post('/init', { value: { name: 'plain', main: 'main', code: 'exports.main = () => ({ ran: true })', binary: false } });
  for (const fault of ['error', 'timeout']) {
    assert.deepEqual(await rt.post('/run', { ...runBody({}), fedkeeper_fault: fault }), { status: 200, body: { ran: true } });
  }
});

test('pool: blackbox images run the action they map to; an unknown image is a developer error naming it', async () => {
  const pool = newPool({ images: { 'fedkeeper/echo:1': { code: 'exports.handler = (p) => ({ image: true, p })', main: 'handler' } } });
  const box = (image: string): ContainerAction => ({ name: 'bb', version: '1', exec: { kind: 'blackbox', image }, limits: { timeoutMs: 5000, memoryMb: 256, concurrency: 1 } });
  const a = await pool.run(box('fedkeeper/echo:1'), { k: 1 }, meta());
  assert.deepEqual(a.result, { image: true, p: { k: 1 } });
  const b = await pool.run(box('nobody/nothing:2'), {}, meta());
  assert.equal(b.status, 'developer error');
  assert.match(String(b.result.error), /^test cluster: .*"nobody\/nothing:2".*fedkeeper\/echo:1/);
  const c = await pool.run(action('py', 'def main(a): return a', {}, { kind: 'python:3' }), {}, meta());
  assert.equal(c.status, 'developer error');
  // docker-skeleton style: an unmapped image that brings its own code runs that code
  const own: ContainerAction = { name: 'bb2', version: '1', exec: { kind: 'blackbox', image: 'someone/runtime:3', code: 'function main(p) { return { own: p.k }; }' }, limits: { timeoutMs: 5000, memoryMb: 256, concurrency: 1 } };
  const d = await pool.run(own, { k: 7 }, meta());
  assert.equal(d.status, 'success');
  assert.deepEqual(d.result, { own: 7 });
});

test('pool: logs are cut per activation; the environment is the pool’s and the action’s, not the parent’s', async () => {
  process.env.FK_PARENT_SECRET = 'do-not-leak';
  const pool = newPool({ env: { POOL_VAR: 'p' } });
  const act: ContainerAction = {
    ...action('logger', 'exports.main = (p) => { console.log("out " + p.n); console.error("err " + p.n); console.log("out2 " + p.n); return { secret: process.env.FK_PARENT_SECRET ?? null, pool: process.env.POOL_VAR, own: process.env.OWN }; }'),
    env: { OWN: 'o' },
  };
  const a = await pool.run(act, { n: 1 }, meta());
  const b = await pool.run(act, { n: 2 }, meta());
  // stdout and stderr are merged by arrival time: the order within a stream is exact, across the two it is not
  assert.deepEqual([...a.logs].sort(), ['err 1', 'out 1', 'out2 1']);
  assert.deepEqual(a.logs.filter((l) => l.startsWith('out')), ['out 1', 'out2 1']);
  assert.deepEqual([...b.logs].sort(), ['err 2', 'out 2', 'out2 2']);
  assert.deepEqual(a.result, { secret: null, pool: 'p', own: 'o' });
  delete process.env.FK_PARENT_SECRET;
});

test('pool: close() kills every runtime process and fails queued runs', async () => {
  const pool = newPool({ maxActive: 2 });
  const pids = (await Promise.all(['x', 'y'].map((n) => pool.run(action(n, SLEEPER), {}, meta())))).map((r) => Number(r.result.pid));
  const running = pool.run(action('x', SLEEPER), { ms: 5000 }, meta());
  const busy = pool.run(action('y', SLEEPER), { ms: 5000 }, meta());
  const queued = pool.run(action('x', SLEEPER), {}, meta());
  await sleep(100);
  assert.equal(pool.stats().queued, 1);
  await pool.close();
  const results: ContainerRunResult[] = await Promise.all([running, busy, queued]);
  for (const r of results) assert.equal(r.status, 'developer error');
  assert.match(String(results[2]!.result.error), /closed/);
  for (const pid of pids) assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, `process ${pid} still alive`);
  assert.equal((await pool.run(action('x', SLEEPER), {}, meta())).status, 'developer error');
});
