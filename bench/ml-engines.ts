/**
 * Training throughput per engine, in one process: stock wasm (wasm's own kernels plus the filter gradient it lacks),
 * wasm with this project's pure-wasm kernels, and the native (OpenBLAS) engine at 1 and N threads (its fused
 * training step; with --unfused also its kernel-by-kernel path under tfjs, engine 'native-kernels'). For the paper
 * CNN and the 784-500-10 MLP at batch 10 and 32: samples/s and GFLOP/s (conv/matmul flops of forward + backward),
 * each next to the sgemm GFLOP/s this process measured right before it (OpenBLAS through the addon, 1 thread and
 * split over N threads as the kernels do; and the matmul of the kernel set being measured), so a busy machine shows
 * in both columns.
 *
 *   node dist/bench/ml-engines.js [--samples N] [--repeats R] [--engines stock,wasm,native] [--models cnn,mnistnn]
 *                                 [--batches 10,32] [--threads 1,2] [--unfused]
 *
 * Its last line is `BENCH_JSON {...}` (bench/table.ts): every row's figures, for bench/run.ts.
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { initEngine, initialWeights, mulberry32, trainLocal, useKernelSet, type KernelSet, type ModelSpec } from '../src/ml/index.js';
import { setFusedStep } from '../src/ml/fused-step.js';
import { loadNative } from '../src/ml/native.js';
import { median, synthetic } from './synthetic.js';
import { benchJsonLine } from './table.js';

const { values } = parseArgs({
  options: {
    samples: { type: 'string', default: '640' },
    repeats: { type: 'string', default: '3' },
    engines: { type: 'string', default: 'stock,wasm,native' },
    models: { type: 'string', default: 'cnn,mnistnn' },
    batches: { type: 'string', default: '10,32' },
    threads: { type: 'string' },
    unfused: { type: 'boolean', default: false },
  },
});
const samples = Number(values.samples);
const repeats = Number(values.repeats);
const engines = values.engines!.split(',') as KernelSet[];
const batches = values.batches!.split(',').map(Number);

const SPECS: Record<string, ModelSpec> = {
  cnn: { model: 'cnn', inputShape: [28, 28, 1], hiddenSize: 0, numClasses: 10 },
  mnistnn: { model: 'mnistnn', inputShape: [28, 28, 1], hiddenSize: 500, numClasses: 10 },
};

/**
 * Multiply-add flops of one training sample: forward, weight gradients, and input gradients of every layer but the
 * first (tfjs does not compute the gradient of the input images).
 */
function trainFlops(spec: ModelSpec): number {
  const [h, w, c] = spec.inputShape;
  const k = spec.numClasses;
  let macs: number[]; // per layer, in order
  if (spec.model === 'cnn') {
    const s1 = h - 4;
    const p1 = Math.floor(s1 / 2);
    const s2 = p1 - 4;
    const p2 = Math.floor(s2 / 2);
    macs = [s1 * s1 * 25 * c * 32, s2 * s2 * 25 * 32 * 64, p2 * p2 * 64 * 512, 512 * k];
  } else {
    macs = [h * w * c * spec.hiddenSize, spec.hiddenSize * k];
  }
  const all = macs.reduce((p, q) => p + q, 0);
  return 2 * (all + all + (all - macs[0]!));
}

const native = loadNative();

/** sgemm GFLOP/s now: OpenBLAS via the addon with `split` threads (n = 512), best of 3. */
function blasGflops(split: number): number | null {
  if (!native.ok) return null;
  const n = 512;
  const reps = 8;
  native.addon.sgemmSeconds(n, 2, split);
  let best = Infinity;
  for (let i = 0; i < 3; i++) best = Math.min(best, native.addon.sgemmSeconds(n, reps, split));
  return (2 * n ** 3 * reps) / best / 1e9;
}

/** wasm matmul GFLOP/s now (through the active kernel set's BatchMatMul), n = 256, best of 10 after a warm-up. */
function wasmGflops(): number {
  const n = 256;
  const r = mulberry32(7);
  const a = tf.tensor2d(Float32Array.from({ length: n * n }, () => r()), [n, n]);
  const b = tf.tensor2d(Float32Array.from({ length: n * n }, () => r()), [n, n]);
  let best = Infinity;
  try {
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      const c = tf.matMul(a, b);
      c.dataSync();
      c.dispose();
      if (i >= 10) best = Math.min(best, (performance.now() - t0) / 1000);
    }
  } finally {
    tf.dispose([a, b]);
  }
  return (2 * n ** 3) / best / 1e9;
}

const fmt = (v: number | null, d = 0) => (v === null ? '-' : v.toFixed(d));

