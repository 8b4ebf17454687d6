/**
 * End-to-end over a fabric: the CLI runs FL with clients on two local OpenWhisk clusters (cloud and edge profiles,
 * reached with the real `openwhisk` client) and on Google Cloud Functions run locally under the real
 * functions-framework (through the relay), and ends with the same weights as the same run on the local provider.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { sharePackageCache } from '../fixtures/package-cache.js';
import { runCli, type CliResult } from '../fixtures/cli.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'fk-fabric-'));
sharePackageCache(work);
after(() => rmSync(work, { recursive: true, force: true }));

function cli(args: string[]): Promise<CliResult> {
  return runCli(args, work);
}

const FL = `
    seed: 5
    target_accuracy: 0.99
    max_rounds: 2
    store: { type: sqlite, path: state/store.sqlite }
    clients_info: { total_num_clients: 6, num_clients_per_round: 6, CLIENTS }
    data_sampling: { model: mnistnn, hidden_size: 32, batch_size: 32 }
    model_params: { lr: 1e-3, optim: adam, local_epochs: 1 }
    functions:
      fl_client: { openwhisk: { memory: 512, timeout: 120s }, google: { memory: 512MB, timeout: 120s } }
      fl_server_init: { openwhisk: { memory: 512, timeout: 120s } }
      fl_server_aggregator: { openwhisk: { memory: 512, timeout: 120s } }
      fl_invoker_weights_update: { openwhisk: { memory: 256, timeout: 120s, concurrency: 4 } }
`;

function write(name: string, text: string): string {
  const f = path.join(work, name);
  writeFileSync(f, text);
  return f;
}

const fabricCfg = write(
  'fabric.yaml',
  `name: fab
output_dir: runs
providers:
  openwhisk:
    cloud:
      auth: { ow_auth: "aaaaaaaa-0000-0000-0000-000000000001:cloud-test-key" }
      # concurrency 4 for the relay: above stock OpenWhisk's 1, as its operator would raise it
      local: { profile: { base: cloud, limits: { concurrency: { max: 4 } } } }
    edge:
      auth: { ow_auth: "aaaaaaaa-0000-0000-0000-000000000002:edge-test-key" }
      local: { profile: { base: edge, coldStartDelayMs: 300, speedFactor: 1.5 } }
  google:
    gcf: { mode: local, store_access: relay }
scenarios:
  federated_learning:
    server_config: { server_cluster_name: cloud }
${FL.replace('CLIENTS', 'ow_clients_count: 2, edge_clients_count: 2, gcf_clients_count: 2')}`,
);

const localCfg = write(
  'local.yaml',
  `name: loc
output_dir: runs
providers:
  local:
    box: { pool_size: 2 }
scenarios:
  federated_learning:
${FL.replace(', CLIENTS', '')}`,
);

/** The final weights of the same FL on the local provider (from the first test, or run here when it did not run). */
let localSha = '';
async function localReference(): Promise<string> {
  if (!localSha) {
    const l = await cli(['run', '-c', localCfg]);
    assert.equal(l.code, 0, l.stderr);
    localSha = JSON.parse(readFileSync(path.join(/results: (.+)/.exec(l.stdout)![1]!.trim(), 'summary.json'), 'utf8')).final_weights_sha256;
  }
  return localSha;
}

