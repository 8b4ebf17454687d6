/**
 * The shipped examples, as the README describes them: each parses into the setup the README promises and plans onto
 * its clusters; the quickstart (what `npm start` runs: the paper's CNN on the embedded digits) trains end to end and
 * stops at its target accuracy; the paper's setup runs one tiny round when Debian's Fashion-MNIST is installed.
 * (examples/fabric.yaml's full run is test/e2e/fabric-postgres.test.ts.)
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/config/index.js';
import { buildPlan } from '../../src/keeper/plan.js';
import { sharePackageCache } from '../fixtures/package-cache.js';
import { runCli, type CliResult } from '../fixtures/cli.js';

const example = (name: string) => fileURLToPath(new URL(`../../../examples/${name}`, import.meta.url));
const FASHION_MNIST = '/usr/share/datasets/fashion-mnist';
const work = mkdtempSync(path.join(os.tmpdir(), 'fk-examples-'));
sharePackageCache(work);
after(() => rmSync(work, { recursive: true, force: true }));

function cli(args: string[]): Promise<CliResult> {
  return runCli(args, work);
}

/** A copy of an example with some of its lines changed (each replacement must hit, so the example still says so). */
function variant(name: string, changes: [string | RegExp, string][]): string {
  let text = readFileSync(example(name), 'utf8');
  for (const [from, to] of changes) {
    const next = text.replace(from, to);
    assert.notEqual(next, text, `examples/${name} no longer has ${String(from)}`);
    text = next;
  }
  const file = path.join(work, name);
  writeFileSync(file, text);
  return file;
}

function readCsv(file: string): Record<string, string>[] {
  const [head, ...rows] = readFileSync(file, 'utf8').trim().split('\n');
  const cols = head!.split(',');
  return rows.map((r) => Object.fromEntries(r.split(',').map((v, i) => [cols[i], v])));
}

/** The plan of a config: where each client goes, which functions each cluster gets, and how clients reach the store. */
async function planOf(file: string, env: NodeJS.ProcessEnv = {}) {
  const plan = await buildPlan(await loadConfig(file, env), path.join(work, 'plan-state'));
  try {
    const count: Record<string, number> = {};
    for (const c of plan.placement) count[c] = (count[c] ?? 0) + 1;
    return {
      server: plan.serverCluster,
      clients: count,
      functions: Object.fromEntries([...plan.specs].map(([c, specs]) => [c, specs.map((s) => s.name).sort()])),
      specs: plan.specs,
      access: Object.fromEntries([...plan.clusters.values()].map((c) => [c.name, `${c.platform}/${c.group}/${c.storeAccess}`])),
    };
  } finally {
    await plan.close();
  }
}

test('examples/quickstart.yaml: the README\'s setup (CNN, 10 clients, 5 per round, embedded digits, target 0.95), planned on the local fabric', async () => {
  const cfg = await loadConfig(example('quickstart.yaml'), {});
  const fl = cfg.scenarios.federated_learning;
  assert.equal(fl.data_sampling.model, 'cnn');
  assert.equal(fl.clients_info.total_num_clients, 10);
  assert.equal(fl.clients_info.num_clients_per_round, 5);
  assert.deepEqual(fl.training_test_data, { dataset: 'mnist', test_fraction: 0.2 });
  assert.equal(fl.target_accuracy, 0.95);
  assert.equal(cfg.output_dir, 'runs');
  const plan = await planOf(example('quickstart.yaml'));
  assert.equal(plan.server, 'laptop');
  assert.deepEqual(plan.clients, { laptop: 10 });
  assert.deepEqual(plan.functions, { laptop: ['fl_client', 'fl_server_aggregator', 'fl_server_init'] });
  assert.deepEqual(plan.access, { laptop: 'local/local/direct' });
});

