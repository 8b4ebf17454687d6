/**
 * Cloud Functions instances in the local GCF mode, with REAL functions-framework processes: per function a set of
 * instances, each serving at most `concurrency` requests at a time; new instances (cold starts) up to
 * min(max_instances, the local cap); a FIFO queue beyond; GCF's 429 past the queue window; idle instances stopped
 * down to min_instances; the record shared by every process; remove stops them all.
 *
 * The function reports its own pid and its entry and exit times; a barrier (a directory every request writes its
 * arrival into, waiting until `parties` have arrived) makes requests that must run at the same time provably do so,
 * without any timing assumption: a request that could not run alongside the others waits out the barrier's limit
 * and answers `met: false`.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { createGoogleProvider, type GoogleActivation } from '../../src/providers/google.js';
import { gcfSourceFiles } from '../../src/providers/google-entry.js';
import { startFunctionServer } from '../../src/providers/google-local-server.js';
import { ProviderError, type FunctionSpec, type Provider } from '../../src/providers/types.js';

const PID_FN = `const fs = require('fs');
const path = require('path');
const arrived = (dir) => fs.readdirSync(dir).length;
exports.main = async (params) => {
  const entry = Date.now();
  let met = true;
  if (params.barrier) {
    fs.writeFileSync(path.join(params.barrier, process.pid + '-' + Math.random().toString(36).slice(2)), '');
    const limit = Date.now() + 20000;
    while (arrived(params.barrier) < params.parties && Date.now() < limit) await new Promise((r) => setTimeout(r, 20));
    met = arrived(params.barrier) >= params.parties;
  }
  await new Promise((r) => setTimeout(r, params.ms === undefined ? 300 : params.ms));
  return { pid: process.pid, entry, exit: Date.now(), met, mark: process.env.FK_PLATFORM_MARK };
};`;
const source = (): string => PID_FN;

let stateDir = '';
const providers: Provider[] = [];
const children: ChildProcess[] = [];
/** Every instance pid any test saw, stopped at the end whatever happened. */
const seenPids = new Set<number>();

function provider(cluster: string, settings: Record<string, unknown> = {}, env?: Record<string, string>): Provider {
  const p = createGoogleProvider({ cluster, settings: { max_local_instances: 8, ...settings }, stateDir, source, ...(env ? { env } : {}) });
  providers.push(p);
  return p;
}

const spec = (name: string, settings: Record<string, unknown>, memoryMb = 256): FunctionSpec => ({ name, timeoutMs: 60_000, memoryMb, settings });

interface Recorded {
  instances: { id: string; pid?: number; port?: number; leases: unknown[] }[];
  queue: unknown[];
}
function recorded(cluster: string, name: string): Recorded {
  const file = path.join(stateDir, `google-${cluster}`, 'deployments.json');
  const d = (JSON.parse(readFileSync(file, 'utf8')) as Record<string, Recorded>)[name]!;
  for (const i of d.instances) if (i.pid) seenPids.add(i.pid);
  return d;
}

async function settled(p: Provider, id: string, limitMs = 60_000): Promise<GoogleActivation> {
  const t0 = Date.now();
  for (;;) {
    const a = (await p.activation(id)) as GoogleActivation | undefined;
    assert.ok(a, `activation ${id} unknown`);
    if (a.status !== 'running') {
      if (typeof a.result?.pid === 'number') seenPids.add(a.result.pid);
      return a;
    }
    assert.ok(Date.now() - t0 < limitMs, `activation ${id} still running after ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const barrier = (): Promise<string> => mkdtemp(path.join(stateDir, 'barrier-'));

/** Invokes `n` requests at once and waits for all of them. */
async function burst(p: Provider, name: string, n: number, params: Record<string, unknown>): Promise<GoogleActivation[]> {
  const ids: string[] = [];
  for (let k = 0; k < n; k++) ids.push(await p.invoke(name, params));
  return Promise.all(ids.map((id) => settled(p, id)));
}

interface Answer {
  pid: number;
  entry: number;
  exit: number;
  met: boolean;
  mark?: string;
}
const answer = (a: GoogleActivation): Answer => {
  assert.equal(a.status, 'success', JSON.stringify(a.result));
  return a.result as unknown as Answer;
};

/** Exited: no such process, or a zombie waiting to be reaped (on Linux). */
function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}
async function allGone(pids: number[], limitMs = 20_000): Promise<void> {
  const t0 = Date.now();
  while (pids.some((p) => !gone(p))) {
    assert.ok(Date.now() - t0 < limitMs, `still running: ${pids.filter((p) => !gone(p)).join(', ')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

before(async () => {
  stateDir = await mkdtemp(path.join(os.tmpdir(), 'fedkeeper-gcf-instances-'));
});

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const p of providers) {
    for (const name of await p.list().catch(() => [])) await p.remove(name).catch(() => undefined);
    await p.close();
  }
  for (const pid of seenPids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already stopped */
    }
  }
  await rm(stateDir, { recursive: true, force: true });
});

