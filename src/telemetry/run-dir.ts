/**
 * The run directory (design §3): summary.json, rounds.csv, activations/<round>.csv, events.jsonl, config.yaml
 * (redacted). Activation rows and events are written at the end of the turn of the event loop that produced them,
 * one write per file per turn (a round of 1,000 clients makes thousands of lines: one synchronous write each was
 * a cost per client), and at once before a round row, the summary, close, and the process's exit; rounds.csv rows
 * are written synchronously. So a crash leaves every line written so far, but a kill -9 the lines of its last turn.
 * summary.json is written atomically (temp file + rename).
 */
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { csvLine } from './csv.js';

/**
 * rounds.csv columns. New columns go at the end (readers that index columns keep working). Times in seconds:
 * invoke_s, train_s, agg_s and total_s are the keeper's wall clock (agg_s: the whole aggregation step, from the last
 * client done to the round recorded); fedavg_s and eval_s are what the aggregator function measured inside it:
 * fedavg_s its reading, checking and averaging of the updates (its aggSeconds), eval_s its evaluation of the new
 * global model on the test set (its evalSeconds).
 */
export const ROUND_COLUMNS = ['round', 'accuracy', 'loss', 'invoke_s', 'train_s', 'agg_s', 'total_s', 'clients', 'dropped', 'samples', 'retries', 'failures', 'fedavg_s', 'eval_s', 'keeper_cpu_s', 'cost_usd'] as const;
export const ACTIVATION_COLUMNS = [
  'client_id',
  'function',
  'platform',
  'cluster',
  'activation_id',
  'start_time',
  'end_time',
  'duration',
  'status',
  'attempt',
  'cold_start',
  'num_samples',
  'loss',
  'accuracy',
  'via',
  'error',
  'instance',
] as const;

export type RoundRow = Record<(typeof ROUND_COLUMNS)[number], number | string>;
export type ActivationRow = Record<(typeof ACTIVATION_COLUMNS)[number], number | string | boolean | undefined>;

/** Run directories with lines not yet written: written when the process exits (an uncaught error, process.exit). */
const withPendingLines = new Set<RunDirectory>();
process.on('exit', () => {
  for (const rd of [...withPendingLines]) {
    try {
      rd.flush();
    } catch {
      // the directory is gone: nothing to write to
    }
  }
});

export class RunDirectory {
  private readonly activationFiles = new Set<number>();

  /** The columns of this directory's rounds.csv: ROUND_COLUMNS, or a resumed older run's (its header's) columns. */
  private constructor(
    readonly dir: string,
    private readonly roundColumns: readonly string[] = ROUND_COLUMNS,
  ) {}

  /**
   * Creates a new, empty run directory (fails if it exists). `extraColumns` go after ROUND_COLUMNS in rounds.csv: the
   * columns a run's config adds (per-cluster Prometheus figures, telemetry/prometheus-rounds.ts).
   */
  static create(dir: string, extraColumns: readonly string[] = []): RunDirectory {
    mkdirSync(path.dirname(dir), { recursive: true });
    mkdirSync(dir);
    mkdirSync(path.join(dir, 'activations'));
    const columns = [...ROUND_COLUMNS, ...extraColumns.filter((c) => !(ROUND_COLUMNS as readonly string[]).includes(c))];
    const rd = new RunDirectory(dir, columns);
    writeFileSync(path.join(dir, 'rounds.csv'), csvLine(columns));
    writeFileSync(path.join(dir, 'events.jsonl'), '');
    return rd;
  }

  /**
   * Opens an existing run directory to continue it (resume); appends only. Rows keep the columns of the file's
   * header, so a run started by an older version (fewer columns) stays a consistent CSV.
   */
  static open(dir: string): RunDirectory {
    const rounds = path.join(dir, 'rounds.csv');
    if (!existsSync(rounds)) throw new Error(`${dir} is not a FedKeeper run directory (no rounds.csv)`);
    const head = readFileSync(rounds, 'utf8').split('\n', 1)[0]!.trim();
    return new RunDirectory(dir, head ? head.split(',') : ROUND_COLUMNS);
  }

  /** The rounds written so far (rounds.csv rows, as text fields). */
  readRounds(): Record<string, string>[] {
    const [head, ...rows] = readFileSync(path.join(this.dir, 'rounds.csv'), 'utf8').trim().split('\n');
    const cols = head!.split(',');
    return rows.filter(Boolean).map((r) => Object.fromEntries(r.split(',').map((v, i) => [cols[i]!, v])));
  }

  readJson<T>(name: string): T | undefined {
    const f = path.join(this.dir, name);
    return existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as T) : undefined;
  }

  writeText(name: string, text: string): void {
    writeFileSync(path.join(this.dir, name), text);
  }

  /** Files appended to, kept open (a round of 1,000 clients appends thousands of lines): path → descriptor. */
  private readonly open = new Map<string, number>();

  /** Lines waiting for the end of this turn, per file, in order. */
  private readonly pending = new Map<string, string[]>();

  /** Appends to a file of the directory at the end of this turn (see the top of this file). */
  private append(file: string, text: string): void {
    const lines = this.pending.get(file);
    if (lines) {
      lines.push(text);
      return;
    }
    this.pending.set(file, [text]);
    if (this.pending.size === 1) {
      withPendingLines.add(this);
      setImmediate(() => this.flush());
    }
  }

  /** Writes the waiting lines, through descriptors opened once (O_APPEND, as appendFileSync). */
  flush(): void {
    if (this.pending.size === 0) return;
    withPendingLines.delete(this);
    for (const [file, lines] of this.pending) {
      let fd = this.open.get(file);
      if (fd === undefined) {
        fd = openSync(file, 'a');
        this.open.set(file, fd);
      }
      writeSync(fd, lines.length === 1 ? lines[0]! : lines.join(''));
    }
    this.pending.clear();
  }

  /** Writes the waiting lines and closes the files kept open for appending (later appends open them again). */
  close(): void {
    this.flush();
    for (const fd of this.open.values()) closeSync(fd);
    this.open.clear();
  }

  event(type: string, data: Record<string, unknown> = {}): void {
    this.append(path.join(this.dir, 'events.jsonl'), JSON.stringify({ ts: new Date().toISOString(), type, ...data }) + '\n');
  }

  /** A round's row; fields of columns this directory does not have are left out, columns the row lacks are empty. */
  round(row: RoundRow & Record<string, number | string>): void {
    this.flush();
    const values: Record<string, number | string> = row;
    appendFileSync(path.join(this.dir, 'rounds.csv'), csvLine(this.roundColumns.map((c) => values[c])));
  }

  /** Activation rows of a round; round 0 holds the server init. */
  activation(round: number, row: ActivationRow): void {
    const file = path.join(this.dir, 'activations', `${round}.csv`);
    if (!this.activationFiles.has(round) && !existsSync(file)) {
      writeFileSync(file, csvLine(ACTIVATION_COLUMNS));
      this.activationFiles.add(round);
    }
    this.append(file, csvLine(ACTIVATION_COLUMNS.map((c) => row[c])));
  }

  summary(summary: Record<string, unknown>): void {
    this.flush();
    const file = path.join(this.dir, 'summary.json');
    writeFileSync(`${file}.tmp`, JSON.stringify(summary, null, 2) + '\n');
    renameSync(`${file}.tmp`, file);
  }

  /** Removes the whole directory (used when a run is refused before anything useful happened). */
  discard(): void {
    this.pending.clear();
    withPendingLines.delete(this);
    this.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
