/**
 * The report's data: a run directory (summary.json, rounds.csv, activations/<round>.csv, events.jsonl, config.yaml)
 * read and shaped into per-round series, duration distributions per platform:cluster, per-round counts of cold
 * starts, failures, retries and dropped clients, the differences between the runs' configs, and the paper setup a
 * run matches. No HTML here (see html.ts).
 *
 * Columns are read by their header name: rounds.csv may carry more columns than this version knows (they are kept
 * and shown), and lack some it knows (they are empty). What the report cannot do without — summary.json with a name,
 * a status and a round count, rounds.csv with `round` and `accuracy` — is a ReportInputError (exit code 2).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { PAPER_LABEL, PAPER_SETUPS, type PaperSetup } from './paper-curves.js';
import { configurationsOf, prometheusSeries, type ClusterPrometheusSeries } from './prometheus.js';

/** A run directory the report cannot read: one line naming it and what is wrong; exit code 2. */
export class ReportInputError extends Error {
  override name = 'ReportInputError';
  readonly exitCode = 2;
}

// ---------------------------------------------------------------------------------------------------------------
// CSV (RFC 4180: quoted fields may hold commas, quotes and line breaks — an activation's error text does)

export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  let i = 0;
  const endField = () => {
    row.push(field);
    field = '';
  };
  const endRow = () => {
    endField();
    if (!(row.length === 1 && row[0] === '')) rows.push(row);
    row = [];
  };
  while (i < text.length) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
      } else field += c;
      i++;
      continue;
    }
    if (c === '"' && field === '') quoted = true;
    else if (c === ',') endField();
    else if (c === '\n') endRow();
    else if (c !== '\r') field += c;
    i++;
  }
  if (field !== '' || row.length) endRow();
  return rows;
}

export interface CsvTable {
  header: string[];
  rows: Record<string, string>[];
}

export function csvTable(text: string): CsvTable {
  const [header = [], ...rows] = parseCsv(text);
  const cols = header.map((h) => h.trim());
  return { header: cols, rows: rows.map((r) => Object.fromEntries(cols.map((c, i) => [c, r[i] ?? '']))) };
}

