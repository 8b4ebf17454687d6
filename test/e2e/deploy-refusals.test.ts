/**
 * What a deploy refuses, end to end through the CLI: a package over a cluster's limit, a store that does not answer,
 * a remote direct cluster that cannot reach the SQLite store or the embedded data, a platform that refuses the
 * runtime kind. Each is one line naming the cluster (and function) and the fix, exit code 2, and nothing deployed
 * is left behind. And `fedkeeper package` prints what it built.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import openwhisk from 'openwhisk';
import { launchLocalClusters, type LaunchedFabric } from '../../src/keeper/fabric-launcher.js';
import { runCli, type CliResult } from '../fixtures/cli.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'fk-refusals-'));
const KEY = 'aaaaaaaa-0000-0000-0000-00000000000a:refusal-test-key';
let fabric: LaunchedFabric;
let owUrl = '';

before(async () => {
  // A cluster kept up by the test (as `fabric up` would), so that what a refused deploy left on it can be listed.
  fabric = await launchLocalClusters([{ name: 'ow', auth: KEY, profile: 'cloud' }], process.env);
  owUrl = fabric.urls.get('ow')!;
});
after(async () => {
  await fabric?.close();
  rmSync(work, { recursive: true, force: true });
});

function cli(args: string[]): Promise<CliResult> {
  return runCli(args, work);
}

/** The server functions on a local cluster (box), the clients on the OpenWhisk cluster reached over HTTP (ow). */
function config(name: string, o: { cluster?: string; store?: string; data?: string; functions?: string; server?: string; payload?: string } = {}): string {
  const file = path.join(work, `${name}.yaml`);
  writeFileSync(
    file,
    `name: ${name}
output_dir: runs
providers:
  local:
    box: { pool_size: 1 }
  openwhisk:
    ow:
      api_host: ${owUrl}
      auth: { ow_auth: "${KEY}" }
${o.payload ?? '      max_payload_mb: 64 # relayed clients get their samples in the body: this operator raised the 1 MB default'}
${o.cluster ?? ''}
scenarios:
  federated_learning:
    max_rounds: 1
    store: ${o.store ?? '{ type: sqlite, path: state/store.sqlite }'}
    server_config: { server_cluster_name: ${o.server ?? 'box'} }
    clients_info: { total_num_clients: 2, num_clients_per_round: 2, ow_clients_count: 2 }
    data_sampling: { model: mnistnn, hidden_size: 16, batch_size: 32 }
    training_test_data: ${o.data ?? '{ dataset: mnist }'}
    functions:
${o.functions ?? '      fl_client: { openwhisk: { memory: 256, timeout: 60s } }'}
`,
  );
  return file;
}

/** What is deployed on the OpenWhisk cluster and on the local one (its deployment record). */
async function deployedOnCluster(): Promise<string[]> {
  const ow = openwhisk({ apihost: owUrl, api_key: KEY });
  const records = path.join(work, '.fedkeeper', 'local', 'box.json');
  const local = existsSync(records) ? Object.keys(JSON.parse(readFileSync(records, 'utf8')) as object).map((n) => `box/${n}`) : [];
  return [...(await ow.actions.list({ limit: 200 })).map((a) => a.name!), ...local].sort();
}

