/**
 * `npm run bench`: the benches one after another, each in its own child process (so they do not disturb each
 * other), each under a header; their figures are read from the `BENCH_JSON {...}` line each prints last, and one
 * table at the end puts every figure beside a baseline measured in the same run (a shared machine shows in both),
 * with the ratio and, where the issue sets one, its target and whether it is met. Sections:
 *
 *  - engines:    bench/ml-engines.ts: sgemm GFLOP/s (OpenBLAS via the addon, 1 and N threads), paper-CNN training
 *                samples/s at batch 10 and 32 (native ×N, wasm) and its conv/matmul GFLOP/s ÷ sgemm ×N;
 *  - dispatch:   bench/openwhisk-local.ts: 100 and 1,000 invocations through the local OpenWhisk platform with the
 *                real `openwhisk` client (until all activation ids are back) vs as many raw concurrent loopback POSTs;
 *  - aggregator: bench/aggregator.ts: FedAvg of 100 paper-CNN updates vs a plain in-memory weighted sum, the whole
 *                aggregator step with 10,000 test images (wasm as function packages run it, and wasm+native as
 *                local containers do), peak RSS at 100 and 1,000 updates (each vs evaluation alone);
 *  - keeper:     the real CLI on a temp config (local provider, pool_size 2, mnistnn hidden 8, 1,000 clients per
 *                round, 2 rounds): the keeper's peak RSS and CPU seconds per round vs the same config at 10 clients;
 *  - paper:      (opt-in, --paper; minutes) one round of examples/paper-cnn-100.yaml through the real CLI: round 1's
 *                total_s, train_s, agg_s; skipped in one line when the Fashion-MNIST files it names are missing.
 *                --layouts (implies --paper) also runs it with fewer training processes and more native threads
 *                each (P/2 × 2, …, 1 × P on P cores) beside the default (P × 1).
 *
 *   npm run bench [-- --quick] [-- --only engines,dispatch] [-- --paper [--layouts]]
 *   node dist/bench/run.js [--quick] [--only SECTION,…] [--paper [--layouts]]
 *
 * --quick: small sizes, a smoke check (its figures are not the issue's, so no targets are marked).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { BENCH_JSON_PREFIX, collectBenchJson, formatNumber, formatTable, medianOf, num, parseCsv, targetMark, type BenchJson, type Row } from './table.js';

const SECTIONS = ['engines', 'dispatch', 'aggregator', 'keeper', 'paper'] as const;
type Section = (typeof SECTIONS)[number];

const HERE = path.dirname(fileURLToPath(import.meta.url)); // dist/bench
const ROOT = path.resolve(HERE, '..', '..');
const CLI = path.resolve(HERE, '..', 'src', 'cli', 'main.js');
const rel = (p: string) => path.relative(process.cwd(), p) || p;

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    paper: { type: 'boolean', default: false },
    layouts: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  process.stdout.write(`usage: npm run bench [-- --quick] [-- --only ${SECTIONS.join(',')}] [-- --paper [--layouts]]\n`);
  process.exit(0);
}
let chosen: Section[];
if (values.only !== undefined) {
  const names = values.only.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = names.filter((n) => !(SECTIONS as readonly string[]).includes(n));
  if (bad.length || !names.length) {
    process.stderr.write(`bench: --only: unknown section ${bad.join(', ') || '(none)'}; known: ${SECTIONS.join(', ')}\n`);
    process.exit(2);
  }
  chosen = SECTIONS.filter((s) => names.includes(s) || (s === 'paper' && (values.paper || values.layouts)));
} else {
  chosen = SECTIONS.filter((s) => s !== 'paper' || values.paper || values.layouts);
}
const quick = values.quick!;

const loadavg = () => os.loadavg().map((l) => l.toFixed(2)).join(' ');
const clock = () => new Date().toISOString().slice(11, 19);

interface ChildResult {
  code: number | null;
  stdout: string;
  seconds: number;
}

/** Runs `node script args` with its stdout shown line by line as it comes (but its BENCH_JSON lines) and kept; stderr shown. */
function runNode(script: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    const p = spawn(process.execPath, [script, ...args], { cwd: opts.cwd ?? process.cwd(), env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    let shown = 0; // out[0, shown) is on the console
    const show = (all: boolean) => {
      const end = all ? out.length : out.lastIndexOf('\n') + 1;
      if (end <= shown) return;
      const text = out.slice(shown, end);
      shown = end;
      process.stdout.write(text.split('\n').filter((l) => !l.startsWith(BENCH_JSON_PREFIX)).join('\n'));
    };
    p.stdout.setEncoding('utf8');
    p.stdout.on('data', (d: string) => {
      out += d;
      show(false);
    });
    p.on('error', reject);
    p.on('close', (code) => {
      show(true);
      resolve({ code, stdout: out, seconds: (performance.now() - t) / 1000 });
    });
  });
}