/** A number, or null for an empty or non-numeric field. */
export function num(v: unknown): number | null {
  if (typeof v === 'number') return Number.isFinite(v) ? v : null;
  if (typeof v !== 'string' || v.trim() === '') return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

/** The same nearest-rank quantile summary.json's duration statistics use. */
export function quantile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

// ---------------------------------------------------------------------------------------------------------------
// What a run directory holds

/** The columns of rounds.csv this version draws; any other column is kept as it is. */
export const KNOWN_ROUND_COLUMNS = ['round', 'accuracy', 'loss', 'invoke_s', 'train_s', 'agg_s', 'total_s', 'clients', 'dropped', 'samples', 'retries', 'failures'] as const;

export interface RoundSeries {
  /** rounds.csv's header, as written (known and unknown columns). */
  columns: string[];
  /** Round numbers, ascending (a round written twice — a resumed run — keeps its last row). */
  round: number[];
  /** Every column but `round`, by header name, aligned with `round`; null where empty or not a number. */
  values: Record<string, (number | null)[]>;
}

/** Client-activation durations (successful client activations, seconds) of one platform:cluster, per round. */
export interface DurationGroup {
  group: string;
  count: number[];
  min: (number | null)[];
  median: (number | null)[];
  p90: (number | null)[];
  max: (number | null)[];
}

export interface DurationTable {
  /** The rounds the groups' arrays are aligned with. */
  round: number[];
  groups: DurationGroup[];
}

/** Per round (round 0: the server's init): what went wrong or was slow to start. */
export interface RoundCounts {
  round: number[];
  /** Activations (any function) that started a new container or environment. */
  cold_starts: number[];
  /** Activations that did not succeed (errors, timeouts, crashes). */
  failures: number[];
  /** Clients re-invoked after a failed attempt. */
  retries: number[];
  /** Platform calls repeated after a transient error (HTTP 429/5xx, network). */
  call_retries: number[];
  /** Clients dropped from the round (round_timeout / min_fit_fraction). */
  dropped: number[];
  /** Client updates the aggregator rejected. */
  rejected: number[];
}

export interface RunSetup {
  model?: string;
  optimizer?: string;
  local_epochs?: number;
  clients_per_round?: number;
}

export interface RunInfo {
  run_id: string;
  name: string;
  status: string;
  rounds: number;
  final_accuracy: number | null;
  final_loss: number | null;
  best_accuracy: number | null;
  target_accuracy: number | null;
  reached_target: boolean | null;
  wall_s: number | null;
  engine: string | null;
  engine_blas: string | null;
  engine_threads: number | null;
  seed: number | null;
  store: string | null;
  dataset: string | null;
  partition: string | null;
  /** platform:cluster of every cluster that ran an activation. */
  platforms: string[];
  /** function (platform:cluster/function) → sha256 of the package it ran. */
  artifacts: Record<string, string>;
  invocations: number | null;
  retries: number | null;
  failures: number | null;
  call_retries: number | null;
  started_at: string | null;
  finished_at: string | null;
  final_weights_sha256: string | null;
  error: string | null;
  /** What the run would cost at list prices (summary.json `cost`), null when the run has none (older or running). */
  cost: RunCost | null;
  /** "platform:cluster" → the cluster's configurations block (what the platform is), from summary.json. */
  configurations: Record<string, Record<string, unknown>>;
}

export interface RunCost {
  /** platform → invocations, GB-seconds billed, USD. */
  by_platform: Record<string, { invocations: number | null; gb_seconds: number | null; usd: number | null }>;
  total_usd: number | null;
  prices_as_of: string | null;
}

function costOf(v: unknown): RunCost | null {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return null;
  const c = v as Record<string, unknown>;
  const by: RunCost['by_platform'] = {};
  if (c.by_platform && typeof c.by_platform === 'object') {
    for (const [p, x] of Object.entries(c.by_platform as Record<string, Record<string, unknown> | null>)) {
      by[p] = { invocations: num(x?.invocations), gb_seconds: num(x?.gb_seconds), usd: num(x?.usd) };
    }
  }
  return { by_platform: by, total_usd: num(c.total_usd), prices_as_of: str(c.prices_as_of) };
}

/** One run directory, read. */
export interface RunData {
  /** The directory as given. */
  dir: string;
  info: RunInfo;
  setup: RunSetup;
  /** config.yaml flattened to dotted keys (undefined: no readable config.yaml). */
  config?: Record<string, string>;
  rounds: RoundSeries;
  durations: DurationTable;
  counts: RoundCounts;
  /** Per cluster with a prometheus_config: its Prometheus figures per round (rounds.csv prom_* columns). */
  prometheus: ClusterPrometheusSeries[];
}

// ---------------------------------------------------------------------------------------------------------------
// Reading

const str = (v: unknown): string | null => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : null);
const bool = (v: unknown): boolean | null => (typeof v === 'boolean' ? v : null);

function readRoundSeries(dir: string, text: string): RoundSeries {
  const table = csvTable(text);
  const missing = ['round', 'accuracy'].filter((c) => !table.header.includes(c));
  if (missing.length) {
    throw new ReportInputError(`${dir}: rounds.csv has no ${missing.join(' or ')} column (header: ${table.header.join(',') || 'empty'}); written by an incompatible FedKeeper version?`);
  }
  const byRound = new Map<number, Record<string, string>>();
  for (const [i, row] of table.rows.entries()) {
    const r = num(row.round);
    if (r === null || !Number.isInteger(r) || r < 0) throw new ReportInputError(`${dir}: rounds.csv line ${i + 2} has no round number ("${row.round}")`);
    byRound.set(r, row);
  }
  const round = [...byRound.keys()].sort((a, b) => a - b);
  const values: Record<string, (number | null)[]> = {};
  for (const c of table.header) if (c !== 'round') values[c] = round.map((r) => num(byRound.get(r)![c]));
  return { columns: table.header, round, values };
}

export interface ActivationRow {
  round: number;
  client_id: number | null;
  function: string;
  group: string;
  duration: number | null;
  status: string;
  attempt: number | null;
  cold_start: boolean;
}

