/**
 * AWS Lambda end to end through the CLI, on the local Lambda platform (reached with the real AWS SDK): nodeinfo
 * answers through `functions deploy -p lambda:NAME --invoke`; FL on a Lambda cluster that crashes, errs and times out
 * for real ends with the same weights as a fault-free run on the local provider, its faults counted in summary.json;
 * and a plan Lambda's limits cannot carry is refused before anything is deployed.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { runCli, type CliResult } from '../fixtures/cli.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'fk-lambda-e2e-'));
after(() => rmSync(work, { recursive: true, force: true }));

function cli(args: string[]): Promise<CliResult> {
  return runCli(args, work);
}

function write(name: string, text: string): string {
  const f = path.join(work, name);
  writeFileSync(f, text);
  return f;
}

const FL = `
    seed: 9
    target_accuracy: 0.99
    max_rounds: 2
    store: { type: sqlite, path: state/store.sqlite }
    data_sampling: { model: mnistnn, hidden_size: 32, batch_size: 32 }
    model_params: { lr: 1e-3, optim: adam, local_epochs: 1 }`;

const summaryOf = (stdout: string) => JSON.parse(readFileSync(path.join(/results: (.+)/.exec(stdout)![1]!.trim(), 'summary.json'), 'utf8'));

test("functions deploy -p lambda:NAME --invoke: nodeinfo answers from its Lambda package (the seed's deploy.py)", async () => {
  const cfg = write(
    'nodeinfo.yaml',
    `name: ni
providers:
  lambda:
    aws: { local: { profile: cloud } }
scenarios:
  federated_learning:
    server_config: { server_cluster_name: aws }
    clients_info: { total_num_clients: 1, num_clients_per_round: 1 }
  test:
    functions:
      nodeinfo: { lambda: { memory: 256, timeout: 30s } }
`,
  );
  const r = await cli(['functions', 'deploy', '-c', cfg, '-p', 'lambda:aws', '-s', 'test', '-f', 'nodeinfo', '--invoke']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^package nodeinfo \(lambda\): [\d.]+ MB, sha256 [0-9a-f]{64}/m);
  assert.match(r.stdout, /deployed lambda:aws\/nodeinfo/);
  const line = r.stdout.split('\n').find((x) => x.startsWith('invoked lambda:aws/nodeinfo'));
  assert.ok(line, r.stdout);
  assert.match(line, /: success in /);
  const info = JSON.parse(line.slice(line.indexOf('{')));
  assert.equal(info.cores, os.availableParallelism());
  assert.match(String(info.engine), /^wasm/);
  assert.match(String(info.activationId), /^[0-9a-f-]{36}$/, 'the activation id is the Lambda request id');
  const bad = write('badmem.yaml', readFileSync(cfg, 'utf8').replace('memory: 256', 'memory: 64'));
  const b = await cli(['functions', 'deploy', '-c', bad, '-p', 'lambda:aws', '-s', 'test', '-f', 'nodeinfo']);
  assert.equal(b.code, 2);
  assert.match(b.stderr.trim(), /^fedkeeper: error: lambda cluster aws: function nodeinfo: memory 64 MB is outside Lambda's 128–10,240 MB; set functions\.nodeinfo\.lambda\.memory within it$/);
});

test('a faulty Lambda cluster (crashes, function errors, timeouts): re-invoked, counted, and the weights are those of a fault-free run', async () => {
  const faulty = write(
    'faulty.yaml',
    `name: faulty
output_dir: runs
providers:
  local:
    box: { pool_size: 1 }
  lambda:
    flaky: { local: { profile: { base: cloud, failureProbability: 0.15, errorProbability: 0.2, timeoutProbability: 0.1 } } }
scenarios:
  federated_learning:${FL}
    server_config: { server_cluster_name: box }
    clients_info: { total_num_clients: 6, num_clients_per_round: 6, lambda_clients_count: 6, local_clients_count: 0 }
    fault_tolerance: { max_attempts: 12, backoff_initial: 10, backoff_max: 100 }
    functions:
      fl_client: { lambda: { memory: 512, timeout: 8s } }
`,
  );
  const r = await cli(['run', '-c', faulty]);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const s = summaryOf(r.stdout);
  assert.equal(s.status, 'completed');
  assert.ok(s.failures > 0 && s.retries === s.failures, `failures ${s.failures}, retries ${s.retries}`);
  const injected = s.injected_faults?.['lambda:flaky'] as Record<string, number> | undefined;
  assert.ok(injected, `summary.json counts the cluster's injected faults: ${JSON.stringify(s.injected_faults)}`);
  const total = Object.values(injected).reduce((a, b) => a + (typeof b === 'number' ? b : 0), 0);
  assert.ok(total >= s.failures, `injected ${JSON.stringify(injected)} vs failures ${s.failures}`);

  const clean = write('clean.yaml', `name: clean
output_dir: runs
providers:
  local:
    box: { pool_size: 2 }
scenarios:
  federated_learning:${FL}
    clients_info: { total_num_clients: 6, num_clients_per_round: 6 }
`);
  const c = await cli(['run', '-c', clean]);
  assert.equal(c.code, 0, c.stderr);
  assert.equal(summaryOf(c.stdout).final_weights_sha256, s.final_weights_sha256, 'each (round, client) update counted once, as in a fault-free run');
});

test("a relayed CNN client on Lambda would carry its weights and samples past 6 MB: refused before anything is deployed", async () => {
  const cfg = write(
    'toolarge.yaml',
    `name: big
providers:
  local:
    box: { pool_size: 1 }
  lambda:
    aws: { local: { profile: cloud }, store_access: relay }
scenarios:
  federated_learning:
    max_rounds: 1
    store: { type: sqlite, path: state/store.sqlite }
    server_config: { server_cluster_name: box }
    clients_info: { total_num_clients: 10, num_clients_per_round: 2, lambda_clients_count: 10 }
    data_sampling: { model: cnn }
`,
  );
  const r = await cli(['deploy', '-c', cfg]);
  assert.equal(r.code, 2, r.stderr + r.stdout);
  assert.match(r.stderr.trim(), /^fedkeeper: error: lambda cluster aws: function fl_client: through the relay each invocation would carry [\d.]+ MB .* over Lambda's 6 MB RequestResponse payload limit/);
  assert.doesNotMatch(r.stdout, /deployed/);
});
