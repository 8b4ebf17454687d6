/**
 * Querying a cluster's Prometheus after a round, against a tiny local HTTP server answering Prometheus's API
 * (`/api/v1/query`, instant vectors): the round's increase of OpenWhisk's counters (new series, resets), the mean
 * wait, node CPU busy share and memory in use; waiting for a scrape newer than the round's end; and every way a
 * Prometheus can fail — refused, an error answer, not JSON, no fresh scrape — as one warning per cluster, never a throw.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { PrometheusApi, PrometheusQueryError } from '../../src/telemetry/prometheus-api.js';
import { PrometheusRounds, type PrometheusTarget } from '../../src/telemetry/prometheus-rounds.js';

type Vector = { metric: Record<string, string>; value: number }[];
/** Answers a query at a time (seconds; undefined: now) with a vector, or a raw reply. */
type Answer = (query: string, time: number | undefined) => Vector | { status: number; body: string };

const servers: http.Server[] = [];
after(() => Promise.all(servers.map((s) => new Promise((r) => s.close(r)))));

async function fakePrometheus(answer: Answer): Promise<{ port: number; queries: { query: string; time?: number }[] }> {
  const queries: { query: string; time?: number }[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== '/api/v1/query') return void res.writeHead(404).end();
    const query = url.searchParams.get('query') ?? '';
    const t = url.searchParams.get('time');
    const time = t === null ? undefined : Number(t);
    queries.push({ query, ...(time !== undefined ? { time } : {}) });
    const a = answer(query, time);
    if (!Array.isArray(a)) return void res.writeHead(a.status, { 'content-type': 'application/json' }).end(a.body);
    const now = Date.now() / 1000;
    res.writeHead(200, { 'content-type': 'application/json' }).end(
      JSON.stringify({ status: 'success', data: { resultType: 'vector', result: a.map((s) => ({ metric: s.metric, value: [time ?? now, String(s.value)] })) } }),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  servers.push(server);
  return { port: (server.address() as AddressInfo).port, queries };
}

const ow = (name: string, labels: Record<string, string>, value: number) => ({ metric: { __name__: name, namespace: 'guest', ...labels }, value });

const START = Date.UTC(2026, 0, 1, 12, 0, 0);
const END = START + 20_000;

/** OpenWhisk and node series before the round (time = START) and after it (now). */
function platform(opts: { newestScrape?: () => number | undefined } = {}): Answer {
  return (query, time) => {
    if (query.startsWith('max(timestamp(')) {
      const t = opts.newestScrape ? opts.newestScrape() : END / 1000 + 0.5;
      return t === undefined ? [] : [{ metric: {}, value: t }];
    }
    const before = time !== undefined && Math.abs(time * 1000 - START) < 1;
    if (query.includes('openwhisk_action_')) {
      return before
        ? [ow('openwhisk_action_activations_total', { action: 'fl_client' }, 10), ow('openwhisk_action_coldStarts_total', { action: 'fl_client' }, 2), ow('openwhisk_action_waitTime_seconds_sum', { action: 'fl_client' }, 1), ow('openwhisk_action_waitTime_seconds_count', { action: 'fl_client' }, 10)]
        : [
            ow('openwhisk_action_activations_total', { action: 'fl_client' }, 14),
            ow('openwhisk_action_activations_total', { action: 'other' }, 3), // a series new since the round began
            ow('openwhisk_action_coldStarts_total', { action: 'fl_client' }, 3),
            ow('openwhisk_action_waitTime_seconds_sum', { action: 'fl_client' }, 1.7),
            ow('openwhisk_action_waitTime_seconds_sum', { action: 'other' }, 0.3),
            ow('openwhisk_action_waitTime_seconds_count', { action: 'fl_client' }, 14),
            ow('openwhisk_action_waitTime_seconds_count', { action: 'other' }, 3),
          ];
    }
    if (query.includes('node_')) {
      const cpu = (c: string, mode: string, v: number) => ({ metric: { __name__: 'node_cpu_seconds_total', cpu: c, mode }, value: v });
      const mem = (n: string, v: number) => ({ metric: { __name__: n }, value: v });
      return before
        ? [cpu('0', 'idle', 100), cpu('0', 'user', 50), cpu('1', 'idle', 100), cpu('1', 'user', 50)]
        : [cpu('0', 'idle', 110), cpu('0', 'user', 60), cpu('1', 'idle', 115), cpu('1', 'user', 55), mem('node_memory_MemTotal_bytes', 8192 * 1024 * 1024), mem('node_memory_MemAvailable_bytes', 6144 * 1024 * 1024)];
    }
    return [];
  };
}

const target = (cluster: string, owPort: number | undefined, nodePort: number | undefined, scrapeWait = 2_000): PrometheusTarget => ({
  platform: 'openwhisk',
  cluster,
  config: { host: 'http://127.0.0.1', ...(owPort ? { port_openwhisk_metrics: owPort } : {}), ...(nodePort ? { port_node_metrics: nodePort } : {}), scrape_wait: scrapeWait },
});

test("a round's figures: counter increases (new series from 0), mean wait, CPU busy share, memory in use", async () => {
  const p = await fakePrometheus(platform());
  const rounds = new PrometheusRounds([target('cloud', p.port, p.port)], { pollMs: 10 });
  const f = await rounds.afterRound(START, END, new Set(['openwhisk:cloud']));
  assert.deepEqual(f.warnings, []);
  assert.deepEqual(f.row, {
    'prom_activations:cloud': 7, // 14 − 10, plus 3 of the new series
    'prom_cold_starts:cloud': 1,
    'prom_wait_s:cloud': 0.142857, // (0.7 + 0.3) s over 7 activations
    'prom_node_cpu_busy:cloud': 0.375, // idle 25 of 40 CPU seconds
    'prom_node_mem_used_mb:cloud': 2048,
  });
  assert.equal(f.clusters['openwhisk:cloud']!.node_cpus, 2);
  assert.equal(f.clusters['openwhisk:cloud']!.node_mem_total_mb, 8192);
  // the round's start is read at its start time, its end at Prometheus's now
  const owQueries = p.queries.filter((q) => q.query.includes('openwhisk_action_(activations'));
  assert.deepEqual(owQueries.map((q) => q.time), [START / 1000, undefined]);
});

test('a counter that went down (the platform restarted) counts from zero', async () => {
  const p = await fakePrometheus((query, time) => {
    if (query.startsWith('max(timestamp(')) return [{ metric: {}, value: END / 1000 + 1 }];
    return [ow('openwhisk_action_activations_total', { action: 'a' }, time !== undefined ? 40 : 6)];
  });
  const f = await new PrometheusRounds([target('c', p.port, undefined)], { pollMs: 10 }).afterRound(START, END, new Set(['openwhisk:c']));
  assert.equal(f.row['prom_activations:c'], 6);
  assert.equal(f.row['prom_cold_starts:c'], 0);
  assert.equal(f.row['prom_wait_s:c'], '', 'no activation waited: no mean');
});

test('waits for a scrape newer than the round end before reading the end values', async () => {
  let polls = 0;
  const p = await fakePrometheus(platform({ newestScrape: () => (++polls < 4 ? END / 1000 - 0.8 : END / 1000 + 0.2) }));
  const f = await new PrometheusRounds([target('cloud', p.port, undefined)], { pollMs: 5 }).afterRound(START, END, new Set(['openwhisk:cloud']));
  assert.deepEqual(f.warnings, []);
  assert.ok(polls >= 4, `polled ${polls} times`);
  const i = p.queries.findIndex((q) => q.query.includes('openwhisk_action_(activations') && q.time === undefined);
  const lastPoll = p.queries.map((q) => q.query.startsWith('max(timestamp(')).lastIndexOf(true);
  assert.ok(i > lastPoll, 'the end values are read after the fresh scrape was seen');
  assert.equal(f.clusters['openwhisk:cloud']!.openwhisk_scrape_lag_s, 0.2);
});

test('no scrape after the round within scrape_wait: a warning, figures as of the last scrape', async () => {
  const p = await fakePrometheus(platform({ newestScrape: () => END / 1000 - 3 }));
  const f = await new PrometheusRounds([target('cloud', p.port, undefined, 50)], { pollMs: 5 }).afterRound(START, END, new Set(['openwhisk:cloud']));
  assert.equal(f.warnings.length, 1);
  assert.match(f.warnings[0]!, /^prometheus_config of openwhisk:cloud: .*no scrape newer than the round's end within scrape_wait \(0\.05 s\).*3\.0 s before/);
  assert.equal(f.row['prom_activations:cloud'], 7);
});

test('a cluster with no OpenWhisk series is waited for only when it ran something', async () => {
  const p = await fakePrometheus((query) => (query.startsWith('max(timestamp(') ? [] : []));
  const quiet = await new PrometheusRounds([target('idle', p.port, undefined, 60_000)], { pollMs: 5 }).afterRound(START, END, new Set());
  assert.deepEqual(quiet.warnings, []);
  assert.equal(quiet.row['prom_activations:idle'], 0);
  const busy = await new PrometheusRounds([target('idle', p.port, undefined, 30)], { pollMs: 5 }).afterRound(START, END, new Set(['openwhisk:idle']));
  assert.equal(busy.warnings.length, 1);
  assert.match(busy.warnings[0]!, /has no openwhisk_action_activations_total series/);
});

test('a dead port, an error answer, a body that is not JSON: one warning per cluster, empty fields, no throw', async () => {
  const dead = await fakePrometheus(() => []);
  const deadPort = dead.port;
  await new Promise((r) => servers.pop()!.close(r));
  const error = await fakePrometheus(() => ({ status: 400, body: JSON.stringify({ status: 'error', errorType: 'bad_data', error: 'parse error at char 3' }) }));
  const html = await fakePrometheus(() => ({ status: 502, body: '<html>bad gateway</html>' }));
  const rounds = new PrometheusRounds([target('a', deadPort, deadPort), target('b', error.port, undefined), target('c', undefined, html.port)], { pollMs: 5, timeoutMs: 1_000 });
  const f = await rounds.afterRound(START, END, new Set(['openwhisk:a', 'openwhisk:b']));
  assert.equal(f.warnings.length, 3, f.warnings.join('\n'));
  const [a, b, c] = ['a', 'b', 'c'].map((x) => f.warnings.find((w) => w.startsWith(`prometheus_config of openwhisk:${x}: `))!);
  assert.match(a!, new RegExp(`127\\.0\\.0\\.1:${deadPort}: ECONNREFUSED`));
  assert.match(b!, /HTTP 400, bad_data: parse error at char 3/);
  assert.match(c!, /HTTP 502, not a Prometheus API answer/);
  for (const [k, v] of Object.entries(f.row)) assert.equal(v, '', k);
  assert.equal(Object.keys(f.row).length, 3 + 2 + 3 + 2);
});

test('PrometheusApi: a server that does not answer in time is a one-line error', async () => {
  const server = http.createServer(() => {}); // never answers
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  servers.push(server);
  const api = new PrometheusApi(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, { timeoutMs: 100 });
  await assert.rejects(api.query('up'), (e: unknown) => e instanceof PrometheusQueryError && /no answer within 100 ms/.test((e as Error).message));
  server.closeAllConnections();
});
