/**
 * The aggregator step at scale: the real fl_server_aggregator handler against a SQLite store (temp directory) behind
 * the keeper's store endpoint, filled with N synthetic paper-CNN updates (582,026 float32 values, 2.3 MB each), for
 * each N given. Every measurement runs in a fresh child process, so one does not pollute another's peak RSS:
 *
 *  - streaming: the handler as it is (one update read, checked and added at a time); then, in the same process
 *    after its peak RSS is taken, the same N arrays summed in memory by a FedAvgAccumulator and by the baseline, a
 *    plain weighted sum (acc[i] += n·w[i] in float64, then / N), interleaved array by array so that both see the
 *    same machine (the handler's own fedavg_s runs between reads, beside the store process, and shows contention);
 *  - all at once (the previous data path, kept here as a copy for comparison): getClientUpdates of the whole
 *    round, every update checked, fedAvg over the array of all of them, the same evaluation;
 *  - eval-only: the engine, the test set and one evaluation, nothing aggregated: the floor under both peaks.
 *
 * Printed per N: the accumulator next to the baseline; per path, store reads + checks + FedAvg (agg_s), the
 * accumulation alone (fedavg_s), the evaluation (eval_s), the whole handler call, and the process's peak RSS (see
 * peakRssMB). The children run the wasm engine function packages run (FEDKEEPER_NATIVE=0) unless --native.
 *
 * The test set: the embedded 10,000 digits split by --test-fraction (0.2: 8,000 to train, 2,000 to test), or with
 * --test-images T, gzipped IDX files written to the temp directory as the paper setup reads Fashion-MNIST's: T test
 * images (all 10,000 embedded digits, repeated past 10,000, as unsigned bytes) and the 8,000 training digits.
 *
 *   node dist/bench/aggregator.js [--clients 100,1000] [--test-fraction 0.2 | --test-images 10000] [--native]
 *                                 [--skip-all-at-once]
 *
 * Its last line is `BENCH_JSON {...}` (bench/table.ts): per N the figures above, for bench/run.ts.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { FedAvgAccumulator } from '../src/fl/accumulator.js';
import { fedAvg } from '../src/fl/fedavg.js';
import { mulberry32 } from '../src/fl/rng.js';
import { validateUpdate } from '../src/fl/validate.js';
import type { WeightVector } from '../src/fl/weights.js';
import { handler } from '../src/functions/fl-server-aggregator.js';
import type { AggregatorParams, ModelParamsSpec } from '../src/functions/params.js';
import { storeFor } from '../src/functions/shared.js';
import { encodeIdxLabels, loadDataset, type DatasetSpec } from '../src/ml/datasets.js';
import { currentEngine, evaluate, initEngine, initialWeights } from '../src/ml/index.js';
import { SqliteStore } from '../src/store/sqlite-store.js';
import { startStoreServer } from '../src/store/store-server.js';
import { benchJsonLine } from './table.js';

const MODEL: ModelParamsSpec = { model: 'cnn', inputShape: [28, 28, 1], hiddenSize: 0, numClasses: 10 };
const RUN = 'bench-agg';
const PARTITION = 60;
const ctx = { activationId: 'bench', functionName: 'fl_server_aggregator', deadline: Date.now() + 3_600_000 };

/** Client c's sample count (≤ its partition of PARTITION) and weights: the global weights plus seeded noise. */
const samplesOf = (c: number) => 20 + ((c * 7) % 41);
function syntheticUpdate(global: WeightVector, c: number): Float32Array {
  const r = mulberry32(c + 1);
  const g = global.data;
  const out = new Float32Array(g.length);
  for (let i = 0; i < g.length; i++) out[i] = g[i]! + (r() - 0.5) * 0.02;
  return out;
}

/**
 * This process's peak RSS, MiB. Linux: VmHWM of /proc/self/status, the high-water mark of this process image alone;
 * process.resourceUsage().maxRSS is not that there, as it carries the parent's RSS at the fork over the exec (a
 * child of a 4 GB parent reports ≥ 4 GB). Elsewhere maxRSS (spawned from a parent that stays small, it is close).
 */
function peakRssMB(): number {
  try {
    const kb = /^VmHWM:\s+(\d+)\s+kB/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1];
    if (kb) return Number(kb) / 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS / 1024;
}

/** The baseline's inner loop. */
function plainWeightedAdd(acc: Float64Array, d: Float32Array, n: number): void {
  for (let i = 0; i < d.length; i++) acc[i] += n * d[i]!;
}

type Mode = 'streaming' | 'all-at-once' | 'eval-only';
interface ChildJob {
  mode: Mode;
  params: AggregatorParams;
}
interface ChildReport {
  mode: Mode;
  engine: string;
  wallSeconds: number;
  result: Record<string, unknown>;
  maxRssMB: number;
  /** streaming only: the plain weighted sum over the same arrays, and the accumulator beside it. */
  baselineSeconds?: number;
  accumulatorSeconds?: number;
}

