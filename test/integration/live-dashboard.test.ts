/**
 * The live dashboard's server over real HTTP (no browser: test/e2e/browser.test.ts drives the page itself): the page
 * is self-contained, /events streams server-sent events (the whole state first on every connection, then updates,
 * then `done`), /state answers JSON, requests addressed to another host name are refused, and `--ui` on a port in
 * use is refused in one line before anything runs.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { appendFileSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { LiveDashboard } from '../../src/telemetry/live.js';
import { ROUND_COLUMNS } from '../../src/telemetry/run-dir.js';
import { runCli } from '../fixtures/cli.js';
import { configYaml, writeRunDir } from '../fixtures/run-dirs.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'fk-live-'));
after(() => rmSync(work, { recursive: true, force: true }));

interface Sse {
  events: { event: string; data: any }[];
  ended: Promise<void>;
  /** Resolves with the first event (from now on, or already received at index ≥ from) that `pred` accepts. */
  next(pred: (e: { event: string; data: any }) => boolean, from?: number): Promise<{ event: string; data: any }>;
  close(): void;
}

function sse(url: string): Promise<Sse> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, (res) => {
      assert.equal(res.statusCode, 200);
      assert.match(String(res.headers['content-type']), /^text\/event-stream/);
      const events: { event: string; data: any }[] = [];
      const waiters: { pred: (e: { event: string; data: any }) => boolean; from: number; resolve: (e: { event: string; data: any }) => void }[] = [];
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (!event || data === undefined) continue;
          events.push({ event, data: JSON.parse(data) });
          for (const w of [...waiters]) {
            const hit = events.slice(w.from).find(w.pred);
            if (hit) {
              waiters.splice(waiters.indexOf(w), 1);
              w.resolve(hit);
            }
          }
        }
      });
      const ended = new Promise<void>((r) => res.on('end', () => r()));
      resolve({
        events,
        ended,
        next: (pred, from = events.length) => {
          const hit = events.slice(from).find(pred);
          return hit ? Promise.resolve(hit) : new Promise((r) => waiters.push({ pred, from, resolve: r }));
        },
        close: () => req.destroy(),
      });
    });
    req.on('error', reject);
  });
}

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, type: String(res.headers['content-type']), body }));
      })
      .on('error', reject);
  });
}

test('the page is self-contained; /events sends the whole state first, then updates, then done', async () => {
  const dir = writeRunDir(path.join(work, 'r1'), { rounds: ROUND_COLUMNS.join(',') + '\n', events: '', config: configYaml({ name: 'live1', optim: 'sgd', localEpochs: 1, model: 'mnistnn', perRound: 2 }) });
  const dash = new LiveDashboard();
  const url = await dash.listen(0);
  try {
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    const page = await get(url);
    assert.equal(page.status, 200);
    assert.match(page.type, /^text\/html/);
    assert.match(page.body, /var uPlot=/, 'the charting library inlined');
    assert.doesNotMatch(page.body, /\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?\/\//i, 'nothing fetched from elsewhere');
    assert.match(page.body, /new EventSourceCtor\('events'\)/);

    const a = await sse(`${url}events`);
    assert.equal((await a.next((e) => e.event === 'state', 0)).data.status, 'starting');
    dash.observe({ kind: 'run_started', runId: 'live1-x', runDir: dir, maxRounds: 2, clientsPerRound: 2 });
    dash.observe({ kind: 'init_done', seconds: 0.1, engine: 'wasm' });
    const r0 = await a.next((e) => e.event === 'report');
    assert.equal(r0.data.rounds, 0);
    assert.match(r0.data.html, /<h1>FedKeeper report: live1<\/h1>/);
    assert.equal(r0.data.data.runs[0].info.status, 'running');

    dash.observe({ kind: 'round_started', round: 1, maxRounds: 2, selected: 2, clusters: { 'local:box': 2 } });
    for (let i = 1; i <= 2; i++) dash.observe({ kind: 'client_done', round: 1, done: i, selected: 2, failed: 0, where: 'local:box', retries: 0 });
    // Updates are throttled, never lost: the last state arrives.
    const s = await a.next((e) => e.event === 'state' && e.data.done === 2);
    assert.deepEqual(s.data.clusters, [{ where: 'local:box', selected: 2, ended: 2, in_flight: 0 }]);

    appendFileSync(path.join(dir, 'rounds.csv'), ROUND_COLUMNS.map((c) => ({ round: 1, accuracy: 0.5, loss: 1.5, clients: 2 })[c as string] ?? 0).join(',') + '\n');
    dash.observe({ kind: 'round_done', round: 1, maxRounds: 2, accuracy: 0.5, loss: 1.5, best: 0.5, totalSeconds: 1 });
    const r1 = await a.next((e) => e.event === 'report' && e.data.rounds === 1);
    assert.deepEqual(r1.data.data.runs[0].rounds.values.accuracy, [0.5]);

    // A second connection (a reload, another tab) gets everything there is at once: the state and the last report.
    const b = await sse(`${url}events`);
    const first = await b.next((e) => e.event === 'report', 0);
    assert.equal(first.data.rounds, 1);
    assert.equal(b.events[0]!.event, 'state');
    assert.equal(b.events[0]!.data.rounds_done, 1);
    const state = JSON.parse((await get(`${url}state`)).body);
    assert.equal(state.run_id, 'live1-x');
    assert.equal(state.accuracy, 0.5);

    // A request addressed to another host name (DNS rebinding) is refused.
    const port = new URL(url).port;
    assert.equal((await get(`${url}state`, { host: `evil.example:${port}` })).status, 421);
    assert.equal((await get(`${url}state`, { host: `localhost:${port}` })).status, 200);
    assert.equal((await get(`${url}nope`)).status, 404);

    writeFileSync(path.join(dir, 'summary.json'), JSON.stringify({ name: 'live1', run_id: 'live1-x', status: 'completed', rounds: 1, final_accuracy: 0.5 }));
    await dash.finish('completed', { report: path.join(dir, 'report.html') });
    const done = await a.next((e) => e.event === 'done');
    assert.equal(done.data.status, 'completed');
    await a.ended;
    await b.ended;
    // After the end, a new page gets the final picture and a `done`, and the stream ends.
    const c = await sse(`${url}events`);
    await c.ended;
    assert.deepEqual(c.events.map((e) => e.event), ['state', 'report', 'done']);
    assert.equal(c.events[1]!.data.data.runs[0].info.status, 'completed', 'the last report is read from the finished run');
  } finally {
    await dash.close();
  }
});

test('--ui on a port already in use: one line, exit code 2, no run directory', async () => {
  const blocker = http.createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
  const port = (blocker.address() as AddressInfo).port;
  try {
    const cfg = path.join(work, 'busy.yaml');
    writeFileSync(cfg, configYaml({ name: 'busy', optim: 'sgd', localEpochs: 1, model: 'mnistnn', perRound: 2 }));
    const r = await runCli(['run', '-c', cfg, '--ui', String(port)], work);
    assert.equal(r.code, 2, r.stderr);
    assert.deepEqual(r.stderr.trim().split('\n'), [`fedkeeper: error: --ui ${port}: cannot listen on 127.0.0.1:${port} (EADDRINUSE); choose another port, or none for a free one`]);
    assert.deepEqual(readdirSync(work).filter((f) => f === 'runs'), [], 'nothing ran');
  } finally {
    blocker.close();
  }
});
