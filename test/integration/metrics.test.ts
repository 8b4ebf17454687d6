/**
 * Prometheus metrics of a run: a real keeper runs a tiny FL run with the metrics registry it serves; the endpoint
 * (scraped over HTTP as Prometheus would) then has the invocations by platform, cluster, function and status, the
 * activation duration histogram, the last round and its split, accuracy, loss, and the keeper's process memory.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { loadConfig } from '../../src/config/index.js';
import { Keeper } from '../../src/keeper/keeper.js';
import { RunMetrics, serveMetrics } from '../../src/telemetry/metrics.js';
import { sharePackageCache } from '../fixtures/package-cache.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'fk-metrics-'));
sharePackageCache(work);
after(() => rmSync(work, { recursive: true, force: true }));

/** The value of one sample line, e.g. value(text, 'fedkeeper_round') or with labels. */
function value(text: string, sample: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line === undefined ? undefined : Number(line.slice(sample.length + 1));
}

test('a run fills the metrics Prometheus scrapes: invocations, durations, rounds, accuracy, keeper memory', async () => {
  const file = path.join(work, 'm.yaml');
  writeFileSync(
    file,
    `name: metrics
output_dir: ${JSON.stringify(path.join(work, 'runs'))}
providers:
  local:
    box: { pool_size: 2 }
scenarios:
  federated_learning:
    seed: 2
    target_accuracy: 0.999
    max_rounds: 2
    store: { type: sqlite, path: ${JSON.stringify(path.join(work, 'store.sqlite'))} }
    clients_info: { total_num_clients: 4, num_clients_per_round: 3 }
    data_sampling: { model: mnistnn, hidden_size: 8, batch_size: 16 }
    model_params: { lr: 1e-3, optim: adam, local_epochs: 1 }
`,
  );
  const metrics = new RunMetrics();
  const server = await serveMetrics(metrics);
  try {
    const keeper = await Keeper.open(await loadConfig(file), { stateDir: path.join(work, '.fedkeeper'), metrics });
    let summary;
    try {
      summary = await keeper.run();
    } finally {
      await keeper.close();
    }
    const res = await fetch(server.url);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    const text = await res.text();
    assert.equal(value(text, 'fedkeeper_invocations_total{platform="local",cluster="box",function="fl_client",status="success"}'), 6, '3 clients × 2 rounds');
    assert.equal(value(text, 'fedkeeper_invocations_total{platform="local",cluster="box",function="fl_server_aggregator",status="success"}'), 2);
    assert.equal(value(text, 'fedkeeper_invocations_total{platform="local",cluster="box",function="fl_server_init",status="success"}'), 1);
    assert.equal(value(text, 'fedkeeper_activation_duration_seconds_count{platform="local",cluster="box",function="fl_client"}'), 6);
    assert.equal(value(text, 'fedkeeper_round'), 2);
    assert.equal(value(text, 'fedkeeper_accuracy'), summary.final_accuracy);
    assert.equal(value(text, 'fedkeeper_loss'), summary.final_loss);
    for (const part of ['invoke', 'train', 'agg', 'total']) assert.ok(value(text, `fedkeeper_round_seconds{part="${part}"}`)! >= 0, part);
    assert.ok(value(text, 'fedkeeper_keeper_process_resident_memory_bytes')! > 0);
    assert.equal((await fetch(server.url.replace('/metrics', '/other'))).status, 404);
  } finally {
    await server.close();
  }
});