const stepOf = (section: Section) => `[${chosen.indexOf(section) + 1}/${chosen.length}]`;
/** The 1-minute load average as each bench started, for the table's foot. */
const loads: { section: Section; load: number }[] = [];
function header(section: Section, what: string, command: string): void {
  loads.push({ section, load: os.loadavg()[0]! });
  process.stdout.write(`\n${'═'.repeat(100)}\n${stepOf(section)} ${section}: ${what}\n$ ${command}\n${clock()}, load average ${loadavg()}\n${'═'.repeat(100)}\n`);
}

/** What each section leaves for the table. */
const notes: string[] = [];
const results: { engines?: EnginesJson; aggregator?: AggregatorJson; aggregatorNative?: AggregatorJson; dispatch?: DispatchJson; keeper?: KeeperFigures; paper?: PaperFigures; layouts?: PaperFigures[] } = {};

/** One bench as a child; its last BENCH_JSON line of the expected name, or undefined (a note says why). */
async function bench<T>(section: Section, what: string, file: string, args: string[]): Promise<T | undefined> {
  const script = path.join(HERE, file);
  header(section, what, `node ${rel(script)} ${args.join(' ')}`.trim());
  const r = await runNode(script, args);
  const name = file.replace(/\.js$/, '');
  const json = collectBenchJson(r.stdout).filter((j) => j.bench === name).at(-1);
  process.stdout.write(`(${section}: ${r.seconds.toFixed(0)} s, exit ${r.code})\n`);
  if (r.code !== 0) notes.push(`${section}: ${file} exited with code ${r.code}; its figures are missing`);
  else if (!json) notes.push(`${section}: ${file} printed no BENCH_JSON line`);
  return r.code === 0 ? (json as T | undefined) : undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// The benches' JSON (see each bench's end).

interface EnginesRow {
  engine: string;
  threads: number;
  model: string;
  batch: number;
  samplesPerSec: number;
  flopsPerSample: number;
  gflops: number;
  blas1: number | null;
  blasN: number | null;
  setGflops: number;
}
interface EnginesJson extends BenchJson {
  skipped?: string;
  native?: { ok: boolean; blas?: string; core?: string | null; threads?: number; reason?: string };
  rows?: EnginesRow[];
}
interface AggregatorPath {
  mode: string;
  stepS: number | null;
  evalS: number;
  seconds: number | null;
  rssMB: number;
}
interface AggregatorJson extends BenchJson {
  testImages: number | null;
  results: { n: number; engine: string; testSamples: number; accumulatorS: number; baselineS: number; paths: AggregatorPath[] }[];
}
interface DispatchJson extends BenchJson {
  reps: number;
  dispatch: { n: number; ms: number | null; endedMs: number | null; baselineMs: number | null }[];
}
interface KeeperRun {
  clients: number;
  peakRssMb: number | null;
  cpuS: number | null;
  /** keeper_cpu_s of each round in rounds.csv */
  roundCpuS: (number | null)[];
  wallS: number | null;
}
interface KeeperFigures {
  big?: KeeperRun;
  small?: KeeperRun;
}
interface PaperFigures {
  /** Training processes (the local cluster's pool_size) × native threads each. */
  layout: { processes: number; threads: number };
  totalS: number | null;
  trainS: number | null;
  aggS: number | null;
  samples: number | null;
  epochs: number;
  clients: number | null;
  engine?: string;
}

// ---------------------------------------------------------------------------------------------------------------
// Real CLI runs in a temp directory.

/** Runs `fedkeeper run -c config.yaml` in a fresh temp directory; its run directory's summary.json and rounds.csv. */
async function cliRun(section: Section, what: string, config: Record<string, unknown>): Promise<{ summary: Record<string, unknown>; rounds: Record<string, string>[] } | undefined> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fk-bench-run-'));
  try {
    const fl = (config.scenarios as { federated_learning: Record<string, unknown> }).federated_learning;
    const outputDir = path.join(dir, 'runs');
    config.output_dir = outputDir;
    fl.store = { type: 'sqlite', path: path.join(dir, 'store.sqlite') };
    const file = path.join(dir, 'config.yaml');
    fs.writeFileSync(file, YAML.stringify(config));
    header(section, what, `fedkeeper run -c config.yaml   (node ${rel(CLI)}, in a temp directory)`);
    const r = await runNode(CLI, ['run', '-c', file], { cwd: dir });
    process.stdout.write(`(${section}: ${r.seconds.toFixed(0)} s, exit ${r.code})\n`);
    const runs = fs.existsSync(outputDir) ? fs.readdirSync(outputDir) : [];
    if (r.code !== 0 || runs.length !== 1) {
      notes.push(`${section}: fedkeeper run (${what}) exited with code ${r.code}; its figures are missing`);
      return undefined;
    }
    const runDir = path.join(outputDir, runs[0]!);
    return {
      summary: JSON.parse(fs.readFileSync(path.join(runDir, 'summary.json'), 'utf8')) as Record<string, unknown>,
      rounds: parseCsv(fs.readFileSync(path.join(runDir, 'rounds.csv'), 'utf8')),
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The keeper section's config: local provider, pool_size 2, mnistnn hidden 8, `clients` per round of `clients`. */
function keeperConfig(clients: number): Record<string, unknown> {
  return {
    version: '0.1',
    name: `bench-keeper-${clients}`,
    providers: { local: { laptop: { pool_size: 2 } } },
    scenarios: {
      federated_learning: {
        seed: 1,
        target_accuracy: 1, // never reached: both rounds run
        max_rounds: 2,
        server_config: { server_cluster_name: 'laptop' },
        clients_info: { total_num_clients: clients, num_clients_per_round: clients },
        data_sampling: { model: 'mnistnn', hidden_size: 8, batch_size: 8, partition: 'iid' },
        training_test_data: { dataset: 'mnist', test_fraction: 0.2 },
        model_params: { lr: 1e-3, optim: 'adam', local_epochs: 1 },
      },
    },
  };
}

async function keeperRun(clients: number, what: string): Promise<KeeperRun | undefined> {
  const r = await cliRun('keeper', what, keeperConfig(clients));
  if (!r) return undefined;
  return {
    clients,
    peakRssMb: num(r.summary.keeper_peak_rss_mb),
    cpuS: num(r.summary.keeper_cpu_s),
    roundCpuS: r.rounds.map((x) => num(x.keeper_cpu_s)),
    wallS: num(r.summary.wall_s),
  };
}

async function paperSection(): Promise<void> {
  const example = path.join(ROOT, 'examples', 'paper-cnn-100.yaml');
  const config = YAML.parse(fs.readFileSync(example, 'utf8')) as Record<string, unknown>;
  const fl = (config.scenarios as { federated_learning: Record<string, unknown> }).federated_learning;
  const data = fl.training_test_data as Record<string, string>;
  const files = ['train_images_url', 'train_labels_url', 'test_images_url', 'test_labels_url'].map((k) => data[k]!);
  const missing = files.filter((f) => !/^https?:\/\//i.test(f) && !fs.existsSync(f));
  if (missing.length) {
    const line = `paper: skipped: the Fashion-MNIST files ${rel(example)} names are missing here (${missing[0]}${missing.length > 1 ? ` and ${missing.length - 1} more` : ''}; Debian: apt-get install dataset-fashion-mnist)`;
    process.stdout.write(`\n${stepOf('paper')} ${line}\n`);
    notes.push(line);
    return;
  }
  fl.max_rounds = 1;
  // The round's layout: P training processes (the local cluster's pool_size; the default is one per core) with
  // cores/P native threads each (what the local provider gives each container). --layouts runs the others too.
  const cores = os.availableParallelism();
  const layouts = [cores];
  if (values.layouts) for (let p = cores >> 1; p >= 1; p >>= 1) layouts.push(p);
  if (values.layouts && layouts[layouts.length - 1] !== 1) layouts.push(1);
  for (const processes of layouts) {
    const laptop = ((config.providers as Record<string, Record<string, Record<string, unknown>>>).local!.laptop ??= {});
    laptop.pool_size = processes;
    const threads = Math.max(1, Math.floor(cores / processes));
    const r = await cliRun('paper', `one round of the paper setup, ${rel(example)} with max_rounds 1, ${processes} process(es) × ${threads} thread(s)`, config);
    const round = r?.rounds.find((x) => x.round === '1');
    if (!r || !round) continue;
    const epochs = num((fl.model_params as Record<string, unknown>).local_epochs) ?? 1;
    const clients = num((fl.clients_info as Record<string, unknown>).num_clients_per_round);
    const fig: PaperFigures = { layout: { processes, threads }, totalS: num(round.total_s), trainS: num(round.train_s), aggS: num(round.agg_s), samples: num(round.samples), epochs, clients, engine: String(r.summary.engine ?? '?') };
    if (processes === cores) results.paper = fig;
    else (results.layouts ??= []).push(fig);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The machine.

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return m[1]!.trim();
  } catch {
    // not Linux
  }
  return os.cpus()[0]?.model ?? '?';
}

/** The OpenBLAS the native addon loads here (a short child process, so that this one holds no BLAS threads). */
async function blasInUse(): Promise<string> {
  const native = pathToFileURL(path.resolve(HERE, '..', 'src', 'ml', 'native.js')).href;
  const code = `const { loadNative } = await import(${JSON.stringify(native)}); const n = loadNative(); process.stdout.write(n.ok ? n.blas + ', ' + n.threads + ' thread(s) by default' : 'native kernels not loaded: ' + n.reason);`;
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    p.stdout.setEncoding('utf8');
    p.stdout.on('data', (d: string) => (out += d));
    p.on('error', () => resolve('?'));
    p.on('close', () => resolve(out.trim() || '?'));
  });
}

// ---------------------------------------------------------------------------------------------------------------
// The table.

function engineRows(j: EnginesJson | undefined): Row[] {
  const rows = (j?.rows ?? []).filter((r) => r.model === 'cnn');
  const native = rows.filter((r) => r.engine === 'native');
  const n = Math.max(0, ...native.map((r) => r.threads)) || j?.native?.threads || os.availableParallelism();
  const nativeN = native.filter((r) => r.threads === n);
  const wasm = rows.filter((r) => r.engine === 'wasm');
  const blas1 = medianOf(rows.map((r) => r.blas1));
  const blasN = medianOf(nativeN.map((r) => r.blasN));
  const out: Row[] = [
    { name: 'sgemm OpenBLAS ×1 (n=512)', value: blas1, unit: 'GFLOP/s', baselineName: 'wasm matmul (n=256)', baseline: medianOf(wasm.map((r) => r.setGflops)) },
    { name: `sgemm OpenBLAS ×${n} (n=512): the BLAS limit`, value: blasN, unit: 'GFLOP/s', baselineName: 'sgemm ×1', baseline: blas1 },
  ];
  const targets: Record<number, number> = { 10: 2500, 32: 3500 };
  const full = !quick && n === 2;
  for (const batch of [10, 32]) {
    const nat = nativeN.find((r) => r.batch === batch);
    const w = wasm.find((r) => r.batch === batch);
    out.push({
      name: `paper CNN training, native ×${n}, batch ${batch}`,
      value: nat?.samplesPerSec ?? null,
      unit: 'samples/s',
      baselineName: `wasm, batch ${batch}`,
      baseline: w?.samplesPerSec ?? null,
      ...(full ? { target: { on: 'value' as const, op: '>=' as const, limit: targets[batch]! } } : {}),
    });
  }
  const kernelPath = rows.filter((r) => r.engine === 'native-kernels' && r.threads === n);
  for (const batch of [10, 32]) {
    const nat = nativeN.find((r) => r.batch === batch);
    const k = kernelPath.find((r) => r.batch === batch);
    if (k) out.push({ name: `  native ×${n} kernel by kernel under tfjs (no fused step), batch ${batch}`, value: k.samplesPerSec, unit: 'samples/s', baselineName: `fused step, same batch`, baseline: nat?.samplesPerSec ?? null });
  }
  for (const batch of [10, 32]) {
    const nat = nativeN.find((r) => r.batch === batch);
    out.push({
      name: `  its conv/matmul flops, native ×${n}, batch ${batch}`,
      value: nat?.gflops ?? null,
      unit: 'GFLOP/s',
      baselineName: `sgemm ×${n} just before`,
      baseline: nat?.blasN ?? null,
      ...(full ? { target: { on: 'ratio' as const, op: '>=' as const, limit: 0.5 } } : {}),
    });
  }
  for (const batch of [10, 32]) {
    const w = wasm.find((r) => r.batch === batch);
    out.push({ name: `  its conv/matmul flops, wasm, batch ${batch}`, value: w?.gflops ?? null, unit: 'GFLOP/s', baselineName: `sgemm ×${n} just before`, baseline: w?.blasN ?? null });
  }
  return out;
}

function aggregatorRows(j: AggregatorJson | undefined, jNative: AggregatorJson | undefined, ns: number[], testImages: number): Row[] {
  const out: Row[] = [];
  const of = (n: number) => j?.results.find((r) => r.n === n);
  const path_ = (n: number, mode: string) => of(n)?.paths.find((p) => p.mode === mode);
  const full = !quick;
  const first = ns[0]!;
  const r0 = of(first);
  out.push({
    name: `FedAvg of ${first.toLocaleString('en-US')} paper-CNN updates (accumulator)`,
    value: r0?.accumulatorS ?? null,
    unit: 's',
    baselineName: 'plain weighted sum, in memory',
    baseline: r0?.baselineS ?? null,
    ...(full && first === 100 ? { target: { on: 'ratio' as const, op: '<=' as const, limit: 1.5 } } : {}),
  });
  const tests = r0?.testSamples ?? testImages;
  const nativeOf = jNative?.results.find((r) => r.n === first);
  for (const [engine, r] of [
    ['wasm', r0],
    ['wasm+native', nativeOf],
  ] as const) {
    out.push({
      name: `aggregator step, ${first.toLocaleString('en-US')} updates, ${engine} (reads+FedAvg+eval of ${(r?.testSamples ?? tests).toLocaleString('en-US')})`,
      value: r?.paths.find((p) => p.mode === 'streaming')?.stepS ?? null,
      unit: 's',
      baselineName: 'evaluation alone (same child setup)',
      baseline: r?.paths.find((p) => p.mode === 'eval-only')?.seconds ?? null,
      ...(full && first === 100 && (r?.testSamples ?? tests) === 10_000 ? { target: { on: 'value' as const, op: '<=' as const, limit: 1.5 } } : {}),
    });
  }
  for (const n of ns) {
    out.push({
      name: `aggregator peak RSS, ${n.toLocaleString('en-US')} updates`,
      value: path_(n, 'streaming')?.rssMB ?? null,
      unit: 'MiB',
      baselineName: 'evaluation alone',
      baseline: path_(n, 'eval-only')?.rssMB ?? null,
      ...(full && n === 1000 ? { target: { on: 'value' as const, op: '<=' as const, limit: 400 } } : {}),
    });
  }
  return out;
}

function dispatchRows(j: DispatchJson | undefined, ns: number[]): Row[] {
  return ns.map((n) => {
    const d = j?.dispatch.find((x) => x.n === n);
    return {
      name: `dispatch of ${n.toLocaleString('en-US')} invocations (local OpenWhisk, ids back)`,
      value: d?.ms ?? null,
      unit: 'ms',
      baselineName: `${n.toLocaleString('en-US')} concurrent raw loopback POSTs`,
      baseline: d?.baselineMs ?? null,
      ...(!quick && n === 100 ? { target: { on: 'ratio' as const, op: '<=' as const, limit: 2 } } : {}),
    };
  });
}

function keeperRows(k: KeeperFigures | undefined, big: number, small: number): Row[] {
  const full = !quick && big === 1000;
  const worst = (r: KeeperRun | undefined) => (r && r.roundCpuS.length ? Math.max(...r.roundCpuS.map((x) => x ?? NaN)) : null);
  const w = worst(k?.big);
  const ws = worst(k?.small);
  return [
    {
      name: `keeper peak RSS, ${big.toLocaleString('en-US')} clients/round`,
      value: k?.big?.peakRssMb ?? null,
      unit: 'MiB',
      baselineName: `same config, ${small} clients/round`,
      baseline: k?.small?.peakRssMb ?? null,
      ...(full ? { target: { on: 'value' as const, op: '<=' as const, limit: 300 } } : {}),
    },
    {
      name: `keeper CPU per round, ${big.toLocaleString('en-US')} clients/round (worst round)`,
      value: w !== null && Number.isFinite(w) ? w : null,
      unit: 's',
      baselineName: `same config, ${small} clients/round`,
      baseline: ws !== null && Number.isFinite(ws) ? ws : null,
      ...(full ? { target: { on: 'value' as const, op: '<=' as const, limit: 1 } } : {}),
    },
  ];
}

function paperRows(p: PaperFigures | undefined, e: EnginesJson | undefined, a: AggregatorJson | undefined): Row[] {
  const cnn = (e?.rows ?? []).filter((r) => r.model === 'cnn' && r.engine === 'native');
  const n = Math.max(0, ...cnn.map((r) => r.threads));
  const blasN = medianOf(cnn.filter((r) => r.threads === n).map((r) => r.blasN));
  const flops = cnn[0]?.flopsPerSample ?? null;
  const limitS = p && p.samples !== null && flops !== null && blasN ? (p.epochs * p.samples * flops) / (blasN * 1e9) : null;
  const agg100r = a?.results.find((r) => r.n === 100);
  const agg100 = agg100r?.paths.find((x) => x.mode === 'streaming')?.stepS ?? null;
  const limitName = `its training flops at sgemm ×${n || '?'}`;
  return [
    { name: `paper round (${p?.clients ?? '?'} clients × ${p?.epochs ?? '?'} epochs): total_s`, value: p?.totalS ?? null, unit: 's', baselineName: limitName, baseline: limitS, target: { on: 'value', op: '<=', limit: 140 } },
    { name: '  train_s', value: p?.trainS ?? null, unit: 's', baselineName: limitName, baseline: limitS },
    { name: '  agg_s', value: p?.aggS ?? null, unit: 's', baselineName: `aggregator bench step, 100 updates${agg100r ? `, ${agg100r.engine}` : ''}`, baseline: agg100 },
  ];
}

/** The other layouts' paper rounds beside the default one (one process per core, 1 thread each). */
function layoutRows(p: PaperFigures | undefined, others: readonly PaperFigures[]): Row[] {
  const base = p ? `default layout: ${p.layout.processes} process(es) × ${p.layout.threads} thread(s)` : 'default layout';
  return others.map((o) => ({ name: `paper round, ${o.layout.processes} process(es) × ${o.layout.threads} thread(s): total_s`, value: o.totalS, unit: 's', baselineName: base, baseline: p?.totalS ?? null }));
}

// ---------------------------------------------------------------------------------------------------------------

const loadStart = loadavg();
const startedAt = new Date();
const blas = await blasInUse();
const machine = `${cpuModel()}, ${os.availableParallelism()} cores, Node ${process.version}, ${blas}, OPENBLAS_CORETYPE=${process.env['OPENBLAS_CORETYPE'] ?? '(unset)'}`;
process.stdout.write(`FedKeeper benchmarks${quick ? ' (--quick: small sizes, no targets marked)' : ''}: ${chosen.join(', ')}\n${machine}\nload average at start ${loadStart}\n`);

const aggNs = quick ? [20] : [100, 1000];
const testImages = quick ? 1000 : 10_000;
const dispatchNs = quick ? [100] : [100, 1000];
const keeperBig = quick ? 100 : 1000;
const keeperSmall = 10;

for (const section of chosen) {
  if (section === 'engines') {
    const args = ['--engines', 'wasm,native', '--models', 'cnn', '--batches', '10,32', '--unfused', ...(quick ? ['--samples', '160', '--repeats', '1'] : [])];
    results.engines = await bench<EnginesJson>(section, 'paper-CNN training samples/s (wasm, native ×1 and ×N) and sgemm GFLOP/s', 'ml-engines.js', args);
    if (results.engines?.skipped) notes.push(`engines: skipped by the bench (${results.engines.skipped})`);
  } else if (section === 'aggregator') {
    const args = ['--clients', aggNs.join(','), '--test-images', String(testImages), '--skip-all-at-once'];
    results.aggregator = await bench<AggregatorJson>(section, '(1 of 2) FedAvg vs plain weighted sum, the aggregator step, peak RSS; wasm, as in function packages', 'aggregator.js', args);
    const argsNative = ['--clients', String(aggNs[0]), '--test-images', String(testImages), '--skip-all-at-once', '--native'];
    results.aggregatorNative = await bench<AggregatorJson>(section, '(2 of 2) the aggregator step with the native kernels, as local containers run it', 'aggregator.js', argsNative);
  } else if (section === 'dispatch') {
    const args = quick ? ['--cold', '1', '--warm', '20', '--dispatch', dispatchNs.join(','), '--reps', '1'] : ['--cold', '3', '--warm', '200', '--dispatch', dispatchNs.join(','), '--reps', '5'];
    results.dispatch = await bench<DispatchJson>(section, 'local OpenWhisk platform through the real openwhisk client vs raw loopback POSTs', 'openwhisk-local.js', args);
  } else if (section === 'keeper') {
    const small = await keeperRun(keeperSmall, `(1 of 2) baseline: ${keeperSmall} clients per round (local, pool_size 2, mnistnn hidden 8, 2 rounds)`);
    const big = await keeperRun(keeperBig, `(2 of 2) ${keeperBig.toLocaleString('en-US')} clients per round (local, pool_size 2, mnistnn hidden 8, batch 8, 2 rounds)`);
    results.keeper = { ...(big ? { big } : {}), ...(small ? { small } : {}) };
    for (const r of [small, big]) {
      if (r) process.stdout.write(`keeper, ${r.clients} clients/round: peak RSS ${formatNumber(r.peakRssMb)} MiB, CPU ${formatNumber(r.cpuS)} s in all, per round ${r.roundCpuS.map((x) => formatNumber(x)).join(' / ')} s, wall ${formatNumber(r.wallS)} s\n`);
    }
  } else if (section === 'paper') {
    await paperSection();
  }
}

const rows: Row[] = [];
if (chosen.includes('engines')) rows.push(...engineRows(results.engines));
if (chosen.includes('dispatch')) rows.push(...dispatchRows(results.dispatch, dispatchNs));
if (chosen.includes('aggregator')) rows.push(...aggregatorRows(results.aggregator, results.aggregatorNative, aggNs, testImages));
if (chosen.includes('keeper')) rows.push(...keeperRows(results.keeper, keeperBig, keeperSmall));
if (chosen.includes('paper') && results.paper) rows.push(...paperRows(results.paper, results.engines, results.aggregatorNative ?? results.aggregator));
if (chosen.includes('paper') && results.layouts?.length) rows.push(...layoutRows(results.paper, results.layouts));

const loadEnd = loadavg();
const met = rows.filter((r) => targetMark(r) === 'met').length;
const targeted = rows.filter((r) => r.target).length;
process.stdout.write(`\n${'═'.repeat(100)}\nBenchmarks, ${startedAt.toISOString().slice(0, 10)}${quick ? ' (--quick)' : ''}\n`);
process.stdout.write(`machine: ${machine}\nload average: ${loadStart} at start, ${loadEnd} at end (1, 5, 15 min)\n\n`);
for (const line of formatTable(rows)) process.stdout.write(`${line}\n`);
const bySection = [...new Set(loads.map((l) => l.section))].map((sec) => `${sec} ${loads.filter((l) => l.section === sec).map((l) => l.load.toFixed(2)).join('/')}`);
if (bySection.length) process.stdout.write(`\nload average (1 min) as each bench started: ${bySection.join(', ')}\n`);
process.stdout.write(`${bySection.length ? '' : '\n'}${targeted ? `targets met: ${met} of ${targeted}` : 'no targets marked'}\n`);
for (const n of notes) process.stdout.write(`note: ${n}\n`);
process.exitCode = notes.some((n) => / exited with code /.test(n)) ? 1 : 0;
