/**
 * Fault injection on a local OpenWhisk cluster: real crashes, application errors and timeouts drawn from a seeded
 * PRNG per cluster, controller outages during which the port really refuses connections, the counters endpoint,
 * and the spec fields that ask for all of it.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, describe, test } from 'node:test';
import { FabricConfigError, parseFabricSpec, startFabric } from '../../src/fabric/main.js';
import { startOpenWhiskServer, type FaultCounts, type OpenWhiskServer, type OpenWhiskServerOptions } from '../../src/fabric/openwhisk-server.js';
import { resolveProfile } from '../../src/fabric/profiles.js';
import { ActivationSchema } from '../../src/fabric/schemas.js';
import { ECHO, SLEEP } from '../fixtures/fabric-actions.js';

const AUTH = '5f0c1f3e-2b7a-4c1d-9e8f-0a1b2c3d4e5f:keyOfTheFaultyCluster';
const BASIC = `Basic ${Buffer.from(AUTH).toString('base64')}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const servers: OpenWhiskServer[] = [];
after(() => Promise.all(servers.map((s) => s.close())));

async function cluster(opts: Partial<OpenWhiskServerOptions> = {}): Promise<OpenWhiskServer> {
  const s = await startOpenWhiskServer({ label: 'faulty', auth: AUTH, memoryMb: 2048, ...opts });
  servers.push(s);
  return s;
}

async function api(s: OpenWhiskServer, method: string, path: string, body?: unknown, auth = true): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = auth ? { Authorization: BASIC } : {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(`${s.url}/api/v1${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  return { status: res.status, body: await res.json() };
}

async function createAction(s: OpenWhiskServer, name: string, code: string, timeout = 60_000): Promise<void> {
  const r = await api(s, 'PUT', `/namespaces/_/actions/${name}`, { exec: { kind: 'nodejs:20', code }, limits: { timeout } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
}

type Activation = ReturnType<typeof ActivationSchema.parse>;
async function invoke(s: OpenWhiskServer, name: string, params: Record<string, unknown> = {}): Promise<Activation> {
  const r = await api(s, 'POST', `/namespaces/_/actions/${name}?blocking=true`, params);
  assert.notEqual(r.status, 202, 'a blocking invocation should end within the wait');
  return ActivationSchema.parse(r.body);
}

const annotation = (a: Activation, key: string) => a.annotations?.find((x) => x.key === key)?.value;

async function faults(s: OpenWhiskServer): Promise<FaultCounts> {
  const r = await api(s, 'GET', '/fedkeeper/faults');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body as FaultCounts;
}

/**
 * 'refused' if a TCP connect to the port is refused, 'open' if it connects, 'reset' if it was accepted by the kernel
 * just as the server stopped listening (the outage is beginning).
 */
function probe(port: number): Promise<'refused' | 'open' | 'reset'> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve('open');
    });
    sock.once('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNREFUSED' ? resolve('refused') : e.code === 'ECONNRESET' ? resolve('reset') : reject(e)));
  });
}

async function until(port: number, want: 'refused' | 'open', withinMs: number): Promise<number> {
  const t0 = Date.now();
  while ((await probe(port)) !== want) {
    if (Date.now() - t0 > withinMs) assert.fail(`port ${port} not ${want} within ${withinMs} ms`);
    await sleep(10);
  }
  return Date.now();
}