/** The previous aggregator's data path: every update of the round in memory at once, then fedAvg. */
async function allAtOnce(p: AggregatorParams): Promise<Record<string, unknown>> {
  const t0 = performance.now();
  await initEngine();
  const tAgg = performance.now();
  const store = await storeFor(p.store);
  const [stored, previous] = await Promise.all([store.getClientUpdates(p.runId, p.round, p.clientIds), store.getGlobalWeights(p.runId, p.round - 1)]);
  if (!previous) throw new Error('no global weights');
  const updates = [];
  for (const u of stored) {
    const partition = await store.getPartition(p.runId, u.clientId);
    const verdict = validateUpdate(u, { shapes: previous.shapes, partitionSize: partition?.length ?? 0, maxBytes: 64 * 2 ** 20 });
    if (verdict.ok) updates.push(u);
  }
  const tFed = performance.now();
  const global = fedAvg(updates);
  const tDone = performance.now();
  const data = await loadDataset(p.dataset);
  const t1 = performance.now();
  const { accuracy, loss } = await evaluate(p.model, global, data.test);
  const evalSeconds = (performance.now() - t1) / 1000;
  await store.putGlobalWeights(p.runId, p.round, global);
  return { accuracy, loss, clients: updates.length, testSamples: data.test.n, aggSeconds: (tDone - tAgg) / 1000, fedavgSeconds: (tDone - tFed) / 1000, evalSeconds, seconds: (performance.now() - t0) / 1000 };
}

/** What every path does besides aggregating: the engine, the test set, one evaluation (the floor of the peak RSS). */
async function evalOnly(p: AggregatorParams): Promise<Record<string, unknown>> {
  const t0 = performance.now();
  await initEngine();
  const store = await storeFor(p.store);
  const global = (await store.getGlobalWeights(p.runId, 0))!;
  const data = await loadDataset(p.dataset);
  const t1 = performance.now();
  const { accuracy } = await evaluate(p.model, global, data.test);
  return { accuracy, testSamples: data.test.n, evalSeconds: (performance.now() - t1) / 1000, seconds: (performance.now() - t0) / 1000 };
}

async function child(job: ChildJob): Promise<void> {
  const t = performance.now();
  const result =
    job.mode === 'streaming' ? await handler(job.params as unknown as Record<string, unknown>, ctx) : job.mode === 'all-at-once' ? await allAtOnce(job.params) : await evalOnly(job.params);
  const wallSeconds = (performance.now() - t) / 1000;
  const maxRssMB = peakRssMB();
  const report: ChildReport = { mode: job.mode, engine: currentEngine()?.engine ?? '?', wallSeconds, result, maxRssMB };
  if (job.mode === 'streaming') {
    // After the peak RSS was read: the same N arrays once more, each made and then summed twice, interleaved (the
    // order alternating per array) so that both sums see the same machine: by a FedAvgAccumulator, and by the
    // baseline, a plain weighted sum (acc[i] += n·w[i] in float64, then / N).
    const store = await storeFor(job.params.store);
    const global = (await store.getGlobalWeights(job.params.runId, 0))!;
    const acc = new Float64Array(global.data.length);
    const fedavg = new FedAvgAccumulator();
    fedavg.begin(global.shapes);
    let total = 0;
    let plainMs = 0;
    let accMs = 0;
    const plain = (d: Float32Array, n: number) => {
      const t = performance.now();
      plainWeightedAdd(acc, d, n);
      total += n;
      plainMs += performance.now() - t;
    };
    const accumulate = (c: number, d: Float32Array, n: number) => {
      const t = performance.now();
      fedavg.add({ clientId: c, numSamples: n, weights: { shapes: global.shapes, data: d } });
      accMs += performance.now() - t;
    };
    for (const c of job.params.clientIds) {
      const d = syntheticUpdate(global, c);
      if (c % 2) {
        plain(d, samplesOf(c));
        accumulate(c, d, samplesOf(c));
      } else {
        accumulate(c, d, samplesOf(c));
        plain(d, samplesOf(c));
      }
    }
    let t = performance.now();
    const out = new Float32Array(acc.length);
    for (let i = 0; i < acc.length; i++) out[i] = acc[i]! / total;
    plainMs += performance.now() - t;
    t = performance.now();
    const viaAcc = fedavg.finish();
    accMs += performance.now() - t;
    if (!Buffer.from(out.buffer).equals(Buffer.from(viaAcc.data.buffer))) throw new Error('the accumulator and the plain sum differ');
    report.baselineSeconds = plainMs / 1000;
    report.accumulatorSeconds = accMs / 1000;
  }
  process.stdout.write(JSON.stringify(report) + '\n');
}

