/**
 * What the README promises of the CLI, each in real `fedkeeper` processes on local OpenWhisk clusters:
 * - `fedkeeper fabric up` keeps a config's clusters running for separate `deploy`, `start` and `remove` (the
 *   seed's `-r`), and remove really deletes the actions on the platform;
 * - a run whose clients use up `max_attempts`, or leave fewer than `min_fit_fraction` of a round, fails cleanly:
 *   exit code 1, one error line (a stack with `--debug`), `status: failed` in summary.json, and it can be resumed;
 * - secrets given as `${ENV}` (an OpenWhisk key, a PostgreSQL password) appear in no file a run leaves behind, nor in
 *   its output or its store.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startTestPostgres } from '../fixtures/postgres.js';
import { sharePackageCache } from '../fixtures/package-cache.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const work = mkdtempSync(path.join(os.tmpdir(), 'fk-cli-'));
sharePackageCache(work);
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** A CLI process in the test's directory (TMPDIR too: unpacked packages and downloads go away with it). */
function start(args: string[], env: Record<string, string> = {}): { p: ChildProcess; out: () => string; done: Promise<Result> } {
  const p = spawn(process.execPath, [CLI, ...args], { cwd: work, env: { ...process.env, TMPDIR: work, ...env } });
  children.push(p);
  let stdout = '';
  let stderr = '';
  p.stdout!.on('data', (d) => (stdout += d));
  p.stderr!.on('data', (d) => (stderr += d));
  const done = new Promise<Result>((r) => p.on('close', (code, signal) => r({ code: code ?? (signal ? 128 : -1), stdout, stderr })));
  return { p, out: () => stdout + stderr, done };
}
const cli = (args: string[], env: Record<string, string> = {}) => start(args, env).done;

/** Waits until the process has printed `re` (or has exited). */
async function until(proc: { p: ChildProcess; out: () => string }, re: RegExp, what: string): Promise<void> {
  for (let i = 0; i < 1200 && !re.test(proc.out()) && proc.p.exitCode === null; i++) await new Promise((r) => setTimeout(r, 50));
  assert.match(proc.out(), re, what);
}

/** A port nothing listens on right now (the OS's next free one). */
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

function write(name: string, text: string): string {
  const f = path.join(work, name);
  writeFileSync(f, text);
  return f;
}

function readCsv(file: string): Record<string, string>[] {
  const [head, ...rows] = readFileSync(file, 'utf8').trim().split('\n');
  const cols = head!.split(',');
  return rows.map((r) => Object.fromEntries(r.split(',').map((v, i) => [cols[i], v])));
}

const summaryOf = (dir: string) => JSON.parse(readFileSync(path.join(dir, 'summary.json'), 'utf8'));
const resultsOf = (r: Result) => /results: (.+)/.exec(r.stdout)![1]!.trim();

/** An OpenWhisk REST call to a local cluster, as `wsk` would make it. */
async function ow(port: number, auth: string, what: string): Promise<{ name: string }[]> {
  const res = await fetch(`http://127.0.0.1:${port}/api/v1/namespaces/_/${what}`, { headers: { Authorization: `Basic ${Buffer.from(auth).toString('base64')}` } });
  assert.equal(res.status, 200, `GET ${what}: HTTP ${res.status}`);
  return (await res.json()) as { name: string }[];
}

const FL = `
    seed: 9
    target_accuracy: 0.99
    max_rounds: 1
    data_sampling: { model: mnistnn, hidden_size: 16, batch_size: 32 }
    model_params: { lr: 1e-3, optim: adam, local_epochs: 1 }
    functions:
      fl_client: { openwhisk: { memory: 256, timeout: 60s } }
      fl_server_init: { openwhisk: { memory: 512, timeout: 60s } }
      fl_server_aggregator: { openwhisk: { memory: 512, timeout: 60s } }
`;

