/**
 * End-to-end: rounds.csv carries the aggregator function's own timings, fedavg_s and eval_s, as its last columns,
 * from a real run of the compiled CLI (local platform, SQLite store, embedded MNIST digits).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { runCli } from '../fixtures/cli.js';
import { sharePackageCache } from '../fixtures/package-cache.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'fk-e2e-timings-'));
sharePackageCache(work);
after(() => rmSync(work, { recursive: true, force: true }));

test('rounds.csv: fedavg_s and eval_s after the older columns, each inside the keeper-measured agg_s', async () => {
  const file = path.join(work, 'timings.yaml');
  writeFileSync(
    file,
    `name: timings
output_dir: runs
providers:
  local:
    box: { pool_size: 2 }
scenarios:
  federated_learning:
    seed: 5
    target_accuracy: 0.99
    max_rounds: 2
    store: { type: sqlite, path: state/store.sqlite }
    clients_info: { total_num_clients: 4, num_clients_per_round: 2 }
    data_sampling: { model: mnistnn, hidden_size: 16, batch_size: 32 }
    model_params: { lr: 1e-3, optim: adam, local_epochs: 1 }
`,
  );
  const r = await runCli(['run', '-c', file], work, { FORCE_COLOR: '0' });
  assert.equal(r.code, 0, r.stderr);
  const dir = /results: (.+)/.exec(r.stdout)![1]!.trim();
  const [head, ...rows] = readFileSync(path.join(dir, 'rounds.csv'), 'utf8').trim().split('\n').map((l) => l.split(','));
  assert.deepEqual(head!.slice(0, 8), ['round', 'accuracy', 'loss', 'invoke_s', 'train_s', 'agg_s', 'total_s', 'clients'], 'older columns keep their places');
  assert.deepEqual(head!.slice(-4), ['fedavg_s', 'eval_s', 'keeper_cpu_s', 'cost_usd']);
  assert.equal(rows.length, 2);
  for (const row of rows) {
    const v = Object.fromEntries(row.map((x, i) => [head![i]!, Number(x)]));
    assert.equal(v.clients, 2);
    assert.ok(v.fedavg_s! > 0, `round ${v.round}: fedavg_s ${v.fedavg_s}`);
    assert.ok(v.eval_s! > 0, `round ${v.round}: eval_s ${v.eval_s}`);
    assert.ok(v.keeper_cpu_s! > 0, `round ${v.round}: keeper_cpu_s ${v.keeper_cpu_s}`);
    // The function's intervals lie inside the keeper's aggregation step (invocation, FedAvg, evaluation, write).
    assert.ok(v.fedavg_s! + v.eval_s! <= v.agg_s!, `round ${v.round}: fedavg_s ${v.fedavg_s} + eval_s ${v.eval_s} > agg_s ${v.agg_s}`);
  }
});