function runChild(job: ChildJob, native: boolean): Promise<ChildReport> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, ...(native ? {} : { FEDKEEPER_NATIVE: '0' }) };
    const p = spawn(process.execPath, [fileURLToPath(import.meta.url), '--child', JSON.stringify(job)], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('error', reject);
    p.on('close', (code) => {
      const line = out.trim().split('\n').at(-1) ?? '';
      if (code !== 0 || !line.startsWith('{')) reject(new Error(`child (${job.mode}) exited ${code}: ${out.slice(-500)}`));
      else resolve(JSON.parse(line) as ChildReport);
    });
  });
}

/** An IDX image file of unsigned bytes (magic 0x00000803), as MNIST and Fashion-MNIST ship. */
function encodeIdxByteImages(x: Float32Array, n: number, h: number, w: number): Uint8Array {
  const out = new Uint8Array(16 + n * h * w);
  const v = new DataView(out.buffer);
  v.setUint32(0, 0x00000803);
  v.setUint32(4, n);
  v.setUint32(8, h);
  v.setUint32(12, w);
  for (let i = 0; i < n * h * w; i++) out[16 + i] = Math.max(0, Math.min(255, Math.round(x[i]! * 255)));
  return out;
}

/**
 * Gzipped IDX files in `dir`: `testImages` test images (the 10,000 embedded digits, train part then test part,
 * repeated as needed) and the 8,000 embedded training digits (the partitions above index into those).
 */
async function writeIdxDataset(dir: string, testImages: number): Promise<DatasetSpec> {
  const d = await loadDataset({ dataset: 'mnist', test_fraction: 0.2 });
  const dim = 28 * 28;
  const allX = new Float32Array((d.train.n + d.test.n) * dim);
  allX.set(d.train.x);
  allX.set(d.test.x, d.train.x.length);
  const allY = Uint8Array.from([...d.train.y, ...d.test.y]);
  const all = d.train.n + d.test.n;
  const testX = new Float32Array(testImages * dim);
  const testY = new Uint8Array(testImages);
  for (let i = 0; i < testImages; i++) {
    testX.set(allX.subarray((i % all) * dim, ((i % all) + 1) * dim), i * dim);
    testY[i] = allY[i % all]!;
  }
  const spec = {
    dataset: 'idx' as const,
    train_images_url: path.join(dir, 'train-images-idx3-ubyte.gz'),
    train_labels_url: path.join(dir, 'train-labels-idx1-ubyte.gz'),
    test_images_url: path.join(dir, 't10k-images-idx3-ubyte.gz'),
    test_labels_url: path.join(dir, 't10k-labels-idx1-ubyte.gz'),
  };
  fs.writeFileSync(spec.train_images_url, gzipSync(encodeIdxByteImages(d.train.x, d.train.n, 28, 28)));
  fs.writeFileSync(spec.train_labels_url, gzipSync(encodeIdxLabels(d.train.y)));
  fs.writeFileSync(spec.test_images_url, gzipSync(encodeIdxByteImages(testX, testImages, 28, 28)));
  fs.writeFileSync(spec.test_labels_url, gzipSync(encodeIdxLabels(testY)));
  return spec;
}

/** What bench/run.ts reads per N. */
interface JsonN {
  n: number;
  engine: string;
  testSamples: number;
  accuracy: number;
  accumulatorS: number;
  baselineS: number;
  paths: { mode: Mode; stepS: number | null; aggS: number | null; fedavgS: number | null; evalS: number; seconds: number | null; rssMB: number }[];
}
const jsonN: JsonN[] = [];

const sha = (w: WeightVector | undefined) => (w ? createHash('sha256').update(w.data).digest('hex').slice(0, 16) : 'none');
const s = (x: unknown) => Number(x).toFixed(3).padStart(8);

