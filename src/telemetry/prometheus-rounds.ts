/**
 * Per-round figures from the Prometheus servers a cluster's `prometheus_config` names (the seed's: `host`,
 * `port_openwhisk_metrics`, `port_node_metrics`). After each round (aggregation included) the keeper asks, per such
 * cluster:
 *
 *  - the OpenWhisk Prometheus: the increase over the round of `openwhisk_action_activations_total` and
 *    `openwhisk_action_coldStarts_total` (summed over all actions of the cluster, so other users' activations count
 *    too), and the mean `openwhisk_action_waitTime_seconds` of the round's activations;
 *  - the node Prometheus (node-exporter): the share of CPU time not idle over the round (`node_cpu_seconds_total`,
 *    all CPUs of all hosts it scrapes), and the memory in use at the round's end (`node_memory_MemTotal_bytes −
 *    node_memory_MemAvailable_bytes`, summed over hosts).
 *
 * The round runs from the last sample at or before its start to a sample taken after its end: the keeper first waits
 * (at most `scrape_wait`, polling) until Prometheus holds a scrape newer than the round's end, so that activations of
 * the round's last seconds are not left to the next one. Round r+1 starts after that scrape, so consecutive rounds
 * neither share nor lose an activation; round 1 may also count activations that ended before it but after the last
 * scrape (the server's init, when it runs on that cluster). A counter that went down (the platform restarted) counts
 * from zero.
 *
 * rounds.csv gets one column per cluster and figure, appended after the standard ones, named
 * `prom_<figure>:<cluster>` (cluster names are unique across providers): `prom_activations:C`,
 * `prom_cold_starts:C`, `prom_wait_s:C` (with port_openwhisk_metrics), `prom_node_cpu_busy:C` (0–1),
 * `prom_node_mem_used_mb:C` (with port_node_metrics). An empty field: Prometheus did not answer. A Prometheus that
 * does not answer, answers an error, or has no scrape after the round within scrape_wait is one warning per cluster
 * and round; the run goes on.
 */
import type { FedKeeperConfig, PrometheusConfig } from '../config/types.js';
import { PrometheusApi, type Sample } from './prometheus-api.js';

export interface PrometheusTarget {
  platform: string;
  cluster: string;
  config: PrometheusConfig;
}

export const OPENWHISK_FIGURES = ['activations', 'cold_starts', 'wait_s'] as const;
export const NODE_FIGURES = ['node_cpu_busy', 'node_mem_used_mb'] as const;
export type Figure = (typeof OPENWHISK_FIGURES)[number] | (typeof NODE_FIGURES)[number];

/** rounds.csv's column of a figure of a cluster. */
export const promColumn = (figure: Figure, cluster: string): string => `prom_${figure}:${cluster}`;

/** What one cluster's Prometheus servers said of a round (absent: not asked, or no answer). */
export interface ClusterFigures {
  activations?: number;
  cold_starts?: number;
  wait_s?: number;
  node_cpu_busy?: number;
  node_mem_used_mb?: number;
  node_mem_total_mb?: number;
  node_cpus?: number;
  /** Seconds between the round's end and the newest scrape its figures end at (negative: a scrape before the end). */
  openwhisk_scrape_lag_s?: number;
  node_scrape_lag_s?: number;
}

export interface RoundFigures {
  /** rounds.csv fields: every column of `columns()`, '' where there is no figure. */
  row: Record<string, number | ''>;
  /** "platform:cluster" → figures, for events.jsonl. */
  clusters: Record<string, ClusterFigures>;
  /** One line per cluster with a problem. */
  warnings: string[];
}

/** Every cluster of the config with a prometheus_config, in the config's order. */
export function prometheusTargets(cfg: FedKeeperConfig): PrometheusTarget[] {
  const out: PrometheusTarget[] = [];
  for (const [platform, clusters] of Object.entries(cfg.providers)) {
    for (const [cluster, block] of Object.entries((clusters ?? {}) as Record<string, { prometheus_config?: PrometheusConfig }>)) {
      if (block?.prometheus_config) out.push({ platform, cluster, config: block.prometheus_config });
    }
  }
  return out;
}

const OW_SERIES = 'openwhisk_action_(activations_total|coldStarts_total|waitTime_seconds_sum|waitTime_seconds_count)';
const NODE_SERIES = 'node_cpu_seconds_total|node_memory_MemTotal_bytes|node_memory_MemAvailable_bytes';
const MB = 1024 * 1024;