test('fabric up keeps the clusters for separate deploy, start and remove (-r), and remove really deletes the actions', async () => {
  const [cloudPort, edgePort] = [await freePort(), await freePort()];
  const cloudAuth = 'eeeeeeee-0000-0000-0000-000000000001:cloud-up-key';
  const edgeAuth = 'eeeeeeee-0000-0000-0000-000000000002:edge-up-key';
  const cfg = write(
    'up.yaml',
    `name: up
output_dir: runs
providers:
  openwhisk:
    cloud:
      api_host: http://127.0.0.1:${cloudPort}
      auth: { ow_auth: "${cloudAuth}" }
      local: { profile: cloud }
    edge:
      api_host: http://127.0.0.1:${edgePort}
      auth: { ow_auth: "${edgeAuth}" }
      local: { profile: { base: edge, coldStartDelayMs: 100, speedFactor: 1 } }
scenarios:
  federated_learning:
    store: { type: sqlite, path: state/up.sqlite }
    server_config: { server_cluster_name: cloud }
    clients_info: { total_num_clients: 4, num_clients_per_round: 4, ow_clients_count: 2, edge_clients_count: 2 }
${FL}`,
  );
  const fabric = start(['fabric', 'up', '-c', cfg]);
  await until(fabric, /fabric up; Ctrl-C stops it/, 'fabric up started its clusters');
  assert.match(fabric.out(), new RegExp(`openwhisk cluster cloud: http://127\\.0\\.0\\.1:${cloudPort}`));
  assert.match(fabric.out(), new RegExp(`openwhisk cluster edge: http://127\\.0\\.0\\.1:${edgePort}`));

  const d = await cli(['deploy', '-c', cfg]);
  assert.equal(d.code, 0, d.stderr);
  assert.match(d.stdout, /^deployed openwhisk:edge\/fl_client/m);
  // The deploy process has exited; its actions live on in the fabric up process.
  assert.deepEqual((await ow(cloudPort, cloudAuth, 'actions')).map((a) => a.name).sort(), ['fl_client', 'fl_server_aggregator', 'fl_server_init']);
  assert.deepEqual((await ow(edgePort, edgeAuth, 'actions')).map((a) => a.name), ['fl_client']);

  const s = await cli(['start', '-c', cfg]);
  assert.equal(s.code, 0, s.stderr);
  const summary = summaryOf(resultsOf(s));
  assert.equal(summary.status, 'completed');
  const clients = readCsv(path.join(summary.run_dir, 'activations', '1.csv')).filter((a) => a.function === 'fl_client');
  assert.deepEqual(clients.map((c) => c.cluster).sort(), ['cloud', 'cloud', 'edge', 'edge']);
  // The activations ran on the fabric up clusters (start did not start clusters of its own).
  const edgeActivations = (await ow(edgePort, edgeAuth, 'activations?name=fl_client&docs=true')) as unknown as { activationId: string }[];
  assert.deepEqual(
    edgeActivations.map((a) => a.activationId).sort(),
    clients.filter((c) => c.cluster === 'edge').map((c) => c.activation_id).sort(),
  );

  const r = await cli(['-c', cfg, '-r']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^removed openwhisk:cloud\/fl_server_init/m);
  assert.deepEqual(await ow(cloudPort, cloudAuth, 'actions'), [], 'remove deleted the actions on the cloud cluster');
  assert.deepEqual(await ow(edgePort, edgeAuth, 'actions'), [], 'remove deleted the actions on the edge cluster');
  const again = await cli(['start', '-c', cfg]);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /not deployed; run `fedkeeper deploy/);

  fabric.p.kill('SIGINT');
  const stopped = await fabric.done;
  assert.equal(stopped.code, 0, stopped.stderr);
  assert.match(stopped.stdout, /fabric stopped/);
});

test('a failure that is not the input: exit code 1 and one line; --debug adds the stack', async () => {
  const cfg = write(
    'unreachable.yaml',
    `name: unreachable
providers:
  local:
    box: { pool_size: 1 }
  openwhisk:
    gone:
      api_host: http://127.0.0.1:1
      auth: { ow_auth: "eeeeeeee-0000-0000-0000-000000000003:gone-key" }
scenarios:
  federated_learning:
    store: { type: sqlite, path: state/unreachable.sqlite }
    server_config: { server_cluster_name: box }
    clients_info: { total_num_clients: 2, num_clients_per_round: 2, ow_clients_count: 2 }
    fault_tolerance: { call_retries: 0 }
${FL}`,
  );
  const plain = await cli(['remove', '-c', cfg]);
  assert.equal(plain.code, 1, plain.stderr);
  assert.deepEqual(plain.stderr.trim().split('\n'), [plain.stderr.trim()], 'one line');
  assert.match(plain.stderr, /^fedkeeper: error: openwhisk cluster gone: cannot reach http:\/\/127\.0\.0\.1:1 /);
  const debug = await cli(['remove', '-c', cfg, '--debug']);
  assert.equal(debug.code, 1, debug.stderr);
  const lines = debug.stderr.trim().split('\n');
  assert.match(lines[0]!, /^ProviderError: openwhisk cluster gone: cannot reach/);
  assert.ok(lines.filter((l) => /^ {4}at /.test(l)).length >= 2, `a stack trace:\n${debug.stderr}`);
  assert.equal(lines.at(-1), plain.stderr.trim(), 'the same error line ends it');
});

test('clients that use up max_attempts, leaving less than min_fit_fraction: the run fails cleanly and resumes once the cluster is fixed', async () => {
  // The `flaky` cluster is started by `fabric up` from a config of its own that makes every activation an
  // application error; the run's config names the same cluster (its port) with a healthy profile, so once that
  // fabric is stopped, `run --resume` starts a healthy one there: the fix is outside the run's config, as in life.
  // Its cold start is slow so that the healthy clients usually end first.
  const port = await freePort();
  const auth = 'eeeeeeee-0000-0000-0000-000000000004:flaky-key';
  const cluster = (profile: string) => `    flaky:\n      api_host: http://127.0.0.1:${port}\n      auth: { ow_auth: "${auth}" }\n      local: { profile: ${profile} }\n      clients: 2\n`;
  const faulty = write('faulty-fabric.yaml', `name: faulty\nproviders:\n  openwhisk:\n${cluster('{ base: cloud, errorProbability: 1, coldStartDelayMs: 2000 }')}scenarios:\n  federated_learning:\n    server_config: { server_cluster_name: flaky }\n    clients_info: { total_num_clients: 2, num_clients_per_round: 2 }\n`);
  const runCfg = (name: string, faultTolerance: string) =>
    write(
      `${name}.yaml`,
      `name: ${name}
output_dir: runs
providers:
  openwhisk:
    healthy:
      auth: { ow_auth: "eeeeeeee-0000-0000-0000-000000000005:healthy-key" }
      local: { profile: cloud }
      clients: 2
${cluster('cloud')}scenarios:
  federated_learning:
    store: { type: sqlite, path: state/${name}.sqlite }
    server_config: { server_cluster_name: healthy }
    clients_info: { total_num_clients: 4, num_clients_per_round: 4 }
    fault_tolerance: ${faultTolerance}
${FL}`,
    );
  const fabric = start(['fabric', 'up', '-c', faulty]);
  await until(fabric, /fabric up; Ctrl-C stops it/, 'the faulty cluster is up');

  // 1. max_attempts: 2, no round deadline: the first client to fail twice ends the run.
  const attempts = await cli(['run', '-c', runCfg('attempts', '{ max_attempts: 2, backoff_initial: 10, backoff_max: 20, }')]);
  assert.equal(attempts.code, 1, attempts.stderr + attempts.stdout);
  assert.deepEqual(attempts.stderr.trim().split('\n'), [attempts.stderr.trim()], 'one line');
  assert.match(attempts.stderr, /^fedkeeper: error: client [23] failed 2 time\(s\) in round 1 on openwhisk:flaky: injected fault$/m);
  const attemptsDir = path.join(work, 'runs', /run (\S+):/.exec(attempts.stdout)![1]!);
  const a = summaryOf(attemptsDir);
  assert.equal(a.status, 'failed');
  assert.match(a.error, /failed 2 time\(s\)/);
  assert.equal(a.rounds, 0);
  assert.ok(a.failures >= 2 && a.injected_faults['openwhisk:flaky'].error >= 2, `failures ${a.failures}, injected ${JSON.stringify(a.injected_faults)}`);

  // 2. round_timeout with min_fit_fraction 0.75: 3 of 4 clients needed, only the 2 healthy ones can finish.
  const fit = await cli(['run', '-c', runCfg('minfit', '{ max_attempts: 2, backoff_initial: 10, backoff_max: 20, round_timeout: 120s, min_fit_fraction: 0.75 }')]);
  assert.equal(fit.code, 1, fit.stderr + fit.stdout);
  assert.match(fit.stderr, /^fedkeeper: error: client [23] failed 2 time\(s\) in round 1 on openwhisk:flaky: injected fault$/m);
  const dir = path.join(work, 'runs', /run (\S+):/.exec(fit.stdout)![1]!);
  const s = summaryOf(dir);
  assert.equal(s.status, 'failed');
  assert.equal(s.rounds, 0);
  const rows = readCsv(path.join(dir, 'activations', '1.csv')).filter((x) => x.function === 'fl_client');
  const byClient = (id: string) => rows.filter((x) => x.client_id === id).map((x) => `${x.attempt}:${x.status}`).sort();
  // The healthy clients' rows, if they ended before the run did, are successes; the flaky ones were tried twice each.
  for (const id of ['0', '1']) for (const x of byClient(id)) assert.equal(x, '1:success');
  assert.deepEqual(byClient('2'), ['1:application error', '2:application error'], 'max_attempts 2: tried twice, no more');
  assert.deepEqual(byClient('3'), ['1:application error', '2:application error']);
  const events = readFileSync(path.join(dir, 'events.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(events.filter((e) => e.type === 'run_done').map((e) => e.status), ['failed']);
  assert.equal(events.at(-1).type, 'run_done', 'nothing is written after the run ended: invocations still in flight are no longer followed');
  assert.equal(events.filter((e) => e.type === 'round_done').length, 0, 'no round was aggregated with too few clients');
  assert.deepEqual(await ow(port, auth, 'actions'), [], 'the failed run removed its functions');

  // 3. min_fit_fraction 0.5: the 2 healthy clients are enough; once the flaky ones have failed for good the round
  // closes at once (it does not wait for round_timeout), aggregates the 2 and logs why the others were dropped.
  const half = await cli(['run', '-c', runCfg('half', '{ max_attempts: 2, backoff_initial: 10, backoff_max: 20, round_timeout: 600s, min_fit_fraction: 0.5 }')]);
  assert.equal(half.code, 0, half.stderr + half.stdout);
  const hdir = path.join(work, 'runs', /run (\S+):/.exec(half.stdout)![1]!);
  const hrounds = readCsv(path.join(hdir, 'rounds.csv'));
  assert.deepEqual([hrounds[0]!.clients, hrounds[0]!.dropped], ['2', '2']);
  const dropped = readFileSync(path.join(hdir, 'events.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).find((e) => e.type === 'clients_dropped');
  assert.deepEqual(dropped.dropped, [2, 3]);
  assert.match(dropped.reason, /^2 client\(s\) failed for good \(max_attempts\); 2 of 4 done, at least 2 needed/, 'closed because nothing was left to wait for, not by the 600 s deadline');

  // The cluster is fixed: the same run goes on from where it stopped.
  fabric.p.kill('SIGINT');
  assert.equal((await fabric.done).code, 0);
  const resumed = await cli(['run', '--resume', dir]);
  assert.equal(resumed.code, 0, resumed.stderr + resumed.stdout);
  const done = summaryOf(dir);
  assert.equal(done.status, 'completed');
  assert.equal(done.rounds, 1);
  assert.equal(done.resumed_at.length, 1);
  assert.equal(readCsv(path.join(dir, 'rounds.csv'))[0]!.clients, '4');
});

/** Every file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? filesUnder(p) : e.isFile() ? [p] : [];
  });
}

test('secrets given as ${ENV} (an OpenWhisk key, a PostgreSQL password) are in no artefact of the run, its output or its store', async () => {
  const db = await startTestPostgres();
  try {
    const owKey = 'owS3cretKey-never-written-4711';
    const owAuth = `eeeeeeee-0000-0000-0000-000000000006:${owKey}`;
    const pgPassword = 'pgS3cretPw-never-written-0815';
    // The test server trusts local connections: the password is sent nowhere, but it is in the URL the config gets.
    const url = new URL(db.url);
    url.password = pgPassword;
    if (db.engine === 'pglite') url.search = '?connection_limit=1&idle_timeout=5';
    const cfg = write(
      'secret.yaml',
      `name: secret
output_dir: runs
providers:
  openwhisk:
    vault:
      auth: { ow_auth: "\${FK_TEST_OW_AUTH}" }
      local: { profile: cloud }
scenarios:
  federated_learning:
    store: { type: postgres, url: "\${FK_TEST_DATABASE_URL}" }
    server_config: { server_cluster_name: vault }
    clients_info: { total_num_clients: 2, num_clients_per_round: 2 }
${FL}`,
    );
    const r = await cli(['run', '-c', cfg], { FK_TEST_OW_AUTH: owAuth, FK_TEST_DATABASE_URL: url.href });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const s = summaryOf(resultsOf(r));
    assert.equal(s.status, 'completed');
    assert.equal(s.store, 'postgres');
    const config = readFileSync(path.join(s.run_dir, 'config.yaml'), 'utf8');
    assert.match(config, /auth: "\*\*\*"/, 'config.yaml is there, with the key redacted');
    assert.match(config, /url: "\*\*\*"/, 'and the store URL');

    const secrets = [owKey, pgPassword, Buffer.from(owAuth).toString('base64'), encodeURIComponent(pgPassword)];
    const leaks: string[] = [];
    const scan = (where: string, data: Buffer | string) => {
      for (const secret of secrets) if (Buffer.from(data as string).includes(secret)) leaks.push(`${secret} in ${where}`);
    };
    scan('stdout', r.stdout);
    scan('stderr', r.stderr);
    const files = filesUnder(work);
    assert.ok(files.some((f) => f.endsWith('events.jsonl')) && files.some((f) => f.endsWith('summary.json')));
    for (const f of files) if (statSync(f).size < 256 * 1024 * 1024) scan(path.relative(work, f), readFileSync(f));
    // …nor in what the store keeps of the run (the config, the activations).
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      for (const table of ['runs', 'activations']) scan(`the store's ${table} table`, JSON.stringify((await client.query(`SELECT * FROM ${table}`)).rows));
    } finally {
      await client.end();
    }
    assert.deepEqual(leaks, []);
  } finally {
    await db.close();
  }
});
