/**
 * report.html: one self-contained page. The charting library (uPlot, MIT) and its stylesheet are inlined from
 * node_modules when the report is written, the data is embedded as JSON (`<` escaped) in a
 * <script type="application/json"> block, and the charts are drawn from it on load (browser.ts). Nothing is fetched:
 * no CDN, no font, no stylesheet or script from elsewhere. Every string from a run directory is escaped.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { ReportData, RunView } from './data.js';
import { renderCharts } from './browser.js';
import { PAPER_DATASET, PAPER_LABEL } from './paper-curves.js';

export interface ChartLibrary {
  name: string;
  version: string;
  license: string;
  js: string;
  css: string;
}

const require = createRequire(import.meta.url);

/** uPlot's browser build and stylesheet, read from node_modules. */
export function loadChartLibrary(): ChartLibrary {
  const pkg = JSON.parse(readFileSync(require.resolve('uplot/package.json'), 'utf8')) as { version: string; license: string };
  return {
    name: 'uPlot',
    version: pkg.version,
    license: readFileSync(require.resolve('uplot/LICENSE'), 'utf8'),
    js: readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8'),
    css: readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8'),
  };
}

/** Text and attribute values: & < > " ' escaped. */
export function escapeHtml(v: unknown): string {
  return String(v ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** JSON for a <script type="application/json"> block: no `<` (so no `</script>`), no `>`/`&`, no U+2028/2029. */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

/** Code for an inline <script>: a `</script` or `<!--` inside it would end or confuse the element. */
function scriptText(js: string): string {
  return js.replace(/<\/(script)/gi, '<\\/$1').replace(/<!--/g, '<\\!--');
}

function styleText(css: string): string {
  if (/<\/style/i.test(css)) throw new Error('the chart library stylesheet contains "</style"');
  return css;
}

const fmt = (v: number | null | undefined, digits = 4): string => (v === null || v === undefined ? '—' : String(Number(v.toFixed(digits))));
const cell = (v: unknown): string => `<td>${escapeHtml(v === null || v === undefined || v === '' ? '—' : v)}</td>`;

/** The run's cost: the total, then each platform's invocations, GB-seconds and dollars. */
function costText(c: RunView['info']['cost']): string {
  if (!c) return '—';
  const usd = (v: number | null) => (v === null ? '—' : `$${v < 0.01 && v > 0 ? v.toPrecision(3) : v.toFixed(2)}`);
  const parts = Object.entries(c.by_platform)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([p, x]) => `<li>${escapeHtml(p)}: ${escapeHtml(x.invocations ?? '—')} invocations, ${escapeHtml(fmt(x.gb_seconds, 3))} GB-s, ${escapeHtml(usd(x.usd))}</li>`)
    .join('');
  return `${escapeHtml(usd(c.total_usd))} in all${c.prices_as_of ? ` (list prices of ${escapeHtml(c.prices_as_of)}, no free tier)` : ''}${parts ? `<ul class="artifacts">${parts}</ul>` : ''}`;
}

function summaryTable(run: RunView): string {
  const i = run.info;
  const s = run.setup;
  const rows: [string, string][] = [
    ['run id', escapeHtml(i.run_id)],
    ['name', escapeHtml(i.name)],
    ['status', escapeHtml(i.status) + (i.error ? ` — ${escapeHtml(i.error)}` : '')],
    ['rounds', escapeHtml(i.rounds)],
    ['final accuracy', escapeHtml(fmt(i.final_accuracy))],
    ['best accuracy', escapeHtml(fmt(i.best_accuracy))],
    ['final loss', escapeHtml(fmt(i.final_loss))],
    ['target accuracy', `${escapeHtml(fmt(i.target_accuracy))}${i.reached_target === null ? '' : i.reached_target ? ' (reached)' : ' (not reached)'}`],
    ['wall time', i.wall_s === null ? '—' : `${escapeHtml(fmt(i.wall_s, 2))} s`],
    ['engine', escapeHtml(i.engine ?? '—') + (i.engine_threads !== null ? ` (${escapeHtml(i.engine_threads)} thread(s))` : '')],
    ['engine_blas', escapeHtml(i.engine_blas ?? '—')],
    ['seed', escapeHtml(i.seed ?? '—')],
    ['store', escapeHtml(i.store ?? '—')],
    ['platforms', i.platforms.length ? i.platforms.map(escapeHtml).join(', ') : '—'],
    ['platform configurations', configurationsList(i.configurations)],
    ['model / optimizer', `${escapeHtml(s.model ?? '—')} / ${escapeHtml(s.optimizer ?? '—')}`],
    ['local epochs / clients per round', `${escapeHtml(s.local_epochs ?? '—')} / ${escapeHtml(s.clients_per_round ?? '—')}`],
    ['dataset / partition', `${escapeHtml(i.dataset ?? '—')} / ${escapeHtml(i.partition ?? '—')}`],
    ['cost at list prices', costText(i.cost)],
    ['invocations / retries / failures / call retries', [i.invocations, i.retries, i.failures, i.call_retries].map((x) => escapeHtml(x ?? '—')).join(' / ')],
    ['started / finished', `${escapeHtml(i.started_at ?? '—')} / ${escapeHtml(i.finished_at ?? '—')}`],
    ['final weights sha256', `<code>${escapeHtml(i.final_weights_sha256 ?? '—')}</code>`],
    [
      'artifacts (package sha256)',
      Object.keys(i.artifacts).length
        ? `<ul class="artifacts">${Object.entries(i.artifacts)
            .map(([k, v]) => `<li>${escapeHtml(k)}: <code>${escapeHtml(v)}</code></li>`)
            .join('')}</ul>`
        : '—',
    ],
  ];
  return `<table class="kv">${rows.map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${v}</td></tr>`).join('')}</table>`;
}

function roundsTable(run: RunView): string {
  const cols = run.rounds.columns;
  const head = `<tr>${cols.map((c) => `<th>${escapeHtml(c)}</th>`).join('')}</tr>`;
  const body = run.rounds.round
    .map((r, j) => `<tr>${cols.map((c) => (c === 'round' ? cell(r) : cell(fmt(run.rounds.values[c]?.[j] ?? null, 6)))).join('')}</tr>`)
    .join('');
  return `<table class="grid">${head}${body}</table>`;
}

/** Each cluster's configurations block (the seed's: hosts, cores, RAM, GPU, platform, concurrency), one line each. */
function configurationsList(c: Record<string, Record<string, unknown>>): string {
  const entries = Object.entries(c);
  if (!entries.length) return '—';
  const value = (v: unknown) => (Array.isArray(v) ? v.join(', ') : typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v));
  return `<ul class="artifacts">${entries.map(([k, v]) => `<li>${escapeHtml(k)}: ${Object.entries(v).map(([f, x]) => `${escapeHtml(f)} ${escapeHtml(value(x))}`).join(' · ')}</li>`).join('')}</ul>`;
}

/** The clusters' Prometheus figures per round (prometheus_config), one row per round and cluster. */
function prometheusTable(run: RunView): string {
  const head = '<tr><th>round</th><th>cluster</th><th>activations</th><th>cold starts</th><th>mean wait s</th><th>node CPU busy</th><th>node memory used MB</th></tr>';
  const body = run.rounds.round
    .flatMap((r, j) => run.prometheus.map((p) => `<tr>${cell(r)}${cell(p.cluster)}${cell(fmt(p.values.activations?.[j]))}${cell(fmt(p.values.cold_starts?.[j]))}${cell(fmt(p.values.wait_s?.[j], 3))}${cell(fmt(p.values.node_cpu_busy?.[j], 3))}${cell(fmt(p.values.node_mem_used_mb?.[j], 0))}</tr>`))
    .join('');
  return `<table class="grid">${head}${body}</table>`;
}

function durationsTable(run: RunView): string {
  const t = run.durations;
  if (!t.groups.length) return '<p>No successful client activation recorded.</p>';
  const head = '<tr><th>round</th><th>platform:cluster</th><th>clients</th><th>min s</th><th>median s</th><th>p90 s</th><th>max s</th></tr>';
  const body = t.round
    .flatMap((r, j) => t.groups.filter((g) => g.count[j]).map((g) => `<tr>${cell(r)}${cell(g.group)}${cell(g.count[j])}${cell(fmt(g.min[j], 3))}${cell(fmt(g.median[j], 3))}${cell(fmt(g.p90[j], 3))}${cell(fmt(g.max[j], 3))}</tr>`))
    .join('');
  return `<table class="grid">${head}${body}</table>`;
}

function countsTable(run: RunView): string {
  const c = run.counts;
  const head = '<tr><th>round</th><th>cold starts</th><th>failed activations</th><th>re-invoked clients</th><th>retried platform calls</th><th>dropped clients</th><th>rejected updates</th></tr>';
  const body = c.round.map((r, j) => `<tr>${[r, c.cold_starts[j], c.failures[j], c.retries[j], c.call_retries[j], c.dropped[j], c.rejected[j]].map(cell).join('')}</tr>`).join('');
  return `<table class="grid">${head}${body}</table>`;
}

function overview(data: ReportData): string {
  const head = '<tr><th>run</th><th>status</th><th>rounds</th><th>final accuracy</th><th>best accuracy</th><th>wall time s</th><th>engine</th><th>platforms</th><th>paper setup</th></tr>';
  const body = data.runs
    .map(
      (r) =>
        `<tr>${cell(r.label)}${cell(r.info.status)}${cell(r.info.rounds)}${cell(fmt(r.info.final_accuracy))}${cell(fmt(r.info.best_accuracy))}${cell(fmt(r.info.wall_s, 2))}${cell(r.info.engine)}${cell(r.info.platforms.join(', '))}${cell(r.paper ?? 'none')}</tr>`,
    )
    .join('');
  return `<table class="grid">${head}${body}</table>`;
}

function paperSection(data: ReportData): string {
  const setups = `<table class="grid"><tr><th>setup</th><th>model</th><th>optimizer</th><th>local epochs</th><th>clients per round</th><th>rounds</th><th>log</th><th>how the setup is known</th></tr>${data.paper_setups
    .map((p) => `<tr>${[p.id, p.model, p.optimizer, p.local_epochs, p.clients_per_round, p.rounds, p.source, p.inferred].map(cell).join('')}</tr>`)
    .join('')}</table>`;
  const matched = data.paper.length
    ? `<p>Dashed: ${escapeHtml(PAPER_LABEL)}, the original tool's published accuracy per round on ${escapeHtml(PAPER_DATASET)}, drawn over the rounds of the runs here. ${data.paper
        .map((p) => `<b>${escapeHtml(p.id)}</b> (${p.round.length} rounds in the paper's log) is matched by ${p.runs.map((i) => escapeHtml(data.runs[i]!.label)).join(', ')}.`)
        .join(' ')}</p>`
    : `<p>No run here matches a setup of the paper (same model, optimizer, local epochs and clients per round); the setups the project carries:</p>`;
  return `${matched}<details${data.paper.length ? '' : ' open'}><summary>The paper's setups</summary>${setups}</details>`;
}

