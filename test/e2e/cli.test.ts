/**
 * End-to-end: the real `fedkeeper` CLI (compiled), the real container pool, the real SQLite store, the embedded MNIST
 * digits. Each run writes into its own temp directory.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { sharePackageCache } from '../fixtures/package-cache.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const work = mkdtempSync(path.join(os.tmpdir(), 'fk-e2e-'));
sharePackageCache(work);
after(() => rmSync(work, { recursive: true, force: true }));

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(args: string[], cwd = work): Promise<Result> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], { cwd, env: { ...process.env, FORCE_COLOR: '0' } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

function tinyConfig(name: string, over: { pool?: number; extra?: string; clients?: string; data?: string; fl?: string } = {}): string {
  const file = path.join(work, `${name}.yaml`);
  writeFileSync(
    file,
    `name: ${name}
output_dir: runs
providers:
  local:
    box: { pool_size: ${over.pool ?? 2} }
scenarios:
  federated_learning:
    seed: 11
    target_accuracy: 0.99
    max_rounds: 2
    store: { type: sqlite, path: state/store.sqlite }
    clients_info: ${over.clients ?? '{ total_num_clients: 6, num_clients_per_round: 3 }'}
    data_sampling: ${over.data ?? '{ model: mnistnn, hidden_size: 32, batch_size: 32 }'}
    model_params: { lr: 1e-3, optim: adam, local_epochs: 1 }
${over.fl ?? ''}${over.extra ?? ''}`,
  );
  return file;
}

const runDirs = () => (existsSync(path.join(work, 'runs')) ? readdirSync(path.join(work, 'runs')) : []);

function readCsv(file: string): Record<string, string>[] {
  const [head, ...rows] = readFileSync(file, 'utf8').trim().split('\n');
  const cols = head!.split(',');
  return rows.map((r) => Object.fromEntries(r.split(',').map((v, i) => [cols[i], v])));
}

let firstSha = '';

test('run: trains, writes summary.json, rounds.csv, activations/<round>.csv, events.jsonl, and removes the functions', async () => {
  const r = await cli(['run', '-c', tinyConfig('e2e-a')]);
  assert.equal(r.code, 0, r.stderr);
  const dir = /results: (.+)/.exec(r.stdout)![1]!.trim();
  assert.match(r.stdout, /round 2\/2 +accuracy 0\.\d+/);

  const s = JSON.parse(readFileSync(path.join(dir, 'summary.json'), 'utf8'));
  for (const k of ['name', 'rounds', 'final_accuracy', 'final_loss', 'best_accuracy', 'target_accuracy', 'reached_target', 'wall_s', 'clients_total', 'clients_per_round', 'invocations', 'retries', 'failures', 'final_weights_sha256']) {
    assert.ok(k in s, `summary.json lacks ${k}`);
  }
  assert.equal(s.status, 'completed');
  assert.equal(s.rounds, 2);
  assert.equal(s.clients_total, 6);
  assert.equal(s.clients_per_round, 3);
  assert.equal(s.invocations, 1 + 2 * (3 + 1)); // init + per round 3 clients and 1 aggregation
  assert.ok(s.final_accuracy > 0.6 && s.final_accuracy <= 1, `accuracy ${s.final_accuracy}`);
  assert.match(s.final_weights_sha256, /^[0-9a-f]{64}$/);
  assert.ok(['wasm', 'wasm+native', 'tfjs-node'].includes(s.engine), `engine ${s.engine}`);
  assert.equal(typeof s.engine_threads, 'number');
  assert.match(r.stdout, new RegExp(`init done in [\\d.]+ s \\(engine ${s.engine.replace('+', '\\+')}`));
  firstSha = s.final_weights_sha256;

  const rounds = readCsv(path.join(dir, 'rounds.csv'));
  assert.equal(rounds.length, 2);
  for (const c of ['round', 'accuracy', 'loss', 'invoke_s', 'train_s', 'agg_s', 'total_s', 'clients']) assert.ok(c in rounds[0]!, `rounds.csv lacks ${c}`);
  assert.equal(Number(rounds[1]!.accuracy), s.final_accuracy);
  assert.equal(rounds[0]!.clients, '3');
  assert.ok(Number(rounds[0]!.total_s) >= Number(rounds[0]!.train_s));

  const acts = readCsv(path.join(dir, 'activations', '1.csv'));
  const clients = acts.filter((a) => a.function === 'fl_client');
  assert.equal(clients.length, 3);
  for (const c of ['client_id', 'platform', 'activation_id', 'start_time', 'end_time', 'duration', 'status', 'attempt', 'cold_start']) assert.ok(c in acts[0]!, `activation csv lacks ${c}`);
  for (const a of clients) {
    assert.equal(a.status, 'success');
    assert.equal(a.platform, 'local');
    assert.match(a.activation_id!, /^[0-9a-f]{32}$/);
    assert.ok(Number(a.end_time) >= Number(a.start_time));
    assert.ok(['1333', '1334'].includes(a.num_samples!), `client trained on ${a.num_samples} samples, expected 8000/6`);
  }
  assert.equal(new Set(clients.map((a) => a.client_id)).size, 3);

  const events = readFileSync(path.join(dir, 'events.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(events[0].type, 'run_started');
  assert.equal(events.at(-1).type, 'run_done');
  assert.equal(events.filter((e) => e.type === 'round_done').length, 2);

  // `run` removes the functions afterwards: a bare `start` must now refuse.
  const again = await cli(['start', '-c', tinyConfig('e2e-a')]);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /not deployed; run `fedkeeper deploy/);
});

test('same config and seed give the same final weights bit for bit, whatever the pool size', async () => {
  assert.ok(firstSha, 'depends on the first test');
  const r = await cli(['run', '-c', tinyConfig('e2e-a', { pool: 1 })]);
  assert.equal(r.code, 0, r.stderr);
  const dir = /results: (.+)/.exec(r.stdout)![1]!.trim();
  assert.equal(JSON.parse(readFileSync(path.join(dir, 'summary.json'), 'utf8')).final_weights_sha256, firstSha);
});

test("the seed's spellings: -d deploys, -s starts, -r removes", async () => {
  const cfg = tinyConfig('e2e-seed');
  const d = await cli(['-c', cfg, '-d']);
  assert.equal(d.code, 0, d.stderr);
  assert.match(d.stdout, /deployed local:box\/fl_client/);
  const s = await cli(['-c', cfg, '-s']);
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stdout, /results: /);
  const r = await cli(['-c', cfg, '-r']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /removed local:box\/fl_server_aggregator/);
  // Really removed: the local cluster's deployment records are empty, and starting again is refused.
  const records = JSON.parse(readFileSync(path.join(work, '.fedkeeper', 'local', 'box.json'), 'utf8'));
  assert.deepEqual(Object.keys(records), []);
  const s2 = await cli(['-c', cfg, '-s']);
  assert.equal(s2.code, 2, s2.stderr);
  assert.match(s2.stderr, /local cluster box: function\(s\) fl_server_init, fl_server_aggregator, fl_client not deployed/);
});

test('bad input: one line, exit 2, no run directory', async (t) => {
  const before = runDirs().length;
  const cases: [string, string[], RegExp][] = [
    ['missing config', ['run', '-c', path.join(work, 'nope.yaml')], /nope\.yaml: file not found/],
    ['invalid value', ['run', '-c', tinyConfig('bad1', { data: '{ model: resnet }' })], /data_sampling\.model: expected .*found "resnet"/],
    ['too many clients per round', ['run', '-c', tinyConfig('bad2', { clients: '{ total_num_clients: 3, num_clients_per_round: 5 }' })], /num_clients_per_round/],
    ['missing dataset file', ['run', '-c', tinyConfig('bad3', { extra: `    training_test_data: { dataset: idx, train_images_url: ${work}/no-images.gz, train_labels_url: ${work}/no-labels.gz, test_images_url: ${work}/x, test_labels_url: ${work}/y }\n` })], /no-labels\.gz: file not found/],
    ['unreachable URL', ['run', '-c', tinyConfig('bad4', { extra: '    training_test_data: { dataset: idx, train_images_url: "http://127.0.0.1:1/a.gz", train_labels_url: "http://127.0.0.1:1/b.gz", test_images_url: "http://127.0.0.1:1/c.gz", test_labels_url: "http://127.0.0.1:1/d.gz" }\n' })], /cannot reach http:\/\/127\.0\.0\.1:1\/b\.gz/],
    ['more clients than the partitioner can serve', ['run', '-c', tinyConfig('bad5', { clients: '{ total_num_clients: 5000, num_clients_per_round: 10 }', data: '{ model: mnistnn, partition: shards, shards_per_client: 2 }' })], /shards .* lower total_num_clients/],
    ['round timeout shorter than the invocation timeout', ['run', '-c', tinyConfig('bad6', { fl: '    fault_tolerance: { round_timeout: 10s }\n    functions: { fl_client: { local: { timeout: 60s } } }\n' })], /round_timeout \(10000 ms\) is shorter than functions\.fl_client\.local\.timeout \(60000 ms\)/],
    ['unknown command', ['train', '-c', 'x.yaml'], /unknown command "train"/],
    ['no config', ['run'], /run needs a config/],
    ['runs of a store that does not exist (none is created)', ['runs', '--store', 'no-such-dir/store.sqlite'], /no store at .*no-such-dir\/store\.sqlite: nothing has run with it yet; check the path/],
    ['runs with a store URL that is not PostgreSQL', ['runs', '--store', 'mysql://u:secret@h/db'], /--store mysql:\/\/u:\*\*\*@h\/db: expected a postgres:\/\/ URL or the path of a SQLite store file/],
    ['runs with both a config and a store', ['runs', '-c', 'x.yaml', '--store', 's.sqlite'], /name the store once/],
    ['runs rm without run ids', ['runs', 'rm'], /name the runs to delete/],
    ['--metrics with a port that is none', ['run', '-c', 'x.yaml', '--metrics', '70000'], /--metrics 70000: expected a port 0–65535/],
    ['--metrics with deploy', ['deploy', '-c', 'x.yaml', '--metrics'], /--metrics goes with run or start, not deploy/],
    ['--ui with a port that is none', ['run', '-c', 'x.yaml', '--ui', '65536'], /--ui 65536: expected a port 0–65535/],
    ['--ui with remove', ['remove', '-c', 'x.yaml', '--ui'], /--ui goes with run or start, not remove/],
    ['a negative price', ['run', '-c', tinyConfig('badprice', { fl: '    pricing: { lambda: { gb_second_usd: -1 } }\n' })], /scenarios\.federated_learning\.pricing\.lambda\.gb_second_usd: expected at least 0, found -1/],
  ];
  for (const [name, args, msg] of cases) {
    await t.test(name, async () => {
      const r = await cli(args);
      assert.equal(r.code, 2, `${name}: exit ${r.code}: ${r.stderr}`);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, `${name}: expected one line, got:\n${r.stderr}`);
      assert.match(lines[0]!, /^fedkeeper: error: /);
      assert.match(lines[0]!, msg);
    });
  }
  assert.equal(runDirs().length, before, 'no run directory was left behind');
});
