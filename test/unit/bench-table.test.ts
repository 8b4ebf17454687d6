/**
 * The benchmark table's pure parts (bench/table.ts): BENCH_JSON lines collected from a bench's output, a row's
 * ratio to its same-run baseline, the target mark (on the value or on the ratio, ≤ or ≥), the printed table, and the
 * rounds.csv reading the CLI sections use.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { benchJsonLine, collectBenchJson, formatNumber, formatTable, formatTarget, medianOf, parseCsv, ratioOf, splitCsvLine, targetMark, type Row } from '../../bench/table.js';

test('BENCH_JSON lines are collected in order from mixed output; foreign and broken lines are skipped', () => {
  const out = [
    'engine           model    batch  samples/s',
    benchJsonLine('ml-engines', { rows: [{ batch: 10, samplesPerSec: 2500.5 }] }),
    'BENCH_JSON {"bench": "trunc',
    'BENCH_JSON [1,2]',
    'BENCH_JSON {"no":"name"}',
    `[child] ${benchJsonLine('aggregator', { results: [] })}\r`,
    'done',
  ].join('\n');
  const got = collectBenchJson(out);
  assert.deepEqual(
    got.map((j) => j.bench),
    ['ml-engines', 'aggregator'],
  );
  assert.deepEqual(got[0], { bench: 'ml-engines', rows: [{ batch: 10, samplesPerSec: 2500.5 }] });
  assert.deepEqual(collectBenchJson('nothing here\n'), []);
});

test('benchJsonLine is one line that round-trips', () => {
  const line = benchJsonLine('openwhisk-local', { dispatch: [{ n: 100, ms: 120.5, baselineMs: 60.25 }], note: 'a\nb' });
  assert.equal(line.includes('\n'), false);
  assert.deepEqual(collectBenchJson(line), [{ bench: 'openwhisk-local', dispatch: [{ n: 100, ms: 120.5, baselineMs: 60.25 }], note: 'a\nb' }]);
});

const row = (over: Partial<Row>): Row => ({ name: 'x', value: 3, unit: 's', baselineName: 'b', baseline: 2, ...over });

test('ratio is value ÷ baseline, and missing when either is missing or the baseline is not positive', () => {
  assert.equal(ratioOf(row({})), 1.5);
  assert.equal(ratioOf(row({ baseline: null })), null);
  assert.equal(ratioOf(row({ value: null })), null);
  assert.equal(ratioOf(row({ baseline: 0 })), null);
  assert.equal(ratioOf(row({ value: NaN })), null);
});

test('target marks: on the ratio and on the value, ≤ and ≥, the limit itself met, n/a without the figure', () => {
  // FedAvg ≤ 1.5× the in-memory baseline
  assert.equal(targetMark(row({ value: 3, baseline: 2, target: { on: 'ratio', op: '<=', limit: 1.5 } })), 'met');
  assert.equal(targetMark(row({ value: 3.1, baseline: 2, target: { on: 'ratio', op: '<=', limit: 1.5 } })), 'NOT met');
  assert.equal(targetMark(row({ value: 3, baseline: null, target: { on: 'ratio', op: '<=', limit: 1.5 } })), 'n/a');
  // ≥ 50 % of BLAS×N
  assert.equal(targetMark(row({ value: 60, baseline: 100, target: { on: 'ratio', op: '>=', limit: 0.5 } })), 'met');
  assert.equal(targetMark(row({ value: 40, baseline: 100, target: { on: 'ratio', op: '>=', limit: 0.5 } })), 'NOT met');
  // ≥ 3,500 samples/s, ≤ 400 MiB: the baseline does not matter
  assert.equal(targetMark(row({ value: 3500, baseline: null, target: { on: 'value', op: '>=', limit: 3500 } })), 'met');
  assert.equal(targetMark(row({ value: 3499, baseline: 1, target: { on: 'value', op: '>=', limit: 3500 } })), 'NOT met');
  assert.equal(targetMark(row({ value: 401, target: { on: 'value', op: '<=', limit: 400 } })), 'NOT met');
  assert.equal(targetMark(row({ value: null, target: { on: 'value', op: '<=', limit: 400 } })), 'n/a');
  assert.equal(targetMark(row({})), '');
});

test('numbers: whole from 100 (thousands grouped), then 1, 2 or 3 decimals; missing as -', () => {
  assert.equal(formatNumber(3512.4), '3,512');
  assert.equal(formatNumber(153.4), '153');
  assert.equal(formatNumber(40.54), '40.5');
  assert.equal(formatNumber(1.234), '1.23');
  assert.equal(formatNumber(0.0412), '0.041');
  assert.equal(formatNumber(null), '-');
  assert.equal(formatNumber(Infinity), '-');
});

test('targets as text: on the ratio against the baseline, on the value in its unit', () => {
  assert.equal(formatTarget({ on: 'ratio', op: '<=', limit: 1.5 }, 's'), '≤ 1.5× baseline');
  assert.equal(formatTarget({ on: 'ratio', op: '>=', limit: 0.5 }, 'GFLOP/s'), '≥ 0.5× baseline');
  assert.equal(formatTarget({ on: 'value', op: '>=', limit: 3500 }, 'samples/s'), '≥ 3,500 samples/s');
  assert.equal(formatTarget(undefined, 's'), '');
});

test('the table: header, rule, one aligned line per row with ratio, target and mark', () => {
  const lines = formatTable([
    { name: 'FedAvg of 100 paper-CNN updates', value: 0.9, unit: 's', baselineName: 'plain weighted sum', baseline: 0.8, target: { on: 'ratio', op: '<=', limit: 1.5 } },
    { name: 'aggregator peak RSS, 1,000 updates', value: 316, unit: 'MiB', baselineName: 'evaluation alone', baseline: 230, target: { on: 'value', op: '<=', limit: 400 } },
    { name: 'sgemm ×1', value: 100, unit: 'GFLOP/s', baselineName: 'wasm matmul', baseline: null },
  ]);
  assert.equal(lines.length, 5);
  assert.match(lines[0]!, /^figure\s+value\s+unit\s+baseline \(same run\)\s+baseline\s+ratio\s+target\s+met\?$/);
  assert.match(lines[1]!, /^-+( +-+){7}$/);
  assert.match(lines[2]!, /^FedAvg of 100 paper-CNN updates\s+0\.900\s+s\s+plain weighted sum\s+0\.800\s+1\.13×\s+≤ 1\.5× baseline\s+met$/);
  assert.match(lines[3]!, /316\s+MiB\s+evaluation alone\s+230\s+1\.37×\s+≤ 400 MiB\s+met$/);
  assert.match(lines[4]!, /^sgemm ×1\s+100\s+GFLOP\/s\s+wasm matmul\s+-\s+-$/);
  // the value column is right-aligned: every row's value ends at the same place
  const end = (l: string, v: string) => l.indexOf(v) + v.length;
  assert.equal(end(lines[2]!, '0.900'), end(lines[3]!, '316'));
});

test('medianOf skips missing values', () => {
  assert.equal(medianOf([3, null, 1, undefined, 2]), 2);
  assert.equal(medianOf([4, 1, 3, 2]), 2.5);
  assert.equal(medianOf([null]), null);
});

test('rounds.csv is read by column name; quoted fields keep their commas', () => {
  const rows = parseCsv('round,accuracy,total_s,keeper_cpu_s\n1,0.5,7.1,3.382\n2,0.6,"4,5",\n');
  assert.deepEqual(rows, [
    { round: '1', accuracy: '0.5', total_s: '7.1', keeper_cpu_s: '3.382' },
    { round: '2', accuracy: '0.6', total_s: '4,5', keeper_cpu_s: '' },
  ]);
  assert.deepEqual(splitCsvLine('a,"b ""c""",d'), ['a', 'b "c"', 'd']);
  assert.deepEqual(parseCsv(''), []);
});
