/**
 * A cluster's prometheus_config, end to end: a real Prometheus (Debian's `prometheus`, started here on 127.0.0.1,
 * scraping every second) scrapes a local OpenWhisk cluster's /metrics while a tiny FL run uses that cluster; each
 * round's rounds.csv figures must match what the run itself recorded on that cluster (its activations and cold
 * starts), and summary.json keeps the cluster's configurations. When Debian's `prometheus-node-exporter` is there,
 * the test also starts it (127.0.0.1, CPU and memory collectors only) for the same Prometheus to scrape, names that
 * Prometheus as the cluster's port_node_metrics too, and checks the node figures: CPU busy within 0–1, memory in use
 * within this machine's (whose total the exporter must report); without it, that part skips in one line. A
 * Prometheus that does not answer is a warning per round and a completed run. Skips in one line when Prometheus
 * cannot start here.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { loadConfig } from '../../src/config/index.js';
import { Keeper, type ProgressEvent } from '../../src/keeper/keeper.js';
import { csvTable } from '../../src/report/data.js';
import { sharePackageCache } from '../fixtures/package-cache.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'fk-prometheus-'));
sharePackageCache(work);
const started: ChildProcess[] = [];
after(async () => {
  for (const p of started) {
    if (p.exitCode === null && p.signalCode === null) {
      p.kill('SIGTERM');
      await new Promise((r) => p.once('exit', r));
    }
  }
  rmSync(work, { recursive: true, force: true });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

const PROMETHEUS = ['/usr/bin/prometheus', '/usr/local/bin/prometheus'].find((p) => existsSync(p));
const NODE_EXPORTER = ['/usr/bin/prometheus-node-exporter', '/usr/local/bin/node_exporter'].find((p) => existsSync(p));
const MB = 1024 * 1024;

/** Waits until `ready()` (or until `proc`, if given, exits); a reason when it did not get ready. */
async function untilReady(name: string, ready: () => Promise<boolean>, ms: number, proc?: Started): Promise<string | undefined> {
  for (const t0 = Date.now(); Date.now() - t0 < ms; ) {
    if (proc && proc.p.exitCode !== null) return `${name} exited (${proc.p.exitCode}): ${proc.stderr().trim().split('\n').at(-1) ?? ''}`;
    if (await ready()) return undefined;
    await new Promise((r) => setTimeout(r, 200));
  }
  return `${name} did not become ready within ${ms / 1000} s`;
}

interface Started {
  p: ChildProcess;
  stderr: () => string;
}

function spawnLogged(bin: string, args: string[]): Started {
  const p = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  started.push(p);
  let stderr = '';
  p.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  return { p, stderr: () => stderr };
}

/** Starts node-exporter on 127.0.0.1 (CPU and memory collectors only); undefined (with why) when it cannot start. */
async function startNodeExporter(): Promise<{ port: number } | { why: string }> {
  if (!NODE_EXPORTER) return { why: 'no prometheus-node-exporter binary (Debian: apt-get install prometheus-node-exporter)' };
  const port = await freePort();
  const proc = spawnLogged(NODE_EXPORTER, [`--web.listen-address=127.0.0.1:${port}`, '--collector.disable-defaults', '--collector.cpu', '--collector.meminfo', '--web.disable-exporter-metrics', '--log.level=error']);
  const why = await untilReady('node-exporter', () => fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.ok, () => false), 30_000, proc);
  return why ? { why } : { port };
}