describe('faults with probability 1', () => {
  test('crash (failureProbability): action developer error, and the next activation gets a new container', async () => {
    const s = await cluster({ profile: { failureProbability: 1 } });
    await createAction(s, 'echo', ECHO);
    for (let i = 0; i < 2; i++) {
      const a = await invoke(s, 'echo', { who: 'x' });
      assert.equal(a.response.status, 'action developer error');
      assert.equal(a.response.success, false);
      assert.match(String((a.response.result as { error?: unknown }).error), /exited unexpectedly \(killed by SIGKILL\).*crash injected by the cluster profile/);
      assert.equal(typeof annotation(a, 'initTime'), 'number', `activation ${i} is a cold start: its container is new`);
    }
    assert.deepEqual(await faults(s), { activations: 2, crash: 2, error: 0, timeout: 0, outages: 0, outage_cut_connections: 0 });
  });

  test('error (errorProbability): application error {error: "injected fault"} from the runtime, main not called, container kept', async () => {
    const s = await cluster({ profile: { errorProbability: 1 } });
    await createAction(s, 'echo', ECHO);
    const first = await invoke(s, 'echo', { who: 'x' });
    assert.equal(first.response.status, 'application error');
    assert.equal(first.response.success, false);
    assert.deepEqual(first.response.result, { error: 'injected fault' });
    assert.ok(!first.logs.some((l) => l.includes('hello')), `main ran: ${first.logs.join(' | ')}`);
    assert.ok(first.logs.some((l) => /fault injected .* application error/.test(l)), first.logs.join(' | '));
    const second = await invoke(s, 'echo', { who: 'y' });
    assert.deepEqual(second.response.result, { error: 'injected fault' });
    assert.equal(annotation(second, 'initTime'), undefined, 'an application error leaves the container warm');
    const f = await faults(s);
    assert.equal(f.error, 2);
    assert.equal(f.crash + f.timeout, 0);
  });

  test('timeout (timeoutProbability): held until the time limit, then a developer error with OpenWhisk\'s message', async () => {
    const s = await cluster({ profile: { timeoutProbability: 1 } });
    await createAction(s, 'quick', SLEEP, 700);
    const t0 = Date.now();
    const a = await invoke(s, 'quick', { ms: 0 });
    const took = Date.now() - t0;
    assert.equal(a.response.status, 'action developer error');
    assert.deepEqual(a.response.result, { error: 'The action exceeded its time limits of 700 milliseconds.' });
    assert.equal(annotation(a, 'timeout'), true);
    // An action that answers at once was held until its limit (and `invoke` asserts the blocking call ended).
    assert.ok(took >= 700, `took ${took} ms`);
    assert.ok(Number(a.duration) >= 700, `duration ${a.duration} ms`);
    // the container was killed: the next activation is a cold start
    const b = await invoke(s, 'quick', { ms: 0 });
    assert.equal(typeof annotation(b, 'initTime'), 'number');
    assert.deepEqual(await faults(s), { activations: 2, crash: 0, error: 0, timeout: 2, outages: 0, outage_cut_connections: 0 });
  });
});

describe('seeded draws', () => {
  const profile = { failureProbability: 0.1, errorProbability: 0.3, timeoutProbability: 0.1 };
  async function fiftyRuns(seed: number): Promise<{ statuses: string[]; counts: FaultCounts }> {
    const s = await cluster({ profile, seed, label: 'seeded' });
    await createAction(s, 'echo', SLEEP, 300);
    const statuses: string[] = [];
    for (let i = 0; i < 50; i++) {
      const a = await invoke(s, 'echo', { ms: 0 });
      statuses.push(annotation(a, 'timeout') === true ? 'timeout' : String(a.response.status));
    }
    const counts = await faults(s);
    await s.close();
    return { statuses, counts };
  }

  test('50 activations at 0.1 / 0.3 / 0.1: plausible counts, the same faults for the same seed and cluster', async () => {
    const a = await fiftyRuns(11);
    const b = await fiftyRuns(11);
    const c = await fiftyRuns(12);
    assert.deepEqual(b.statuses, a.statuses, 'same seed, same faults in the same order');
    assert.deepEqual(b.counts, a.counts);
    assert.notDeepEqual(c.statuses, a.statuses, 'another seed, other faults');
    const n = (kind: string) => a.statuses.filter((x) => x === kind).length;
    // what the platform reported matches what was injected
    assert.equal(n('application error'), a.counts.error);
    assert.equal(n('timeout'), a.counts.timeout);
    assert.equal(n('action developer error'), a.counts.crash);
    assert.equal(a.counts.activations, 50);
    // binomial(50, p): within about 3 standard deviations of the mean
    assert.ok(a.counts.error >= 6 && a.counts.error <= 25, `errors ${a.counts.error}`);
    assert.ok(a.counts.crash >= 1 && a.counts.crash <= 12, `crashes ${a.counts.crash}`);
    assert.ok(a.counts.timeout >= 1 && a.counts.timeout <= 12, `timeouts ${a.counts.timeout}`);
    console.log(`seed 11: ${JSON.stringify(a.counts)}; seed 12: ${JSON.stringify(c.counts)}`);
  });
});

