/**
 * Training on the native kernels (by default their fused step, fused-step.ts): a 300-step run of the paper's CNN that starts exactly as the stock wasm run and
 * learns as well as it, bit-for-bit determinism (run to run, and for any thread count), and -- in child processes,
 * whether or not the addon is built -- the fallbacks: FEDKEEPER_NATIVE=0 trains on the pure-wasm kernels silently,
 * a missing or broken addon trains on them after one line on stderr.
 *
 * What is compared with the stock run, and why not the whole loss curve: the native kernels sum in another order
 * than wasm's (and OpenBLAS's order depends on the kernels it picks for the CPU, e.g. its generic `Prescott` ones
 * when it does not know the CPU), so the two runs differ by ~1e-7 at first, and training amplifies that ~10x every
 * few steps: some tens of steps in, the curves differ by an amount that depends on the BLAS kernels, not on the
 * kernels' correctness (the mean loss over steps 60-89 was 0.88 with Prescott's, 0.94 with Haswell's, 0.95 stock;
 * across training seeds it ranges 0.80-1.22). So:
 *  - deterministic: the first 5 steps (same weights, rounding not yet amplified) agree within 1e-5 relative -- seen
 *    <= 1e-7 with OpenBLAS's Cooperlake, SkylakeX, Haswell, Sandybridge and Prescott kernels; a gradient of a
 *    replaced kernel that is off (10 % of the filter gradient zeroed, the max-pool gradient or the input gradient
 *    scaled, matmuls off by 1e-3 or rounded to 3 digits) moves them by 4e-5..6e-3;
 *  - statistical: both runs learn (last 30 steps' mean loss < 5 % of the first 30's, seen 0.2 %; held-out accuracy
 *    >= 0.97), the mean loss over all 300 steps agrees within 15 % (the spread of stock runs over training seeds,
 *    0.52-0.60; native vs stock seen within 2 %, with a zeroed input gradient 57 % higher), and held-out accuracy
 *    within 0.02.
 * Kernel-level correctness (each kernel and gradient against the cpu backend) is ml-native-kernels.test.ts's job.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import {
  evaluate,
  initEngine,
  initialWeights,
  trainLocal,
  useKernelSet,
  type ModelSpec,
  type TrainSpec,
} from '../../src/ml/index.js';
import { setFusedStep } from '../../src/ml/fused-step.js';
import { loadNative } from '../../src/ml/native.js';
import { bytes, learnableData as synthetic } from '../fixtures/numeric.js';

const native = loadNative();
const skip = native.ok ? false : `native kernels unavailable (${native.reason}); apt-get install libopenblas-dev, then npm ci`;
const CNN: ModelSpec = { model: 'cnn', inputShape: [28, 28, 1], hiddenSize: 0, numClasses: 10 };
const ML_INDEX = fileURLToPath(new URL('../../src/ml/index.js', import.meta.url));

describe('training on the native kernels', { skip }, () => {
  before(async () => {
    const info = await initEngine();
    assert.equal(info.engine, 'wasm+native');
    assert.ok(info.threads >= 1);
    assert.match(info.blas ?? '', /^OpenBLAS/);
  });
  after(async () => {
    assert.ok(await tf.setBackend('wasm'));
    useKernelSet('native');
  });

  it('300 steps of the CNN: the first steps match the stock wasm run, and it learns as well as stock', async () => {
    const data = synthetic(CNN, 3000, 5, 0.5);
    const heldOut = synthetic(CNN, 1000, 6, 0.5);
    const w0 = await initialWeights(CNN, 3);
    const train: TrainSpec = { optimizer: 'adam', lr: 1e-3, localEpochs: 1, batchSize: 10, seed: 1 };
    const run = async (set: 'stock' | 'native') => {
      useKernelSet(set);
      const losses: number[] = [];
      const r = await trainLocal(CNN, w0, data, train, (_, loss) => losses.push(loss));
      assert.equal(r.steps, 300);
      const held = await evaluate(CNN, r.weights, heldOut);
      return { losses, held };
    };
    const stock = await run('stock');
    const nat = await run('native');
    const mean = (a: number[]) => a.reduce((p, q) => p + q, 0) / a.length;

    // Deterministic: before training has amplified the rounding differences, the runs agree tightly.
    for (let i = 0; i < 5; i++) {
      const s = stock.losses[i]!;
      const n = nat.losses[i]!;
      assert.ok(Math.abs(n - s) <= 1e-5 * s, `step ${i}: loss ${n} (native) vs ${s} (stock), relative ${Math.abs(n - s) / s}`);
    }
    // Statistical: both learn, equally fast, to the same held-out accuracy.
    for (const [name, r] of [['stock', stock], ['native', nat]] as const) {
      const first = mean(r.losses.slice(0, 30));
      const last = mean(r.losses.slice(270));
      assert.ok(last < 0.05 * first, `${name} learned: mean loss ${first} over steps 0-29, ${last} over steps 270-299`);
      assert.ok(r.held.accuracy >= 0.97, `${name}: held-out accuracy ${r.held.accuracy}`);
    }
    const s = mean(stock.losses);
    const n = mean(nat.losses);
    assert.ok(Math.abs(n - s) <= 0.15 * s, `mean loss over the 300 steps: ${n} (native) vs ${s} (stock)`);
    assert.ok(Math.abs(nat.held.accuracy - stock.held.accuracy) <= 0.02, `held-out accuracy ${nat.held.accuracy} (native) vs ${stock.held.accuracy} (stock)`);
  });

  it('same seed, same final weights bit for bit: run to run and with 1 or 3 threads (fused step and kernel path)', async () => {
    useKernelSet('native');
    const data = synthetic(CNN, 96, 7, 0.5);
    const w0 = await initialWeights(CNN, 4);
    for (const [fused, optimizer] of [true, false].flatMap((f) => (['adam', 'nadam', 'sgd'] as const).map((o) => [f, o] as const))) {
      setFusedStep(fused);
      const train: TrainSpec = { optimizer, lr: optimizer === 'sgd' ? 0.05 : 1e-3, localEpochs: 2, batchSize: 32, seed: 9 };
      const a = await trainLocal(CNN, w0, data, train);
      const b = await trainLocal(CNN, w0, data, train);
      assert.ok(bytes(a.weights.data).equals(bytes(b.weights.data)), `${optimizer}: run to run`);
      const threads = native.ok ? native.threads : 1;
      try {
        if (native.ok) native.addon.setThreads(1);
        const one = await trainLocal(CNN, w0, data, train);
        if (native.ok) native.addon.setThreads(3);
        const three = await trainLocal(CNN, w0, data, train);
        assert.ok(bytes(one.weights.data).equals(bytes(a.weights.data)), `${optimizer}: 1 thread`);
        assert.ok(bytes(three.weights.data).equals(bytes(a.weights.data)), `${optimizer}: 3 threads`);
      } finally {
        if (native.ok) native.addon.setThreads(threads);
        setFusedStep(true);
      }
    }
  });
});

/** Runs a small CNN training in a fresh process with `env`; returns its report and stderr. */
function trainInChild(env: NodeJS.ProcessEnv): Promise<{ report: { engine: string; nativeUnavailable?: string; before: number; after: number }; stderr: string }> {
  const code = `
    const ml = await import(${JSON.stringify(ML_INDEX)});
    const info = await ml.initEngine();
    const spec = { model: 'cnn', inputShape: [28, 28, 1], hiddenSize: 0, numClasses: 10 };
    const r = ml.mulberry32(3);
    const protos = Array.from({ length: 10 }, () => Float32Array.from({ length: 784 }, () => r()));
    const n = 64, x = new Float32Array(n * 784), y = new Uint8Array(n);
    for (let i = 0; i < n; i++) { y[i] = i % 10; for (let j = 0; j < 784; j++) x[i * 784 + j] = protos[i % 10][j] * (0.75 + 0.5 * r()); }
    const data = { x, y, n };
    const w0 = await ml.initialWeights(spec, 1);
    const before = await ml.evaluate(spec, w0, data);
    const t = await ml.trainLocal(spec, w0, data, { optimizer: 'adam', lr: 3e-3, localEpochs: 5, batchSize: 16, seed: 1 });
    const after = await ml.evaluate(spec, t.weights, data);
    process.stdout.write(JSON.stringify({ engine: info.engine, nativeUnavailable: info.nativeUnavailable, before: before.loss, after: after.loss }));
  `;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--input-type=module', '-e', code], { env: { ...process.env, ...env }, timeout: 120_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`child failed: ${err.message}\n${stderr}`));
      try {
        resolve({ report: JSON.parse(stdout), stderr });
      } catch (e) {
        reject(new Error(`bad child output ${JSON.stringify(stdout)}: ${String(e)}\n${stderr}`));
      }
    });
  });
}

