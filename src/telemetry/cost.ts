/**
 * What a run would cost on the platforms it ran on: per platform, invocations and GB-seconds (memory × billed
 * duration, the duration rounded up as that platform bills it), priced from a table — the defaults below, from the
 * platforms' public list prices, or the config's `pricing`. Local platforms cost nothing. Pure.
 *
 * Defaults (list prices as published in 2024, first pricing tier, no free tier deducted):
 *  - lambda:    $0.0000166667 per GB-s (x86, us-east-1), $0.20 per million requests, billed per 1 ms;
 *  - google:    Cloud Functions (2nd gen / Cloud Run functions, tier 1): $0.0000025 per GiB-s of memory plus
 *               $0.000024 per vCPU-s (the vCPU that comes with the memory size), $0.40 per million invocations,
 *               billed per 100 ms;
 *  - openwhisk: IBM Cloud Functions (the hosted Apache OpenWhisk until 2024): $0.000017 per GB-s, no request fee,
 *               billed per 100 ms.
 */

export interface PlatformPrice {
  /** USD per GB-second of memory × billed time. */
  gb_second_usd: number;
  /** USD per vCPU-second (platforms that bill CPU apart from memory), 0 otherwise. */
  vcpu_second_usd: number;
  /** USD per million invocations. */
  per_million_usd: number;
  /** Billed duration is rounded up to a multiple of this, ms. */
  increment_ms: number;
}

export const PRICE_DATE = '2024';

export const DEFAULT_PRICES: Readonly<Record<string, PlatformPrice>> = Object.freeze({
  lambda: { gb_second_usd: 0.0000166667, vcpu_second_usd: 0, per_million_usd: 0.2, increment_ms: 1 },
  google: { gb_second_usd: 0.0000025, vcpu_second_usd: 0.000024, per_million_usd: 0.4, increment_ms: 100 },
  openwhisk: { gb_second_usd: 0.000017, vcpu_second_usd: 0, per_million_usd: 0, increment_ms: 100 },
  local: { gb_second_usd: 0, vcpu_second_usd: 0, per_million_usd: 0, increment_ms: 1 },
});

/** Cloud Functions' vCPU per memory size (MB → vCPU), the size's tier or the next larger one. */
const GCF_VCPU: readonly [number, number][] = [
  [128, 0.083],
  [256, 0.167],
  [512, 0.333],
  [1024, 0.583],
  [2048, 1],
  [4096, 2],
  [8192, 2],
  [16384, 4],
  [32768, 8],
];

export function vcpusFor(platform: string, memoryMb: number): number {
  if (platform !== 'google') return 0;
  return (GCF_VCPU.find(([mb]) => memoryMb <= mb) ?? GCF_VCPU[GCF_VCPU.length - 1]!)[1];
}

/** One ended activation, as billing sees it. */
export interface Billable {
  platform: string;
  durationMs: number;
  memoryMb: number;
}

export interface PlatformCost {
  invocations: number;
  gb_seconds: number;
  usd: number;
}

/** The price table: defaults, with the config's entries laid over them per platform. */
export function priceTable(overrides: Record<string, Partial<PlatformPrice>> = {}): Record<string, PlatformPrice> {
  const out: Record<string, PlatformPrice> = {};
  for (const [p, price] of Object.entries(DEFAULT_PRICES)) out[p] = { ...price, ...(overrides[p] ?? {}) };
  for (const [p, price] of Object.entries(overrides)) if (!out[p]) out[p] = { gb_second_usd: 0, vcpu_second_usd: 0, per_million_usd: 0, increment_ms: 1, ...price };
  return out;
}

/** Cost per platform of `items`, priced by `prices` (a platform missing from it costs nothing). */
export function costByPlatform(items: readonly Billable[], prices: Record<string, PlatformPrice>): Record<string, PlatformCost> {
  const out: Record<string, PlatformCost> = {};
  for (const it of items) {
    const price = prices[it.platform];
    const c = (out[it.platform] ??= { invocations: 0, gb_seconds: 0, usd: 0 });
    c.invocations++;
    if (!price) continue;
    const inc = Math.max(1, price.increment_ms);
    const billedS = (Math.ceil(Math.max(0, it.durationMs) / inc) * inc) / 1000;
    const gbS = (it.memoryMb / 1024) * billedS;
    c.gb_seconds += gbS;
    c.usd += gbS * price.gb_second_usd + vcpusFor(it.platform, it.memoryMb) * billedS * price.vcpu_second_usd + price.per_million_usd / 1e6;
  }
  for (const c of Object.values(out)) {
    c.gb_seconds = Math.round(c.gb_seconds * 1e6) / 1e6;
    c.usd = Math.round(c.usd * 1e8) / 1e8;
  }
  return out;
}

export function totalUsd(costs: Record<string, PlatformCost>): number {
  return Math.round(Object.values(costs).reduce((s, c) => s + c.usd, 0) * 1e8) / 1e8;
}