export interface PrometheusRoundsOptions {
  fetch?: typeof fetch;
  /** Per query, ms; default 3,000. */
  timeoutMs?: number;
  /** Between freshness checks while waiting for a scrape, ms; default 250. */
  pollMs?: number;
}

export class PrometheusRounds {
  constructor(
    readonly targets: readonly PrometheusTarget[],
    private readonly opts: PrometheusRoundsOptions = {},
  ) {}

  static fromConfig(cfg: FedKeeperConfig, opts: PrometheusRoundsOptions = {}): PrometheusRounds {
    return new PrometheusRounds(prometheusTargets(cfg), opts);
  }

  /** The rounds.csv columns these targets add (empty without any prometheus_config). */
  columns(): string[] {
    return this.targets.flatMap((t) => [
      ...(t.config.port_openwhisk_metrics !== undefined ? OPENWHISK_FIGURES.map((f) => promColumn(f, t.cluster)) : []),
      ...(t.config.port_node_metrics !== undefined ? NODE_FIGURES.map((f) => promColumn(f, t.cluster)) : []),
    ]);
  }

  /**
   * The figures of the round that ran from `startMs` to `endMs` (epoch ms). `active`: "platform:cluster" of the
   * clusters that ran activations in the round (a cluster with no OpenWhisk series yet is waited for only then).
   */
  async afterRound(startMs: number, endMs: number, active: ReadonlySet<string> = new Set()): Promise<RoundFigures> {
    const row: Record<string, number | ''> = Object.fromEntries(this.columns().map((c) => [c, '']));
    const clusters: Record<string, ClusterFigures> = {};
    const warnings: string[] = [];
    await Promise.all(
      this.targets.map(async (t) => {
        const where = `${t.platform}:${t.cluster}`;
        const figures: ClusterFigures = {};
        const problems: string[] = [];
        const { timeoutMs, fetch: fetchFn } = this.opts;
        const api = (port: number) => new PrometheusApi(`${t.config.host}:${port}`, { ...(timeoutMs !== undefined ? { timeoutMs } : {}), ...(fetchFn ? { fetch: fetchFn } : {}) });
        const parts: Promise<void>[] = [];
        if (t.config.port_openwhisk_metrics !== undefined) {
          const p = api(t.config.port_openwhisk_metrics);
          parts.push(this.openwhisk(p, t.config.scrape_wait, startMs, endMs, active.has(where), figures).then((m) => void (m && problems.push(m)), (e: unknown) => void problems.push((e as Error).message)));
        }
        if (t.config.port_node_metrics !== undefined) {
          const p = api(t.config.port_node_metrics);
          parts.push(this.node(p, t.config.scrape_wait, startMs, endMs, figures).then((m) => void (m && problems.push(m)), (e: unknown) => void problems.push((e as Error).message)));
        }
        await Promise.all(parts);
        clusters[where] = figures;
        for (const f of [...OPENWHISK_FIGURES, ...NODE_FIGURES]) {
          const col = promColumn(f, t.cluster);
          if (col in row && figures[f] !== undefined) row[col] = figures[f]!;
        }
        if (problems.length) warnings.push(`prometheus_config of ${where}: ${problems.join('; ')}`);
      }),
    );
    return { row, clusters, warnings };
  }

  /** OpenWhisk's counters over the round; a problem worth a warning as text (figures still set when they could be). */
  private async openwhisk(api: PrometheusApi, waitMs: number, startMs: number, endMs: number, active: boolean, out: ClusterFigures): Promise<string | undefined> {
    const fresh = await this.waitForScrape(api, 'openwhisk_action_activations_total', endMs, waitMs, active);
    const before = await api.query(`{__name__=~"${OW_SERIES}"}`, startMs);
    const after = await api.query(`{__name__=~"${OW_SERIES}"}`);
    const inc = increases(before, after);
    out.activations = inc.get('openwhisk_action_activations_total') ?? 0;
    out.cold_starts = inc.get('openwhisk_action_coldStarts_total') ?? 0;
    const waits = inc.get('openwhisk_action_waitTime_seconds_count') ?? 0;
    if (waits > 0) out.wait_s = round6((inc.get('openwhisk_action_waitTime_seconds_sum') ?? 0) / waits);
    if (fresh.newestMs !== undefined) out.openwhisk_scrape_lag_s = round6((fresh.newestMs - endMs) / 1000);
    return fresh.problem(`${api.base} (OpenWhisk metrics)`, 'openwhisk_action_activations_total', waitMs);
  }

