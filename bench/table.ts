/**
 * The benchmark table's pure parts, shared by the benches and bench/run.ts: the machine-readable line a bench prints
 * at its end (`BENCH_JSON {...}`), collecting those lines from a bench's output, and the table rows (a figure beside
 * the baseline measured in the same run, their ratio, and the target with a met / NOT met mark).
 */

export const BENCH_JSON_PREFIX = 'BENCH_JSON ';

/** The line a bench prints last: `BENCH_JSON` and one JSON object on one line, `bench` naming the bench. */
export function benchJsonLine(bench: string, figures: Record<string, unknown>): string {
  return BENCH_JSON_PREFIX + JSON.stringify({ bench, ...figures });
}

export interface BenchJson {
  bench: string;
  [key: string]: unknown;
}

/**
 * Every `BENCH_JSON {...}` line of a bench's output, in order (a line may carry a prefix such as a log tag, and CRs
 * are ignored); a line that does not parse as a JSON object with a `bench` name is skipped.
 */
export function collectBenchJson(output: string): BenchJson[] {
  const out: BenchJson[] = [];
  for (const raw of output.split('\n')) {
    const line = raw.replace(/\r$/, '');
    const at = line.indexOf(BENCH_JSON_PREFIX);
    if (at < 0) continue;
    try {
      const v = JSON.parse(line.slice(at + BENCH_JSON_PREFIX.length)) as unknown;
      if (v && typeof v === 'object' && !Array.isArray(v) && typeof (v as BenchJson).bench === 'string') out.push(v as BenchJson);
    } catch {
      // a truncated or foreign line: not a figure
    }
  }
  return out;
}

/** A target of the issue, on the figure itself (`value`) or on figure ÷ baseline (`ratio`). */
export interface Target {
  on: 'value' | 'ratio';
  op: '<=' | '>=';
  limit: number;
}

export interface Row {
  /** What is measured, e.g. `FedAvg of 100 paper-CNN updates`. */
  name: string;
  value: number | null;
  /** Unit of value and baseline (both are in the same unit, so the ratio has none). */
  unit: string;
  /** The same-run baseline: what it is, and its value (null: not measured). */
  baselineName: string;
  baseline: number | null;
  target?: Target;
}

/** value ÷ baseline, or null when either is missing or the baseline is not positive. */
export function ratioOf(row: Pick<Row, 'value' | 'baseline'>): number | null {
  if (row.value === null || row.baseline === null || !Number.isFinite(row.value) || !Number.isFinite(row.baseline) || row.baseline <= 0) return null;
  return row.value / row.baseline;
}

export type Mark = 'met' | 'NOT met' | 'n/a' | '';

/** `met` / `NOT met` against the row's target; `n/a` when the figure it needs is missing; empty without a target. */
export function targetMark(row: Row): Mark {
  const t = row.target;
  if (!t) return '';
  const x = t.on === 'value' ? row.value : ratioOf(row);
  if (x === null || !Number.isFinite(x)) return 'n/a';
  return (t.op === '<=' ? x <= t.limit : x >= t.limit) ? 'met' : 'NOT met';
}

/** A number as the table shows it: ≥ 100 whole, ≥ 10 one decimal, else up to three significant decimals. */
export function formatNumber(v: number | null): string {
  if (v === null || !Number.isFinite(v)) return '-';
  const a = Math.abs(v);
  const s = a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : a >= 1 ? v.toFixed(2) : v.toFixed(3);
  return a >= 1000 ? Number(s).toLocaleString('en-US') : s;
}

/** A target as text: `≤ 1.5×` (ratio), `≥ 3,500 samples/s` (value). */
export function formatTarget(t: Target | undefined, unit: string): string {
  if (!t) return '';
  const op = t.op === '<=' ? '≤' : '≥';
  const limit = t.limit.toLocaleString('en-US', { maximumFractionDigits: 3 });
  if (t.on === 'ratio') return `${op} ${limit}× baseline`;
  return `${op} ${limit} ${unit}`;
}

const HEADER = ['figure', 'value', 'unit', 'baseline (same run)', 'baseline', 'ratio', 'target', 'met?'] as const;
/** Columns right-aligned (numbers). */
const RIGHT = new Set([1, 4, 5]);

/** The table as text lines: one header, a rule, one line per row, columns padded to their widest cell. */
export function formatTable(rows: Row[]): string[] {
  const cells = rows.map((r) => {
    const ratio = ratioOf(r);
    return [r.name, formatNumber(r.value), r.unit, r.baselineName, formatNumber(r.baseline), ratio === null ? '-' : `${ratio.toFixed(2)}×`, formatTarget(r.target, r.unit), targetMark(r)];
  });
  const width = HEADER.map((h, i) => Math.max([...h].length, ...cells.map((c) => [...c[i]!].length)));
  const pad = (s: string, i: number) => {
    const fill = ' '.repeat(width[i]! - [...s].length);
    return RIGHT.has(i) ? fill + s : s + fill;
  };
  const line = (c: readonly string[]) => c.map(pad).join('  ').trimEnd();
  return [line(HEADER), width.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)];
}

/** The median of the finite numbers given, or null when there are none. */
export function medianOf(xs: readonly (number | null | undefined)[]): number | null {
  const s = xs.filter((x): x is number => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return null;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** A rounds.csv (header line, then rows) as objects keyed by column name; numbers where a field parses as one. */
export function parseCsv(text: string): Record<string, string>[] {
  const [head, ...lines] = text.trim().split('\n').map((l) => l.replace(/\r$/, ''));
  if (!head) return [];
  const cols = splitCsvLine(head);
  return lines.filter((l) => l.length > 0).map((l) => {
    const f = splitCsvLine(l);
    return Object.fromEntries(cols.map((c, i) => [c, f[i] ?? '']));
  });
}

/** One CSV line into fields (RFC 4180 quotes: "a,b" and "" inside quotes). */
export function splitCsvLine(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cur += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

/** A field as a number, or null when empty or not numeric. */
export function num(v: unknown): number | null {
  if (v === null || v === undefined || v === '') return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}
