/**
 * One keeper per run, and concurrent runs that do not break each other — with real `fedkeeper` processes. A keeper
 * is kept alive but paused (SIGSTOP, as Ctrl-Z does) at a known point, so that "the other keeper still lives" does
 * not depend on how fast this machine trains.
 *
 * 1. `run --resume DIR` of a run whose keeper lives is refused (exit 2, one line naming its pid and host), so is
 *    `runs rm` of it; `runs` shows the live keeper; the keeper, continued, completes its run untouched.
 * 2. Two runs of different configs on the same local cluster: the one that finishes first leaves the functions the
 *    other still uses deployed (and says so), the other completes, and the last one removes them.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { CLI, runCli } from '../fixtures/cli.js';
import { sharePackageCache } from '../fixtures/package-cache.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'fk-concurrent-'));
sharePackageCache(work);
const started: ChildProcess[] = [];
after(() => {
  for (const p of started) {
    if (p.exitCode === null && p.signalCode === null) {
      p.kill('SIGCONT');
      p.kill('SIGKILL');
    }
  }
  rmSync(work, { recursive: true, force: true });
});

function config(file: string, name: string, rounds: number, store: string): string {
  const f = path.join(work, file);
  writeFileSync(
    f,
    `name: ${name}
output_dir: runs
providers:
  local:
    laptop: { pool_size: 2 }
scenarios:
  federated_learning:
    seed: 5
    target_accuracy: 0.999
    max_rounds: ${rounds}
    store: { type: sqlite, path: ${store} }
    clients_info: { total_num_clients: 6, num_clients_per_round: 3 }
    data_sampling: { model: mnistnn, hidden_size: 32, batch_size: 16 }
    model_params: { lr: 1e-3, optim: adam, local_epochs: 1 }
`,
  );
  return f;
}

function start(args: string[]): { p: ChildProcess; out: () => string; done: Promise<number> } {
  const p = spawn(process.execPath, [CLI, ...args], { cwd: work, env: { ...process.env, TMPDIR: work } });
  started.push(p);
  let out = '';
  p.stdout!.on('data', (d) => (out += d));
  p.stderr!.on('data', (d) => (out += d));
  const done = new Promise<number>((r) => p.on('close', (code, signal) => r(code ?? (signal === 'SIGKILL' ? 137 : -1))));
  return { p, out: () => out, done };
}

async function until(r: { out: () => string; p: ChildProcess }, re: RegExp): Promise<void> {
  for (let i = 0; i < 6000 && !re.test(r.out()) && r.p.exitCode === null; i++) await new Promise((res) => setTimeout(res, 50));
  assert.match(r.out(), re);
}

const summaryOf = (dir: string) => JSON.parse(readFileSync(path.join(dir, 'summary.json'), 'utf8'));
const deployedOnLaptop = () => Object.keys(JSON.parse(readFileSync(path.join(work, '.fedkeeper', 'local', 'laptop.json'), 'utf8'))).sort();
const FUNCTIONS = ['fl_client', 'fl_server_aggregator', 'fl_server_init'];

test('a live keeper keeps its run: --resume and runs rm are refused naming its pid and host; it then completes', async () => {
  const cfg = config('a.yaml', 'leased', 3, 'state/a.sqlite');
  const a = start(['run', '-c', cfg]);
  await until(a, /round 1\/3 +accuracy/);
  const runId = /run (\S+):/.exec(a.out())![1]!;
  const dir = path.join(work, 'runs', runId);
  a.p.kill('SIGSTOP');
  try {
    const resumed = await runCli(['run', '--resume', dir], work);
    assert.equal(resumed.code, 2, resumed.stderr);
    assert.equal(resumed.stdout, '');
    const lines = resumed.stderr.trim().split('\n');
    assert.equal(lines.length, 1, resumed.stderr);
    assert.match(lines[0]!, new RegExp(`^fedkeeper: error: --resume ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: run ${runId} is still driven by its keeper \\(pid ${a.p.pid} on host ${os.hostname()}, last heartbeat \\d+ s ago\\); wait for it to finish, or stop it \\(kill ${a.p.pid}\\)`));

    const listed = await runCli(['runs', '-c', cfg], work);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, new RegExp(`^${runId} +running +\\d+ .* live: pid ${a.p.pid} on host`, 'm'));

    const rm = await runCli(['runs', 'rm', runId, '-c', cfg], work);
    assert.equal(rm.code, 2, rm.stderr);
    assert.match(rm.stderr, new RegExp(`^fedkeeper: error: runs rm ${runId}: run ${runId} is still driven by its keeper \\(pid ${a.p.pid}`));
    assert.equal(rm.stderr.trim().split('\n').length, 1);
  } finally {
    a.p.kill('SIGCONT');
  }
  assert.equal(await a.done, 0, a.out());
  const s = summaryOf(dir);
  assert.equal(s.status, 'completed');
  assert.equal(s.rounds, 3);
  assert.deepEqual(readFileSync(path.join(dir, 'rounds.csv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split(',')[0]), ['1', '2', '3'], 'every round once: nobody else drove the run');
  assert.ok(!readFileSync(path.join(dir, 'events.jsonl'), 'utf8').includes('run_resumed'));

  // Its keeper gone, the run can be deleted; the store shrinks and lists no run. Unknown ids delete nothing.
  const unknown = await runCli(['runs', 'rm', runId, 'no-such-run', '-c', cfg], work);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /^fedkeeper: error: run no-such-run is not in the SQLite store .*a\.sqlite; `fedkeeper runs` lists the runs there\n$/);
  assert.match((await runCli(['runs', '--store', 'state/a.sqlite'], work)).stdout, new RegExp(`^${runId} +completed +3 +0 `, 'm'), 'nothing deleted on bad input; no updates left after the run');
  const removed = await runCli(['runs', 'rm', runId, '-c', cfg], work);
  assert.equal(removed.code, 0, removed.stderr);
  assert.match(removed.stdout, new RegExp(`^deleted run ${runId} \\(`, 'm'));
  assert.match((await runCli(['runs', '-c', cfg], work)).stdout, /^0 run\(s\), 0\.0 kB of weights, updates and partitions/m);
  assert.ok(existsSync(dir), 'the run directory stays');
});

test('two runs on one local cluster: the first to finish leaves the functions the other uses; the last removes them', async () => {
  const long = config('long.yaml', 'long', 3, 'state/long.sqlite');
  const short = config('short.yaml', 'short', 1, 'state/short.sqlite');
  const b = start(['run', '-c', long]);
  await until(b, /round 1\/3 +accuracy/);
  const bRun = /run (\S+):/.exec(b.out())![1]!;
  b.p.kill('SIGSTOP');
  try {
    const c = await runCli(['run', '-c', short], work);
    assert.equal(c.code, 0, c.stdout + c.stderr);
    assert.match(c.stdout, new RegExp(`^left deployed, still in use by run ${bRun} \\(pid ${b.p.pid}\\): local:laptop/fl_client, local:laptop/fl_server_aggregator, local:laptop/fl_server_init$`, 'm'));
    assert.deepEqual(deployedOnLaptop(), FUNCTIONS, 'the paused run still has its functions');
  } finally {
    b.p.kill('SIGCONT');
  }
  assert.equal(await b.done, 0, b.out());
  assert.equal(summaryOf(path.join(work, 'runs', bRun)).status, 'completed');
  assert.doesNotMatch(b.out(), /left deployed/);
  assert.deepEqual(deployedOnLaptop(), [], 'the last run removed them');
});