test('max_instances 4, concurrency 1: four requests at once run on four instances, each first request cold; then warm on the same four; remove stops them all', async () => {
  const gcf = provider('gcf4');
  await gcf.deploy(spec('pid_fn', { max_instances: 4 }));
  assert.equal(recorded('gcf4', 'pid_fn').instances.length, 1, 'deploy starts one instance (min_instances 0)');

  const first = await burst(gcf, 'pid_fn', 4, { barrier: await barrier(), parties: 4 });
  const answers = first.map(answer);
  assert.ok(answers.every((a) => a.met), 'all four ran at the same time');
  const pids = new Set(answers.map((a) => a.pid));
  assert.equal(pids.size, 4, 'four instances, one request each');
  assert.equal(new Set(first.map((a) => a.instance)).size, 4);
  assert.ok(first.every((a) => a.coldStart), 'the first request on each instance is its cold start');
  const rec = recorded('gcf4', 'pid_fn');
  assert.deepEqual(new Set(rec.instances.map((i) => i.pid)), pids);
  assert.ok(rec.instances.every((i) => i.leases.length === 0), 'every slot was given back');

  const second = await burst(gcf, 'pid_fn', 4, { barrier: await barrier(), parties: 4 });
  assert.ok(second.map(answer).every((a) => a.met));
  assert.ok(second.every((a) => !a.coldStart), 'warm: served by running instances');
  assert.deepEqual(new Set(second.map((a) => answer(a).pid)), pids, 'the same four instances');
  assert.deepEqual(new Set(second.map((a) => a.instance)), new Set(first.map((a) => a.instance)));

  await gcf.remove('pid_fn');
  await allGone([...pids]);
});

test('max_instances 2: four requests at once are queued, none fails; two instances, each serving one request at a time', async () => {
  const gcf = provider('gcf2');
  await gcf.deploy(spec('pid_fn', { max_instances: 2 }));
  const all = await burst(gcf, 'pid_fn', 4, { barrier: await barrier(), parties: 2 });
  const answers = all.map(answer);
  assert.ok(answers.every((a) => a.met));
  const pids = [...new Set(answers.map((a) => a.pid))];
  assert.equal(pids.length, 2, 'never more than max_instances');
  assert.ok(recorded('gcf2', 'pid_fn').instances.length <= 2);
  for (const pid of pids) {
    // One request at a time on each instance: its requests' [entry, exit] never overlap (the function's own clock).
    const mine = answers.filter((a) => a.pid === pid).sort((x, y) => x.entry - y.entry);
    for (let k = 1; k < mine.length; k++) assert.ok(mine[k]!.entry >= mine[k - 1]!.exit, `instance ${pid} ran two requests at once`);
  }
  assert.equal(all.filter((a) => a.coldStart).length, 2, 'two cold starts (one per instance), the queued requests warm');
});

test('concurrency 2, max_instances 1: one instance serves two requests at once; concurrency needs 1 vCPU (2 GB) as on GCF', async () => {
  const gcf = provider('gcfc');
  await assert.rejects(gcf.deploy(spec('pid_fn', { concurrency: 2 }, 512)), (e: unknown) => {
    assert.ok(e instanceof ProviderError);
    assert.equal(e.exitCode, 2);
    assert.match(e.message, /^google cluster gcfc: concurrency 2 of function pid_fn needs at least 1 vCPU/);
    return true;
  });
  await gcf.deploy(spec('pid_fn', { concurrency: 2, max_instances: 1 }, 2048));
  const [a, b] = (await burst(gcf, 'pid_fn', 2, { barrier: await barrier(), parties: 2 })).map(answer);
  assert.ok(a!.met && b!.met);
  assert.equal(a!.pid, b!.pid, 'one instance');
  assert.ok(a!.entry < b!.exit && b!.entry < a!.exit, 'their runs overlap');
  assert.equal(recorded('gcfc', 'pid_fn').instances.length, 1);
});

