/**
 * What the live dashboard shows of the round in progress, folded from the keeper's progress events: the run, the
 * round, clients selected / ended / in flight per platform:cluster, failures and re-invocations, and a time series
 * of clients in flight per platform:cluster over the round (sampled by `sample()`, once a second by the server).
 * Pure: no I/O, no timers; `now` is passed in.
 */
import type { ProgressEvent } from '../keeper/keeper.js';

export type LiveStatus = 'starting' | 'initialising' | 'running' | 'completed' | 'failed' | 'stopped';

export interface LiveCluster {
  /** platform:cluster */
  where: string;
  selected: number;
  ended: number;
  in_flight: number;
}

export interface LiveSnapshot {
  status: LiveStatus;
  run_id: string | null;
  run_dir: string | null;
  max_rounds: number;
  clients_per_round: number;
  /** The round in progress, or the last one ended (0: none yet). */
  round: number;
  /** Whether `round` is still going. */
  in_round: boolean;
  selected: number;
  done: number;
  failed: number;
  retries: number;
  /** Seconds since the round started (or its length, once ended). */
  elapsed_s: number;
  clusters: LiveCluster[];
  /** Clients in flight per cluster over the round: t (seconds since the round started) and one series per cluster. */
  series: { t: number[]; in_flight: Record<string, number[]> };
  accuracy: number | null;
  loss: number | null;
  best: number | null;
  /** Rounds completed so far. */
  rounds_done: number;
  warnings: string[];
  /** Set when the run has ended: what the keeper said, and where the report is. */
  error: string | null;
  report: string | null;
}

/** At most this many samples per round are kept (a long round is thinned to every other sample). */
const MAX_SAMPLES = 600;
const MAX_WARNINGS = 20;

export class LiveState {
  private s: LiveSnapshot = {
    status: 'starting',
    run_id: null,
    run_dir: null,
    max_rounds: 0,
    clients_per_round: 0,
    round: 0,
    in_round: false,
    selected: 0,
    done: 0,
    failed: 0,
    retries: 0,
    elapsed_s: 0,
    clusters: [],
    series: { t: [], in_flight: {} },
    accuracy: null,
    loss: null,
    best: null,
    rounds_done: 0,
    warnings: [],
    error: null,
    report: null,
  };
  private roundStart = 0;
  private stride = 1;
  private tick = 0;

  /** Folds one progress event in; true when the snapshot changed. */
  apply(e: ProgressEvent, now: number): boolean {
    const s = this.s;
    switch (e.kind) {
      case 'run_started':
        s.run_id = e.runId;
        s.run_dir = e.runDir;
        s.max_rounds = e.maxRounds;
        s.clients_per_round = e.clientsPerRound;
        s.status = 'initialising';
        return true;
      case 'init_done':
        s.status = 'running';
        return true;
      case 'warning':
        s.warnings = [...s.warnings, e.message].slice(-MAX_WARNINGS);
        return true;
      case 'round_started':
        s.status = 'running';
        s.round = e.round;
        s.max_rounds = e.maxRounds;
        s.in_round = true;
        s.selected = e.selected;
        s.done = 0;
        s.failed = 0;
        s.retries = 0;
        s.elapsed_s = 0;
        s.clusters = Object.keys(e.clusters)
          .sort()
          .map((where) => ({ where, selected: e.clusters[where]!, ended: 0, in_flight: e.clusters[where]! }));
        s.series = { t: [], in_flight: Object.fromEntries(s.clusters.map((c) => [c.where, []])) };
        this.roundStart = now;
        this.stride = 1;
        this.tick = 0;
        this.sample(now);
        return true;
      case 'client_done': {
        if (!s.in_round || e.round !== s.round) return false;
        s.done = e.done;
        s.failed = e.failed;
        s.retries = e.retries;
        let c = s.clusters.find((x) => x.where === e.where);
        if (!c) {
          c = { where: e.where, selected: 0, ended: 0, in_flight: 0 };
          s.clusters.push(c);
          s.series.in_flight[e.where] = s.series.t.map(() => 0);
        }
        c.ended += 1;
        c.in_flight = Math.max(0, c.selected - c.ended);
        s.elapsed_s = (now - this.roundStart) / 1000;
        return true;
      }
      case 'round_done':
        s.in_round = false;
        s.round = e.round;
        s.accuracy = e.accuracy;
        s.loss = e.loss;
        s.best = e.best;
        s.rounds_done = e.round;
        s.elapsed_s = e.totalSeconds;
        for (const c of s.clusters) c.in_flight = 0;
        this.sample(now, true);
        return true;
      default:
        return false;
    }
  }

  /** Adds a point to the in-flight series (while a round goes, or `force` for its last point); true if added. */
  sample(now: number, force = false): boolean {
    const s = this.s;
    if (!s.in_round && !force) return false;
    if (s.in_round) s.elapsed_s = (now - this.roundStart) / 1000;
    this.tick += 1;
    if (!force && this.tick % this.stride !== 0) return false;
    s.series.t.push(Math.round(((now - this.roundStart) / 1000) * 10) / 10);
    for (const c of s.clusters) s.series.in_flight[c.where]!.push(c.in_flight);
    if (s.series.t.length > MAX_SAMPLES) {
      // Keep every other point (the first and the newest stay): memory stays bounded on a very long round.
      const keep = (xs: number[]) => xs.filter((_x, i) => i % 2 === 0 || i === xs.length - 1);
      s.series.t = keep(s.series.t);
      for (const k of Object.keys(s.series.in_flight)) s.series.in_flight[k] = keep(s.series.in_flight[k]!);
      this.stride *= 2;
    }
    return true;
  }

  /** The run has ended. */
  finish(status: 'completed' | 'failed' | 'stopped', opts: { error?: string; report?: string } = {}): void {
    this.s.status = status;
    this.s.in_round = false;
    this.s.error = opts.error ?? null;
    this.s.report = opts.report ?? null;
  }

  snapshot(): LiveSnapshot {
    return this.s;
  }
}
