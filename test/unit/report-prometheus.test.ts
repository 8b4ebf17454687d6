/**
 * The report and a run with prometheus_config / configurations: the prom_<figure>:<cluster> columns of rounds.csv
 * regrouped per cluster, drawn as a chart (data-chart="prometheus") with a table per round and cluster under it
 * (empty fields: Prometheus did not answer), and each platform's configurations in the run's summary; a run without
 * them has neither.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { readRunDir, shapeReport } from '../../src/report/data.js';
import { loadChartLibrary, renderReportHtml } from '../../src/report/html.js';
import { writeRunDir } from '../fixtures/run-dirs.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'fk-report-prom-'));
after(() => rmSync(work, { recursive: true, force: true }));

const summary = { name: 'p', run_id: 'p-1', status: 'completed', rounds: 2 };

test('prom_* columns per cluster and configurations in the data and the page', () => {
  const dir = writeRunDir(path.join(work, 'with'), {
    summary: { ...summary, configurations: { 'openwhisk:cloud': { num_hosts: 2, each_host_ram: '755gb', host_names: ['invasic', 'b<2>'], gpu_enabled: false } } },
    rounds:
      'round,accuracy,loss,prom_activations:cloud,prom_cold_starts:cloud,prom_wait_s:cloud,prom_node_cpu_busy:cloud,prom_node_mem_used_mb:cloud,prom_activations:edge\n' +
      '1,0.5,1.2,3,3,0.012,0.75,2048,2\n' +
      '2,0.6,1.1,,,,,,4\n',
  });
  const run = readRunDir(dir);
  assert.deepEqual(run.prometheus, [
    { cluster: 'cloud', values: { activations: [3, null], cold_starts: [3, null], wait_s: [0.012, null], node_cpu_busy: [0.75, null], node_mem_used_mb: [2048, null] } },
    { cluster: 'edge', values: { activations: [2, 4] } },
  ]);
  assert.deepEqual(run.info.configurations['openwhisk:cloud']!.host_names, ['invasic', 'b<2>']);
  const html = renderReportHtml(shapeReport([run]), loadChartLibrary());
  assert.match(html, /<h3>Platform metrics from Prometheus[^<]*<\/h3>\n<div class="chart" data-chart="prometheus" data-run="0"><\/div>\n<details><summary>Prometheus figures per round, as a table/, 'a chart, the table under it folded');
  assert.match(html, /<tr><td>1<\/td><td>cloud<\/td><td>3<\/td><td>3<\/td><td>0\.012<\/td><td>0\.75<\/td><td>2048<\/td><\/tr>/);
  assert.match(html, /<tr><td>2<\/td><td>cloud<\/td><td>—<\/td>/, 'no answer: empty');
  assert.match(html, /<tr><td>2<\/td><td>edge<\/td><td>4<\/td>/);
  assert.match(html, /<th>platform configurations<\/th><td><ul class="artifacts"><li>openwhisk:cloud: num_hosts 2 · each_host_ram 755gb · host_names invasic, b&lt;2&gt; · gpu_enabled false<\/li>/);
});

test('a run without them: no Prometheus section, no configurations', () => {
  const run = readRunDir(writeRunDir(path.join(work, 'without'), { summary, rounds: 'round,accuracy,loss\n1,0.5,1.2\n' }));
  assert.deepEqual(run.prometheus, []);
  assert.deepEqual(run.info.configurations, {});
  const html = renderReportHtml(shapeReport([run]), loadChartLibrary());
  assert.doesNotMatch(html, /Platform metrics from Prometheus/);
  assert.doesNotMatch(html, /data-chart="prometheus"/);
  assert.match(html, /<th>platform configurations<\/th><td>—<\/td>/);
});