function refused(r: { code: number; stdout: string; stderr: string }, pattern: RegExp): void {
  assert.equal(r.code, 2, r.stderr + r.stdout);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line: ${r.stderr}`);
  assert.match(lines[0]!, pattern);
}

test('fedkeeper package prints each package with its size and sha256, and copies them with -o', async () => {
  const r = await cli(['package', '-c', config('pkg'), '-f', 'fl_client,nodeinfo', '-o', 'out']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^fl_client openwhisk: [\d.]+ (kB|MB) \(limit 48\.00 MB\) sha256 [0-9a-f]{64}/m);
  assert.match(r.stdout, /^nodeinfo openwhisk: /m);
  assert.deepEqual(readdirSync(path.join(work, 'out')).sort(), ['fl_client.openwhisk.zip', 'nodeinfo.openwhisk.zip']);
  const again = await cli(['package', '-c', config('pkg'), '-f', 'fl_client']);
  assert.match(again.stdout, /\(unchanged, reused\)/);
  refused(await cli(['package', '-c', config('pkg'), '-f', 'fl_nothing']), /-f fl_nothing: FedKeeper has no function of that name/);
});

test('a package over the cluster\'s limit: refused before anything is deployed', async () => {
  const r = await cli(['deploy', '-c', config('big', { cluster: '      max_package_mb: 0.1' })]);
  refused(r, /openwhisk cluster ow: function fl_client: its package is [\d.]+ kB, over the cluster's max_package_mb \(0\.1 MB\); raise/);
  assert.deepEqual(await deployedOnCluster(), []);
});

test("relayed clients whose weights and data exceed OpenWhisk's 1 MB payload limit: refused before anything is deployed", async () => {
  const r = await cli(['deploy', '-c', config('payload', { payload: '' })]);
  refused(r, /^fedkeeper: error: openwhisk cluster ow: function fl_client: through the relay each invocation would carry [\d.]+ MB \(the weights and the client's data\), over OpenWhisk's 1 MB limit on an activation's payload and result/);
  assert.deepEqual(await deployedOnCluster(), []);
});

test("a function's limits outside the cluster's ranges: refused in one line, or clamped with a warning when on_limit: clamp", async () => {
  const big = '      fl_client: { openwhisk: { memory: 1024, timeout: 60s } }';
  const r = await cli(['deploy', '-c', config('limits', { functions: big })]);
  refused(r, /^fedkeeper: error: openwhisk cluster ow: function fl_client asks for memory 1024 MB, outside the cluster's range 128–512 MB; set functions\.fl_client\.openwhisk\.memory within it, state the operator's range in providers\.openwhisk\.ow\.action_limits, or set on_limit: clamp$/);
  assert.deepEqual(await deployedOnCluster(), []);

  const raised = await cli(['deploy', '-c', config('raised', { functions: big, cluster: '      action_limits: { memory: { max: 2048 } }' })]);
  // The keeper lets it through; this cluster's controller is stock and refuses it itself (one line, nothing left).
  refused(raised, /openwhisk cluster ow: .*fl_client.*HTTP 400.*memory size 1024 MB exceeds allowed threshold of 512 MB/);
  assert.deepEqual(await deployedOnCluster(), []);

  const c = await cli(['deploy', '-c', config('clamp', { functions: big, cluster: '      on_limit: clamp' })]);
  assert.equal(c.code, 0, c.stderr);
  assert.match(c.stderr, /^fedkeeper: warning: openwhisk cluster ow: function fl_client: memory 1024 MB is outside the cluster's range 128–512 MB; deployed with 512 \(on_limit: clamp\)$/m);
  const ow = openwhisk({ apihost: owUrl, api_key: KEY });
  assert.equal((await ow.actions.get({ name: 'fl_client' })).limits?.memory, 512);
  assert.equal((await cli(['remove', '-c', config('clamp', { functions: big, cluster: '      on_limit: clamp' })])).code, 0);
  assert.deepEqual(await deployedOnCluster(), []);
});

test('a store that does not answer: refused before anything is deployed, without the password', async () => {
  const r = await cli(['deploy', '-c', config('nopg', { store: '{ type: postgres, url: "postgres://fk:s3cret-pw@127.0.0.1:1/fl" }' })]);
  refused(r, /127\.0\.0\.1:1/);
  assert.doesNotMatch(r.stderr, /s3cret-pw/);
  assert.deepEqual(await deployedOnCluster(), []);
});

test('a remote cluster with direct store access that cannot reach the SQLite store or the embedded data is refused, naming it', async () => {
  const r = await cli(['deploy', '-c', config('remote-direct', { cluster: '      store_access: direct' })]);
  refused(r, /providers\.\*\.ow\.store_access: direct, but ow is not on this machine and the sqlite store is a file on this machine/);
  const s = await cli(['deploy', '-c', config('remote-server', { server: 'ow' })]);
  refused(s, /server_cluster_name: ow is not on this machine, but the server functions must reach the store and the dataset, and the sqlite store/);
  const d = await cli(['deploy', '-c', config('remote-data', { cluster: '      store_access: direct', store: '{ type: postgres, url: "postgres://fk@127.0.0.1:5432/test" }' })]);
  refused(d, /ow is not on this machine and the embedded mnist digits exist only on this machine/);
  assert.deepEqual(await deployedOnCluster(), []);
});

test('a platform that refuses the runtime kind: one line naming cluster, function and fix; what this deploy created is removed', async () => {
  // The server functions go to a local cluster first; the client function, relayed to the OpenWhisk cluster, asks
  // for a kind that cluster does not run, so the platform refuses it after the server functions were created.
  const file = path.join(work, 'kind.yaml');
  writeFileSync(
    file,
    `name: kind
output_dir: runs
providers:
  local:
    box: { pool_size: 1 }
  openwhisk:
    ow:
      api_host: ${owUrl}
      auth: { ow_auth: "${KEY}" }
      max_payload_mb: 64
scenarios:
  federated_learning:
    max_rounds: 1
    store: { type: sqlite, path: state/store.sqlite }
    server_config: { server_cluster_name: box }
    clients_info: { total_num_clients: 2, num_clients_per_round: 2, ow_clients_count: 2 }
    data_sampling: { model: mnistnn, hidden_size: 16, batch_size: 32 }
    functions:
      fl_client: { openwhisk: { memory: 256, timeout: 60s, kind: "python:3" } }
`,
  );
  const r = await cli(['deploy', '-c', file]);
  refused(r, /openwhisk cluster ow: function fl_client: the platform refused the action \(HTTP 400: .*python:3.*\); this cluster does not run python:3; set functions\.fl_client\.openwhisk\.kind/);
  assert.deepEqual(await deployedOnCluster(), [], 'the server functions created before the refusal were removed');
  assert.equal(existsSync(path.join(work, 'runs')), false, 'no run directory');
});
