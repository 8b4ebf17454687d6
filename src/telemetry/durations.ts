/** Duration statistics of client activations, per platform and per cluster, for summary.json. */
import type { DurationSample } from '../keeper/tracker.js';

export interface DurationStats {
  activations: number;
  failed: number;
  cold_starts: number;
  mean_s: number;
  p50_s: number;
  p90_s: number;
  p99_s: number;
  max_s: number;
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

function stats(samples: DurationSample[]): DurationStats {
  const ok = samples.filter((s) => s.status === 'success').map((s) => s.durationS).sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 1000) / 1000;
  return {
    activations: samples.length,
    failed: samples.length - ok.length,
    cold_starts: samples.filter((s) => s.coldStart).length,
    mean_s: r(ok.reduce((a, b) => a + b, 0) / (ok.length || 1)),
    p50_s: r(quantile(ok, 0.5)),
    p90_s: r(quantile(ok, 0.9)),
    p99_s: r(quantile(ok, 0.99)),
    max_s: r(ok.at(-1) ?? NaN),
  };
}

export function durationsBy(samples: readonly DurationSample[], key: (s: DurationSample) => string): Record<string, DurationStats> {
  const groups = new Map<string, DurationSample[]>();
  for (const s of samples) {
    const k = key(s);
    groups.set(k, [...(groups.get(k) ?? []), s]);
  }
  return Object.fromEntries([...groups.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, stats(v)]));
}
