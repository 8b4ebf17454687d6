/**
 * ConfigError: the one error type the config loader throws. Its message is a single line,
 * `config <source>: <yaml.path>: expected …, found …[; how to fix]`, and the CLI exits with `exitCode` (2).
 * Also the small helpers that build those lines: path formatting, value description, "did you mean".
 */

export type ConfigPath = ReadonlyArray<string | number>;

export class ConfigError extends Error {
  override name = 'ConfigError';
  readonly exitCode = 2;
  /** Further problems found in the same pass (each a full line like `message`); may be empty. */
  readonly more: string[];

  constructor(message: string, more: string[] = []) {
    super(message);
    this.more = more;
  }
}

/** `scenarios.federated_learning.functions.fl_client`, with `[i]` for list indices and quotes for odd keys. */
export function formatPath(path: ConfigPath): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z0-9_-]+$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out === '' ? '(top level)' : out;
}

/**
 * Short one-line description of a found value: `"rmsprop"`, `12`, `a list`, `a mapping`, `nothing`,
 * `an empty value` (YAML `key:` with nothing after it).
 */
export function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'an empty value';
  if (typeof v === 'string') {
    const s = v.length > 60 ? `${v.slice(0, 57)}...` : v;
    return JSON.stringify(s);
  }
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  if (Array.isArray(v)) return v.length === 0 ? 'an empty list' : 'a list';
  if (typeof v === 'object') return 'a mapping';
  return typeof v;
}

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(up + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}

/** The candidate closest to `word` if it is close enough to be a likely typo, else undefined. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  const w = word.toLowerCase();
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(w, c.toLowerCase());
    if (d < bestD) [best, bestD] = [c, d];
  }
  const limit = Math.max(2, Math.floor(w.length / 3));
  return best !== undefined && bestD <= limit ? best : undefined;
}