describe('controller outages', () => {
  test('connections are refused during the window, the same port serves after it, a run across it is kept', async () => {
    // The window must open after the setup below (an action, a warm container, two runs started), which takes as long
    // as this machine needs: it opens at several times what the same setup took on a cluster without outages.
    const trial = await startOpenWhiskServer({ label: 'outage-trial', auth: AUTH, memoryMb: 2048 });
    const t00 = Date.now();
    try {
      await createAction(trial, 'sleep', SLEEP);
      await invoke(trial, 'sleep', { ms: 0 });
    } finally {
      await trial.close();
    }
    const outage = { startMs: Math.max(2000, 4 * (Date.now() - t00) + 500), durationMs: 1600 };
    const s = await cluster({ outages: [outage], label: 'outage' });
    const t0 = Date.now();
    await createAction(s, 'sleep', SLEEP);
    // warm a container, so that the long run below starts at once
    await invoke(s, 'sleep', { ms: 0 });
    const started = await api(s, 'POST', '/namespaces/_/actions/sleep', { ms: 2600 });
    assert.equal(started.status, 202);
    const id = started.body.activationId as string;
    // a blocking call still waiting when the controller goes down loses its connection, as with a real controller
    const blocking = fetch(`${s.url}/api/v1/namespaces/_/actions/sleep?blocking=true`, {
      method: 'POST',
      headers: { Authorization: BASIC, 'Content-Type': 'application/json' },
      body: JSON.stringify({ ms: 2600 }),
    });
    const cut = assert.rejects(blocking, (e: Error) => e.message === 'fetch failed');

    const down = await until(s.port, 'refused', outage.startMs + 10_000);
    assert.ok(down - t0 >= outage.startMs - 50, `down after ${down - t0} ms`);
    // fetch too: a request needs a new connection (the kept-alive ones were cut), which is refused
    await assert.rejects(fetch(`${s.url}/api/v1`), (e: Error & { cause?: { code?: string } }) => e.cause?.code === 'ECONNREFUSED');

    await cut;
    const up = await until(s.port, 'open', outage.durationMs + 10_000);
    assert.ok(up - t0 >= outage.startMs + outage.durationMs - 50, `up again after ${up - t0} ms`);
    const r = await api(s, 'GET', `/namespaces/_/activations/${id}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const a = ActivationSchema.parse(r.body);
    assert.equal(a.response.status, 'success');
    assert.ok(Number(a.start) < down, `the run began before the outage (+${Number(a.start) - t0} ms, outage +${down - t0} ms)`);
    const end = Number(a.end);
    assert.ok(end > down && end < up, `the activation ended at +${end - t0} ms, outage observed +${down - t0}…+${up - t0} ms`);
    // both runs that crossed the outage were recorded: the one started before it and the blocking one
    const list = await api(s, 'GET', '/namespaces/_/activations?name=sleep&docs=true');
    assert.equal(list.status, 200);
    const crossing = (list.body as Activation[]).filter((x) => Number(x.end) > down);
    assert.equal(crossing.length, 2, JSON.stringify(list.body));
    assert.ok(crossing.every((x) => x.response.status === 'success'));
    const f = await faults(s);
    assert.equal(f.outages, 1);
    assert.ok(f.outage_cut_connections >= 1, 'at least the blocking call\'s connection was cut');
  });

  test('closing during an outage, and an outage scheduled after close, leave nothing behind', async () => {
    const s = await cluster({ outages: [{ startMs: 0, durationMs: 60_000 }], label: 'closed-down' });
    await until(s.port, 'refused', 2000);
    await s.close();
    const later = await cluster({ outages: [{ startMs: 5000, durationMs: 100 }], label: 'closed-early' });
    await later.close(); // clears the timers: the test process exits without waiting for them
  });
});

describe('the counters endpoint', () => {
  test('needs the key, is GET only, and starts at zero', async () => {
    const s = await cluster();
    assert.equal((await api(s, 'GET', '/fedkeeper/faults', undefined, false)).status, 401);
    assert.equal((await api(s, 'POST', '/fedkeeper/faults', {})).status, 405);
    assert.equal((await api(s, 'GET', '/fedkeeper/other')).status, 404);
    assert.deepEqual(await faults(s), { activations: 0, crash: 0, error: 0, timeout: 0, outages: 0, outage_cut_connections: 0 });
    assert.deepEqual(s.faults(), await faults(s));
  });
});

describe('spec and profiles', () => {
  test('profile overrides take the fault fields; the fabric applies them', async () => {
    const profile = { base: 'cloud' as const, errorProbability: 1, timeoutProbability: 0, outages: [{ startMs: 600_000, durationMs: 1000 }] };
    assert.deepEqual(parseFabricSpec([{ name: 'f', auth: AUTH, profile }]), [{ name: 'f', auth: AUTH, profile }]);
    assert.deepEqual(resolveProfile(profile), {
      coldStartDelayMs: 0,
      speedFactor: 1,
      failureProbability: 0,
      errorProbability: 1,
      timeoutProbability: 0,
      memoryMb: 8192,
      outages: [{ startMs: 600_000, durationMs: 1000 }],
    });
    const fabric = await startFabric([{ name: 'f', auth: AUTH, profile }]);
    try {
      const url = fabric.clusters[0]!.url;
      const put = await fetch(`${url}/api/v1/namespaces/_/actions/echo`, {
        method: 'PUT',
        headers: { Authorization: BASIC, 'Content-Type': 'application/json' },
        body: JSON.stringify({ exec: { kind: 'nodejs:20', code: ECHO } }),
      });
      assert.equal(put.status, 200);
      const r = await fetch(`${url}/api/v1/namespaces/_/actions/echo?blocking=true&result=true`, { method: 'POST', headers: { Authorization: BASIC } });
      assert.equal(r.status, 502);
      assert.deepEqual(await r.json(), { error: 'injected fault' });
    } finally {
      await fabric.close(); // the outage 10 minutes ahead must not keep the process alive
    }
  });

  test('bad fault fields are refused in one line', () => {
    const bad = (profile: unknown, re: RegExp) =>
      assert.throws(
        () => parseFabricSpec({ clusters: [{ name: 'f', auth: AUTH, profile }] }),
        (e: Error) => e instanceof FabricConfigError && re.test(e.message) && !e.message.includes('\n'),
        JSON.stringify(profile),
      );
    bad({ errorProbability: 1.5 }, /^fabric spec: clusters\.0\.profile\.errorProbability: /);
    bad({ timeoutProbability: -0.1 }, /^fabric spec: clusters\.0\.profile\.timeoutProbability: /);
    bad({ crashProbability: 0.1 }, /^fabric spec: clusters\.0\.profile: .*crashProbability/);
    bad({ failureProbability: 0.5, errorProbability: 0.4, timeoutProbability: 0.2 }, /^fabric spec: clusters\.0\.profile: failureProbability \+ errorProbability \+ timeoutProbability must be ≤ 1.*got 1\.1/);
    bad({ outages: [{ startMs: 10, durationMs: 0 }] }, /^fabric spec: clusters\.0\.profile\.outages\.0\.durationMs: /);
    bad({ outages: [{ startMs: -1, durationMs: 5 }] }, /^fabric spec: clusters\.0\.profile\.outages\.0\.startMs: /);
    bad({ outages: [{ start: 1, durationMs: 5 }] }, /^fabric spec: clusters\.0\.profile\.outages\.0\.startMs: /);
    bad('moon', /^fabric spec: clusters\.0\.profile: Invalid option: expected one of "cloud"\|"edge"$/);
    assert.throws(
      () => parseFabricSpec([{ name: 'f', auth: AUTH, profile: { errorProbability: 0.6, timeoutProbability: 0.6 } }]),
      (e: Error) => /^fabric spec: 0\.profile: failureProbability .*got 1\.2$/.test(e.message),
    );
    bad({ outages: [{ startMs: 1000, durationMs: 500 }, { startMs: 0, durationMs: 1200 }] }, /^fabric spec: clusters\.0\.profile: outages overlap: \[0, 1200\) ms and \[1000, 1500\) ms$/);
    assert.throws(() => resolveProfile({ errorProbability: 0.7, failureProbability: 0.7 }), /must be ≤ 1/);
  });
});