/** Starts Prometheus scraping `targets` every second; undefined (with why) when it cannot start. */
async function startPrometheus(targets: string[]): Promise<{ port: number } | { why: string }> {
  if (!PROMETHEUS) return { why: 'no prometheus binary (Debian: apt-get install prometheus)' };
  const port = await freePort();
  const dir = path.join(work, `prometheus-${port}`);
  mkdirSync(dir);
  const cfg = path.join(dir, 'prometheus.yml');
  writeFileSync(cfg, `global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: fabric\n    static_configs:\n      - targets: [${targets.map((t) => JSON.stringify(t)).join(', ')}]\n`);
  const proc = spawnLogged(PROMETHEUS, [`--config.file=${cfg}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn']);
  const why = await untilReady('prometheus', () => fetch(`http://127.0.0.1:${port}/-/ready`).then((r) => r.ok, () => false), 60_000, proc);
  return why ? { why } : { port };
}

/** Whether Prometheus (at `port`) holds a sample of `metric` yet. */
const holds = (port: number, metric: string): Promise<boolean> =>
  fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(metric)}`)
    .then((r) => r.json() as Promise<{ data?: { result?: unknown[] } }>)
    .then((b) => (b.data?.result?.length ?? 0) > 0, () => false);

function tinyConfig(name: string, clusters: string, server: string): string {
  const file = path.join(work, `${name}.yaml`);
  writeFileSync(
    file,
    `name: ${name}
output_dir: ${JSON.stringify(path.join(work, 'runs'))}
providers:
${clusters}
scenarios:
  federated_learning:
    server_config: { server_cluster_name: ${server} }
    seed: 3
    target_accuracy: 0.999
    max_rounds: 2
    store: { type: sqlite, path: ${JSON.stringify(path.join(work, `${name}.sqlite`))} }
    clients_info: { total_num_clients: 4, num_clients_per_round: 3 }
    data_sampling: { model: mnistnn, hidden_size: 8, batch_size: 32 }
    model_params: { lr: 1e-3, optim: adam, local_epochs: 1 }
    functions:
      fl_client: { openwhisk: { memory: 512, timeout: 120s } }
`,
  );
  return file;
}

async function run(file: string): Promise<{ dir: string; warnings: string[] }> {
  const warnings: string[] = [];
  const keeper = await Keeper.open(await loadConfig(file), { stateDir: path.join(work, '.fedkeeper'), onProgress: (e: ProgressEvent) => void (e.kind === 'warning' && warnings.push(e.message)) });
  try {
    const summary = await keeper.run();
    assert.equal(summary.status, 'completed');
    return { dir: summary.run_dir, warnings };
  } finally {
    await keeper.close();
  }
}

const events = (dir: string) =>
  readFileSync(path.join(dir, 'events.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { type: string; round?: number; message?: string; clusters?: Record<string, Record<string, number>> });

test("a real Prometheus scraping the local OpenWhisk cluster: each round's activations and cold starts in rounds.csv", async (t) => {
  const owPort = await freePort();
  const exporter = await startNodeExporter();
  const node = 'port' in exporter ? exporter.port : undefined;
  const prom = await startPrometheus([`127.0.0.1:${owPort}`, ...(node !== undefined ? [`127.0.0.1:${node}`] : [])]);
  if ('why' in prom) return void t.skip(`prometheus cannot start here: ${prom.why}`);
  if (node !== undefined) {
    // the exporter scraped before the run, so that round 1's CPU share starts at a sample of its own
    assert.equal(await untilReady('a scrape of node-exporter', () => holds(prom.port, 'node_cpu_seconds_total'), 30_000), undefined);
  }
  const file = tinyConfig(
    'prom-real',
    `  local:
    box: { pool_size: 2, clients: 0 }
  openwhisk:
    cloud:
      api_host: http://127.0.0.1:${owPort}
      auth: { ow_auth: "aaaaaaaa-0000-0000-0000-0000000000aa:prometheus-test-key" }
      local: { profile: cloud }
      clients: 4
      prometheus_config: { host: "", port_openwhisk_metrics: "${prom.port}",${node !== undefined ? ` port_node_metrics: "${prom.port}",` : ''} scrape_wait: 60s }
      configurations: { num_hosts: 1, each_host_ram: 16gb, gpu_enabled: false, platform: amd64, host_names: here, concurrency: "1" }`,
    'box',
  );
  const { dir, warnings } = await run(file);
  assert.deepEqual(warnings, []);
  const rounds = csvTable(readFileSync(path.join(dir, 'rounds.csv'), 'utf8'));
  assert.deepEqual(rounds.header.slice(0, 8), ['round', 'accuracy', 'loss', 'invoke_s', 'train_s', 'agg_s', 'total_s', 'clients'], 'the standard columns first, in order');
  const owColumns = ['prom_activations:cloud', 'prom_cold_starts:cloud', 'prom_wait_s:cloud'];
  const nodeColumns = ['prom_node_cpu_busy:cloud', 'prom_node_mem_used_mb:cloud'];
  const promColumns = [...owColumns, ...(node !== undefined ? nodeColumns : [])];
  assert.deepEqual(rounds.header.slice(-promColumns.length), promColumns, 'the prom_* columns after the standard ones');
  assert.deepEqual(rounds.header.filter((c) => c.startsWith('prom_')), promColumns);
  assert.equal(rounds.rows.length, 2);
  let total = 0;
  for (const row of rounds.rows) {
    // The cluster ran only clients (the server functions are on box): Prometheus's count of the round is the
    // round's activations on it, every attempt included, as the keeper recorded them.
    const acts = csvTable(readFileSync(path.join(dir, 'activations', `${row.round}.csv`), 'utf8')).rows.filter((a) => a.cluster === 'cloud');
    assert.ok(acts.length >= 3, `round ${row.round}: 3 clients on cloud`);
    assert.equal(Number(row['prom_activations:cloud']), acts.length, `round ${row.round} activations`);
    assert.equal(Number(row['prom_cold_starts:cloud']), acts.filter((a) => a.cold_start === 'true').length, `round ${row.round} cold starts`);
    assert.ok(Number(row['prom_wait_s:cloud']) >= 0, 'a mean wait');
    total += acts.length;
  }
  const promEvents = events(dir).filter((e) => e.type === 'prometheus');
  assert.deepEqual(promEvents.map((e) => e.round), [1, 2]);
  assert.equal(promEvents.reduce((s, e) => s + e.clusters!['openwhisk:cloud']!.activations!, 0), total);
  assert.ok(promEvents.every((e) => e.clusters!['openwhisk:cloud']!.openwhisk_scrape_lag_s! >= 0), 'figures end at a scrape after the round');
  const summary = JSON.parse(readFileSync(path.join(dir, 'summary.json'), 'utf8')) as { configurations: unknown };
  assert.deepEqual(summary.configurations, { 'openwhisk:cloud': { num_hosts: 1, each_host_ram: '16gb', gpu_enabled: false, platform: 'amd64', host_names: ['here'], concurrency: 1 } });

  await t.test("node figures from a real node-exporter (port_node_metrics): this machine's CPU busy and memory in use", (st) => {
    if (node === undefined) return void st.skip(`node-exporter cannot start here: ${(exporter as { why: string }).why}`);
    const totalMb = os.totalmem() / MB;
    for (const row of rounds.rows) {
      for (const c of nodeColumns) assert.notEqual(row[c], '', `round ${row.round}: ${c} has a figure`);
      const busy = Number(row['prom_node_cpu_busy:cloud']);
      assert.ok(busy >= 0 && busy <= 1, `round ${row.round}: CPU busy ${busy} within 0–1`);
      const used = Number(row['prom_node_mem_used_mb:cloud']);
      assert.ok(used > 0 && used < totalMb, `round ${row.round}: ${used} MB in use of ${totalMb.toFixed(0)} MB`);
    }
    for (const e of promEvents) {
      const f = e.clusters!['openwhisk:cloud']!;
      assert.ok(Math.abs(f.node_mem_total_mb! - totalMb) <= 1, `round ${e.round}: the exporter's memory total ${f.node_mem_total_mb} MB is this machine's ${totalMb.toFixed(0)} MB`);
      assert.equal(f.node_cpus, os.cpus().length, `round ${e.round}: this machine's CPUs`);
      assert.ok(f.node_scrape_lag_s! >= 0, 'node figures end at a scrape after the round');
    }
  });
});

