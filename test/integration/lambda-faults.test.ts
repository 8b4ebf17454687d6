/**
 * The local Lambda platform under load and under injected faults: Lambda's throttling (reserved concurrency, the
 * account's concurrency, the platform's memory) for RequestResponse, queueing for Event; the cluster profiles'
 * cold-start delay and speed factor; seeded crashes, function errors and timeouts, API outages, and their counts at
 * `GET /fedkeeper/faults`.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { CreateFunctionCommand, InvokeCommand, PutFunctionConcurrencyCommand, TooManyRequestsException, type LambdaClient } from '@aws-sdk/client-lambda';
import { startLambdaServer, type LambdaFaultCounts, type LambdaServer, type LambdaServerOptions } from '../../src/fabric/lambda-server.js';
import { KEY, PROBE_ZIP, REGION, ROLE, captureHeaders, lambdaClient, signedFetch } from '../fixtures/lambda-functions.js';

const servers: LambdaServer[] = [];
const scratch = mkdtempSync(path.join(os.tmpdir(), 'fk-lambda-faults-test-'));
after(async () => {
  await Promise.all(servers.map((s) => s.close()));
  rmSync(scratch, { recursive: true, force: true });
});

async function platform(opts: Partial<LambdaServerOptions> = {}): Promise<{ server: LambdaServer; sdk: LambdaClient; headers: Array<Record<string, string>> }> {
  const server = await startLambdaServer({ label: `faulty-${servers.length}`, region: REGION, ...KEY, memoryMb: 2048, ...opts });
  servers.push(server);
  const sdk = lambdaClient(server.url);
  return { server, sdk, headers: captureHeaders(sdk) };
}

async function deploy(sdk: LambdaClient, name: string, over: { MemorySize?: number; Timeout?: number } = {}): Promise<void> {
  await sdk.send(new CreateFunctionCommand({ FunctionName: name, Runtime: 'nodejs20.x', Role: ROLE, Handler: 'index.handler', Code: { ZipFile: PROBE_ZIP }, MemorySize: 256, Timeout: 10, ...over }));
}

interface Answer {
  error?: string;
  body?: any;
  status?: number;
  reason?: string;
  log: string;
}

async function call(sdk: LambdaClient, name: string, event: unknown = {}): Promise<Answer> {
  try {
    const out = await sdk.send(new InvokeCommand({ FunctionName: name, Payload: JSON.stringify(event), LogType: 'Tail' }));
    const text = Buffer.from(out.Payload ?? new Uint8Array()).toString('utf8');
    const a: Answer = { body: text ? JSON.parse(text) : undefined, status: out.StatusCode!, log: Buffer.from(out.LogResult ?? '', 'base64').toString('utf8') };
    if (out.FunctionError) a.error = out.FunctionError;
    return a;
  } catch (e) {
    if (e instanceof TooManyRequestsException) return { status: 429, reason: e.Reason!, log: '' };
    throw e;
  }
}

async function faults(server: LambdaServer): Promise<LambdaFaultCounts> {
  const r = await signedFetch(server.url, 'GET', '/fedkeeper/faults');
  assert.equal(r.status, 200, r.text);
  return r.json() as LambdaFaultCounts;
}

const sleeping = (ms: number) => ({ op: 'sleep', ms });

describe('throttling: Lambda refuses RequestResponse invocations it cannot run now (429), and queues Event ones', () => {
  test('reserved concurrency: at most that many at once, then Reason ReservedFunctionConcurrentInvocationLimitExceeded', async () => {
    const { sdk } = await platform();
    await deploy(sdk, 'one-at-a-time');
    await sdk.send(new PutFunctionConcurrencyCommand({ FunctionName: 'one-at-a-time', ReservedConcurrentExecutions: 1 }));
    const first = call(sdk, 'one-at-a-time', sleeping(400));
    await new Promise((r) => setTimeout(r, 150));
    const second = await call(sdk, 'one-at-a-time', {});
    assert.deepEqual(second, { status: 429, reason: 'ReservedFunctionConcurrentInvocationLimitExceeded', log: '' });
    assert.equal((await first).status, 200);
    assert.equal((await call(sdk, 'one-at-a-time', {})).status, 200, 'free again once the first ended');
  });

  test('the account\'s concurrency (minus reservations) is shared by the other functions: Reason ConcurrentInvocationLimitExceeded', async () => {
    const { sdk } = await platform({ concurrency: 3 });
    for (const n of ['a', 'b', 'c']) await deploy(sdk, n);
    await sdk.send(new PutFunctionConcurrencyCommand({ FunctionName: 'c', ReservedConcurrentExecutions: 1 }));
    // a and b share 3 − 1 = 2
    const running = [call(sdk, 'a', sleeping(500)), call(sdk, 'b', sleeping(500))];
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(await call(sdk, 'a', {}), { status: 429, reason: 'ConcurrentInvocationLimitExceeded', log: '' });
    assert.equal((await call(sdk, 'c', {})).status, 200, 'the reservation of c is its own');
    const ran = await Promise.all(running);
    assert.ok(ran.every((r) => r.status === 200));
  });

  test('the platform\'s memory: no room for another environment now → 429 (never queued); an idle environment is evicted for a new one', async () => {
    const { sdk } = await platform({ memoryMb: 512 });
    for (const n of ['big1', 'big2', 'other']) await deploy(sdk, n);
    const running = [call(sdk, 'big1', sleeping(1000)), call(sdk, 'big2', sleeping(1000))];
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    assert.deepEqual(await call(sdk, 'other', {}), { status: 429, reason: 'ConcurrentInvocationLimitExceeded', log: '' });
    assert.ok(Date.now() - t0 < 500, 'refused at once, not queued');
    await Promise.all(running);
    const r = await call(sdk, 'other', {});
    assert.equal(r.status, 200, 'two idle environments: one is evicted to make room');
    assert.match(r.log, /Init Duration/);
  });

  test('two invocations at once get two environments; both stay warm', async () => {
    const { sdk, headers } = await platform();
    await deploy(sdk, 'pair');
    const [a, b] = await Promise.all([call(sdk, 'pair', sleeping(200)), call(sdk, 'pair', sleeping(200))]);
    assert.notEqual(a.body.pid, b.body.pid);
    const [c, d] = await Promise.all([call(sdk, 'pair', sleeping(200)), call(sdk, 'pair', sleeping(200))]);
    assert.deepEqual(new Set([c.body.pid, d.body.pid]), new Set([a.body.pid, b.body.pid]));
    assert.deepEqual(headers.slice(-2).map((h) => h['x-fedkeeper-cold-start']), ['false', 'false']);
  });

  test('Event invocations past the limit wait in the platform\'s queue and all run, one at a time under reserved concurrency 1', async () => {
    const { sdk } = await platform();
    await deploy(sdk, 'queued');
    await sdk.send(new PutFunctionConcurrencyCommand({ FunctionName: 'queued', ReservedConcurrentExecutions: 1 }));
    const files = [1, 2, 3].map((n) => path.join(scratch, `queued-${n}.json`));
    const t0 = Date.now();
    for (const [i, file] of files.entries()) {
      const out = await sdk.send(new InvokeCommand({ FunctionName: 'queued', InvocationType: 'Event', Payload: JSON.stringify({ op: 'touch', file, n: i }) }));
      assert.equal(out.StatusCode, 202);
    }
    const slow = await sdk.send(new InvokeCommand({ FunctionName: 'queued', InvocationType: 'Event', Payload: JSON.stringify(sleeping(2000)) }));
    assert.equal(slow.StatusCode, 202);
    while (!files.every(existsSync)) {
      assert.ok(Date.now() - t0 < 5000);
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.deepEqual(files.map((f) => (JSON.parse(readFileSync(f, 'utf8')) as { n: number }).n), [0, 1, 2]);
    // the sleeping one holds the only slot: a RequestResponse invocation is throttled meanwhile
    await new Promise((r) => setTimeout(r, 50));
    assert.equal((await call(sdk, 'queued', {})).status, 429);
  });
});

describe('profiles', () => {
  test('coldStartDelayMs adds to the Init Duration; speedFactor stretches the run', async () => {
    const { sdk, headers } = await platform({ profile: { coldStartDelayMs: 300, speedFactor: 3 } });
    await deploy(sdk, 'edge-like');
    const cold = await call(sdk, 'edge-like', {});
    const init = Number(/Init Duration: ([\d.]+) ms/.exec(cold.log)?.[1]);
    assert.ok(init >= 300, `Init Duration ${init} ms`);
    assert.ok(Number(headers.at(-1)!['x-fedkeeper-init-duration-ms']) >= 300);
    const slow = await call(sdk, 'edge-like', sleeping(100));
    const duration = Number(/\tDuration: ([\d.]+) ms/.exec(slow.log)?.[1]);
    assert.ok(duration >= 300, `Duration ${duration} ms for a 100 ms sleep at speed factor 3`);
  });
});

describe('injected faults (seeded), counted at GET /fedkeeper/faults', () => {
  test('failureProbability 1: the runtime is killed mid-invocation → Runtime.ExitError; every invocation is a cold start', async () => {
    const { server, sdk } = await platform({ profile: { failureProbability: 1 } });
    await deploy(sdk, 'doomed');
    for (let i = 0; i < 2; i++) {
      const r = await call(sdk, 'doomed', {});
      assert.equal(r.error, 'Unhandled');
      assert.equal(r.body.errorType, 'Runtime.ExitError');
      assert.match(r.body.errorMessage, /Error: Runtime exited with error: signal: killed \(crash injected by the cluster profile, failureProbability 1\)$/);
      assert.match(r.log, /Init Duration/);
    }
    assert.deepEqual(await faults(server), { activations: 2, crash: 2, error: 0, timeout: 0, outages: 0, outage_cut_connections: 0 });
  });

  test('errorProbability 1: a function error answered by the runtime, the handler not called; the environment stays warm', async () => {
    const { server, sdk } = await platform({ profile: { errorProbability: 1 } });
    await deploy(sdk, 'erring');
    const file = path.join(scratch, 'not-written.json');
    const first = await call(sdk, 'erring', { op: 'touch', file, n: 1 });
    assert.equal(first.error, 'Unhandled');
    assert.deepEqual(first.body, { errorType: 'FedKeeper.InjectedFault', errorMessage: 'injected fault', trace: [] });
    assert.equal(existsSync(file), false, 'the handler did not run');
    assert.match(first.log, /fault injected by the cluster profile/);
    const second = await call(sdk, 'erring', {});
    assert.doesNotMatch(second.log, /Init Duration/, 'warm');
    const f = await faults(server);
    assert.deepEqual([f.activations, f.error, f.crash, f.timeout], [2, 2, 0, 0]);
  });

  test('timeoutProbability 1: held past the timeout → Sandbox.Timedout, the environment killed', async () => {
    const { server, sdk } = await platform({ profile: { timeoutProbability: 1 } });
    await deploy(sdk, 'held', { Timeout: 1 });
    const t0 = Date.now();
    const r = await call(sdk, 'held', {});
    assert.ok(Date.now() - t0 >= 1000);
    assert.equal(r.body.errorType, 'Sandbox.Timedout');
    assert.match(r.body.errorMessage, /Task timed out after 1\.00 seconds$/);
    assert.equal((await faults(server)).timeout, 1);
  });

  test('the draws follow a seed: the same invocations get the same faults on another platform with the same seed and name', async () => {
    const pattern = async () => {
      const server = await startLambdaServer({ label: 'seeded', region: REGION, ...KEY, seed: 7, profile: { errorProbability: 0.5 } });
      try {
        const sdk = lambdaClient(server.url);
        await deploy(sdk, 'coin');
        const out: string[] = [];
        for (let i = 0; i < 10; i++) out.push((await call(sdk, 'coin', {})).error ?? 'ok');
        return out;
      } finally {
        await server.close();
      }
    };
    const first = await pattern();
    assert.deepEqual(await pattern(), first);
    assert.ok(first.includes('ok') && first.includes('Unhandled'), first.join());
  });

  test('an outage: the API refuses connections for its window, then answers again', async () => {
    // The window opens well after the setup (start, deploy, a first cold call) measured on a trial platform in this
    // run, so that a busy machine's setup cannot run into it.
    const tTrial = Date.now();
    const trial = await platform();
    await deploy(trial.sdk, 'trial');
    await call(trial.sdk, 'trial', {});
    const startMs = 4 * (Date.now() - tTrial) + 500;
    const { server, sdk } = await platform({ outages: [{ startMs, durationMs: 1000 }] });
    await deploy(sdk, 'through-outage');
    assert.equal((await call(sdk, 'through-outage', {})).status, 200);
    const refused = () =>
      new Promise<boolean>((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port: server.port });
        s.once('connect', () => (s.destroy(), resolve(false)));
        s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNREFUSED'));
      });
    const t0 = Date.now();
    while (!(await refused())) {
      assert.ok(Date.now() - t0 < startMs + 5000, 'the outage began');
      await new Promise((r) => setTimeout(r, 20));
    }
    // A new connection is refused; the SDK's kept-alive one is cut (socket hang up), as the outage counts it.
    await assert.rejects(sdk.send(new InvokeCommand({ FunctionName: 'through-outage' })), (e: NodeJS.ErrnoException) => e.code === 'ECONNREFUSED' || /ECONNREFUSED|socket hang up|ECONNRESET/.test(String(e)));
    while (await refused()) {
      assert.ok(Date.now() - t0 < startMs + 10_000, 'the outage ended');
      await new Promise((r) => setTimeout(r, 20));
    }
    const back = await call(sdk, 'through-outage', {});
    assert.equal(back.status, 200);
    assert.doesNotMatch(back.log, /Init Duration/, 'the environments outlived the outage');
    const f = await faults(server);
    assert.equal(f.outages, 1);
  });
});
