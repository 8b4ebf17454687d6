/** rounds.csv of the run directory: the aggregator's own timings as the last columns, and resumed older runs. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { ROUND_COLUMNS, RunDirectory, type RoundRow } from '../../src/telemetry/run-dir.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fk-run-dir-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The columns rounds.csv had before fedavg_s and eval_s: readers index them (clients is column 7). */
const OLDER = ['round', 'accuracy', 'loss', 'invoke_s', 'train_s', 'agg_s', 'total_s', 'clients', 'dropped', 'samples', 'retries', 'failures'];

const row = (round: number): RoundRow => ({
  round,
  accuracy: 0.5,
  loss: 1.25,
  invoke_s: 0.1,
  train_s: 2,
  agg_s: 1.5,
  total_s: 3.6,
  clients: 4,
  dropped: 0,
  samples: 400,
  retries: 0,
  failures: 0,
  fedavg_s: 0.25,
  eval_s: 0.75,
  keeper_cpu_s: 0.125,
  cost_usd: 0.001,
});

const lines = (dir: string) => fs.readFileSync(path.join(dir, 'rounds.csv'), 'utf8').trim().split('\n').map((l) => l.split(','));

test('rounds.csv: fedavg_s, eval_s, keeper_cpu_s and cost_usd come last, after the columns index-based readers know', () => {
  const dir = path.join(tmp, 'new');
  const rd = RunDirectory.create(dir);
  rd.round(row(1));
  const [head, first] = lines(dir);
  assert.deepEqual(head, [...OLDER, 'fedavg_s', 'eval_s', 'keeper_cpu_s', 'cost_usd']);
  assert.deepEqual(head, [...ROUND_COLUMNS]);
  assert.equal(first![7], '4', 'clients still at index 7');
  assert.deepEqual(first!.slice(-4), ['0.25', '0.75', '0.125', '0.001']);
  assert.deepEqual(rd.readRounds()[0]!.eval_s, '0.75');
});

test('a resumed run written by an older version keeps its header: rows get exactly its columns', () => {
  const dir = path.join(tmp, 'older');
  RunDirectory.create(dir);
  fs.writeFileSync(path.join(dir, 'rounds.csv'), `${OLDER.join(',')}\n1,0.4,1.5,0.1,2,1.5,3.6,4,0,400,0,0\n`);
  const rd = RunDirectory.open(dir);
  rd.round(row(2));
  const [head, , second] = lines(dir);
  assert.deepEqual(head, OLDER);
  assert.equal(second!.length, OLDER.length);
  assert.deepEqual(second, ['2', '0.5', '1.25', '0.1', '2', '1.5', '3.6', '4', '0', '400', '0', '0']);

  // A current run directory opened again writes every column.
  const cur = path.join(tmp, 'current');
  RunDirectory.create(cur).round(row(1));
  RunDirectory.open(cur).round(row(2));
  assert.deepEqual(lines(cur)[2]!.slice(-4), ['0.25', '0.75', '0.125', '0.001']);
});

test('events and activation rows are written at the end of their turn, in order; a round row and close write them first', async () => {
  const dir = path.join(tmp, 'turns');
  const rd = RunDirectory.create(dir);
  const events = () => fs.readFileSync(path.join(dir, 'events.jsonl'), 'utf8').trim().split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { type: string }).type);
  const acts = () => fs.readFileSync(path.join(dir, 'activations', '1.csv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split(',')[0]);
  for (let i = 0; i < 3; i++) {
    rd.event(`e${i}`);
    rd.activation(1, { client_id: i, function: 'fl_client', platform: 'local', cluster: 'c', activation_id: `a${i}`, start_time: 1, end_time: 2, duration: 1, status: 'success', attempt: 1, cold_start: false, num_samples: 8, loss: 1, accuracy: 0.5, via: undefined, error: undefined, instance: undefined });
  }
  assert.deepEqual(events(), []); // not yet: the turn has not ended
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(events(), ['e0', 'e1', 'e2']);
  assert.deepEqual(acts(), ['0', '1', '2']);
  rd.event('before-round');
  rd.round(row(1));
  assert.deepEqual(events().at(-1), 'before-round');
  rd.event('before-close');
  rd.close();
  assert.deepEqual(events().at(-1), 'before-close');
});

test('lines of the last turn are written when the process exits (an uncaught error, process.exit)', async () => {
  const dir = path.join(tmp, 'exit');
  const mod = new URL('../../src/telemetry/run-dir.js', import.meta.url).href;
  const code = `const { RunDirectory } = await import(${JSON.stringify(mod)}); const rd = RunDirectory.create(${JSON.stringify(dir)}); rd.event('last'); throw new Error('crash');`;
  const { spawnSync } = await import('node:child_process');
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.match(fs.readFileSync(path.join(dir, 'events.jsonl'), 'utf8'), /"type":"last"/);
});