test('FL over two OpenWhisk clusters and GCF: rows name platform and cluster, per-platform stats, same weights as local', async () => {
  const r = await cli(['run', '-c', fabricCfg]);
  assert.equal(r.code, 0, r.stderr);
  const dir = /results: (.+)/.exec(r.stdout)![1]!.trim();
  const s = JSON.parse(readFileSync(path.join(dir, 'summary.json'), 'utf8'));
  assert.equal(s.status, 'completed');
  assert.deepEqual(Object.keys(s.durations_by_platform).sort(), ['google', 'openwhisk']);
  assert.deepEqual(Object.keys(s.durations_by_cluster).sort(), ['google:gcf', 'openwhisk:cloud', 'openwhisk:edge']);
  assert.equal(s.durations_by_cluster['openwhisk:edge'].activations, 4);
  assert.ok(s.durations_by_cluster['openwhisk:edge'].cold_starts >= 1);
  // What it would cost at list prices: OpenWhisk and Cloud Functions bill GB-seconds, every activation counted.
  assert.deepEqual(Object.keys(s.cost.by_platform).sort(), ['google', 'openwhisk']);
  assert.ok(s.cost.by_platform.openwhisk.usd > 0 && s.cost.by_platform.google.usd > 0, JSON.stringify(s.cost));
  assert.ok(s.cost.by_platform.google.invocations >= 2 * s.rounds, 'two GCF clients a round (and any re-invocation)');
  assert.ok(Math.abs(s.cost.total_usd - s.cost.by_platform.openwhisk.usd - s.cost.by_platform.google.usd) < 1e-7);

  const [head, ...rows] = readFileSync(path.join(dir, 'activations', '1.csv'), 'utf8').trim().split('\n');
  const cols = head!.split(',');
  const recs = rows.map((l) => Object.fromEntries(l.split(',').map((v, i) => [cols[i], v])));
  const clients = recs.filter((x) => x.client_id !== '-1');
  assert.equal(clients.length, 6);
  const where = Object.fromEntries(clients.map((x) => [x.client_id, `${x.platform}:${x.cluster}`]));
  assert.deepEqual(where, { 0: 'openwhisk:cloud', 1: 'openwhisk:cloud', 2: 'openwhisk:edge', 3: 'openwhisk:edge', 4: 'google:gcf', 5: 'google:gcf' });
  for (const x of clients) assert.equal(x.status, 'success');
  for (const x of clients.filter((c) => c.platform === 'google')) assert.match(x.via!, /^openwhisk:cloud\/[0-9a-f]{32}$/, 'GCF clients go through the relay');
  for (const x of clients.filter((c) => c.platform === 'google')) assert.match(x.instance!, /^i\d+$/, 'the GCF instance that ran it');

  const l = await cli(['run', '-c', localCfg]);
  assert.equal(l.code, 0, l.stderr);
  const ldir = /results: (.+)/.exec(l.stdout)![1]!.trim();
  const ls = JSON.parse(readFileSync(path.join(ldir, 'summary.json'), 'utf8'));
  assert.equal(s.final_weights_sha256, ls.final_weights_sha256, 'the platform does not change the result');
  localSha = ls.final_weights_sha256;
});

test("functions deploy --invoke: nodeinfo answers on every cluster (the seed's deploy.py)", async () => {
  const cfg = write('fn.yaml', readFileSync(fabricCfg, 'utf8') + `  test:\n    functions:\n      nodeinfo: { openwhisk: { memory: 128, timeout: 30s }, google: { memory: 128MB, timeout: 30s } }\n`);
  const r = await cli(['functions', 'deploy', '-c', cfg, '-a', '-s', 'test', '-f', 'nodeinfo', '--invoke']);
  assert.equal(r.code, 0, r.stderr);
  for (const c of ['openwhisk:cloud', 'openwhisk:edge', 'google:gcf']) {
    assert.match(r.stdout, new RegExp(`deployed ${c}/nodeinfo`));
    const line = r.stdout.split('\n').find((x) => x.startsWith(`invoked ${c}/nodeinfo`));
    assert.ok(line, `no answer from ${c}`);
    const info = JSON.parse(line.slice(line.indexOf('{')));
    assert.equal(info.cores, os.availableParallelism());
    assert.ok(info.memoryMb > 0);
  }
  const rm = await cli(['functions', 'remove', '-c', cfg, '-p', 'google:gcf', '-s', 'test', '-f', 'nodeinfo']);
  assert.equal(rm.code, 0, rm.stderr);
  assert.match(rm.stdout, /removed google:gcf\/nodeinfo/);
  const bad = await cli(['functions', 'deploy', '-c', cfg, '-p', 'openwhisk:nope', '-s', 'test', '-f', 'nodeinfo']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /-p openwhisk:nope: no such cluster/);
});

test('real faults on a cluster (crashes, application errors, timeouts) are re-invoked and change nothing in the result', async () => {
  const cfg = write(
    'faulty.yaml',
    `name: faulty
output_dir: runs
providers:
  openwhisk:
    flaky:
      auth: { ow_auth: "aaaaaaaa-0000-0000-0000-000000000003:flaky-test-key" }
      local: { profile: { base: cloud, failureProbability: 0.15, errorProbability: 0.2, timeoutProbability: 0.1 } }
scenarios:
  federated_learning:
    server_config: { server_cluster_name: flaky }
    fault_tolerance: { max_attempts: 12, backoff_initial: 10, backoff_max: 100 }
${FL.replace(', CLIENTS', '').replace(/timeout: 120s/g, 'timeout: 8s')}`,
  );
  const r = await cli(['run', '-c', cfg]);
  assert.equal(r.code, 0, r.stderr);
  const dir = /results: (.+)/.exec(r.stdout)![1]!.trim();
  const s = JSON.parse(readFileSync(path.join(dir, 'summary.json'), 'utf8'));
  assert.ok(s.failures > 0 && s.retries === s.failures, `failures ${s.failures}, retries ${s.retries}`);
  const rows = ['0', '1', '2'].flatMap((round) => readFileSync(path.join(dir, 'activations', `${round}.csv`), 'utf8').trim().split('\n').slice(1));
  const statuses = new Set(rows.map((l) => l.split(',')[8]));
  assert.ok(statuses.has('success'));
  // Each kind of fault happened for real (the cluster's draws are seeded: with seed 5 its first 15 activations, the
  // fewest two rounds make, hold all three), as the cluster counted it and as the keeper recorded it.
  const injected = s.injected_faults['openwhisk:flaky'];
  const seen = (re: RegExp) => rows.filter((l) => re.test(l)).length;
  const kinds = {
    crash: [injected.crash, seen(/,developer error,.*crash injected by the cluster profile/)],
    error: [injected.error, seen(/,application error,.*injected fault/)],
    timeout: [injected.timeout, seen(/,timed out,.*The action exceeded its time limits of 8000 milliseconds/)],
  };
  for (const [kind, [counted, recorded]] of Object.entries(kinds)) {
    assert.ok(counted! > 0 && recorded === counted, `${kind}: the cluster injected ${counted}, the keeper recorded ${recorded} (${JSON.stringify(kinds)})`);
  }
  assert.equal(s.final_weights_sha256, await localReference(), 'each (round, client) update counted once, as in a fault-free run');
});

