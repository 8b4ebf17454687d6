/**
 * Resume: `kill -9` the keeper in the middle of a round, or stop it with Ctrl-C (SIGINT); `fedkeeper run --resume
 * RUN_DIR` continues from the last completed round and ends with the same final weights as an uninterrupted run.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { sharePackageCache } from '../fixtures/package-cache.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const work = mkdtempSync(path.join(os.tmpdir(), 'fk-resume-'));
sharePackageCache(work);
after(() => rmSync(work, { recursive: true, force: true }));

const cfg = path.join(work, 'r.yaml');
writeFileSync(
  cfg,
  `name: resumable
output_dir: runs
providers:
  local:
    box: { pool_size: 2 }
scenarios:
  federated_learning:
    seed: 3
    target_accuracy: 0.999
    max_rounds: 4
    store: { type: sqlite, path: state/store.sqlite }
    clients_info: { total_num_clients: 6, num_clients_per_round: 3 }
    data_sampling: { model: mnistnn, hidden_size: 32, batch_size: 16 }
    model_params: { lr: 1e-3, optim: adam, local_epochs: 2 }
`,
);

function start(args: string[]): { p: ChildProcess; out: () => string; done: Promise<number> } {
  const p = spawn(process.execPath, [CLI, ...args], { cwd: work });
  let out = '';
  p.stdout!.on('data', (d) => (out += d));
  p.stderr!.on('data', (d) => (out += d));
  const done = new Promise<number>((r) => p.on('close', (code, signal) => r(code ?? (signal === 'SIGKILL' ? 137 : -1))));
  return { p, out: () => out, done };
}

async function until(out: () => string, re: RegExp): Promise<void> {
  for (let i = 0; i < 1200 && !re.test(out()); i++) await new Promise((r) => setTimeout(r, 50));
  assert.match(out(), re);
}

const summaryOf = (dir: string) => JSON.parse(readFileSync(path.join(dir, 'summary.json'), 'utf8'));
let reference = '';

test('an uninterrupted run, for reference', async () => {
  const r = start(['run', '-c', cfg]);
  assert.equal(await r.done, 0, r.out());
  reference = summaryOf(/results: (.+)/.exec(r.out())![1]!.trim()).final_weights_sha256;
  assert.match(reference, /^[0-9a-f]{64}$/);
});

test('kill -9 in the middle of round 3, then run --resume: same final weights, every round once', async () => {
  const r = start(['run', '-c', cfg]);
  await until(r.out, /run \S+:/);
  const dir = path.join(work, 'runs', /run (\S+):/.exec(r.out())![1]!);
  // Killed once the first of round 3's clients has ended (its row in activations/3.csv): 3 clients on 2 containers,
  // so at least one client still has all its training ahead, and then the aggregation.
  // (The event line is what the check below counts; the keeper writes such lines at the end of the turn they happen in.)
  const firstEnded = () => existsSync(path.join(dir, 'events.jsonl')) && readFileSync(path.join(dir, 'events.jsonl'), 'utf8').split('\n').some((l) => l.includes('"activation_done"') && l.includes('"round":3') && l.includes('"fl_client"'));
  for (let i = 0; i < 3000 && !firstEnded() && r.p.exitCode === null; i++) await new Promise((res) => setTimeout(res, 20));
  r.p.kill('SIGKILL');
  await r.done;
  const rows = (file: string) => readFileSync(path.join(dir, file), 'utf8').trim().split('\n');
  assert.deepEqual(rows('rounds.csv').slice(1).map((l) => l.split(',')[0]), ['1', '2'], 'killed before round 3 was aggregated');
  const events = rows('events.jsonl').map((l) => JSON.parse(l));
  const round3 = events.filter((e) => e.round === 3);
  assert.ok(round3.some((e) => e.type === 'round_started'), 'killed after round 3 began');
  const ended = round3.filter((e) => e.type === 'activation_done' && e.function === 'fl_client').length;
  assert.ok(ended >= 1 && ended < 3, `killed while round 3's clients were training (${ended} of 3 had ended)`);
  const resumed = start(['run', '--resume', dir]);
  assert.equal(await resumed.done, 0, resumed.out());
  const s = summaryOf(dir);
  assert.equal(s.status, 'completed');
  assert.equal(s.rounds, 4);
  assert.equal(s.final_weights_sha256, reference);
  const rounds = readFileSync(path.join(dir, 'rounds.csv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split(',')[0]);
  assert.deepEqual(rounds, ['1', '2', '3', '4']);
  assert.equal(s.resumed_at.length, 1);
  // The killed keeper's lease was taken over, and the run's events say from whom.
  const resumedEvent = readFileSync(path.join(dir, 'events.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).find((e) => e.type === 'run_resumed');
  assert.equal(resumedEvent.took_over_from.pid, r.p.pid);
  assert.equal(resumedEvent.took_over_from.host, os.hostname());
});

test('Ctrl-C stops cleanly and leaves a resumable run; resuming a completed run is refused', async () => {
  const r = start(['run', '-c', cfg]);
  await until(r.out, /round 1\/4 +accuracy/);
  r.p.kill('SIGINT');
  assert.equal(await r.done, 130);
  const dir = path.join(work, 'runs', /run (\S+):/.exec(r.out())![1]!);
  assert.equal(summaryOf(dir).status, 'stopped');
  const resumed = start(['start', '--resume', dir, '-c', cfg]);
  // `start` needs the functions deployed: the interrupted `run` left them (it was stopped before its remove)
  const code = await resumed.done;
  if (code === 2) {
    assert.match(resumed.out(), /not deployed/);
    const again = start(['run', '--resume', dir]);
    assert.equal(await again.done, 0, again.out());
  } else assert.equal(code, 0, resumed.out());
  assert.equal(summaryOf(dir).final_weights_sha256, reference);
  const twice = start(['run', '--resume', dir]);
  assert.equal(await twice.done, 2);
  assert.match(twice.out(), /has already completed/);
});
