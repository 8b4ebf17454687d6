/**
 * The live dashboard's code in the browser. Inlined into the page as its source text (`liveClient.toString()`), like
 * report/browser.ts: it references nothing outside its body, only its parameters. It listens to the server's events
 * (server-sent events on /events; the browser's EventSource reconnects by itself, and every new connection is sent
 * the whole current state first, so a reload mid-run shows everything at once):
 *  - `state`: the round in progress (LiveSnapshot): the status line, clients per platform:cluster, in-flight chart;
 *  - `report`: the report's sections (server-rendered, escaped HTML) and their data, redrawn as rounds end;
 *  - `done`: the run has ended; the page keeps what it shows and stops reconnecting.
 * Test hooks: body[data-status], body[data-round], body[data-report-rounds], body[data-events] (events received).
 */
import type { LiveSnapshot } from './live-state.js';

// uPlot, the document and EventSource are the browser's: this file is compiled without the DOM's types.
export function liveClient(uPlot: any, doc: any, renderCharts: (uPlot: any, root: any, data: any) => void, EventSourceCtor: any): void {
  const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf'];
  const body = doc.body;
  const statusEl = doc.getElementById('live-status');
  const tableEl = doc.getElementById('live-clusters');
  const chartEl = doc.getElementById('live-inflight');
  const warnEl = doc.getElementById('live-warnings');
  const reportEl = doc.getElementById('live-report');
  let events = 0;
  let plot: any = null;
  let plotKey = '';
  let ended = false;

  const el = (tag: string, text?: string, attrs?: Record<string, string>): any => {
    const e = doc.createElement(tag);
    if (text !== undefined) e.textContent = text;
    for (const [k, v] of Object.entries(attrs ?? {})) e.setAttribute(k, v);
    return e;
  };
  const n = (v: number | null, d: number): string => (v === null || v === undefined ? '—' : v.toFixed(d));

  const drawState = (s: LiveSnapshot): void => {
    body.setAttribute('data-status', s.status);
    body.setAttribute('data-round', String(s.round));
    const head =
      s.status === 'starting' || s.status === 'initialising'
        ? `${s.status === 'starting' ? 'starting' : 'deploying and initialising'}…`
        : s.status === 'running'
          ? s.in_round
            ? `round ${s.round}/${s.max_rounds}: clients ${s.done}/${s.selected} ended${s.failed ? `, ${s.failed} failed` : ''}${s.retries ? `, ${s.retries} re-invoked` : ''}, ${n(s.elapsed_s, 0)} s`
            : `round ${s.round}/${s.max_rounds} ended in ${n(s.elapsed_s, 1)} s; aggregating…`
          : `run ${s.status}${s.error ? `: ${s.error}` : ''}${s.report ? ` — report: ${s.report}` : ''}`;
    const acc = s.accuracy === null ? '' : `  ·  accuracy ${n(s.accuracy, 4)} (best ${n(s.best, 4)}), loss ${n(s.loss, 4)}`;
    statusEl.textContent = `${s.run_id ? `run ${s.run_id}: ` : ''}${head}${acc}`;

    tableEl.textContent = '';
    const tr = el('tr');
    for (const h of ['platform:cluster', 'selected', 'ended', 'in flight']) tr.appendChild(el('th', h));
    tableEl.appendChild(tr);
    for (const c of s.clusters) {
      const row = el('tr', undefined, { 'data-where': c.where });
      for (const v of [c.where, String(c.selected), String(c.ended), String(c.in_flight)]) row.appendChild(el('td', v));
      tableEl.appendChild(row);
    }

    warnEl.textContent = '';
    for (const w of s.warnings) warnEl.appendChild(el('li', w));

    // Clients in flight per platform:cluster over the round.
    const keys = s.clusters.map((c) => c.where);
    const data = [s.series.t, ...keys.map((k) => s.series.in_flight[k] ?? [])];
    const key = `${s.round}|${keys.join(',')}`;
    try {
      if (!s.series.t.length) {
        if (plot) plot.destroy();
        plot = null;
        chartEl.textContent = 'no round yet';
        chartEl.setAttribute('data-rendered', 'empty');
      } else if (plot && plotKey === key) {
        plot.setData(data);
      } else {
        if (plot) plot.destroy();
        chartEl.textContent = '';
        const top = Math.max(1, ...s.clusters.map((c) => c.selected));
        plot = new uPlot(
          {
            width: Math.max(360, Math.min(1100, chartEl.clientWidth || 900)),
            height: 240,
            scales: { x: { time: false }, y: { range: () => [0, Math.ceil(top * 1.1)] } },
            axes: [{ label: `seconds into round ${s.round}` }, { label: 'clients in flight' }],
            series: [{ label: 's' }, ...keys.map((k, i) => ({ label: k, stroke: COLORS[i % COLORS.length], width: 2, points: { show: false } }))],
          },
          data,
          chartEl,
        );
        plotKey = key;
      }
      if (s.series.t.length) chartEl.setAttribute('data-rendered', 'true');
    } catch (e) {
      chartEl.textContent = `chart could not be drawn: ${(e as Error).message}`;
      chartEl.setAttribute('data-rendered', 'error');
    }
  };

  const drawReport = (r: { html: string; data: any; rounds: number }): void => {
    // Keep what the reader opened and where they are.
    const open: number[] = [];
    reportEl.querySelectorAll('details').forEach((d: any, i: number) => d.open && open.push(i));
    const y = doc.defaultView ? doc.defaultView.scrollY : 0;
    reportEl.innerHTML = r.html; // rendered by the server from the run directory, every string escaped (report/html.ts)
    reportEl.querySelectorAll('details').forEach((d: any, i: number) => {
      if (open.includes(i)) d.open = true;
    });
    renderCharts(uPlot, reportEl, r.data);
    if (doc.defaultView) doc.defaultView.scrollTo(0, y);
    body.setAttribute('data-report-rounds', String(r.rounds));
  };

  const es = new EventSourceCtor('events');
  const on = (name: string, fn: (v: any) => void) =>
    es.addEventListener(name, (ev: any) => {
      events += 1;
      body.setAttribute('data-events', String(events));
      body.removeAttribute('data-disconnected');
      try {
        fn(JSON.parse(ev.data));
      } catch (e) {
        statusEl.textContent = `could not show an update: ${(e as Error).message}`;
      }
    });
  on('state', drawState);
  on('report', drawReport);
  on('done', (s: LiveSnapshot) => {
    ended = true;
    drawState(s);
    es.close();
  });
  es.onerror = () => {
    if (ended) return;
    body.setAttribute('data-disconnected', 'true');
    statusEl.textContent = `${statusEl.textContent.replace(/ \(reconnecting…\)$/, '')} (reconnecting…)`;
  };
}