test('round_timeout with min_fit_fraction: stragglers on a slow edge cluster are dropped and logged, the round aggregates the rest', async (t) => {
  // No fixed deadline: how long the fast clients take depends on this machine, its load and its ML engine. So first
  // the same round with the edge cluster as fast as the other and no deadline, timed; the deadline is twice the
  // time it took all 6 clients to finish (in the real round only 4 of them compute meanwhile), and the stragglers
  // are slow by construction: their cluster's cold start alone is 10 deadlines (then 30x the real run time).
  const straggle = (name: string, edgeProfile: string, faultTolerance: string) =>
    write(
      `${name}.yaml`,
      `name: ${name}
output_dir: runs
providers:
  openwhisk:
    fast:
      auth: { ow_auth: "aaaaaaaa-0000-0000-0000-000000000004:fast-test-key" }
      local: { profile: cloud }
    slow:
      auth: { ow_auth: "aaaaaaaa-0000-0000-0000-000000000005:slow-test-key" }
      local: { profile: ${edgeProfile} }
scenarios:
  federated_learning:
    server_config: { server_cluster_name: fast }
${faultTolerance}${FL.replace('CLIENTS', 'ow_clients_count: 4, edge_clients_count: 2').replace('max_rounds: 2', 'max_rounds: 1')}`,
    );
  const roundOf = (r: { code: number; stdout: string; stderr: string }) => {
    assert.equal(r.code, 0, r.stderr);
    const dir = /results: (.+)/.exec(r.stdout)![1]!.trim();
    const [head, row] = readFileSync(path.join(dir, 'rounds.csv'), 'utf8').trim().split('\n');
    return { dir, round: Object.fromEntries(row!.split(',').map((v, i) => [head!.split(',')[i], v])) };
  };

  const calibration = roundOf(await cli(['run', '-c', straggle('straggle-timing', '{ base: edge, coldStartDelayMs: 0, speedFactor: 1 }', '')]));
  assert.equal(calibration.round.clients, '6');
  const allDoneS = Number(calibration.round.invoke_s) + Number(calibration.round.train_s); // round start → last client done
  const deadlineMs = Math.max(1000, Math.ceil(2000 * allDoneS));
  const coldStartMs = 10 * deadlineMs;

  const { dir, round } = roundOf(
    await cli([
      'run',
      '-c',
      straggle(
        'straggle',
        `{ base: edge, coldStartDelayMs: ${coldStartMs}, speedFactor: 30 }`,
        `    fault_tolerance: { round_timeout: ${deadlineMs}ms, invocation_timeout: ${deadlineMs}ms, min_fit_fraction: 0.5 }\n`,
      ),
    ]),
  );
  const timing = `deadline ${deadlineMs} ms (all clients done in ${allDoneS.toFixed(3)} s without stragglers), stragglers' cold start ${coldStartMs} ms`;
  const waitedS = Number(round.invoke_s) + Number(round.train_s); // round start → closed
  t.diagnostic(`${timing}; the round closed after ${waitedS.toFixed(3)} s with ${round.clients} clients`);
  assert.equal(round.clients, '4', timing);
  assert.equal(round.dropped, '2', timing);
  // It waited for the deadline (min_fit_fraction was met long before), then closed without the stragglers.
  assert.ok(waitedS >= deadlineMs / 1000 - 0.002, `the round closed after ${waitedS} s, before its ${timing}`);
  assert.ok(waitedS < (2 * deadlineMs) / 1000, `the round closed after ${waitedS} s: not at its ${timing}`);
  assert.ok(Number(round.total_s) < coldStartMs / 1000, `round took ${round.total_s} s: it waited for the stragglers (${timing})`);
  const events = readFileSync(path.join(dir, 'events.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const dropped = events.find((e) => e.type === 'clients_dropped');
  assert.deepEqual(dropped.dropped, [4, 5]);
  assert.match(dropped.reason, /round_timeout/);
});