test('examples/fabric.yaml: cloud and edge OpenWhisk clusters and local GCF behind the relay, clients spread by the original\'s counts', async () => {
  const cfg = await loadConfig(example('fabric.yaml'), {});
  const fl = cfg.scenarios.federated_learning;
  assert.equal(fl.store.type, 'postgres');
  assert.equal(fl.data_sampling.model, 'cnn');
  const ow = cfg.providers.openwhisk as Record<string, { local?: { profile?: { base?: string; limits?: { memory?: { max?: number } } } } }>;
  assert.equal(ow.cloud?.local?.profile?.base, 'cloud');
  assert.equal(ow.edge?.local?.profile?.base, 'edge');
  // The clusters' operators raised the memory limit (stock OpenWhisk: 512 MB) to what the example's functions ask.
  assert.equal(ow.cloud?.local?.profile?.limits?.memory?.max, fl.functions.fl_client!.openwhisk!.memory);
  assert.deepEqual(cfg.providers.google.gcf, { mode: 'local', store_access: 'relay' });
  assert.ok((cfg.scenarios.test as { functions?: Record<string, unknown> } | undefined)?.functions?.nodeinfo, 'the `test` scenario has nodeinfo for `functions deploy … -s test -f nodeinfo --invoke`');
  // Planning starts the example's local clusters (on its ports, or uses those already answering there, e.g. a
  // `fedkeeper fabric up` of this example) and stops them again.
  const plan = await planOf(example('fabric.yaml'));
  assert.equal(plan.server, fl.server_config.server_cluster_name);
  const ci = fl.clients_info as unknown as Record<string, number | undefined>;
  const byGroup: Record<string, number> = {};
  for (const [cluster, n] of Object.entries(plan.clients)) {
    const group = plan.access[cluster]!.split('/')[1]!;
    byGroup[group] = (byGroup[group] ?? 0) + n;
  }
  const counted = Object.fromEntries(['ow', 'edge', 'gcf', 'lambda', 'local'].filter((g) => ci[`${g}_clients_count`] !== undefined).map((g) => [g, ci[`${g}_clients_count`]]));
  assert.deepEqual(byGroup, counted, 'each group of clusters hosts its *_clients_count clients');
  assert.equal(Object.values(plan.clients).reduce((a, b) => a + b, 0), fl.clients_info.total_num_clients);
  assert.equal(plan.access.cloud, 'openwhisk/ow/direct');
  assert.equal(plan.access.edge, 'openwhisk/edge/direct');
  assert.equal(plan.access.gcf, 'google/gcf/relay');
  assert.deepEqual(plan.functions.cloud, ['fl_client', 'fl_invoker_weights_update', 'fl_server_aggregator', 'fl_server_init'], 'the relay runs on the server cluster');
  for (const c of Object.keys(plan.clients).filter((c) => c !== plan.server)) assert.deepEqual(plan.functions[c], ['fl_client'], c);
});

test('examples/paper-cnn-100.yaml: the paper\'s setup (100 clients per round, CNN, Adam 1e-3, 5 local epochs, batch 10, 2 shards each) on Fashion-MNIST', async () => {
  const cfg = await loadConfig(example('paper-cnn-100.yaml'), {});
  const fl = cfg.scenarios.federated_learning;
  assert.equal(fl.clients_info.total_num_clients, 100);
  assert.equal(fl.clients_info.num_clients_per_round, 100);
  assert.equal(fl.data_sampling.model, 'cnn');
  assert.equal(fl.data_sampling.batch_size, 10);
  assert.equal(fl.data_sampling.partition, 'shards');
  assert.equal(fl.data_sampling.shards_per_client, 2);
  assert.deepEqual(fl.model_params, { ...fl.model_params, optim: 'adam', lr: 1e-3, local_epochs: 5 });
  const d = fl.training_test_data;
  assert.equal(d.dataset, 'idx');
  if (d.dataset === 'idx') assert.ok(d.train_images_url.startsWith(`${FASHION_MNIST}/`), d.train_images_url);
  const plan = await planOf(example('paper-cnn-100.yaml'));
  assert.deepEqual(plan.clients, { laptop: 100 });
  assert.equal(plan.specs.get('laptop')!.find((s) => s.name === 'fl_client')!.timeoutMs, 3_600_000);
});

