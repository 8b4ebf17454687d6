/**
 * The code that draws the report's charts in the browser, from the data embedded in the page. It is compiled with the
 * project and inlined into report.html as its source text (`renderCharts.toString()`): it must reference nothing
 * outside its own body (only its parameters), and uses plain DOM calls (textContent, never innerHTML).
 *
 * Every chart container is an element with a `data-chart` attribute (accuracy, loss, time, durations, events, cost,
 * prometheus; the per-run ones with `data-run` = the run's index); once drawn it gets `data-rendered="true"` (or
 * "error"/"empty").
 */
import type { ReportData } from './data.js';

// uPlot and the document are the browser's: this file is compiled without the DOM's types.
// `doc` is the document, or the element the charts are in (the live dashboard redraws its report part alone).
export function renderCharts(uPlot: any, doc: any, data: ReportData): void {
  const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];
  const color = (i: number): string => COLORS[i % COLORS.length]!;
  const fmt = (v: number | null | undefined, digits: number): string => (v === null || v === undefined ? '--' : String(Number(v.toFixed(digits))));
  const ROUND_INCRS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];

  const base = (el: any, yLabel: string, extra: Record<string, unknown>): Record<string, unknown> => ({
    width: Math.max(360, Math.min(1100, el.clientWidth || 900)),
    height: 300,
    scales: { x: { time: false } },
    axes: [{ label: 'round', incrs: ROUND_INCRS }, { label: yLabel }],
    cursor: { drag: { x: true, y: false } },
    ...extra,
  });

  const mount = (el: any, opts: Record<string, unknown>, d: unknown[]): void => {
    try {
      el.textContent = '';
      new uPlot(opts, d, el);
      el.setAttribute('data-rendered', 'true');
    } catch (e) {
      el.textContent = `chart could not be drawn: ${(e as Error).message}`;
      el.setAttribute('data-rendered', 'error');
    }
  };

  const empty = (el: any, text: string): void => {
    el.textContent = text;
    el.setAttribute('data-rendered', 'empty');
  };

  /** Values of `ys` (given at rounds `xs`) placed on the rounds `at`, null where missing. */
  const align = (xs: readonly number[], ys: readonly (number | null)[], at: readonly number[]): (number | null)[] => {
    const m = new Map<number, number | null>();
    xs.forEach((x, i) => m.set(x, ys[i] ?? null));
    return at.map((x) => (m.has(x) ? m.get(x)! : null));
  };

  const maxRound = Math.max(1, ...data.runs.map((r) => (r.rounds.round.length ? r.rounds.round[r.rounds.round.length - 1]! : 0)));
  const allRounds: number[] = [];
  for (let r = 1; r <= maxRound; r++) allRounds.push(r);

  /** Accuracy or loss per round: every run, and the paper's matching curves dashed (over the runs' rounds). */
  const perRound = (el: any, key: 'accuracy' | 'loss', digits: number): void => {
    const series: Record<string, unknown>[] = [{ label: 'round' }];
    const d: unknown[] = [allRounds];
    data.runs.forEach((run, i) => {
      series.push({ label: run.label, stroke: color(i), width: 2, points: { show: true, size: 5 }, spanGaps: true, value: (_u: unknown, v: number | null) => fmt(v, digits) });
      d.push(align(run.rounds.round, run.rounds.values[key] ?? [], allRounds));
    });
    for (const p of data.paper) {
      series.push({ label: p.label, stroke: color(p.runs[0] ?? 0), width: 1.5, dash: [8, 5], points: { show: false }, spanGaps: true, value: (_u: unknown, v: number | null) => fmt(v, digits) });
      d.push(align(p.round, p[key], allRounds));
    }
    if (!data.runs.some((r) => r.rounds.round.length)) return empty(el, 'no completed round');
    mount(el, base(el, key, { series }), d);
  };

  /** The seed's time split per round, stacked: InvokeTime (invoke_s), TrainingTime (train_s), aggTime (agg_s). */
  const timeSplit = (el: any, runIndex: number): void => {
    const run = data.runs[runIndex]!;
    const xs = run.rounds.round;
    if (!xs.length) return empty(el, 'no completed round');
    const parts: [string, string, string][] = [
      ['invoke_s', 'InvokeTime (invoke_s)', '#4e79a7'],
      ['train_s', 'TrainingTime (train_s)', '#f28e2b'],
      ['agg_s', 'aggTime (agg_s)', '#59a14f'],
    ];
    const raw = parts.map(([k]) => run.rounds.values[k] ?? xs.map(() => null));
    const stacked = raw.map((_, i) => xs.map((_x, j) => raw.slice(0, i + 1).reduce((s: number, col) => s + (col[j] ?? 0), 0)));
    // the tallest stack first: each shorter one is drawn over it, so the bars read invoke | train | agg bottom-up
    const order = [2, 1, 0];
    const bars = uPlot.paths.bars({ size: [0.6, 80] });
    const series: Record<string, unknown>[] = [{ label: 'round' }];
    const d: unknown[] = [xs];
    for (const i of order) {
      series.push({ label: parts[i]![1], stroke: parts[i]![2], fill: parts[i]![2], width: 1, paths: bars, points: { show: false }, value: (_u: unknown, _v: unknown, _s: unknown, idx: number | null) => (idx === null ? '--' : `${fmt(raw[i]![idx], 3)} s`) });
      d.push(stacked[i]);
    }
    mount(
      el,
      base(el, 'seconds', {
        series,
        scales: { x: { time: false, range: (_u: unknown, min: number, max: number) => [min - 0.5, max + 0.5] }, y: { range: (_u: unknown, _min: number, max: number) => [0, max > 0 ? max * 1.08 : 1] } },
      }),
      d,
    );
  };

  /** Client durations per round, per platform:cluster: median (solid), p90 (dashed), min–max (band). */
  const durations = (el: any, runIndex: number): void => {
    const t = data.runs[runIndex]!.durations;
    if (!t.round.length || !t.groups.length) return empty(el, 'no successful client activation recorded');
    const series: Record<string, unknown>[] = [{ label: 'round' }];
    const d: unknown[] = [t.round];
    const bands: Record<string, unknown>[] = [];
    const val = (_u: unknown, v: number | null) => (v === null || v === undefined ? '--' : `${fmt(v, 3)} s`);
    t.groups.forEach((g, gi) => {
      const c = color(gi);
      const first = series.length;
      series.push({ label: `${g.group} max`, stroke: c, width: 1, dash: [2, 3], points: { show: false }, spanGaps: true, value: val });
      series.push({ label: `${g.group} p90`, stroke: c, width: 1.5, dash: [7, 4], points: { show: false }, spanGaps: true, value: val });
      series.push({ label: `${g.group} median`, stroke: c, width: 2.5, points: { show: true, size: 5 }, spanGaps: true, value: val });
      series.push({ label: `${g.group} min`, stroke: c, width: 1, dash: [2, 3], points: { show: false }, spanGaps: true, value: val });
      d.push(g.max, g.p90, g.median, g.min);
      bands.push({ series: [first, first + 3], fill: `${c}22` });
    });
    mount(el, base(el, 'seconds', { series, bands, scales: { x: { time: false }, y: { range: (_u: unknown, _min: number, max: number) => [0, max > 0 ? max * 1.08 : 1] } } }), d);
  };

  /** Cold starts, failures, retries, call retries, dropped clients and rejected updates per round (0 = init). */
  const events = (el: any, runIndex: number): void => {
    const c = data.runs[runIndex]!.counts;
    if (!c.round.length) return empty(el, 'no round recorded');
    const kinds: [keyof typeof c, string, string][] = [
      ['cold_starts', 'cold starts', '#1f77b4'],
      ['failures', 'failed activations', '#d62728'],
      ['retries', 're-invoked clients', '#ff7f0e'],
      ['call_retries', 'retried platform calls', '#9467bd'],
      ['dropped', 'dropped clients', '#7f7f7f'],
      ['rejected', 'rejected updates', '#8c564b'],
    ];
    const series: Record<string, unknown>[] = [{ label: 'round' }];
    const d: unknown[] = [c.round];
    let top = 1;
    for (const [k, label, stroke] of kinds) {
      const ys = c[k];
      top = Math.max(top, ...ys);
      series.push({ label, stroke, width: 1.5, points: { show: true, size: 6 }, value: (_u: unknown, v: number | null) => (v === null || v === undefined ? '--' : String(v)) });
      d.push(ys);
    }
    mount(
      el,
      base(el, 'count', {
        series,
        axes: [{ label: 'round (0 = server init)', incrs: ROUND_INCRS }, { label: 'count', incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] }],
        scales: { x: { time: false, range: (_u: unknown, min: number, max: number) => [min - 0.5, max + 0.5] }, y: { range: () => [0, Math.ceil(top * 1.1)] } },
      }),
      d,
    );
  };

  /** Cost per round in USD (rounds.csv cost_usd), as bars. */
  const cost = (el: any, runIndex: number): void => {
    const run = data.runs[runIndex]!;
    const xs = run.rounds.round;
    const ys = run.rounds.values.cost_usd ?? [];
    if (!xs.length || !ys.some((v) => v !== null)) return empty(el, 'no cost recorded');
    const series: Record<string, unknown>[] = [
      { label: 'round' },
      { label: 'USD', stroke: '#8c564b', fill: '#8c564b88', width: 1, paths: uPlot.paths.bars({ size: [0.6, 80] }), points: { show: false }, value: (_u: unknown, v: number | null) => (v === null || v === undefined ? '--' : `$${v.toPrecision(3)}`) },
    ];
    mount(
      el,
      base(el, 'USD', { series, scales: { x: { time: false, range: (_u: unknown, min: number, max: number) => [min - 0.5, max + 0.5] }, y: { range: (_u: unknown, _min: number, max: number) => [0, max > 0 ? max * 1.1 : 1] } } }),
      [xs, ys],
    );
  };

  /**
   * Each cluster's Prometheus figures per round (rounds.csv prom_* columns): activations (solid) and cold starts
   * (dashed) on the count scale, node CPU busy (dotted, 0–100 %) on the right-hand scale; a gap: no answer.
   */
  const prometheus = (el: any, runIndex: number): void => {
    const run = data.runs[runIndex]!;
    const xs = run.rounds.round;
    const series: Record<string, unknown>[] = [{ label: 'round' }];
    const d: unknown[] = [xs];
    let counts = false;
    let busy = false;
    let top = 1;
    const count = (_u: unknown, v: number | null) => (v === null || v === undefined ? '--' : String(v));
    run.prometheus.forEach((p, ci) => {
      const c = color(ci);
      const figures: [ys: (number | null)[] | undefined, label: string, style: Record<string, unknown>][] = [
        [p.values.activations, `${p.cluster} activations`, { width: 2, points: { show: true, size: 6 }, value: count }],
        [p.values.cold_starts, `${p.cluster} cold starts`, { width: 1.5, dash: [7, 4], points: { show: true, size: 5 }, value: count }],
      ];
      for (const [ys, label, style] of figures) {
        if (!ys) continue;
        counts = true;
        for (const v of ys) if (v !== null) top = Math.max(top, v);
        series.push({ label, stroke: c, ...style });
        d.push(ys);
      }
      const cpu = p.values.node_cpu_busy;
      if (cpu) {
        busy = true;
        series.push({ label: `${p.cluster} node CPU busy`, stroke: c, width: 1.5, dash: [2, 3], scale: 'busy', points: { show: true, size: 4 }, value: (_u: unknown, v: number | null) => (v === null || v === undefined ? '--' : `${fmt(v * 100, 1)} %`) });
        d.push(cpu);
      }
    });
    if (!xs.length || !d.slice(1).some((ys) => (ys as (number | null)[]).some((v) => v !== null))) return empty(el, 'no figure from Prometheus (it did not answer)');
    const axes: Record<string, unknown>[] = [{ label: 'round', incrs: ROUND_INCRS }];
    if (counts) axes.push({ label: 'activations, cold starts', scale: 'y', incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000] });
    if (busy) axes.push({ label: 'node CPU busy', scale: 'busy', side: counts ? 1 : 3, grid: { show: !counts }, values: (_u: unknown, ticks: number[]) => ticks.map((v) => `${Math.round(v * 100)} %`) });
    mount(
      el,
      base(el, 'count', {
        series,
        axes,
        scales: {
          x: { time: false, range: (_u: unknown, min: number, max: number) => [min - 0.5, max + 0.5] },
          ...(counts ? { y: { range: () => [0, Math.ceil(top * 1.1)] } } : {}),
          ...(busy ? { busy: { range: () => [0, 1] } } : {}),
        },
      }),
      d,
    );
  };

  const charts = doc.querySelectorAll('[data-chart]');
  for (let i = 0; i < charts.length; i++) {
    const el = charts[i];
    const kind = el.getAttribute('data-chart');
    const run = Number(el.getAttribute('data-run'));
    if (kind === 'accuracy') perRound(el, 'accuracy', 4);
    else if (kind === 'loss') perRound(el, 'loss', 4);
    else if (kind === 'time') timeSplit(el, run);
    else if (kind === 'durations') durations(el, run);
    else if (kind === 'events') events(el, run);
    else if (kind === 'cost') cost(el, run);
    else if (kind === 'prometheus') prometheus(el, run);
  }
}