test("max_instances busy past the queue window: the request is refused with GCF's 429, the others run", async () => {
  const gcf = provider('gcfq', { queue_timeout: 200 });
  await gcf.deploy(spec('pid_fn', { max_instances: 1 }));
  const long = await gcf.invoke('pid_fn', { ms: 3000 });
  const refused = await settled(gcf, await gcf.invoke('pid_fn', { ms: 0 }));
  assert.equal(refused.status, 'internal error');
  assert.equal(refused.httpStatus, 429);
  assert.match(String(refused.result?.error), /^HTTP 429 from the platform: The request was aborted because there was no available instance\. \(function pid_fn: its max_instances 1/);
  answer(await settled(gcf, long));
  answer(await settled(gcf, await gcf.invoke('pid_fn', { ms: 0 })));
  assert.deepEqual(recorded('gcfq', 'pid_fn').queue, []);
});

test('the local cap bounds max_instances 100: two instances, and the others wait (no queue window: GCF would have scaled)', async () => {
  const gcf = provider('gcfcap', { max_local_instances: 2, queue_timeout: 0 });
  await gcf.deploy(spec('pid_fn', {})); // GCF's default max_instances, 100
  const answers = (await burst(gcf, 'pid_fn', 4, { barrier: await barrier(), parties: 2 })).map(answer);
  assert.ok(answers.every((a) => a.met));
  assert.equal(new Set(answers.map((a) => a.pid)).size, 2);
  assert.ok(recorded('gcfcap', 'pid_fn').instances.length <= 2);
});

test('min_instances start at deploy; instances idle past idle_timeout are stopped down to min_instances', async () => {
  const gcf = provider('gcfidle', { idle_timeout: 500 });
  await gcf.deploy(spec('pid_fn', { min_instances: 2, max_instances: 3 }));
  assert.equal(recorded('gcfidle', 'pid_fn').instances.length, 2);
  const pids = new Set((await burst(gcf, 'pid_fn', 3, { barrier: await barrier(), parties: 3 })).map((a) => answer(a).pid));
  assert.equal(pids.size, 3);
  await new Promise((r) => setTimeout(r, 1000)); // all three idle for longer than idle_timeout
  const a = answer(await settled(gcf, await gcf.invoke('pid_fn', { ms: 0 })));
  const kept = recorded('gcfidle', 'pid_fn').instances.map((i) => i.pid!);
  assert.equal(kept.length, 2, 'scaled in to min_instances');
  assert.ok(kept.includes(a.pid));
  await allGone([...pids].filter((p) => !kept.includes(p)));
});

/** A separate process (another keeper, a relay activation) using the same cluster: invokes, prints the answers. */
const CHILD = `
const [moduleUrl, stateDir, cluster, name, paramsJson, n, source] = process.argv.slice(2);
const { createGoogleProvider } = await import(moduleUrl);
const p = createGoogleProvider({ cluster, settings: { max_local_instances: 8 }, stateDir, source: () => source });
const ids = [];
for (let k = 0; k < Number(n); k++) ids.push(await p.invoke(name, JSON.parse(paramsJson)));
const out = [];
for (const id of ids) {
  for (;;) {
    const a = await p.activation(id);
    if (a.status !== 'running') { out.push(a); break; }
    await new Promise((r) => setTimeout(r, 10));
  }
}
await p.close();
console.log(JSON.stringify(out));
`;

function runChild(script: string, args: string[]): Promise<GoogleActivation[]> {
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`the other process exited with ${code}: ${err}`));
      else resolve(JSON.parse(out) as GoogleActivation[]);
    });
  });
}

