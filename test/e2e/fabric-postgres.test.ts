/**
 * End-to-end of examples/fabric.yaml as a real fabric runs it: cloud and edge OpenWhisk clusters and a Lambda
 * platform whose clients read and write weights in PostgreSQL directly, GCF clients through the relay, every function from its package, the
 * dataset fetched over HTTP (served here, as the seed's functions fetched theirs). It ends with the same
 * final_weights_sha256 as the same config on the local provider — and as the same config on the SQLite store.
 */
import assert from 'node:assert/strict';
import { createReadStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { materializeEmbeddedMnist } from '../../src/ml/datasets.js';
import { startTestPostgres } from '../fixtures/postgres.js';
import { runCli, type CliResult } from '../fixtures/cli.js';

const EXAMPLE = fileURLToPath(new URL('../../../examples/fabric.yaml', import.meta.url));
const work = mkdtempSync(path.join(os.tmpdir(), 'fk-fabric-pg-'));
let pg: Awaited<ReturnType<typeof startTestPostgres>>;
let data: http.Server;
let dataRequests = 0;
let urls: Record<string, string> = {};

before(async () => {
  pg = await startTestPostgres();
  const files = await materializeEmbeddedMnist(0.2, path.join(work, 'datasets'));
  const byName = new Map<string, string>();
  for (const k of ['train_images_url', 'train_labels_url', 'test_images_url', 'test_labels_url'] as const) byName.set(`/${path.basename(files[k])}`, files[k]);
  data = http.createServer((req, res) => {
    const file = byName.get(req.url ?? '');
    dataRequests++;
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    createReadStream(file).pipe(res);
  });
  await new Promise<void>((r) => data.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(data.address() as { port: number }).port}`;
  urls = Object.fromEntries([...byName.keys()].map((p) => [p, `${base}${p}`]));
});
after(async () => {
  await new Promise((r) => data?.close(r));
  await pg?.close();
  rmSync(work, { recursive: true, force: true });
});

function cli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return runCli(args, work, env);
}

/** The example, for a test: ports of our own choosing, two rounds, the dataset at the served URLs. */
function exampleConfig(): string {
  const u = (name: string) => urls[Object.keys(urls).find((k) => k.startsWith(`/${name}`))!];
  return readFileSync(EXAMPLE, 'utf8')
    .replace(/^\s*(api_host|endpoint): .*\n/gm, '')
    .replace('max_rounds: 10', 'max_rounds: 2')
    .replace(
      /training_test_data: .*/,
      `training_test_data: { dataset: idx, train_images_url: "${u('train-images')}", train_labels_url: "${u('train-labels')}", test_images_url: "${u('test-images')}", test_labels_url: "${u('test-labels')}" }`,
    );
}

function write(name: string, text: string): string {
  const f = path.join(work, name);
  writeFileSync(f, text);
  return f;
}

const summaryOf = (stdout: string) => JSON.parse(readFileSync(path.join(/results: (.+)/.exec(stdout)![1]!.trim(), 'summary.json'), 'utf8'));

test('examples/fabric.yaml: direct clients on PostgreSQL, GCF through the relay, data over HTTP; same weights as the local provider and the SQLite store', async () => {
  // On PGlite (no server here) every process keeps at most one short-lived connection: it serves one at a time.
  const url = pg.engine === 'pglite' ? `${pg.url}${pg.url.includes('?') ? '&' : '?'}connection_limit=1&idle_timeout=5` : pg.url;
  const fabricCfg = write('fabric.yaml', exampleConfig());
  const r = await cli(['run', '-c', fabricCfg], { DATABASE_URL: url });
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const s = summaryOf(r.stdout);
  assert.equal(s.status, 'completed');
  assert.equal(s.rounds, 2);
  assert.equal(s.store, 'postgres');
  for (const fn of ['openwhisk:cloud/fl_client', 'openwhisk:edge/fl_client', 'lambda:aws/fl_client', 'google:gcf/fl_client', 'openwhisk:cloud/fl_server_aggregator', 'openwhisk:cloud/fl_invoker_weights_update']) {
    assert.match(String(s.artifacts?.[fn]), /^[0-9a-f]{64}$/, `summary.json names the package ${fn} ran`);
  }
  assert.equal(s.artifacts['openwhisk:cloud/fl_client'], s.artifacts['openwhisk:edge/fl_client'], 'one package per function and platform kind');
  assert.notEqual(s.artifacts['openwhisk:cloud/fl_client'], s.artifacts['google:gcf/fl_client']);
  assert.notEqual(s.artifacts['openwhisk:cloud/fl_client'], s.artifacts['lambda:aws/fl_client']);
  assert.deepEqual(Object.keys(s.durations_by_platform).sort(), ['google', 'lambda', 'openwhisk']);
  assert.ok(dataRequests >= 4, 'the functions fetched the dataset over HTTP');
  assert.doesNotMatch(readFileSync(path.join(s.run_dir, 'config.yaml'), 'utf8') + readFileSync(path.join(s.run_dir, 'events.jsonl'), 'utf8'), /connection_limit|postgres:\/\/[^*\s"]*@/, 'no store URL in the run directory');

  const local = write(
    'local.yaml',
    exampleConfig()
      .replace(/providers:[\s\S]*?\nscenarios:/, 'providers:\n  local:\n    box: { pool_size: 2 }\n\nscenarios:')
      .replace('server_cluster_name: cloud', 'server_cluster_name: box')
      .replace(/ *(ow|edge|gcf|lambda)_clients_count: \d+\n/g, ''),
  );
  const l = await cli(['run', '-c', local], { DATABASE_URL: url });
  assert.equal(l.code, 0, l.stderr + l.stdout);
  assert.equal(summaryOf(l.stdout).final_weights_sha256, s.final_weights_sha256, 'the platforms do not change the result');

  const sqlite = write('local-sqlite.yaml', readFileSync(local, 'utf8').replace(/store: \{ type: postgres.*\}/, 'store: { type: sqlite, path: state/store.sqlite }'));
  const q = await cli(['run', '-c', sqlite]);
  assert.equal(q.code, 0, q.stderr + q.stdout);
  const qs = summaryOf(q.stdout);
  assert.equal(qs.store, 'sqlite');
  assert.equal(qs.final_weights_sha256, s.final_weights_sha256, 'the store does not change the result');
});
