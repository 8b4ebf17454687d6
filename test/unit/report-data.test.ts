/**
 * The report's data shaping (src/report/data.ts) on hand-written run directories: per-round series read by header
 * name, client-duration distributions per platform:cluster, per-round counts of cold starts, failures, retries,
 * dropped clients, the config differences between runs, matching a run to a setup of the paper, and the refusals of
 * directories the report cannot read. Also the paper's carried-over curves and the HTML's escaping.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { parseCli, UsageError } from '../../src/cli/args.js';
import { exitCodeOf } from '../../src/keeper/errors.js';
import { configDifferences, differenceHeadline, flattenConfig, matchPaperSetup, parseCsv, readRunDir, ReportInputError, runLabels, shapeReport } from '../../src/report/data.js';
import { escapeHtml, jsonForScript, loadChartLibrary, renderReportHtml } from '../../src/report/html.js';
import { PAPER_SETUPS } from '../../src/report/paper-curves.js';
import { alphaRun, betaRun, configYaml, writeRunDir } from '../fixtures/run-dirs.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'fk-report-'));
after(() => rmSync(work, { recursive: true, force: true }));
const alpha = alphaRun(path.join(work, 'alpha'));
const beta = betaRun(path.join(work, 'beta'));

test('CSV: quoted fields keep their commas, doubled quotes and line breaks', () => {
  assert.deepEqual(parseCsv('a,b,c\r\n1,"x, ""y""\nz",\n'), [
    ['a', 'b', 'c'],
    ['1', 'x, "y"\nz', ''],
  ]);
});

test('per-round series: read by header name, unknown columns kept, a round written twice keeps its last row', () => {
  const run = readRunDir(alpha);
  assert.deepEqual(run.rounds.round, [1, 2, 3]);
  assert.deepEqual(run.rounds.values.accuracy, [0.61, 0.8, 0.93]);
  assert.deepEqual(run.rounds.values.train_s, [10, 8, 7]);
  assert.deepEqual(run.rounds.values.fedavg_s, [0.25, 0.2, null], 'a column this version does not know is kept');
  assert.equal(run.rounds.columns.at(-1), 'fedavg_s');
  assert.deepEqual(
    run.prometheus,
    [{ cluster: 'edge', values: { activations: [3, 0, null], cold_starts: [1, 0, null], wait_s: [0.012, null, null], node_cpu_busy: [0.8, 0.35, null], node_mem_used_mb: [2048, 1900, null] } }],
    'the prom_* columns per cluster, the resumed round 2 from its last row',
  );
  assert.equal(run.info.name, 'alpha');
  assert.equal(run.info.engine, 'wasm+native');
  assert.deepEqual(run.info.platforms, ['local:box', 'openwhisk:edge']);
  assert.equal(run.info.artifacts['openwhisk:edge/fl_client'], 'b'.repeat(64));

  const old = readRunDir(beta);
  assert.deepEqual(old.rounds.round, [1, 2]);
  assert.equal(old.rounds.values.samples, undefined, 'a column the run does not have is absent, not invented');
  assert.equal(old.info.engine, null);
  assert.deepEqual(old.info.artifacts, {});
  assert.equal(old.info.run_id, 'beta', 'no run_id in summary.json: the directory name');
});

test('client durations: min/median/p90/max per round per platform:cluster, successful client activations only', () => {
  const { durations } = readRunDir(alpha);
  assert.deepEqual(durations.round, [1, 2, 3], 'round 0 (the server init) has no client');
  const [box, edge] = durations.groups;
  assert.equal(box!.group, 'local:box');
  assert.deepEqual(
    { count: box!.count, min: box!.min, median: box!.median, p90: box!.p90, max: box!.max },
    { count: [5, 1, 1], min: [1, 1.5, 0.8], median: [3, 1.5, 0.8], p90: [10, 1.5, 0.8], max: [10, 1.5, 0.8] },
    'the aggregator (client -1) is not a client',
  );
  assert.equal(edge!.group, 'openwhisk:edge');
  assert.deepEqual(
    { count: edge!.count, min: edge!.min, median: edge!.median, p90: edge!.p90, max: edge!.max },
    { count: [2, 0, 0], min: [5, null, null], median: [5, null, null], p90: [7, null, null], max: [7, null, null] },
    'the failed attempt (0.5 s) is not a duration',
  );
});

test('counts per round: cold starts, failures, retries, call retries, dropped, rejected (round 0: the init)', () => {
  const { counts } = readRunDir(alpha);
  assert.deepEqual(counts, {
    round: [0, 1, 2, 3],
    cold_starts: [1, 4, 0, 0],
    failures: [0, 1, 0, 0],
    retries: [0, 1, 0, 0],
    call_retries: [0, 2, 0, 0],
    dropped: [0, 0, 2, 0],
    rejected: [0, 0, 1, 0],
  });
  // an older rounds.csv without failures/retries/dropped: counted from the activations and events
  const old = readRunDir(beta).counts;
  assert.deepEqual(old.round, [1, 2]);
  assert.deepEqual(old.failures, [1, 0]);
  assert.deepEqual(old.retries, [1, 0]);
  assert.deepEqual(old.dropped, [0, 0]);
});

test('config differences between two runs: the differing keys, a headline and per-run labels', () => {
  const a = readRunDir(alpha);
  const b = readRunDir(beta);
  const diffs = configDifferences([a.config, b.config]);
  assert.deepEqual(
    diffs.map((d) => [d.short, d.values]),
    [
      ['local_epochs', ['5', '1']],
      ['optim', ['adam', 'sgd']],
    ],
    'the names differ too, but every label has the name already',
  );
  assert.equal(diffs[1]!.key, 'scenarios.federated_learning.model_params.optim');
  assert.equal(differenceHeadline(diffs), 'local_epochs=5 vs 1; optim=adam vs sgd');
  assert.deepEqual(runLabels([a.info, b.info], diffs), ['alpha (local_epochs=5, optim=adam)', 'beta (local_epochs=1, optim=sgd)']);
  // identical configs: nothing differs; the same name twice: the run ids tell the runs apart
  const same = configDifferences([a.config, a.config]);
  assert.deepEqual(same, []);
  assert.deepEqual(runLabels([{ name: 'x', run_id: 'x-1' }, { name: 'x', run_id: 'x-2' }], same), ['x-1', 'x-2']);
  // two keys with the same last segment are told apart by a longer tail
  const clash = configDifferences([flattenConfig({ a: { lr: 1 }, b: { lr: 2 } }), flattenConfig({ a: { lr: 3 }, b: { lr: 2 } }), flattenConfig({ a: { lr: 1 }, b: { lr: 4 } })]);
  assert.deepEqual(clash.map((d) => d.short), ['a.lr', 'b.lr']);
});

test('paper setups: a run matches by model, optimizer, local epochs and clients per round; anything else does not', () => {
  assert.equal(readRunDir(alpha).setup.local_epochs, 5, 'local epochs come from config.yaml (summary.json has none)');
  assert.equal(matchPaperSetup(readRunDir(alpha).setup)?.id, 'cnn-adam-e5-c100');
  assert.equal(matchPaperSetup({ model: 'mnistnn', optimizer: 'Adam', local_epochs: 10, clients_per_round: 100 })?.id, 'mnistnn-adam-e10-c100');
  assert.equal(matchPaperSetup({ model: 'nn', optimizer: 'adam', local_epochs: 5, clients_per_round: 100 })?.id, 'mnistnn-adam-e5-c100', "the paper's nn is mnistnn");
  assert.equal(matchPaperSetup(readRunDir(beta).setup), undefined, 'sgd, 1 local epoch');
  assert.equal(matchPaperSetup({ model: 'cnn', optimizer: 'adam', local_epochs: 5, clients_per_round: 10 }), undefined);
  assert.equal(matchPaperSetup({ model: 'cnn', optimizer: 'adam', clients_per_round: 100 }), undefined, 'unknown local epochs: no match');

  const report = shapeReport([readRunDir(alpha), readRunDir(beta)]);
  assert.deepEqual(report.runs.map((r) => r.paper), ['cnn-adam-e5-c100', null]);
  assert.equal(report.paper.length, 1);
  const curve = report.paper[0]!;
  assert.deepEqual(curve.runs, [0]);
  assert.equal(curve.round[0], 1);
  assert.equal(curve.round.length, 60);
  assert.equal(curve.accuracy[0], 0.665);
  assert.match(curve.label, /^paper \(FedKeeper 2020\)/);
});

test("the paper's curves: 1-based rounds, every column as long as the log, as logged", () => {
  assert.deepEqual(
    PAPER_SETUPS.map((p) => [p.id, p.rounds, p.log_first_iter]),
    [
      ['cnn-adam-e5-c100', 60, 1],
      ['cnn-adam-e10-c100', 47, 0],
      ['mnistnn-adam-e10-c100', 59, 0],
      ['mnistnn-adam-e5-c100', 245, 0],
    ],
  );
  for (const p of PAPER_SETUPS) {
    for (const k of ['accuracy', 'loss', 'invoke_s', 'train_s', 'agg_s', 'total_s'] as const) {
      if (p[k] !== undefined) assert.equal(p[k]!.length, p.rounds, `${p.id} ${k}`);
    }
    assert.ok(p.accuracy.every((a) => a > 0 && a <= 1), p.id);
  }
  const cnn10 = PAPER_SETUPS.find((p) => p.id === 'cnn-adam-e10-c100')!;
  assert.equal(cnn10.accuracy[0], 0.744, '"Iter: 0" of the log is round 1');
  assert.equal(cnn10.total_s![0], 158.71460914611816);
  const cnn5 = PAPER_SETUPS.find((p) => p.id === 'cnn-adam-e5-c100')!;
  assert.equal(cnn5.accuracy[59], 0.989, '"Iter: 60" is round 60');
  assert.equal(cnn5.train_s![0], 130.6958520412445);
});

test('refused: not a run directory, or one from an incompatible version, in one line naming it (exit code 2)', () => {
  const cases: [string, Parameters<typeof writeRunDir>[1], RegExp][] = [
    ['no-summary', { rounds: 'round,accuracy\n1,0.5\n' }, /no-summary has no summary\.json: a run still going, or one killed before its end/],
    ['no-rounds', { summary: { name: 'x', status: 'completed', rounds: 1 } }, /no-rounds is not a FedKeeper run directory \(no rounds\.csv\)/],
    ['old-summary', { summary: { name: 'x', rounds: 1 }, rounds: 'round,accuracy\n1,0.5\n' }, /old-summary: summary\.json lacks status; written by an incompatible FedKeeper version\?/],
    ['bad-json', { summary: '{"name": ', rounds: 'round,accuracy\n1,0.5\n' }, /bad-json: summary\.json is not valid JSON/],
    ['old-rounds', { summary: { name: 'x', status: 'completed', rounds: 1 }, rounds: 'iter,acc\n1,0.5\n' }, /old-rounds: rounds\.csv has no round or accuracy column \(header: iter,acc\)/],
    ['bad-round', { summary: { name: 'x', status: 'completed', rounds: 1 }, rounds: 'round,accuracy\nfirst,0.5\n' }, /bad-round: rounds\.csv line 2 has no round number/],
  ];
  for (const [name, files, message] of cases) {
    const dir = writeRunDir(path.join(work, name), files);
    assert.throws(
      () => readRunDir(dir),
      (e: Error) => e instanceof ReportInputError && message.test(e.message) && !e.message.includes('\n') && exitCodeOf(e) === 2,
      name,
    );
  }
  assert.throws(() => readRunDir(path.join(work, 'nowhere')), /nowhere: no such run directory/);
  assert.throws(() => readRunDir(writeRunDir(path.join(work, 'empty'), {})), /empty is not a FedKeeper run directory \(no summary\.json, no rounds\.csv\)/);
});

test('HTML: every string from a run is escaped, the data block cannot close its script, the chart code parses', () => {
  const evil = writeRunDir(path.join(work, 'evil'), {
    summary: { name: '<img src=x onerror=alert(1)>', status: 'failed', error: '</script><script>alert(2)</script>', rounds: 1 },
    rounds: 'round,accuracy,loss\n1,0.5,1\n',
    config: configYaml({ name: 'evil', optim: '"<i>sgd</i>"', localEpochs: 1, model: 'cnn', perRound: 3 }),
  });
  const data = shapeReport([readRunDir(evil), readRunDir(alpha)]);
  const html = renderReportHtml(data, loadChartLibrary());
  assert.ok(!html.includes('<img src=x'), 'the run name is text');
  assert.ok(!html.includes('<script>alert(2)'), 'the error is text');
  assert.ok(!html.includes('<i>sgd'), 'a config value is text');
  assert.ok(html.includes('optim=&lt;i&gt;sgd&lt;/i&gt; vs adam'), 'and it is in the differences');
  assert.ok(html.includes('&lt;img src=x onerror=alert(1)&gt;'));
  const block = /<script type="application\/json" id="fedkeeper-report-data">([^<]*)<\/script>/.exec(html);
  assert.ok(block, 'the JSON block holds no "<" and ends at its own </script>');
  const parsed = JSON.parse(block[1]!);
  assert.equal(parsed.runs[0].info.error, '</script><script>alert(2)</script>');
  assert.equal(parsed.runs.length, 2);
  // one container per chart: accuracy, loss, and time, durations, events per run; alpha's Prometheus figures
  assert.equal(html.match(/data-chart="/g)!.length, 2 + 3 * 2 + 1);
  assert.equal(html.match(/data-chart="prometheus" data-run="1"/g)!.length, 1);
  // the inlined scripts are valid JavaScript
  const scripts = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1]!);
  assert.equal(scripts.length, 2, 'uPlot and the chart code');
  for (const s of scripts) assert.doesNotThrow(() => new Function(s));
  assert.match(scripts[0]!, /var uPlot=/);
  assert.equal(escapeHtml(`<a href="x">'&`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;');
  assert.ok(!jsonForScript({ s: '</script>' }).includes('<'));
});

test('CLI: report RUN_DIR… [-o FILE]', () => {
  assert.deepEqual(parseCli(['report', 'a', 'b', '-o', 'x.html']), { command: 'report', debug: false, report: { runDirs: ['a', 'b'], output: 'x.html' } });
  assert.deepEqual(parseCli(['report', 'a']).report, { runDirs: ['a'] });
  assert.throws(() => parseCli(['report']), (e: Error) => e instanceof UsageError && /report needs a run directory/.test(e.message));
  assert.throws(() => parseCli(['report', 'a', '-o', '']), UsageError);
  assert.throws(() => parseCli(['report', 'a', '-c', 'x.yaml']), UsageError);
  assert.match(parseCli(['--help']).command, /help/);
});