async function benchN(n: number, opts: { testFraction: number; testImages: number | undefined; native: boolean; allAtOnce: boolean }): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fk-bench-agg-'));
  const sqlite = new SqliteStore(path.join(dir, 'store.sqlite'));
  try {
    const tFill = performance.now();
    const global = await initialWeights(MODEL, 1);
    await sqlite.putGlobalWeights(RUN, 0, global);
    const clientIds = Array.from({ length: n }, (_, c) => c);
    for (const c of clientIds) {
      await sqlite.putPartition(RUN, c, Uint32Array.from({ length: PARTITION }, (_, i) => (c * PARTITION + i) % 8000));
      await sqlite.putClientUpdate({ runId: RUN, round: 1, clientId: c, weights: { shapes: global.shapes, data: syntheticUpdate(global, c) }, numSamples: samplesOf(c), metrics: {}, attempt: 1 });
    }
    const storeMB = fs.statSync(path.join(dir, 'store.sqlite')).size / 2 ** 20;
    console.log(`\nN = ${n} updates of ${global.data.length} float32 (${((n * global.data.length * 4) / 2 ** 30).toFixed(2)} GiB in all); store filled in ${((performance.now() - tFill) / 1000).toFixed(1)} s (${storeMB.toFixed(0)} MiB + WAL)`);
    const server = await startStoreServer(sqlite);
    try {
      const params: AggregatorParams = {
        runId: RUN,
        store: { type: 'http', url: server.url, token: server.token },
        dataset: opts.testImages ? await writeIdxDataset(dir, opts.testImages) : { dataset: 'mnist', test_fraction: opts.testFraction },
        model: MODEL,
        round: 1,
        clientIds,
      };
      const modes: Mode[] = opts.allAtOnce ? ['streaming', 'all-at-once'] : ['streaming'];
      const reports: ChildReport[] = [];
      const shas: string[] = [];
      for (const mode of modes) {
        reports.push(await runChild({ mode, params }, opts.native));
        shas.push(sha(await sqlite.getGlobalWeights(RUN, 1)));
      }
      reports.push(await runChild({ mode: 'eval-only', params }, opts.native));
      const st = reports[0]!;
      const acc = st.accumulatorSeconds!;
      const base = st.baselineSeconds!;
      console.log(`engine ${st.engine}; evaluation on ${String(st.result.testSamples)} test images; accuracy ${Number(st.result.accuracy).toFixed(4)}`);
      console.log(
        `FedAvg of the ${n} arrays in memory, interleaved: accumulator ${acc.toFixed(3)} s, plain weighted sum (baseline) ${base.toFixed(3)} s: ${(acc / base).toFixed(2)}×`,
      );
      console.log('path          agg_s(read+check+avg)  fedavg_s   eval_s  step_s(handler)  peak RSS MiB');
      const dash = (w: number) => '-'.padStart(w);
      for (const r of reports) {
        const agg = r.mode === 'eval-only' ? dash(21) : s(r.result.aggSeconds).padStart(21);
        const fa = r.mode === 'eval-only' ? dash(8) : s(r.result.fedavgSeconds);
        const step = r.mode === 'eval-only' ? dash(15) : s(r.wallSeconds).padStart(15);
        console.log(`${r.mode.padEnd(12)}  ${agg}  ${fa}  ${s(r.result.evalSeconds)}  ${step}  ${r.maxRssMB.toFixed(0).padStart(12)}`);
      }
      jsonN.push({
        n,
        engine: st.engine,
        testSamples: Number(st.result.testSamples),
        accuracy: Number(st.result.accuracy),
        accumulatorS: acc,
        baselineS: base,
        paths: reports.map((r) => ({
          mode: r.mode,
          stepS: r.mode === 'eval-only' ? null : r.wallSeconds,
          aggS: r.mode === 'eval-only' ? null : Number(r.result.aggSeconds),
          fedavgS: r.mode === 'eval-only' ? null : Number(r.result.fedavgSeconds),
          evalS: Number(r.result.evalSeconds),
          seconds: r.mode === 'eval-only' ? Number(r.result.seconds) : r.wallSeconds,
          rssMB: r.maxRssMB,
        })),
      });
      if (shas.length > 1) console.log(`new global weights identical on both paths: ${shas.every((x) => x === shas[0]) ? 'yes' : `NO (${shas.join(' vs ')})`}`);
    } finally {
      await server.close();
    }
  } finally {
    await sqlite.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const { values } = parseArgs({
  options: {
    child: { type: 'string' },
    clients: { type: 'string', default: '100,1000' },
    'test-fraction': { type: 'string', default: '0.2' },
    'test-images': { type: 'string' },
    native: { type: 'boolean', default: false },
    'skip-all-at-once': { type: 'boolean', default: false },
  },
});

if (values.child !== undefined) {
  await child(JSON.parse(values.child) as ChildJob);
} else {
  const testImages = values['test-images'] !== undefined ? Number(values['test-images']) : undefined;
  if (testImages !== undefined && !(Number.isInteger(testImages) && testImages > 0)) throw new Error(`--test-images: expected a whole number > 0, got ${values['test-images']}`);
  const opts = { testFraction: Number(values['test-fraction']), testImages, native: values.native!, allAtOnce: !values['skip-all-at-once'] };
  console.log(`aggregator bench: node ${process.version}, ${os.cpus().length} cpus, clients ${values.clients}; each path in its own child process`);
  for (const n of values.clients!.split(',').map(Number)) await benchN(n, opts);
  console.log(benchJsonLine('aggregator', { native: opts.native, testImages: testImages ?? null, testFraction: testImages ? null : opts.testFraction, results: jsonN }));
}
