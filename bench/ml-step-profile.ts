/**
 * Where a training step's time goes. On the native engine's fused step (the default): each phase of the step
 * (wall time) and each conv/pool layer's forward and backward (CPU time over the parts), from the addon's own
 * counters. On a tfjs path (--engine wasm|stock, or --unfused): every kernel registered on the wasm backend is
 * wrapped with a timer, and the table lists each kernel's share of the wall time; what the kernels do not account
 * for is tfjs' own dispatch, tape and tensor bookkeeping, plus the JS of the training loop.
 *
 *   node dist/bench/ml-step-profile.js [--engine native|wasm|stock] [--unfused] [--model cnn|mnistnn] [--batch 32]
 *                                      [--samples 1280] [--threads N]
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { initEngine, initialWeights, trainLocal, useKernelSet, type KernelSet, type ModelSpec } from '../src/ml/index.js';
import { setFusedProfileSink, setFusedStep, type FusedProfile } from '../src/ml/fused-step.js';
import { loadNative } from '../src/ml/native.js';
import { synthetic } from './synthetic.js';

const { values } = parseArgs({
  options: {
    engine: { type: 'string', default: 'native' },
    model: { type: 'string', default: 'cnn' },
    batch: { type: 'string', default: '32' },
    samples: { type: 'string', default: '1280' },
    threads: { type: 'string' },
    unfused: { type: 'boolean', default: false },
  },
});
const SPECS: Record<string, ModelSpec> = {
  cnn: { model: 'cnn', inputShape: [28, 28, 1], hiddenSize: 0, numClasses: 10 },
  mnistnn: { model: 'mnistnn', inputShape: [28, 28, 1], hiddenSize: 500, numClasses: 10 },
};
const spec = SPECS[values.model!];
if (!spec) throw new Error(`unknown model ${values.model}`);
const batch = Number(values.batch);
const samples = Number(values.samples);

await initEngine();
useKernelSet(values.engine as KernelSet);
const native = loadNative();
if (values.threads && native.ok) native.addon.setThreads(Number(values.threads));
setFusedStep(!values.unfused);
let fused: FusedProfile | null = null;
setFusedProfileSink((p) => (fused = p));

const times = new Map<string, { ms: number; calls: number }>();
let timing = false;
for (const cfg of tf.getKernelsForBackend('wasm')) {
  const inner = cfg.kernelFunc;
  const name = cfg.kernelName;
  (cfg as { kernelFunc: tf.KernelFunc }).kernelFunc = (args) => {
    if (!timing) return inner(args);
    const t0 = performance.now();
    try {
      return inner(args);
    } finally {
      const e = times.get(name) ?? { ms: 0, calls: 0 };
      e.ms += performance.now() - t0;
      e.calls++;
      times.set(name, e);
    }
  };
}

const data = synthetic(spec, samples);
const w = await initialWeights(spec, 1);
const train = { optimizer: 'adam' as const, lr: 1e-3, localEpochs: 1, batchSize: batch, seed: 1 };
await trainLocal(spec, w, { ...data, n: 8 * batch }, train); // warm-up
timing = true;
fused = null;
const r = await trainLocal(spec, w, data, train);
timing = false;
const wallMs = r.trainSeconds * 1000;
const steps = r.steps;
console.log(
  `${values.engine} ${values.model} batch ${batch}: ${(samples / r.trainSeconds).toFixed(0)} samples/s, ${(wallMs / steps).toFixed(3)} ms/step; ` +
    `load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`,
);
const report = fused as FusedProfile | null;
if (report) {
  const per = (s: number) => ((1000 * s) / steps).toFixed(3).padStart(10);
  const pct = (s: number) => ((100 * s * 1000) / wallMs).toFixed(1).padStart(11);
  console.log('fused step phase (wall, calling thread)     ms/step   % of wall');
  const ph = report.phases;
  const rows: [string, number][] = [
    ['conv/pool layers forward (parts)', ph.partsForward],
    ['dense layers forward (whole batch)', ph.denseForward],
    ['softmax-CE + last dense layers backward', ph.lossAndDenseBackward],
    ['conv/pool layers backward (parts)', ph.partsBackward],
    ['dense grads, 1st dense dX + optimizer', ph.update],
  ];
  let inStep = 0;
  for (const [name, sec] of rows) {
    inStep += sec;
    console.log(`${name.padEnd(40)}${per(sec)}${pct(sec)}`);
  }
  console.log(`${'(outside the step: JS loop, batches)'.padEnd(40)}${per(wallMs / 1000 - inStep)}${pct(wallMs / 1000 - inStep)}`);
  console.log('conv/pool layer (CPU over parts)      fwd ms/step   bwd ms/step');
  for (const l of report.layers) {
    if (l.forwardCpu === 0 && l.backwardCpu === 0) continue;
    console.log(`${l.name.padEnd(36)}${per(l.forwardCpu)}${per(l.backwardCpu).padStart(14)}`);
  }
  process.exit(0);
}
console.log('kernel                          calls/step   ms/step   % of wall');
let kernelMs = 0;
for (const [name, e] of [...times].sort((a, b) => b[1].ms - a[1].ms)) {
  kernelMs += e.ms;
  if (e.ms / wallMs < 0.002) continue;
  console.log(`${name.padEnd(32)}${(e.calls / steps).toFixed(1).padStart(10)}${(e.ms / steps).toFixed(3).padStart(10)}${((100 * e.ms) / wallMs).toFixed(1).padStart(11)}`);
}
console.log(`${'(all kernels)'.padEnd(32)}${''.padStart(10)}${(kernelMs / steps).toFixed(3).padStart(10)}${((100 * kernelMs) / wallMs).toFixed(1).padStart(11)}`);
console.log(`${'(outside kernels: tfjs, loop)'.padEnd(32)}${''.padStart(10)}${((wallMs - kernelMs) / steps).toFixed(3).padStart(10)}${((100 * (wallMs - kernelMs)) / wallMs).toFixed(1).padStart(11)}`);