function readActivations(dir: string): ActivationRow[] {
  const adir = path.join(dir, 'activations');
  if (!existsSync(adir)) return [];
  const out: ActivationRow[] = [];
  for (const f of readdirSync(adir)) {
    const m = /^(\d+)\.csv$/.exec(f);
    if (!m) continue;
    const round = Number(m[1]);
    for (const row of csvTable(readFileSync(path.join(adir, f), 'utf8')).rows) {
      out.push({
        round,
        client_id: num(row.client_id),
        function: row.function ?? '',
        group: `${row.platform || '?'}:${row.cluster || '?'}`,
        duration: num(row.duration),
        status: row.status ?? '',
        attempt: num(row.attempt),
        cold_start: row.cold_start === 'true',
      });
    }
  }
  return out;
}

export interface RunEvent {
  type: string;
  round?: number;
  [k: string]: unknown;
}

function readEvents(dir: string): RunEvent[] {
  const f = path.join(dir, 'events.jsonl');
  if (!existsSync(f)) return [];
  const out: RunEvent[] = [];
  for (const line of readFileSync(f, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      const e = JSON.parse(line) as RunEvent;
      if (e && typeof e.type === 'string') out.push(e);
    } catch {
      // a line cut short by a crash: the lines before it still count
    }
  }
  return out;
}

/** Duration distribution per platform:cluster and round, from the successful client activations. */
export function durationTable(rows: readonly ActivationRow[]): DurationTable {
  const clients = rows.filter((r) => r.client_id !== null && r.client_id >= 0 && r.status === 'success' && r.duration !== null);
  const round = [...new Set(clients.map((r) => r.round))].sort((a, b) => a - b);
  const groupNames = [...new Set(clients.map((r) => r.group))].sort();
  const groups = groupNames.map((group): DurationGroup => {
    const g: DurationGroup = { group, count: [], min: [], median: [], p90: [], max: [] };
    for (const r of round) {
      const d = clients.filter((a) => a.group === group && a.round === r).map((a) => a.duration!).sort((a, b) => a - b);
      g.count.push(d.length);
      g.min.push(d[0] ?? null);
      g.median.push(quantile(d, 0.5));
      g.p90.push(quantile(d, 0.9));
      g.max.push(d.at(-1) ?? null);
    }
    return g;
  });
  return { round, groups };
}

/**
 * Per-round counts. rounds.csv's `failures`, `retries` and `dropped` are used where the round has a row with them;
 * otherwise (a round that failed, an older run) they are counted from the activations and events.
 */
export function roundCounts(rounds: RoundSeries, rows: readonly ActivationRow[], events: readonly RunEvent[]): RoundCounts {
  const all = new Set<number>(rounds.round);
  for (const a of rows) all.add(a.round);
  const callRetries = new Map<number, number>();
  const dropped = new Map<number, number>();
  const rejected = new Map<number, number>();
  const bump = (m: Map<number, number>, r: number, by = 1) => m.set(r, (m.get(r) ?? 0) + by);
  // call_retry events name no round: they belong to the round started last (0 before the first: the init)
  let current = 0;
  for (const e of events) {
    const r = typeof e.round === 'number' ? e.round : current;
    if (e.type === 'round_started') current = r;
    else if (e.type === 'call_retry') bump(callRetries, r);
    else if (e.type === 'clients_dropped') bump(dropped, r, Array.isArray(e.dropped) ? e.dropped.length : 1);
    else if (e.type === 'update_rejected') bump(rejected, r);
    else continue;
    all.add(r);
  }
  const round = [...all].sort((a, b) => a - b);
  const fromCsv = (col: string, r: number): number | null => {
    const i = rounds.round.indexOf(r);
    return i < 0 ? null : (rounds.values[col]?.[i] ?? null);
  };
  const of = (r: number) => rows.filter((a) => a.round === r);
  return {
    round,
    cold_starts: round.map((r) => of(r).filter((a) => a.cold_start).length),
    failures: round.map((r) => fromCsv('failures', r) ?? of(r).filter((a) => a.status !== 'success' && a.status !== 'running').length),
    retries: round.map((r) => fromCsv('retries', r) ?? of(r).filter((a) => a.client_id !== null && a.client_id >= 0 && (a.attempt ?? 1) > 1).length),
    call_retries: round.map((r) => callRetries.get(r) ?? 0),
    dropped: round.map((r) => fromCsv('dropped', r) ?? dropped.get(r) ?? 0),
    rejected: round.map((r) => rejected.get(r) ?? 0),
  };
}