test('the quickstart trains the CNN end to end and stops when the test accuracy reaches target_accuracy', async () => {
  // The quickstart as `npm start` runs it, with a target its first round reaches, so the test stays short.
  const cfg = variant('quickstart.yaml', [
    [/^( +)target_accuracy: .*/m, '$1target_accuracy: 0.5'],
    [/^( +)max_rounds: .*/m, '$1max_rounds: 3'],
  ]);
  const r = await cli(['run', '-c', cfg]);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  // What the README says it prints: the packages, one line per round, the end.
  assert.match(r.stdout, /^package fl_client \(/m);
  assert.match(r.stdout, /^round 1\/3 +accuracy 0\.\d+/m);
  assert.match(r.stdout, /^reached target accuracy 0\.5: final 0\.\d+ after \d round\(s\)/m);
  const dir = /results: (.+)/.exec(r.stdout)![1]!.trim();
  assert.equal(path.dirname(dir), path.join(work, 'runs'), 'results go to runs/<run-id>/');
  const s = JSON.parse(readFileSync(path.join(dir, 'summary.json'), 'utf8'));
  assert.equal(s.status, 'completed');
  assert.equal(s.model, 'cnn');
  assert.ok(s.parameters > 500_000, `the paper's CNN has over 500k parameters, this one ${s.parameters}`);
  assert.equal(s.reached_target, true);
  assert.equal(s.target_accuracy, 0.5);
  assert.ok(s.rounds < 3, `stopped after ${s.rounds} of max_rounds 3`);
  // It stopped at the first round that reached the target, not before and not after.
  const rounds = readCsv(path.join(dir, 'rounds.csv'));
  assert.equal(rounds.length, s.rounds);
  assert.ok(Number(rounds.at(-1)!.accuracy) >= 0.5, `last round's accuracy ${rounds.at(-1)!.accuracy}`);
  for (const row of rounds.slice(0, -1)) assert.ok(Number(row.accuracy) < 0.5, `round ${row.round} already reached the target`);
  assert.equal(Number(rounds.at(-1)!.accuracy), s.final_accuracy);
  const events = readFileSync(path.join(dir, 'events.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(events.filter((e) => e.type === 'target_reached').map((e) => e.round), [s.rounds]);
  const clients = readCsv(path.join(dir, 'activations', '1.csv')).filter((a) => a.function === 'fl_client');
  assert.equal(clients.length, 5);
  for (const c of clients) assert.equal(c.num_samples, '800', 'each of the 10 clients holds 800 of the 8,000 training digits');
});

test('examples/paper-cnn-100.yaml runs one tiny round on Debian\'s Fashion-MNIST', async (t) => {
  if (!existsSync(path.join(FASHION_MNIST, 'train-images-idx3-ubyte.gz'))) {
    t.skip(`${FASHION_MNIST} is absent (apt-get install dataset-fashion-mnist); parsed and planned above`);
    return;
  }
  const cfg = variant('paper-cnn-100.yaml', [
    [/^( +)num_clients_per_round: .*/m, '$1num_clients_per_round: 2'],
    [/^( +)local_epochs: .*/m, '$1local_epochs: 1'],
    [/^( +)max_rounds: .*/m, '$1max_rounds: 1'],
  ]);
  const r = await cli(['run', '-c', cfg]);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const s = JSON.parse(readFileSync(path.join(/results: (.+)/.exec(r.stdout)![1]!.trim(), 'summary.json'), 'utf8'));
  assert.equal(s.status, 'completed');
  assert.equal(s.rounds, 1);
  assert.equal(s.train_samples, 60_000);
  assert.equal(s.clients_total, 100);
  const clients = readCsv(path.join(s.run_dir, 'activations', '1.csv')).filter((a) => a.function === 'fl_client');
  assert.deepEqual(clients.map((c) => c.num_samples), ['600', '600'], '2 shards of 300 per client');
});
