/**
 * End-to-end: `fedkeeper run` writes report.html into the run directory and says where; `fedkeeper report DIR1 DIR2
 * -o FILE` writes one report over both runs: self-contained (no http(s) src/href, the charting library inlined), with
 * the data embedded as JSON, one series per run; run directories it cannot read are refused in one line, exit code 2,
 * nothing written.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { runCli } from '../fixtures/cli.js';
import { sharePackageCache } from '../fixtures/package-cache.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'fk-report-e2e-'));
sharePackageCache(work);
after(() => rmSync(work, { recursive: true, force: true }));

function tinyConfig(name: string, optim: string): string {
  const file = path.join(work, `${name}.yaml`);
  writeFileSync(
    file,
    `name: ${name}
output_dir: runs
providers:
  local:
    box: { pool_size: 2 }
scenarios:
  federated_learning:
    seed: 5
    target_accuracy: 0.99
    max_rounds: 2
    store: { type: sqlite, path: state/store.sqlite }
    clients_info: { total_num_clients: 4, num_clients_per_round: 2 }
    data_sampling: { model: mnistnn, hidden_size: 16, batch_size: 32 }
    model_params: { lr: 1e-3, optim: ${optim}, local_epochs: 1 }
`,
  );
  return file;
}

const runDirs: string[] = [];

test('run writes report.html into the run directory and prints "report: PATH"', async () => {
  for (const [name, optim] of [
    ['rep-adam', 'adam'],
    ['rep-sgd', 'sgd'],
  ] as const) {
    const r = await runCli(['run', '-c', tinyConfig(name, optim)], work);
    assert.equal(r.code, 0, r.stderr);
    const dir = /^results: (.+)$/m.exec(r.stdout)![1]!.trim();
    const report = /^report: (.+)$/m.exec(r.stdout)?.[1]?.trim();
    assert.equal(report, path.join(dir, 'report.html'), r.stdout);
    assert.ok(existsSync(report!));
    assert.match(readFileSync(report!, 'utf8'), /<script type="application\/json" id="fedkeeper-report-data">/);
    runDirs.push(dir);
  }
});

test('report DIR1 DIR2 -o FILE: one self-contained page, one series per run, labelled by what differs', async () => {
  assert.equal(runDirs.length, 2, 'the runs of the test before');
  const out = path.join(work, 'out', 'x.html');
  mkdirSync(path.dirname(out));
  const r = await runCli(['report', ...runDirs, '-o', out], work);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), `report: ${out}`);
  const html = readFileSync(out, 'utf8');

  // nothing from the network: no http(s) address in any src or href attribute
  assert.doesNotMatch(html, /\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?\/\//i);
  assert.doesNotMatch(html, /<link\b/i, 'no stylesheet link');
  // the charting library is inlined as shipped in its npm package
  const uplot = readFileSync(createRequire(import.meta.url).resolve('uplot/dist/uPlot.iife.min.js'), 'utf8');
  assert.ok(html.includes(uplot.slice(uplot.indexOf('var uPlot='), uplot.indexOf('var uPlot=') + 2000)), 'uPlot inlined');

  const json = /<script type="application\/json" id="fedkeeper-report-data">([^<]*)<\/script>/.exec(html)![1]!;
  const data = JSON.parse(json) as { runs: { label: string; rounds: { round: number[]; values: Record<string, number[]> } }[]; headline: string };
  assert.equal(data.runs.length, 2);
  for (const run of data.runs) {
    assert.deepEqual(run.rounds.round, [1, 2]);
    assert.equal(run.rounds.values.accuracy!.length, 2);
  }
  assert.match(data.headline, /optim=adam vs sgd/);
  assert.match(data.runs[0]!.label, /^rep-adam \(.*optim=adam/);
  assert.match(data.runs[1]!.label, /^rep-sgd \(.*optim=sgd/);
  // accuracy, loss, and per run: time split, durations, cost (these runs have a cost_usd column), events
  assert.equal(html.match(/data-chart="/g)!.length, 2 + 4 * 2);
  assert.equal(html.match(/data-chart="cost"/g)!.length, 2);

  // several runs without -o: report.html in the current directory
  const here = await runCli(['report', ...runDirs], work);
  assert.equal(here.code, 0, here.stderr);
  assert.equal(here.stdout.trim(), `report: ${path.join(work, 'report.html')}`);
  assert.ok(existsSync(path.join(work, 'report.html')));
});

test('bad run directories: one line naming the directory, exit code 2, nothing written', async () => {
  const notRun = path.join(work, 'not-a-run');
  mkdirSync(notRun);
  const oldRun = path.join(work, 'old-run');
  mkdirSync(oldRun);
  writeFileSync(path.join(oldRun, 'summary.json'), JSON.stringify({ name: 'old', status: 'completed', rounds: 1 }));
  writeFileSync(path.join(oldRun, 'rounds.csv'), 'iter,acc\n1,0.5\n');
  const cases: [string[], RegExp][] = [
    [['report', path.join(work, 'missing')], /missing: no such run directory/],
    [['report', runDirs[0]!, notRun, '-o', 'never.html'], /not-a-run is not a FedKeeper run directory \(no summary\.json, no rounds\.csv\)/],
    [['report', oldRun, '-o', 'never.html'], /old-run: rounds\.csv has no round or accuracy column/],
    [['report'], /report needs a run directory/],
  ];
  for (const [args, message] of cases) {
    const r = await runCli(args, work);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, message);
    assert.equal(r.stdout, '');
  }
  assert.ok(!existsSync(path.join(work, 'never.html')));
  assert.ok(!existsSync(path.join(notRun, 'report.html')));
  assert.ok(!existsSync(path.join(oldRun, 'report.html')));
});
