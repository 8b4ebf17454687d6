/**
 * The live dashboard (`fedkeeper run|start --ui [PORT]`): a page on http://127.0.0.1:PORT/ that shows the run as it
 * goes — the round in progress (clients selected, ended and in flight per platform:cluster, failures, re-invocations,
 * a chart of clients in flight over the round) and the report's charts and tables (accuracy and loss per round, the
 * time split, client durations, cold starts and failures, cost), redrawn from the run directory as each round ends.
 *
 * Updates travel as server-sent events on /events: `state` (the round in progress, at most 4 a second, and once a
 * second while a round goes), `report` (after init and after every round) and `done` (the run has ended). A new
 * connection — a second tab, a reload mid-run, the browser's own reconnect — is sent the whole current state first.
 * GET /state answers the same snapshot as JSON. The page is self-contained: the charting library is inlined, nothing
 * is fetched from elsewhere. Binds 127.0.0.1 only, and answers only requests addressed to it by that name or
 * `localhost` (a page elsewhere cannot reach it through DNS rebinding).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ProgressEvent } from '../keeper/keeper.js';
import { readRunDir, shapeReport } from '../report/data.js';
import { renderCharts } from '../report/browser.js';
import { escapeHtml, footer, inlineFunction, libraryScript, loadChartLibrary, pageHead, reportSections, type ChartLibrary } from '../report/html.js';
import { liveClient } from './live-browser.js';
import { LiveState, type LiveSnapshot } from './live-state.js';

const STATE_INTERVAL_MS = 250;
const SAMPLE_MS = 1000;
const KEEPALIVE_MS = 15_000;

interface ReportMessage {
  html: string;
  data: unknown;
  rounds: number;
}

const LIVE_CSS = `
#live-head{position:sticky;top:0;background:#fff;border-bottom:1px solid #ddd;padding:8px 0;z-index:5}
#live-head h1{margin:8px 0 2px;font-size:20px}#live-status{margin:0;font-weight:600}
body[data-disconnected] #live-status{color:#a33}
#live-warnings{color:#8a5a00;margin:4px 0;padding-left:18px}#live-warnings:empty{display:none}
#live-report h1{font-size:22px}
`;

export function renderLivePage(lib: ChartLibrary, title = 'FedKeeper live'): string {
  return `<!doctype html>
<html lang="en">
${pageHead(title, lib, LIVE_CSS)}
<body data-status="connecting">
<noscript><p>The live dashboard needs JavaScript; the run's report.html (written when the run ends) does not.</p></noscript>
<div id="live-head">
<h1>${escapeHtml(title)}</h1>
<p id="live-status">connecting…</p>
<ul id="live-warnings"></ul>
</div>
<h2>The round in progress: clients per platform:cluster</h2>
<table class="grid" id="live-clusters"></table>
<h3>Clients in flight</h3>
<div class="chart" id="live-inflight"></div>
<div id="live-report"><p>The report appears here when the run has initialised, and is redrawn after every round.</p></div>
${footer(lib)}
${libraryScript(lib)}
<script>
${inlineFunction(liveClient)}(uPlot, document, ${inlineFunction(renderCharts)}, EventSource);
</script>
</body>
</html>
`;
}

export class LiveDashboard {
  readonly state = new LiveState();
  private readonly clients = new Set<http.ServerResponse>();
  private server: http.Server | undefined;
  private port = 0;
  private page: string | undefined;
  private report: ReportMessage | undefined;
  private stateTimer: NodeJS.Timeout | undefined;
  private lastStateSent = 0;
  private sampler: NodeJS.Timeout | undefined;
  private keepalive: NodeJS.Timeout | undefined;
  private reportPending: Promise<void> | undefined;
  private eventId = 0;

  constructor(
    private readonly lib: ChartLibrary = loadChartLibrary(),
    private readonly now: () => number = Date.now,
  ) {}

  /** Listens on 127.0.0.1:port (0: a free one); returns the page's URL. */
  async listen(port = 0): Promise<string> {
    const server = http.createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    this.sampler = setInterval(() => {
      if (this.state.sample(this.now())) this.sendState();
    }, SAMPLE_MS);
    this.sampler.unref();
    this.keepalive = setInterval(() => {
      for (const res of this.clients) res.write(': keep-alive\n\n');
    }, KEEPALIVE_MS);
    this.keepalive.unref();
    return this.url;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/`;
  }

  /** The keeper's progress events (pass to Keeper's onProgress beside the console's). */
  readonly observe = (e: ProgressEvent): void => {
    if (!this.state.apply(e, this.now())) return;
    this.sendState();
    if (e.kind === 'init_done' || e.kind === 'round_done') this.refreshReport(true);
  };

  /**
   * The run has ended: the last report (from the finished run directory), a `done` event, and the connections are
   * closed so the pages keep what they show. The server closes with close().
   */
  async finish(status: 'completed' | 'failed' | 'stopped', opts: { error?: string; report?: string } = {}): Promise<void> {
    this.state.finish(status, opts);
    await this.reportPending;
    await this.refreshReport(false);
    this.flushState();
    this.broadcast('done', this.state.snapshot());
    for (const res of this.clients) res.end();
    this.clients.clear();
  }

  async close(): Promise<void> {
    clearInterval(this.sampler);
    clearInterval(this.keepalive);
    clearTimeout(this.stateTimer);
    for (const res of this.clients) res.end();
    this.clients.clear();
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  /** Reads the run directory and sends the report to every page; a run directory that cannot be read yet waits. */
  private refreshReport(running: boolean): Promise<void> {
    const dir = this.state.snapshot().run_dir;
    if (!dir) return Promise.resolve();
    const run = async () => {
      await new Promise((r) => setImmediate(r)); // after the keeper's own writes of this step
      try {
        const data = shapeReport([readRunDir(dir, { running })]);
        this.report = { html: reportSections(data, 'fedkeeper (live)'), data, rounds: data.runs[0]!.rounds.round.length };
        this.broadcast('report', this.report);
      } catch {
        // Not readable yet (a run directory being created, a summary being replaced): the next round tries again.
      }
    };
    this.reportPending = (this.reportPending ?? Promise.resolve()).then(run);
    return this.reportPending;
  }

  private sendState(): void {
    const wait = this.lastStateSent + STATE_INTERVAL_MS - this.now();
    if (wait <= 0) return this.flushState();
    this.stateTimer ??= setTimeout(() => this.flushState(), wait);
  }

  private flushState(): void {
    clearTimeout(this.stateTimer);
    this.stateTimer = undefined;
    this.lastStateSent = this.now();
    this.broadcast('state', this.state.snapshot());
  }

  private broadcast(event: string, data: unknown, only?: http.ServerResponse): void {
    const text = `id: ${++this.eventId}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const res of only ? [only] : this.clients) res.write(text);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const host = (req.headers.host ?? '').toLowerCase();
    if (host !== `127.0.0.1:${this.port}` && host !== `localhost:${this.port}`) {
      res.writeHead(421, { 'content-type': 'text/plain' }).end(`this dashboard answers only at ${this.url}\n`);
      return;
    }
    const route = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') {
      res.writeHead(405, { 'content-type': 'text/plain', allow: 'GET' }).end('GET only\n');
      return;
    }
    if (route === '/' || route === '/index.html') {
      this.page ??= renderLivePage(this.lib);
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(this.page);
    } else if (route === '/favicon.ico') {
      res.writeHead(204).end(); // the browser asks for one; there is none to fetch
    } else if (route === '/state') {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(this.state.snapshot() satisfies LiveSnapshot));
    } else if (route === '/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
      res.write('retry: 1000\n\n');
      // Everything there is, first: a reload mid-run shows the whole state at once.
      this.broadcast('state', this.state.snapshot(), res);
      if (this.report) this.broadcast('report', this.report, res);
      const s = this.state.snapshot().status;
      if (s === 'completed' || s === 'failed' || s === 'stopped') {
        this.broadcast('done', this.state.snapshot(), res);
        res.end();
        return;
      }
      this.clients.add(res);
      req.on('close', () => this.clients.delete(res));
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /, /events or /state\n');
    }
  }
}
