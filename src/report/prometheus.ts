/**
 * The report's view of what the clusters' Prometheus servers said per round (telemetry/prometheus-rounds.ts): the
 * rounds.csv columns `prom_<figure>:<cluster>` regrouped per cluster, and the clusters' `configurations` as
 * summary.json keeps them. No HTML here.
 */
import type { RoundSeries } from './data.js';

export const PROMETHEUS_FIGURES = ['activations', 'cold_starts', 'wait_s', 'node_cpu_busy', 'node_mem_used_mb'] as const;
export type PrometheusFigure = (typeof PROMETHEUS_FIGURES)[number];

/** One cluster's figures, aligned with `RoundSeries.round`; a figure its Prometheus was not asked for is absent. */
export interface ClusterPrometheusSeries {
  cluster: string;
  values: Partial<Record<PrometheusFigure, (number | null)[]>>;
}

/** The prom_* columns of rounds.csv, per cluster in column order. */
export function prometheusSeries(rounds: RoundSeries): ClusterPrometheusSeries[] {
  const out = new Map<string, ClusterPrometheusSeries>();
  for (const col of rounds.columns) {
    const m = /^prom_([a-z_]+):(.+)$/.exec(col);
    if (!m || !(PROMETHEUS_FIGURES as readonly string[]).includes(m[1]!)) continue;
    const cluster = m[2]!;
    const s = out.get(cluster) ?? { cluster, values: {} };
    s.values[m[1] as PrometheusFigure] = rounds.values[col] ?? [];
    out.set(cluster, s);
  }
  return [...out.values()];
}

/** summary.json's `configurations` ("platform:cluster" → the seed's configurations block), or {}. */
export function configurationsOf(summary: Record<string, unknown>): Record<string, Record<string, unknown>> {
  const c = summary.configurations;
  if (c === null || typeof c !== 'object' || Array.isArray(c)) return {};
  return Object.fromEntries(Object.entries(c as Record<string, unknown>).filter(([, v]) => v !== null && typeof v === 'object' && !Array.isArray(v))) as Record<string, Record<string, unknown>>;
}