test('a Prometheus that does not answer: one warning per round in events and progress, empty figures, a completed run', async () => {
  const dead = await freePort();
  const file = tinyConfig(
    'prom-dead',
    `  local:
    box: { pool_size: 2, prometheus_config: { host: 127.0.0.1, port_openwhisk_metrics: ${dead}, port_node_metrics: ${dead} } }`,
    'box',
  );
  const { dir, warnings } = await run(file);
  assert.equal(warnings.length, 2, warnings.join('\n'));
  assert.match(warnings[0]!, new RegExp(`^round 1: prometheus_config of local:box: Prometheus at http://127\\.0\\.0\\.1:${dead}: ECONNREFUSED`));
  const w = events(dir).filter((e) => e.type === 'warning');
  assert.deepEqual(w.map((e) => e.round), [1, 2]);
  const rounds = csvTable(readFileSync(path.join(dir, 'rounds.csv'), 'utf8'));
  assert.equal(rounds.rows.length, 2);
  for (const row of rounds.rows) {
    assert.ok(Number(row.accuracy) > 0);
    for (const c of ['prom_activations:box', 'prom_cold_starts:box', 'prom_wait_s:box', 'prom_node_cpu_busy:box', 'prom_node_mem_used_mb:box']) assert.equal(row[c], '', c);
  }
});