describe('fallback to the pure-wasm kernels (child processes)', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'fedkeeper-native-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('FEDKEEPER_NATIVE=0: trains on wasm, says nothing', async () => {
    const { report, stderr } = await trainInChild({ FEDKEEPER_NATIVE: '0' });
    assert.equal(report.engine, 'wasm');
    assert.equal(report.nativeUnavailable, 'disabled by FEDKEEPER_NATIVE=0');
    assert.ok(report.after < report.before * 0.5, `loss ${report.before} → ${report.after}`);
    assert.equal(stderr, '');
  });

  it('addon missing: one line on stderr naming the fallback, then trains on wasm', async () => {
    const { report, stderr } = await trainInChild({ FEDKEEPER_NATIVE: '', FEDKEEPER_NATIVE_ADDON: path.join(dir, 'absent.node') });
    assert.equal(report.engine, 'wasm');
    assert.equal(report.nativeUnavailable, 'not built');
    assert.ok(report.after < report.before * 0.5);
    assert.match(stderr, /^fedkeeper: native kernels not built \(libopenblas-dev missing\?[^\n]*\): training uses the pure-wasm kernels\n$/);
  });

  it('addon broken: one line on stderr naming the fallback, then trains on wasm', async () => {
    const broken = path.join(dir, 'broken.node');
    writeFileSync(broken, 'not a shared object');
    const { report, stderr } = await trainInChild({ FEDKEEPER_NATIVE: '', FEDKEEPER_NATIVE_ADDON: broken });
    assert.equal(report.engine, 'wasm');
    assert.match(report.nativeUnavailable ?? '', /^failed to load: /);
    assert.ok(report.after < report.before * 0.5);
    assert.equal(stderr.split('\n').length, 2, stderr);
    assert.match(stderr, /^fedkeeper: native kernels failed to load: .*: training uses the pure-wasm kernels\n$/);
  });
});