const info = await initEngine();
if (info.engine === 'tfjs-node') {
  console.log('engine tfjs-node: this benchmark compares the wasm kernel sets; uninstall @tensorflow/tfjs-node to run it');
  console.log(benchJsonLine('ml-engines', { skipped: 'engine tfjs-node' }));
  process.exit(0);
}
const defaultThreads = native.ok ? native.threads : 1;
const threadList = values.threads ? values.threads.split(',').map(Number) : [...new Set([1, defaultThreads])];
console.log(
  `node ${process.version}, ${os.availableParallelism()} cores (${os.cpus()[0]?.model ?? '?'}), load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`,
);
console.log(
  `native: ${native.ok ? `${native.blas}, default threads ${defaultThreads}` : native.reason}; ` +
    `OPENBLAS_CORETYPE=${process.env['OPENBLAS_CORETYPE'] ?? '(unset)'} OPENBLAS_L2_SIZE=${process.env['OPENBLAS_L2_SIZE'] ?? '(unset)'}`,
);
if (native.ok) {
  const c = native.blasChoice;
  const probes = (c.probes ?? []).map((p) => `${p.core ?? `default=${p.corename ?? '?'}`} ${p.correct ? `${((p.seconds ?? 0) * 1000).toFixed(1)} ms` : `ruled out (${p.error ?? '?'})`}`);
  console.log(`BLAS core: ${c.core ?? '(OpenBLAS default)'} [${c.source}${c.cached ? ', cached' : ''}]: ${c.reason}${probes.length ? `; probes: ${probes.join(', ')}` : ''}`);
}
interface JsonRow {
  /** 'native' is the fused step; 'native-kernels' the kernel-by-kernel path (--unfused). */
  engine: KernelSet | 'native-kernels';
  threads: number;
  model: string;
  batch: number;
  samplesPerSec: number;
  bestSamplesPerSec: number;
  flopsPerSample: number;
  gflops: number;
  blas1: number | null;
  blasN: number | null;
  setGflops: number;
}
const jsonRows: JsonRow[] = [];
console.log(`${samples} samples per run, median of ${repeats} runs after a warm-up run, 1 local epoch, adam 1e-3`);
console.log('');
console.log(
  'engine           model    batch  samples/s  (best)  GFLOP/s | sgemm GFLOP/s now: BLAS×1  BLAS×N  set\'s | % of BLAS×N',
);

for (const set of engines) {
  if (set === 'native' && !native.ok) {
    console.log(`native: skipped (${native.reason})`);
    continue;
  }
  const threadsFor = set === 'native' ? threadList : [1];
  const fusedFor = set === 'native' && values.unfused ? [true, false] : [true];
  for (const threads of threadsFor) for (const fused of fusedFor) {
    useKernelSet(set);
    setFusedStep(fused);
    if (set === 'native' && native.ok) native.addon.setThreads(threads);
    const rowEngine = set === 'native' && !fused ? 'native-kernels' : set;
    const label = set === 'native' ? `native ×${threads}${fused ? '' : ' kern'}` : set === 'wasm' ? 'wasm+own kernels' : 'stock wasm';
    for (const name of values.models!.split(',')) {
      const spec = SPECS[name];
      if (!spec) throw new Error(`unknown model ${name}`);
      const w = await initialWeights(spec, 1);
      const data = synthetic(spec, samples);
      for (const batchSize of batches) {
        const train = { optimizer: 'adam' as const, lr: 1e-3, localEpochs: 1, batchSize, seed: 1 };
        const blas1 = blasGflops(1);
        const blasN = blasGflops(threads > 1 ? threads : defaultThreads);
        const wasmMm = wasmGflops();
        await trainLocal(spec, w, { ...data, n: Math.min(samples, 8 * batchSize) }, train); // warm-up
        const rates: number[] = [];
        for (let i = 0; i < repeats; i++) {
          const r = await trainLocal(spec, w, data, train);
          rates.push(r.numSamples / r.trainSeconds);
        }
        const rate = median(rates);
        const gf = (rate * trainFlops(spec)) / 1e9;
        jsonRows.push({ engine: rowEngine, threads, model: name, batch: batchSize, samplesPerSec: rate, bestSamplesPerSec: Math.max(...rates), flopsPerSample: trainFlops(spec), gflops: gf, blas1, blasN, setGflops: wasmMm });
        console.log(
          `${label.padEnd(16)} ${name.padEnd(8)} ${String(batchSize).padStart(5)}  ${fmt(rate).padStart(9)}  ${fmt(Math.max(...rates)).padStart(6)}  ` +
            `${fmt(gf, 1).padStart(7)} | ${' '.repeat(18)}${fmt(blas1, 0).padStart(6)}  ${fmt(blasN, 0).padStart(6)}  ${fmt(wasmMm, 0).padStart(5)} | ` +
            `${blasN ? fmt((100 * gf) / blasN, 0).padStart(10) : '-'.padStart(10)}`,
        );
      }
    }
  }
}
if (native.ok) native.addon.setThreads(defaultThreads);
setFusedStep(true);
console.log(
  benchJsonLine('ml-engines', {
    samples,
    repeats,
    native: native.ok ? { ok: true, blas: native.blas, core: native.blasChoice.core ?? native.blasChoice.defaultCore ?? null, source: native.blasChoice.source, threads: defaultThreads } : { ok: false, reason: native.reason },
    rows: jsonRows,
  }),
);
