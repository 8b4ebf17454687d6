/**
 * A namespace throttled as real OpenWhisk deployments throttle one (issue 12): a local OpenWhisk cluster allowing 60
 * invocations per minute and 30 concurrent ones, and a 100-client round on it, run with the real CLI. The round
 * completes: the invocations the cluster refused with 429 are paced by the keeper (waited out and repeated) — no
 * client fails, no client attempt and no call retry is used (there are none to use: max_attempts 1, call_retries
 * 0) — and summary.json counts them, as many as the cluster says it refused.
 *
 * A real FL round with 102 activations (init, 100 clients, aggregation) against 60 per minute of the clock: the
 * run spans at least two of the cluster's minute windows, so it takes about a minute or more. Nothing here depends
 * on how fast this machine is: whether the rate or the concurrency refuses the excess, it is refused and paced.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { runCli } from '../fixtures/cli.js';
import { sharePackageCache } from '../fixtures/package-cache.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'fk-throttles-'));
sharePackageCache(work);
after(() => rmSync(work, { recursive: true, force: true }));

/** A tiny IDX dataset (28x28 unsigned-byte digits, labels 0–9 in turn): 5 training samples per client. */
function writeDataset(dir: string, train: number, testCount: number): Record<string, string> {
  mkdirSync(dir, { recursive: true });
  let seed = 12345;
  const byte = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % 256;
  const images = (n: number) => {
    const b = Buffer.alloc(16 + n * 784);
    b.writeUInt32BE(0x00000803, 0);
    b.writeUInt32BE(n, 4);
    b.writeUInt32BE(28, 8);
    b.writeUInt32BE(28, 12);
    for (let i = 16; i < b.length; i++) b[i] = byte();
    return b;
  };
  const labels = (n: number) => {
    const b = Buffer.alloc(8 + n);
    b.writeUInt32BE(0x00000801, 0);
    b.writeUInt32BE(n, 4);
    for (let i = 0; i < n; i++) b[8 + i] = i % 10;
    return b;
  };
  const files = {
    train_images_url: path.join(dir, 'train-images-idx3-ubyte'),
    train_labels_url: path.join(dir, 'train-labels-idx1-ubyte'),
    test_images_url: path.join(dir, 'test-images-idx3-ubyte'),
    test_labels_url: path.join(dir, 'test-labels-idx1-ubyte'),
  };
  writeFileSync(files.train_images_url, images(train));
  writeFileSync(files.train_labels_url, labels(train));
  writeFileSync(files.test_images_url, images(testCount));
  writeFileSync(files.test_labels_url, labels(testCount));
  return files;
}

test('a 100-client round on a namespace limited to 60 invocations per minute and 30 concurrent completes; the throttled calls are counted, not failed', { timeout: 900_000 }, async () => {
  const data = writeDataset(path.join(work, 'data'), 500, 100);
  const cfg = path.join(work, 'throttled.yaml');
  writeFileSync(
    cfg,
    `name: throttled
output_dir: runs
providers:
  openwhisk:
    limited:
      auth: { ow_auth: "dddddddd-0000-0000-0000-000000000001:throttle-test-key" }
      # The namespace's throttles, as a deployment sets them; memory for 30 containers of 256 MB at once. The cold
      # start of 1 s holds the first clients in flight while the keeper invokes the next: 30 are reached however
      # fast this machine is (and past 60 in a minute of the clock, the rate refuses them anyway).
      local: { profile: { base: cloud, memoryMb: 10240, coldStartDelayMs: 1000, invocationsPerMinute: 60, concurrentInvocations: 30 } }
scenarios:
  federated_learning:
    seed: 3
    target_accuracy: 0.99
    max_rounds: 1
    store: { type: sqlite, path: state/store.sqlite }
    server_config: { server_cluster_name: limited }
    clients_info: { total_num_clients: 100, num_clients_per_round: 100 }
    data_sampling: { model: mnistnn, hidden_size: 8, batch_size: 5 }
    training_test_data: { dataset: idx, train_images_url: "${data.train_images_url}", train_labels_url: "${data.train_labels_url}", test_images_url: "${data.test_images_url}", test_labels_url: "${data.test_labels_url}" }
    model_params: { lr: 1e-3, optim: adam, local_epochs: 1 }
    fault_tolerance: { max_attempts: 1, call_retries: 0 }
    functions:
      fl_client: { openwhisk: { memory: 256, timeout: 120s } }
      fl_server_init: { openwhisk: { memory: 512, timeout: 120s } }
      fl_server_aggregator: { openwhisk: { memory: 512, timeout: 120s } }
`,
  );
  const r = await runCli(['run', '-c', cfg], work);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const dir = /results: (.+)/.exec(r.stdout)![1]!.trim();
  const s = JSON.parse(readFileSync(path.join(dir, 'summary.json'), 'utf8'));
  assert.equal(s.status, 'completed');
  assert.equal(s.rounds, 1);

  // Throttled, and counted as such: as many as the cluster says it refused (only this keeper invoked on it).
  assert.ok(s.throttled > 0, `no invocation was throttled: ${JSON.stringify(s)}`);
  assert.equal(s.injected_faults['openwhisk:limited'].throttled, s.throttled);
  // Not failed: no failure, no re-invocation, no call retry; every client ran once and succeeded.
  assert.equal(s.failures, 0);
  assert.equal(s.retries, 0);
  assert.equal(s.call_retries, 0);
  const [head, ...rows] = readFileSync(path.join(dir, 'activations', '1.csv'), 'utf8').trim().split('\n');
  const cols = head!.split(',');
  const clients = rows.map((l) => Object.fromEntries(l.split(',').map((v, i) => [cols[i], v]))).filter((x) => x.client_id !== '-1');
  assert.equal(clients.length, 100);
  assert.deepEqual(new Set(clients.map((x) => x.client_id)).size, 100);
  for (const x of clients) {
    assert.equal(x.status, 'success', JSON.stringify(x));
    assert.equal(x.attempt, '1');
  }
  // The keeper saw the cluster's own reasons.
  const events = readFileSync(path.join(dir, 'events.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const throttled = events.filter((e) => e.type === 'call_throttled');
  assert.equal(throttled.length, s.throttled);
  for (const e of throttled) assert.match(e.error, /HTTP 429: Too many (requests in the last minute|concurrent requests in flight) \(count: \d+, allowed: (60|30)\)\./);
  console.log(`throttles: ${s.throttled} invocations throttled and paced, wall ${s.wall_s} s`);
});
