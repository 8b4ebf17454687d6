/**
 * In a real browser (the machine's Chromium, driven by playwright-core): the report renders every chart with no
 * console error and no network request; the live dashboard follows a run step by step, keeps its state across a
 * reload mid-run, and follows a real tiny `fedkeeper run --ui` to its end. Screenshots of each land in
 * test-output/browser/ for a person to look at. Skips in one line when no browser can be started.
 */
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { writeReport } from '../../src/report/index.js';
import { LiveDashboard } from '../../src/telemetry/live.js';
import { ACTIVATION_COLUMNS, ROUND_COLUMNS } from '../../src/telemetry/run-dir.js';
import { launchBrowser, screenshotDir, watchPage, type PageWatch } from '../fixtures/browser.js';
import { CLI } from '../fixtures/cli.js';
import { sharePackageCache } from '../fixtures/package-cache.js';
import { alphaRun, betaRun, configYaml, writeRunDir } from '../fixtures/run-dirs.js';

// The page functions below run in the browser, where `document` is the page's (this file has no DOM types).
declare const document: any;

const work = mkdtempSync(path.join(os.tmpdir(), 'fk-browser-'));
sharePackageCache(work);
let browser: Browser | undefined;
let skip: string | undefined;

before(async () => {
  const b = await launchBrowser();
  if (typeof b === 'string') skip = b;
  else browser = b;
});
after(async () => {
  await browser?.close();
  rmSync(work, { recursive: true, force: true });
});

/** Only the page's own origin (or its own file) was asked for anything. */
function assertNoNetwork(w: PageWatch, own: (url: string) => boolean): void {
  const foreign = w.requests.filter((u) => !own(u) && !u.startsWith('data:') && u !== 'about:blank');
  assert.deepEqual(foreign, [], 'requests beyond the page itself');
}