/** A parsed config flattened to dotted keys; arrays and scalars become their JSON text (strings stay bare). */
export function flattenConfig(value: unknown, prefix = '', out: Record<string, string> = {}): Record<string, string> {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const entries = Object.entries(value as Record<string, unknown>);
    if (!entries.length && prefix) out[prefix] = '{}';
    for (const [k, v] of entries) flattenConfig(v, prefix ? `${prefix}.${k}` : k, out);
  } else if (prefix) {
    out[prefix] = typeof value === 'string' ? value : JSON.stringify(value ?? null);
  }
  return out;
}

const FL = 'scenarios.federated_learning';

/** model, optimizer, local epochs and clients per round: summary.json first, config.yaml for what it lacks. */
export function setupOf(summary: Record<string, unknown>, config: Record<string, string> | undefined): RunSetup {
  const c = (k: string) => config?.[`${FL}.${k}`];
  const model = str(summary.model) ?? c('data_sampling.model') ?? undefined;
  const optimizer = str(summary.optimizer) ?? c('model_params.optim') ?? undefined;
  const local_epochs = num(summary.local_epochs) ?? num(c('model_params.local_epochs')) ?? undefined;
  const clients_per_round = num(summary.clients_per_round) ?? num(c('clients_info.num_clients_per_round')) ?? undefined;
  return {
    ...(model !== undefined ? { model } : {}),
    ...(optimizer !== undefined ? { optimizer } : {}),
    ...(local_epochs !== undefined ? { local_epochs } : {}),
    ...(clients_per_round !== undefined ? { clients_per_round } : {}),
  };
}

/**
 * Reads and checks one run directory; a directory the report cannot use is a ReportInputError. `running`: the run is still going (the live dashboard): summary.json may be missing (a
 * new run writes it at its end) or be an earlier keeper life's (a resumed run); the run's name comes from its
 * config.yaml then, its status is `running` and its rounds are those in rounds.csv.
 */
