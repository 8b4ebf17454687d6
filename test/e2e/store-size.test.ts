/**
 * A store that does not fill the disk: client updates of an aggregated round are deleted and their space given back
 * to the file system (SQLite), unless `keep_updates: true`; the result is the same either way.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { runCli } from '../fixtures/cli.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'fk-store-size-'));
after(() => rmSync(work, { recursive: true, force: true }));

function config(name: string, keep: boolean): string {
  const file = path.join(work, `${name}.yaml`);
  writeFileSync(
    file,
    `name: ${name}
output_dir: runs
providers:
  local:
    box: { pool_size: 2 }
scenarios:
  federated_learning:
    seed: 4
    target_accuracy: 1
    max_rounds: 6
    keep_updates: ${keep}
    store: { type: sqlite, path: state/${name}.sqlite }
    clients_info: { total_num_clients: 6, num_clients_per_round: 6 }
    data_sampling: { model: mnistnn, hidden_size: 64, batch_size: 32 }
`,
  );
  return file;
}

/** The store's files on disk (the database and its WAL). */
function bytes(name: string): number {
  const f = path.join(work, 'state', `${name}.sqlite`);
  return [f, `${f}-wal`].reduce((s, x) => s + (statSync(x, { throwIfNoEntry: false })?.size ?? 0), 0);
}

test('over 6 rounds the store keeps the global weights, not the 36 client updates, unless keep_updates: true; same weights', async () => {
  const kept = await runCli(['run', '-c', config('kept', true)], work);
  assert.equal(kept.code, 0, kept.stderr);
  const lean = await runCli(['run', '-c', config('lean', false)], work);
  assert.equal(lean.code, 0, lean.stderr);

  const summary = (stdout: string) => JSON.parse(readFileSync(path.join(/results: (.+)/.exec(stdout)![1]!.trim(), 'summary.json'), 'utf8'));
  const k = summary(kept.stdout);
  const l = summary(lean.stdout);
  assert.equal(l.final_weights_sha256, k.final_weights_sha256, 'deleting updates after aggregation changes nothing in the result');

  const count = async (name: string, runId: string) => {
    const s = new SqliteStore(path.join(work, 'state', `${name}.sqlite`));
    try {
      let n = 0;
      for (let r = 1; r <= 6; r++) n += (await s.listClientUpdates(runId, r)).length;
      return { updates: n, rounds: (await s.latestGlobalRound(runId)) ?? -1 };
    } finally {
      await s.close();
    }
  };
  assert.deepEqual(await count('kept', k.run_id), { updates: 36, rounds: 6 });
  assert.deepEqual(await count('lean', l.run_id), { updates: 0, rounds: 6 }, 'global weights stay (resume, reports), updates go');

  // One update of this model is ~200 kB: 36 of them are ~7 MB the lean store gave back to the file system.
  const oneUpdate = (28 * 28 * 64 + 64 + 64 * 10 + 10) * 4;
  assert.ok(bytes('kept') - bytes('lean') > 30 * oneUpdate, `kept ${bytes('kept')} B, lean ${bytes('lean')} B`);
  assert.ok(bytes('lean') < 12 * oneUpdate, `the lean store holds ~7 rounds of global weights, not every update: ${bytes('lean')} B`);
});
