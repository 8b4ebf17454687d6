/**
 * Lenient scalar parsing for config values written the seed's way: numeric strings ("1e-3", "5", "2048"),
 * memory sizes ("2048MB", "2GB", 2048 → MB) and durations ("300s", "5m", "300000", 300000 → ms).
 * Each parser returns undefined when the value cannot be read, so the caller can report what it found.
 */

const NUMERIC = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

/** A numeric string becomes its number; anything else is returned unchanged (for the schema to judge). */
export function numberLike(v: unknown): unknown {
  if (typeof v === 'string' && NUMERIC.test(v.trim())) return Number(v.trim());
  return v;
}

const MEMORY_UNITS: Record<string, number> = {
  '': 1,
  k: 1 / 1024, kb: 1 / 1024, ki: 1 / 1024, kib: 1 / 1024,
  m: 1, mb: 1, mi: 1, mib: 1,
  g: 1024, gb: 1024, gi: 1024, gib: 1024,
};

/** Memory in MB from 2048, "2048", "2048MB", "2GB", "512Mi" …; undefined if unreadable or not positive. */
export function parseMemoryMB(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && v > 0 ? v : undefined;
  if (typeof v !== 'string') return undefined;
  const m = /^([0-9]*\.?[0-9]+)\s*([a-z]*)$/i.exec(v.trim());
  if (!m) return undefined;
  const factor = MEMORY_UNITS[m[2]!.toLowerCase()];
  const n = Number(m[1]);
  if (factor === undefined || !Number.isFinite(n) || n <= 0) return undefined;
  return n * factor;
}

const DURATION_UNITS: Record<string, number> = {
  '': 1, ms: 1,
  s: 1000, sec: 1000, secs: 1000, second: 1000, seconds: 1000,
  m: 60_000, min: 60_000, mins: 60_000, minute: 60_000, minutes: 60_000,
  h: 3_600_000, hr: 3_600_000, hour: 3_600_000, hours: 3_600_000,
};

/** Duration in ms from 300000, "300000", "300s", "5m", "1h", "250ms"; undefined if unreadable or not positive. */
export function parseDurationMs(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && v > 0 ? v : undefined;
  if (typeof v !== 'string') return undefined;
  const m = /^([0-9]*\.?[0-9]+)\s*([a-z]*)$/i.exec(v.trim());
  if (!m) return undefined;
  const factor = DURATION_UNITS[m[2]!.toLowerCase()];
  const n = Number(m[1]);
  if (factor === undefined || !Number.isFinite(n) || n <= 0) return undefined;
  return Math.round(n * factor);
}