export function readRunDir(dir: string, opts: { running?: boolean } = {}): RunData {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new ReportInputError(`${dir}: no such run directory`);
  const running = opts.running === true;
  const missing = ['summary.json', 'rounds.csv'].filter((f) => !existsSync(path.join(dir, f)) && !(running && f === 'summary.json'));
  if (missing.length === 1 && missing[0] === 'summary.json') {
    throw new ReportInputError(`${dir} has no summary.json: a run still going, or one killed before its end (fedkeeper run --resume ${dir} finishes it)`);
  }
  if (missing.length) throw new ReportInputError(`${dir} is not a FedKeeper run directory (no ${missing.join(', no ')})`);
  const rounds = readRoundSeries(dir, readFileSync(path.join(dir, 'rounds.csv'), 'utf8'));
  let config: Record<string, string> | undefined;
  const cfgFile = path.join(dir, 'config.yaml');
  if (existsSync(cfgFile)) {
    try {
      config = flattenConfig(parseYaml(readFileSync(cfgFile, 'utf8')));
    } catch {
      config = undefined; // an unreadable config only costs the config differences and the paper match by it
    }
  }
  let summary: Record<string, unknown> = {};
  if (existsSync(path.join(dir, 'summary.json'))) {
    try {
      summary = JSON.parse(readFileSync(path.join(dir, 'summary.json'), 'utf8'));
    } catch (e) {
      throw new ReportInputError(`${dir}: summary.json is not valid JSON (${(e as Error).message.split('\n')[0]})`);
    }
    if (summary === null || typeof summary !== 'object' || Array.isArray(summary)) throw new ReportInputError(`${dir}: summary.json is not a JSON object`);
  }
  if (running) {
    summary = { ...summary, name: typeof summary.name === 'string' ? summary.name : (config?.name ?? path.basename(path.resolve(dir))), status: 'running', rounds: rounds.round.length ? rounds.round[rounds.round.length - 1]! : 0 };
    delete summary.error;
    delete summary.finished_at;
  }
  const lacks = [
    typeof summary.name !== 'string' && 'name',
    typeof summary.status !== 'string' && 'status',
    typeof summary.rounds !== 'number' && 'rounds',
  ].filter((x): x is string => typeof x === 'string');
  if (lacks.length) throw new ReportInputError(`${dir}: summary.json lacks ${lacks.join(', ')}; written by an incompatible FedKeeper version?`);

  const activations = readActivations(dir);
  const events = readEvents(dir);

  const clusters = new Set<string>(Object.keys((summary.durations_by_cluster as Record<string, unknown> | undefined) ?? {}));
  for (const a of activations) if (a.group !== '?:?') clusters.add(a.group);
  const artifacts: Record<string, string> = {};
  if (summary.artifacts && typeof summary.artifacts === 'object') {
    for (const [k, v] of Object.entries(summary.artifacts as Record<string, unknown>)) artifacts[k] = str(v) ?? JSON.stringify(v);
  }
  const info: RunInfo = {
    run_id: str(summary.run_id) ?? path.basename(path.resolve(dir)),
    name: summary.name as string,
    status: summary.status as string,
    rounds: summary.rounds as number,
    final_accuracy: num(summary.final_accuracy),
    final_loss: num(summary.final_loss),
    best_accuracy: num(summary.best_accuracy),
    target_accuracy: num(summary.target_accuracy),
    reached_target: bool(summary.reached_target),
    wall_s: num(summary.wall_s),
    engine: str(summary.engine),
    engine_blas: str(summary.engine_blas),
    engine_threads: num(summary.engine_threads),
    seed: num(summary.seed),
    store: str(summary.store),
    dataset: str(summary.dataset),
    partition: str(summary.partition),
    platforms: [...clusters].sort(),
    artifacts,
    invocations: num(summary.invocations),
    retries: num(summary.retries),
    failures: num(summary.failures),
    call_retries: num(summary.call_retries),
    started_at: str(summary.started_at),
    finished_at: str(summary.finished_at),
    final_weights_sha256: str(summary.final_weights_sha256),
    error: str(summary.error),
    cost: costOf(summary.cost),
    configurations: configurationsOf(summary),
  };
  return {
    dir,
    info,
    setup: setupOf(summary, config),
    ...(config ? { config } : {}),
    rounds,
    durations: durationTable(activations),
    counts: roundCounts(rounds, activations, events),
    prometheus: prometheusSeries(rounds),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Several runs: what differs, labels, the paper

/** Keys that say nothing about the experiment (the name is in every label anyway). */
const NOT_A_DIFFERENCE = new Set(['name', 'version']);

export interface ConfigDifference {
  /** Full dotted key, e.g. scenarios.federated_learning.model_params.optim */
  key: string;
  /** The shortest unambiguous tail of the key, e.g. optim */
  short: string;
  /** Per run (undefined: the run's config lacks the key or has no config.yaml). */
  values: (string | undefined)[];
}

/** The config keys whose values differ between the runs (runs without a config.yaml are left out of the comparison). */
export function configDifferences(configs: readonly (Record<string, string> | undefined)[]): ConfigDifference[] {
  const present = configs.filter((c): c is Record<string, string> => c !== undefined);
  if (present.length < 2) return [];
  const keys = [...new Set(present.flatMap((c) => Object.keys(c)))].filter((k) => !NOT_A_DIFFERENCE.has(k)).sort();
  const differing = keys.filter((k) => new Set(present.map((c) => c[k])).size > 1);
  // the shortest tail of each key that no other differing key shares
  const shorts = differing.map((k) => {
    const parts = k.split('.');
    for (let n = 1; n <= parts.length; n++) {
      const tail = parts.slice(-n).join('.');
      if (!differing.some((o) => o !== k && (o === tail || o.endsWith(`.${tail}`)))) return tail;
    }
    return k;
  });
  return differing.map((key, i) => ({ key, short: shorts[i]!, values: configs.map((c) => c?.[key]) }));
}

/** "optim=adam vs sgd; local_epochs=1 vs 5" — what differs between the runs, in one line. */
export function differenceHeadline(diffs: readonly ConfigDifference[]): string {
  return diffs.map((d) => `${d.short}=${d.values.map((v) => v ?? '(none)').join(' vs ')}`).join('; ');
}

const MAX_LABEL_KEYS = 4;

/** Each run's label: its name (its run id when names repeat) and its own values of the differing keys. */
export function runLabels(runs: readonly { name: string; run_id: string }[], diffs: readonly ConfigDifference[]): string[] {
  return runs.map((r, i) => {
    const unique = runs.filter((o) => o.name === r.name).length === 1;
    const base = unique ? r.name : r.run_id;
    const own = diffs.filter((d) => d.values[i] !== undefined).map((d) => `${d.short}=${d.values[i]}`);
    if (!own.length) return base;
    const shown = own.slice(0, MAX_LABEL_KEYS).join(', ');
    return `${base} (${shown}${own.length > MAX_LABEL_KEYS ? `, +${own.length - MAX_LABEL_KEYS} more` : ''})`;
  });
}

/** The paper's "nn" is FedKeeper's mnistnn. */
function canonicalModel(m: string): string {
  const l = m.trim().toLowerCase();
  return l === 'nn' ? 'mnistnn' : l;
}

/** The paper setup a run reproduces: same model, optimizer, local epochs and clients per round (all four known). */
export function matchPaperSetup(setup: RunSetup, setups: readonly PaperSetup[] = PAPER_SETUPS): PaperSetup | undefined {
  const { model, optimizer, local_epochs, clients_per_round } = setup;
  if (model === undefined || optimizer === undefined || local_epochs === undefined || clients_per_round === undefined) return undefined;
  return setups.find(
    (p) =>
      canonicalModel(p.model) === canonicalModel(model) &&
      p.optimizer.toLowerCase() === optimizer.trim().toLowerCase() &&
      p.local_epochs === local_epochs &&
      p.clients_per_round === clients_per_round,
  );
}

export interface PaperCurve {
  id: string;
  label: string;
  source: string;
  model: string;
  optimizer: string;
  local_epochs: number;
  clients_per_round: number;
  inferred: string;
  round: number[];
  accuracy: number[];
  loss: number[];
  /** Indexes (into ReportData.runs) of the runs that match this setup. */
  runs: number[];
}

export interface RunView {
  id: string;
  name: string;
  label: string;
  info: RunInfo;
  setup: RunSetup;
  /** The id of the paper setup this run matches, if any. */
  paper: string | null;
  rounds: RoundSeries;
  durations: DurationTable;
  counts: RoundCounts;
  prometheus: ClusterPrometheusSeries[];
}

/** Everything the report draws, as it is embedded in the HTML. */
export interface ReportData {
  format: 1;
  generated_at: string;
  differences: ConfigDifference[];
  /** differenceHeadline(differences), '' for one run or identical configs. */
  headline: string;
  runs: RunView[];
  /** The paper curves matched by at least one run. */
  paper: PaperCurve[];
  /** Every setup the project carries, for the report to list (without their curves). */
  paper_setups: { id: string; model: string; optimizer: string; local_epochs: number; clients_per_round: number; rounds: number; source: string; inferred: string }[];
}

const describeSetup = (p: PaperSetup) => `${p.model}, ${p.optimizer}, ${p.local_epochs} local epoch(s), ${p.clients_per_round} clients/round`;

export function shapeReport(runs: readonly RunData[], generatedAt = new Date()): ReportData {
  const differences = configDifferences(runs.map((r) => r.config));
  const labels = runLabels(runs.map((r) => r.info), differences);
  const matches = runs.map((r) => matchPaperSetup(r.setup));
  const paper: PaperCurve[] = [];
  for (const [i, p] of matches.entries()) {
    if (!p) continue;
    let curve = paper.find((c) => c.id === p.id);
    if (!curve) {
      curve = {
        id: p.id,
        label: `${PAPER_LABEL}: ${describeSetup(p)}`,
        source: p.source,
        model: p.model,
        optimizer: p.optimizer,
        local_epochs: p.local_epochs,
        clients_per_round: p.clients_per_round,
        inferred: p.inferred,
        round: p.accuracy.map((_, k) => k + 1),
        accuracy: [...p.accuracy],
        loss: [...p.loss],
        runs: [],
      };
      paper.push(curve);
    }
    curve.runs.push(i);
  }
  return {
    format: 1,
    generated_at: generatedAt.toISOString(),
    differences,
    headline: differenceHeadline(differences),
    runs: runs.map((r, i) => ({
      id: r.info.run_id,
      name: r.info.name,
      label: labels[i]!,
      info: r.info,
      setup: r.setup,
      paper: matches[i]?.id ?? null,
      rounds: r.rounds,
      durations: r.durations,
      counts: r.counts,
      prometheus: r.prometheus,
    })),
    paper,
    paper_setups: PAPER_SETUPS.map((p) => ({ id: p.id, model: p.model, optimizer: p.optimizer, local_epochs: p.local_epochs, clients_per_round: p.clients_per_round, rounds: p.rounds, source: p.source, inferred: p.inferred })),
  };
}