test('another process shares the instances and their bound; remove from a third stops every instance, whoever started it', async () => {
  // The deploying process (the keeper) hands its instances an environment of the platform's; the other process
  // (a relay activation: its own package, its own environment) starts instances that get the same.
  const gcf = provider('gcfx', {}, { FK_PLATFORM_MARK: 'deployer' });
  await gcf.deploy(spec('pid_fn', { max_instances: 2 }));
  const script = path.join(stateDir, 'other-process.mjs');
  await writeFile(script, CHILD);
  const moduleUrl = new URL('../../src/providers/google.js', import.meta.url).href;
  const other = async (params: Record<string, unknown>): Promise<GoogleActivation[]> =>
    runChild(script, [moduleUrl, stateDir, 'gcfx', 'pid_fn', JSON.stringify(params), '2', PID_FN]);

  // Alone, the other process needs a second instance and starts it.
  const alone = (await other({ barrier: await barrier(), parties: 2 })).map(answer);
  assert.ok(alone.every((a) => a.met));
  for (const a of alone) seenPids.add(a.pid);
  assert.equal(new Set(alone.map((a) => a.pid)).size, 2);
  assert.ok(alone.every((a) => a.mark === 'deployer'), 'an instance started by another process runs in the deployed environment');

  // Both at once: four requests, max_instances 2 across the two processes, one request at a time per instance.
  const params = { barrier: await barrier(), parties: 2 };
  const [theirs, ours] = await Promise.all([other(params), burst(gcf, 'pid_fn', 2, params)]);
  const answers = [...theirs, ...ours].map(answer);
  for (const a of answers) seenPids.add(a.pid);
  assert.ok(answers.every((a) => a.met));
  const pids = [...new Set(answers.map((a) => a.pid))];
  assert.equal(pids.length, 2, 'max_instances 2 across both processes');
  assert.deepEqual(new Set(pids), new Set(alone.map((a) => a.pid)), 'the instances the other process started serve this one too');
  for (const pid of pids) {
    const mine = answers.filter((a) => a.pid === pid).sort((x, y) => x.entry - y.entry);
    for (let k = 1; k < mine.length; k++) assert.ok(mine[k]!.entry >= mine[k - 1]!.exit, `instance ${pid} ran two requests at once`);
  }
  const rec = recorded('gcfx', 'pid_fn');
  assert.deepEqual(new Set(rec.instances.map((i) => i.pid)), new Set(pids));
  assert.deepEqual(rec.queue, [], 'the other process left nothing queued');
  assert.ok(rec.instances.every((i) => i.leases.length === 0), 'nor any slot held');

  const third = provider('gcfx'); // a later CLI command
  await third.remove('pid_fn');
  await allGone(pids);
  assert.ok(!(await third.list()).includes('pid_fn'));
});

test('closing a provider gives back the queue places of its waiting requests', async () => {
  const gcf = provider('gcfclose');
  await gcf.deploy(spec('pid_fn', { max_instances: 1 }));
  const other = provider('gcfclose');
  const busy = await other.invoke('pid_fn', { ms: 1500 });
  for (let t0 = Date.now(); recorded('gcfclose', 'pid_fn').instances[0]?.leases.length !== 1; ) {
    assert.ok(Date.now() - t0 < 20_000, 'the first request never took the instance');
    await new Promise((r) => setTimeout(r, 10));
  }
  const waiting = await gcf.invoke('pid_fn', { ms: 0 });
  for (let t0 = Date.now(); recorded('gcfclose', 'pid_fn').queue.length !== 1; ) {
    assert.ok(Date.now() - t0 < 20_000, 'the second request never queued');
    await new Promise((r) => setTimeout(r, 10));
  }
  await gcf.close();
  assert.deepEqual(recorded('gcfclose', 'pid_fn').queue, []);
  const a = (await gcf.activation(waiting))!;
  assert.equal(a.status, 'developer error');
  assert.match(String(a.result?.error), /closed while the request waited/);
  answer(await settled(other, busy));
});

test('a deployment recorded before instances (one `server`) keeps working: its server is instance i1, remove stops it', async () => {
  // What an earlier FedKeeper left: the function's source directory, its one server, and the record naming it.
  const sourceDir = await mkdtemp(path.join(os.tmpdir(), 'fk-gcf-gcfold-pid_fn-'));
  for (const [file, text] of Object.entries(gcfSourceFiles('pid-fn', PID_FN))) await writeFile(path.join(sourceDir, file), text);
  const root = path.join(stateDir, 'google-gcfold');
  await mkdir(path.join(root, 'logs'), { recursive: true });
  const server = await startFunctionServer({
    sourceDir,
    logFile: path.join(root, 'logs', 'pid_fn.log'),
    preloadFile: path.join(root, 'loopback-preload.cjs'),
    env: { PATH: process.env.PATH ?? '' },
    startupTimeoutMs: 30_000,
  });
  seenPids.add(server.pid);
  const old = { pid_fn: { spec: spec('pid_fn', {}), sourceDir, deployedAt: Date.now(), server } };
  await writeFile(path.join(root, 'deployments.json'), JSON.stringify(old, null, 2));

  const gcf = provider('gcfold');
  const a = await settled(gcf, await gcf.invoke('pid_fn', { ms: 0 }));
  assert.equal(answer(a).pid, server.pid, 'the recorded server serves it');
  assert.equal(a.instance, 'i1');
  assert.deepEqual(recorded('gcfold', 'pid_fn').instances.map((i) => [i.id, i.pid]), [['i1', server.pid]]);
  await gcf.remove('pid_fn');
  await allGone([server.pid]);
});