  /** node-exporter's CPU and memory over the round. */
  private async node(api: PrometheusApi, waitMs: number, startMs: number, endMs: number, out: ClusterFigures): Promise<string | undefined> {
    const fresh = await this.waitForScrape(api, 'node_cpu_seconds_total', endMs, waitMs, true);
    const before = await api.query(`{__name__=~"${NODE_SERIES}"}`, startMs);
    const after = await api.query(`{__name__=~"${NODE_SERIES}"}`);
    const cpu = (s: readonly Sample[]) => s.filter((x) => x.metric.__name__ === 'node_cpu_seconds_total');
    const total = [...increasesBy(cpu(before), cpu(after)).values()].reduce((a, b) => a + b, 0);
    const idle = [...increasesBy(cpu(before).filter((x) => x.metric.mode === 'idle'), cpu(after).filter((x) => x.metric.mode === 'idle')).values()].reduce((a, b) => a + b, 0);
    if (total > 0) out.node_cpu_busy = round6(Math.min(1, Math.max(0, 1 - idle / total)));
    const sum = (name: string) => after.filter((x) => x.metric.__name__ === name).reduce((a, x) => a + x.value, 0);
    const memTotal = sum('node_memory_MemTotal_bytes');
    if (memTotal > 0) {
      out.node_mem_total_mb = Math.round(memTotal / MB);
      out.node_mem_used_mb = Math.round((memTotal - sum('node_memory_MemAvailable_bytes')) / MB);
    }
    const cpus = cpu(after).filter((x) => x.metric.mode === 'idle').length;
    if (cpus > 0) out.node_cpus = cpus;
    if (fresh.newestMs !== undefined) out.node_scrape_lag_s = round6((fresh.newestMs - endMs) / 1000);
    return fresh.problem(`${api.base} (node metrics)`, 'node_cpu_seconds_total', waitMs);
  }

  /**
   * Waits (at most waitMs) until the newest sample of `metric` is at or after `endMs`. With no such series at all it
   * waits only when `expectSeries` (something ran there); `problem()` words what was not met.
   */
  private async waitForScrape(api: PrometheusApi, metric: string, endMs: number, waitMs: number, expectSeries: boolean): Promise<{ newestMs?: number; problem(where: string, metric: string, waitMs: number): string | undefined }> {
    const deadline = Date.now() + waitMs;
    const pollMs = this.opts.pollMs ?? 250;
    for (;;) {
      const [s] = await api.query(`max(timestamp(${metric}))`);
      const newestMs = s && Number.isFinite(s.value) ? Math.round(s.value * 1000) : undefined;
      const fresh = newestMs !== undefined && newestMs >= endMs;
      if (fresh || (newestMs === undefined && !expectSeries) || Date.now() >= deadline) {
        return {
          ...(newestMs !== undefined ? { newestMs } : {}),
          problem: (where, name, wait) => {
            if (fresh || (newestMs === undefined && !expectSeries)) return undefined;
            if (newestMs === undefined) return `${where} has no ${name} series (is it scraping them?)`;
            if (wait === 0) return undefined;
            return `${where}: no scrape newer than the round's end within scrape_wait (${wait / 1000} s); figures end at its last scrape, ${((endMs - newestMs) / 1000).toFixed(1)} s before the round's end`;
          },
        };
      }
      await new Promise((r) => setTimeout(r, Math.min(pollMs, Math.max(1, deadline - Date.now()))));
    }
  }
}

const seriesKey = (m: Record<string, string>): string =>
  Object.keys(m)
    .sort()
    .map((k) => `${k}=${JSON.stringify(m[k])}`)
    .join(',');

/** Per series (all labels): its increase from `before` to `after`; a series new since, or reset, counts from 0. */
function increasesBy(before: readonly Sample[], after: readonly Sample[]): Map<string, number> {
  const start = new Map(before.map((s) => [seriesKey(s.metric), s.value]));
  const out = new Map<string, number>();
  for (const s of after) {
    const key = seriesKey(s.metric);
    const b = start.get(key) ?? 0;
    out.set(key, s.value >= b ? s.value - b : s.value);
  }
  return out;
}

/** Per metric name: the sum of its series' increases. */
function increases(before: readonly Sample[], after: readonly Sample[]): Map<string, number> {
  const byName = new Map<string, number>();
  const names = new Map(after.map((s) => [seriesKey(s.metric), s.metric.__name__ ?? '']));
  for (const [key, inc] of increasesBy(before, after)) {
    const name = names.get(key)!;
    byName.set(name, round6((byName.get(name) ?? 0) + inc));
  }
  return byName;
}

const round6 = (x: number): number => Math.round(x * 1e6) / 1e6;
