/**
 * Training on the native kernels: a 300-step run of the paper's CNN whose loss curve matches the stock wasm run's,
 * bit-for-bit determinism (run to run, and for any thread count), and -- in child processes, whether or not the
 * addon is built -- the fallbacks: FEDKEEPER_NATIVE=0 trains on the pure-wasm kernels silently, a missing or broken
 * addon trains on them after one line on stderr.
 *
 * Loss-curve tolerance: over each 30-step window, |mean native − mean stock| ≤ 0.02 + 5 % of the stock mean, and
 * the first step (same weights, forward pass only) agrees within 1e-5 relative. (Float summation order differs
 * between the kernels, so the curves drift apart by ~1e-3 while learning and reconverge; a kernel bug shows up as
 * a curve that does not learn, or learns differently, by far more.)
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
  initEngine,
  initialWeights,
  trainLocal,
  useKernelSet,
  type ModelSpec,
  type TrainSpec,
} from '../../src/ml/index.js';
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

  it('300 steps of the CNN: the loss curve matches the stock wasm run', async () => {
    const data = synthetic(CNN, 3000, 5, 0.5);
    const w0 = await initialWeights(CNN, 3);
    const train: TrainSpec = { optimizer: 'adam', lr: 1e-3, localEpochs: 1, batchSize: 10, seed: 1 };
    const curve = async (set: 'stock' | 'native') => {
      useKernelSet(set);
      const losses: number[] = [];
      const r = await trainLocal(CNN, w0, data, train, (_, loss) => losses.push(loss));
      assert.equal(r.steps, 300);
      return losses;
    };
    const stock = await curve('stock');
    const nat = await curve('native');
    assert.ok(Math.abs(nat[0]! - stock[0]!) <= 1e-5 * stock[0]!, `first step: ${nat[0]} vs ${stock[0]}`);
    const mean = (a: number[]) => a.reduce((p, q) => p + q, 0) / a.length;
    for (let i = 0; i < 300; i += 30) {
      const s = mean(stock.slice(i, i + 30));
      const n = mean(nat.slice(i, i + 30));
      assert.ok(Math.abs(n - s) <= 0.02 + 0.05 * s, `steps ${i}-${i + 29}: mean loss ${n} (native) vs ${s} (stock)`);
    }
    assert.ok(mean(nat.slice(270)) < 0.2 * mean(nat.slice(0, 30)), 'it learned');
  });

  it('same seed, same final weights bit for bit: run to run and with 1 or 3 threads', async () => {
    useKernelSet('native');
    const data = synthetic(CNN, 96, 7, 0.5);
    const w0 = await initialWeights(CNN, 4);
    for (const optimizer of ['adam', 'nadam', 'sgd'] as const) {
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