async function chartStates(page: Page, scope: string): Promise<Record<string, string>> {
  return page.$$eval(`${scope} [data-chart]`, (els) =>
    Object.fromEntries(els.map((e, i) => [`${e.getAttribute('data-chart')}${e.hasAttribute('data-run') ? `#${e.getAttribute('data-run')}` : ''}@${i}`, e.getAttribute('data-rendered') ?? 'not drawn'])),
  );
}

test('report.html of two runs renders every chart (uPlot canvases), no console error, no network request', async (t) => {
  if (skip) return t.skip(skip);
  const file = writeReport([alphaRun(path.join(work, 'alpha')), betaRun(path.join(work, 'beta'))], path.join(work, 'two.html'));
  const page = await browser!.newPage({ viewport: { width: 1200, height: 900 } });
  const w = watchPage(page);
  const url = pathToFileURL(file).href;
  await page.goto(url);
  await page.waitForFunction(() => [...document.querySelectorAll('[data-chart]')].every((e) => e.hasAttribute('data-rendered')));
  const states = await chartStates(page, 'body');
  // the page-wide accuracy and loss charts, per run: time split, durations, events; alpha's Prometheus figures
  assert.equal(Object.keys(states).length, 2 + 2 * 3 + 1, JSON.stringify(states));
  assert.ok(Object.keys(states).some((k) => k.startsWith('prometheus#0@')), JSON.stringify(states));
  assert.deepEqual(Object.entries(states).filter(([, v]) => v !== 'true'), [], 'every chart drawn');
  assert.equal(await page.locator('[data-chart] canvas').count(), Object.keys(states).length, 'one canvas per chart');
  // the legend carries both runs' labels and the paper's curve for the paper setup (alpha: cnn, adam, 5 epochs, 100)
  const legend = await page.locator('[data-chart="accuracy"] .u-legend').innerText();
  assert.match(legend, /alpha/);
  assert.match(legend, /beta/);
  assert.match(legend, /paper/i);
  // alpha's edge cluster: activations and cold starts on the count scale, node CPU busy on its own (0–100 %)
  const prom = page.locator('[data-chart="prometheus"][data-run="0"]');
  const promLegend = await prom.locator('.u-legend').innerText();
  for (const s of ['edge activations', 'edge cold starts', 'edge node CPU busy']) assert.ok(promLegend.includes(s), `${s} in ${promLegend}`);
  // the cursor over round 1 (x from 0.5 to 3.5): its figures in the legend, CPU busy in per cent
  await prom.scrollIntoViewIfNeeded();
  const over = (await prom.locator('.u-over').boundingBox())!;
  await page.mouse.move(over.x + over.width / 6, over.y + over.height / 2);
  await page.waitForFunction(() => /80 %/.test(document.querySelector('[data-chart="prometheus"] .u-legend')?.textContent ?? ''));
  const legendRows = await prom.locator('.u-legend tr').evaluateAll((trs) => trs.map((tr) => [...tr.children].map((c: any) => c.textContent.trim()).join(' ')));
  assert.deepEqual(legendRows, ['round 1', 'edge activations 3', 'edge cold starts 1', 'edge node CPU busy 80 %']);
  await page.screenshot({ path: path.join(screenshotDir(), 'report-two-runs.png'), fullPage: true });
  assert.deepEqual(w.errors, []);
  assertNoNetwork(w, (u) => u === url);
  await page.close();
});

test('the live dashboard follows a run step by step and keeps its state across a reload mid-run', async (t) => {
  if (skip) return t.skip(skip);
  const dir = writeRunDir(path.join(work, 'live-run'), {
    rounds: ROUND_COLUMNS.join(',') + '\n',
    events: '',
    config: configYaml({ name: 'livefix', optim: 'adam', localEpochs: 1, model: 'mnistnn', perRound: 4 }),
  });
  const dash = new LiveDashboard();
  const url = await dash.listen(0);
  t.after(() => dash.close());
  const page = await browser!.newPage({ viewport: { width: 1200, height: 900 } });
  const w = watchPage(page);
  const origin = new URL(url).origin;
  await page.goto(url);
  const cell = (where: string, col: number) => page.locator(`#live-clusters tr[data-where="${where}"] td`).nth(col);
  const waitAttr = (name: string, value: string) => page.waitForFunction(([n, v]) => document.body.getAttribute(n!) === v, [name, value]);

  dash.observe({ kind: 'run_started', runId: 'livefix-1', runDir: dir, maxRounds: 3, clientsPerRound: 4 });
  await waitAttr('data-status', 'initialising');
  dash.observe({ kind: 'init_done', seconds: 0.5, engine: 'wasm' });
  dash.observe({ kind: 'round_started', round: 1, maxRounds: 3, selected: 4, clusters: { 'openwhisk:edge': 3, 'google:gcf': 1 } });
  await waitAttr('data-round', '1');
  await page.waitForFunction(() => document.querySelectorAll('#live-clusters tr[data-where]').length === 2);
  assert.equal(await cell('openwhisk:edge', 3).innerText(), '3', 'three in flight on the edge cluster');
  dash.observe({ kind: 'client_done', round: 1, done: 1, selected: 4, failed: 0, where: 'openwhisk:edge', retries: 1 });
  dash.observe({ kind: 'client_done', round: 1, done: 2, selected: 4, failed: 0, where: 'google:gcf', retries: 1 });
  await page.waitForFunction(() => document.querySelector('#live-clusters tr[data-where="google:gcf"] td:nth-child(4)')?.textContent === '0');
  assert.equal(await cell('openwhisk:edge', 3).innerText(), '2');
  assert.match(await page.locator('#live-status').innerText(), /round 1\/3: clients 2\/4 ended, 1 re-invoked/);
  await page.waitForFunction(() => document.getElementById('live-inflight')?.getAttribute('data-rendered') === 'true');

  // Reload mid-round: everything comes back at once from the server.
  await page.reload();
  await page.waitForFunction(() => document.querySelector('#live-clusters tr[data-where="openwhisk:edge"] td:nth-child(4)')?.textContent === '2');
  assert.equal(await page.evaluate(() => document.body.getAttribute('data-status')), 'running');
  assert.equal(await page.evaluate(() => document.getElementById('live-inflight')?.getAttribute('data-rendered')), 'true');
  await page.screenshot({ path: path.join(screenshotDir(), 'dashboard-mid-round.png'), fullPage: true });

  // The round ends: the keeper has written its row and activations; the report part is drawn from them.
  writeFileSync(
    path.join(dir, 'activations', '1.csv'),
    [ACTIVATION_COLUMNS.join(','), '0,fl_client,openwhisk,edge,a1,1,3,2,success,1,true,100,1,0.5,,,', '1,fl_client,google,gcf,a2,1,2,1,success,1,false,100,1,0.5,,,'].join('\n') + '\n',
  );
  appendFileSync(path.join(dir, 'rounds.csv'), ROUND_COLUMNS.map((c) => ({ round: 1, accuracy: 0.71, loss: 0.9, invoke_s: 0.1, train_s: 2, agg_s: 0.5, total_s: 2.6, clients: 4 })[c as string] ?? 0).join(',') + '\n');
  dash.observe({ kind: 'round_done', round: 1, maxRounds: 3, accuracy: 0.71, loss: 0.9, best: 0.71, totalSeconds: 2.6 });
  await waitAttr('data-report-rounds', '1');
  await page.waitForFunction(() => [...document.querySelectorAll('#live-report [data-chart]')].every((e) => e.getAttribute('data-rendered') === 'true'));
  assert.ok((await page.locator('#live-report [data-chart]').count()) >= 5);
  // The status line comes with the next `state` event (throttled to 4 a second), which may follow the report.
  await page.waitForFunction(() => /accuracy 0\.7100/.test(document.getElementById('live-status')?.textContent ?? ''));

  // A reload after the round: the report is back with no new round needed.
  await page.reload();
  await waitAttr('data-report-rounds', '1');
  await dash.finish('completed', { report: path.join(dir, 'report.html') });
  await page.reload();
  await waitAttr('data-status', 'completed');
  assert.match(await page.locator('#live-status').innerText(), /run completed — report: .*report\.html/);
  assert.deepEqual(w.errors, []);
  assertNoNetwork(w, (u) => u.startsWith(origin));
  await page.close();
});

test('run --ui: the dashboard follows a real tiny run to its end; its report.html renders in the browser', async (t) => {
  if (skip) return t.skip(skip);
  const cfg = path.join(work, 'ui.yaml');
  writeFileSync(
    cfg,
    `name: uirun
output_dir: runs
providers:
  local:
    box: { pool_size: 2 }
scenarios:
  federated_learning:
    seed: 3
    target_accuracy: 0.999
    max_rounds: 3
    store: { type: sqlite, path: state/store.sqlite }
    clients_info: { total_num_clients: 4, num_clients_per_round: 2 }
    data_sampling: { model: mnistnn, hidden_size: 16, batch_size: 32 }
    model_params: { lr: 1e-3, optim: adam, local_epochs: 1 }
`,
  );
  const p = spawn(process.execPath, [CLI, 'run', '-c', cfg, '--ui'], { cwd: work, env: { ...process.env, TMPDIR: work } });
  t.after(() => p.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  p.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number>((resolve) => p.on('close', (code) => resolve(code ?? -1)));
  const url = await new Promise<string>((resolve, reject) => {
    p.stdout.on('data', (d) => {
      stdout += d;
      const m = /^dashboard: (http:\/\/127\.0\.0\.1:\d+\/)$/m.exec(stdout);
      if (m) resolve(m[1]!);
    });
    p.on('close', () => reject(new Error(`the run ended before printing its dashboard: ${stdout}${stderr}`)));
  });
  const page = await browser!.newPage({ viewport: { width: 1200, height: 900 } });
  const w = watchPage(page);
  await page.goto(url);
  // The run's end reaches the page as a `done` event: completed, the report drawn from all three rounds.
  await page.waitForFunction(() => document.body.getAttribute('data-status') === 'completed', undefined, { timeout: 240_000 });
  assert.equal(await exited, 0, stderr);
  assert.equal(await page.evaluate(() => document.body.getAttribute('data-report-rounds')), '3');
  assert.ok(Number(await page.evaluate(() => document.body.getAttribute('data-events'))) >= 3, 'state, report and done events arrived');
  const states = await chartStates(page, '#live-report');
  assert.deepEqual(Object.entries(states).filter(([, v]) => v !== 'true'), [], JSON.stringify(states));
  assert.match(await page.locator('#live-status').innerText(), /run completed — report: /);
  await page.screenshot({ path: path.join(screenshotDir(), 'dashboard-run-end.png'), fullPage: true });
  assert.deepEqual(w.errors, []);
  assertNoNetwork(w, (u) => u.startsWith(new URL(url).origin));

  // The report the run wrote, opened from disk.
  const report = /^report: (.+)$/m.exec(stdout)![1]!.trim();
  const rp = await browser!.newPage({ viewport: { width: 1200, height: 900 } });
  const rw = watchPage(rp);
  const rurl = pathToFileURL(report).href;
  await rp.goto(rurl);
  await rp.waitForFunction(() => [...document.querySelectorAll('[data-chart]')].every((e) => e.hasAttribute('data-rendered')));
  const rstates = await chartStates(rp, 'body');
  assert.deepEqual(Object.entries(rstates).filter(([, v]) => v !== 'true'), [], JSON.stringify(rstates));
  assert.ok('cost#0@5' in rstates || Object.keys(rstates).some((k) => k.startsWith('cost#0')), 'the cost-per-round chart is there');
  assert.match(await rp.locator('table.kv').first().innerText(), /cost at list prices\s+\$0\.00 in all/);
  await rp.screenshot({ path: path.join(screenshotDir(), 'report-real-run.png'), fullPage: true });
  assert.deepEqual(rw.errors, []);
  assertNoNetwork(rw, (u) => u === rurl);
  await rp.close();
  await page.close();
});