function runSection(run: RunView, i: number): string {
  return `<section class="run" id="run-${i}">
<h2>${escapeHtml(run.label)}</h2>
${summaryTable(run)}
<h3>Time split per round (the seed's InvokeTime, TrainingTime, aggTime)</h3>
<div class="chart" data-chart="time" data-run="${i}"></div>
<h3>Client durations by platform:cluster (successful client activations: median, p90, min–max band)</h3>
<div class="chart" data-chart="durations" data-run="${i}"></div>
<details><summary>Durations per round, as a table</summary>${durationsTable(run)}</details>
${run.rounds.values.cost_usd?.some((v) => v !== null) ? `<h3>Cost per round (USD at list prices)</h3>\n<div class="chart" data-chart="cost" data-run="${i}"></div>` : ''}
<h3>Cold starts, failures, retries and dropped clients per round</h3>
<div class="chart" data-chart="events" data-run="${i}"></div>
<details><summary>Counts per round, as a table</summary>${countsTable(run)}</details>
${
  run.prometheus.length
    ? `<h3>Platform metrics from Prometheus (prometheus_config): activations and cold starts per cluster, node CPU busy on the right-hand scale</h3>
<div class="chart" data-chart="prometheus" data-run="${i}"></div>
<details><summary>Prometheus figures per round, as a table (with mean wait and node memory; empty: no answer)</summary>${prometheusTable(run)}</details>`
    : ''
}
<details><summary>rounds.csv</summary>${roundsTable(run)}</details>
</section>`;
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0 auto;max-width:1180px;padding:0 16px 48px;color:#222}
h1{margin:24px 0 4px}h2{margin-top:36px;border-bottom:1px solid #ddd;padding-bottom:4px}h3{margin:24px 0 6px;font-size:15px}
.sub{color:#555;margin:0 0 12px}.diff{background:#f6f6f0;border-left:4px solid #c9b458;padding:6px 10px}
table{border-collapse:collapse;margin:6px 0;max-width:100%}th,td{padding:3px 8px;text-align:left;vertical-align:top;overflow-wrap:anywhere}
table.grid th,table.grid td{border:1px solid #ddd}table.grid th{background:#f4f4f4}
table.kv th{color:#555;font-weight:normal;white-space:nowrap}
code{font-size:12px}ul.artifacts{margin:0;padding-left:16px}
.chart{min-height:60px;margin:6px 0}details{margin:8px 0}summary{cursor:pointer;color:#335}
footer{margin-top:40px;color:#777;font-size:12px}
`;

function titleOf(data: ReportData): string {
  return `FedKeeper report: ${[...new Set(data.runs.map((r) => r.name))].join(', ')}`;
}

/** The report's content (everything between <body> and the scripts): the live dashboard redraws it as rounds end. */
export function reportSections(data: ReportData, generator = 'fedkeeper'): string {
  const diff = data.headline
    ? `<p class="diff">What differs between the runs' configs: ${escapeHtml(data.headline)}</p>`
    : data.runs.length > 1
      ? '<p class="diff">The runs\' configs do not differ (apart from their names), or some runs have no config.yaml.</p>'
      : '';
  return `<h1>${escapeHtml(titleOf(data))}</h1>
<p class="sub">${data.runs.length} run(s) · written ${escapeHtml(data.generated_at)} by ${escapeHtml(generator)}</p>
${diff}
<h2>Runs</h2>
${overview(data)}
<h2>Accuracy per round</h2>
<div class="chart" data-chart="accuracy"></div>
<h2>Loss per round</h2>
<div class="chart" data-chart="loss"></div>
<h2>The paper</h2>
${paperSection(data)}
${data.runs.map(runSection).join('\n')}`;
}

/** <head> of a page with the charting library's stylesheet and ours (and `extraCss`). */
export function pageHead(title: string, lib: ChartLibrary, extraCss = ''): string {
  return `<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${styleText(lib.css)}</style>
<style>${CSS}${extraCss}</style>
</head>`;
}

/** The charting library as an inline <script> (its licence kept in a comment). */
export function libraryScript(lib: ChartLibrary): string {
  return `<script>/*! ${escapeHtml(lib.name)} ${escapeHtml(lib.version)}, ${scriptText(lib.license.replace(/\*\//g, '* /'))} */
${scriptText(lib.js)}</script>`;
}

/** A function's source as an inline script expression (see browser.ts: it references nothing outside its body). */
export function inlineFunction(fn: (...args: never[]) => unknown): string {
  return `(${scriptText(fn.toString())})`;
}

export function footer(lib: ChartLibrary): string {
  return `<footer>Charts: ${escapeHtml(lib.name)} ${escapeHtml(lib.version)} (MIT), inlined.</footer>`;
}

export function renderReportHtml(data: ReportData, lib: ChartLibrary, generator = 'fedkeeper'): string {
  return `<!doctype html>
<html lang="en">
${pageHead(titleOf(data), lib)}
<body>
<noscript><p>The charts need JavaScript (nothing is fetched: the page carries everything); the tables below do not.</p></noscript>
${reportSections(data, generator)}
${footer(lib)}
<script type="application/json" id="fedkeeper-report-data">${jsonForScript(data)}</script>
${libraryScript(lib)}
<script>
${inlineFunction(renderCharts)}(uPlot, document, JSON.parse(document.getElementById('fedkeeper-report-data').textContent));
</script>
</body>
</html>
`;
}
