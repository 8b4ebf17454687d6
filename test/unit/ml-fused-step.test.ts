/**
 * The fused training step (fused-step.ts, native/src/train_step.h) against tfjs:
 *  - its gradient (one SGD step with lr 1024, a power of two, so (w0 − w1) / 1024 is the gradient to ~1e-10 of
 *    the weights' size) against the gradient tfjs computes with the stock wasm kernels (tf.grads over the same
 *    layers), per variable, for the CNN (conv + bias + relu, max-pool, dense + relu, softmax cross-entropy) and the
 *    MLP, at batches 1, 7 and 24; and its reported loss against tfjs' loss;
 *  - several steps against the kernel-by-kernel native path (setFusedStep(false)): SGD weights and Adam losses;
 *  - bit for bit the same weights for 1, 2 and 3 threads, for every optimizer, with a short last batch;
 *  - the same for other layer sequences the addon takes (other channel counts, overlapping pools, im2col blocks);
 *  - bad input is refused with an error, and the fused step is what trainLocal runs on 'wasm+native'.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { setFusedStep, trainerSpec } from '../../src/ml/fused-step.js';
import { initEngine, initialWeights, trainLocal, useKernelSet, weightShapes, type ModelSpec, type TrainSpec } from '../../src/ml/index.js';
import { loadNative } from '../../src/ml/native.js';
import { bytes, learnableData, randomArray } from '../fixtures/numeric.js';

const native = loadNative();
const skip = native.ok ? false : `native kernels unavailable (${native.reason}); apt-get install libopenblas-dev, then npm ci`;
const CNN: ModelSpec = { model: 'cnn', inputShape: [28, 28, 1], hiddenSize: 0, numClasses: 10 };
const MLP: ModelSpec = { model: 'mnistnn', inputShape: [28, 28, 1], hiddenSize: 64, numClasses: 10 };

/** The model's loss over x (NHWC or flat), as tfjs layers compute it: logits → mean softmax cross-entropy. */
function lossOf(spec: ModelSpec, ws: tf.Tensor[], x: tf.Tensor, onehot: tf.Tensor2D): tf.Scalar {
  const b = x.shape[0]!;
  let logits: tf.Tensor2D;
  if (spec.model === 'cnn') {
    let h: tf.Tensor4D = tf.relu(tf.add(tf.conv2d(x as tf.Tensor4D, ws[0] as tf.Tensor4D, 1, 'valid'), ws[1]!));
    h = tf.maxPool(h, 2, 2, 'valid');
    h = tf.relu(tf.add(tf.conv2d(h, ws[2] as tf.Tensor4D, 1, 'valid'), ws[3]!));
    h = tf.maxPool(h, 2, 2, 'valid');
    const d = tf.relu(tf.add(tf.matMul(tf.reshape(h, [b, -1]), ws[4] as tf.Tensor2D), ws[5]!)) as tf.Tensor2D;
    logits = tf.add(tf.matMul(d, ws[6] as tf.Tensor2D), ws[7]!);
  } else {
    const d = tf.relu(tf.add(tf.matMul(x as tf.Tensor2D, ws[0] as tf.Tensor2D), ws[1]!)) as tf.Tensor2D;
    logits = tf.add(tf.matMul(d, ws[2] as tf.Tensor2D), ws[3]!);
  }
  return tf.losses.softmaxCrossEntropy(onehot, logits) as tf.Scalar;
}

/** tfjs' gradient (per variable) and loss for the whole of `data` as one batch, on the active kernel set. */
function tfjsGradient(spec: ModelSpec, w0: Float32Array, data: { x: Float32Array; y: Uint8Array; n: number }) {
  return tf.tidy(() => {
    const shapes = weightShapes(spec);
    let off = 0;
    const ws = shapes.map((s) => {
      const size = s.reduce((p, q) => p * q, 1);
      const t = tf.tensor(w0.slice(off, off + size), s, 'float32');
      off += size;
      return t;
    });
    const [h, w, c] = spec.inputShape;
    const x = tf.tensor(data.x.slice(0, data.n * h * w * c), spec.model === 'cnn' ? [data.n, h, w, c] : [data.n, h * w * c], 'float32');
    const onehot = tf.oneHot(tf.tensor1d(Array.from(data.y.slice(0, data.n)), 'int32'), spec.numClasses) as tf.Tensor2D;
    const { value, grads } = tf.valueAndGrads((...v: tf.Tensor[]) => lossOf(spec, v, x, onehot))(ws);
    return { loss: value.dataSync()[0]!, grads: grads.map((g) => g.dataSync() as Float32Array) };
  });
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

describe('the fused native training step', { skip }, () => {
  before(async () => {
    const info = await initEngine();
    assert.equal(info.engine, 'wasm+native');
  });
  after(() => {
    useKernelSet('native');
    setFusedStep(true);
  });

  for (const spec of [CNN, MLP]) {
    for (const n of [1, 7, 24]) {
      it(`${spec.model}, batch ${n}: one step's gradient and loss match tfjs' (stock kernels)`, async () => {
        const data = learnableData(spec, n, 11 + n, 0.4);
        const w0 = (await initialWeights(spec, 5)).data;
        useKernelSet('stock');
        const ref = tfjsGradient(spec, w0, data);
        useKernelSet('native');
        setFusedStep(true);
        const losses: number[] = [];
        const train: TrainSpec = { optimizer: 'sgd', lr: 1024, localEpochs: 1, batchSize: n, seed: 3 };
        const r = await trainLocal(spec, { shapes: weightShapes(spec), data: w0 }, data, train, (_, l) => losses.push(l));
        assert.equal(r.steps, 1);
        assert.ok(Math.abs(losses[0]! - ref.loss) <= 1e-6 * ref.loss, `loss ${losses[0]} (fused) vs ${ref.loss} (tfjs)`);
        let off = 0;
        weightShapes(spec).forEach((s, v) => {
          const want = ref.grads[v]!;
          const got = new Float64Array(want.length);
          for (let i = 0; i < want.length; i++) got[i] = (w0[off + i]! - r.weights.data[off + i]!) / 1024;
          off += want.length;
          let diff = 0;
          for (let i = 0; i < want.length; i++) diff = Math.max(diff, Math.abs(got[i]! - want[i]!));
          const scale = maxAbs(want);
          assert.ok(diff <= 1e-5 * scale + 1e-9, `variable ${v} [${s.join(',')}]: max |fused − tfjs| ${diff}, max |tfjs| ${scale}`);
        });
      });
    }
  }

  // Other layer shapes than the paper's (the addon takes any sequence): direct convolutions with other than 32
  // channels, one through im2col after a direct one, overlapping max-pool windows (3x3, stride 2), a relu dense layer
  // before the logits, several samples per im2col block and several blocks per part.
  const CUSTOM: { name: string; spec: number[]; batch: number }[] = [
    { name: 'conv 3x3x8 (direct), pool 2/2, dense', spec: [8, 8, 3, 10, 3, 1, 3, 8, 1, 2, 2, 2, 0, 3, 10, 0, 0], batch: 5 },
    {
      name: 'conv 2x2x32 (direct), pool 3/2, conv 2x2x5 (im2col), dense relu, dense',
      spec: [9, 9, 2, 4, 5, 1, 2, 32, 1, 2, 3, 2, 0, 1, 2, 5, 0, 3, 7, 0, 1, 3, 4, 0, 0],
      batch: 6,
    },
    { name: 'conv 5x5x6 (im2col, 2-sample blocks), dense', spec: [40, 40, 2, 3, 2, 1, 5, 6, 1, 3, 3, 0, 0], batch: 9 },
  ];
  for (const c of CUSTOM) {
    it(`other layers (${c.name}): one step's gradient matches tfjs'`, () => {
      if (!native.ok) return;
      const a = native.addon;
      const spec = Int32Array.from(c.spec);
      const [H, W, C, classes, nl] = c.spec as [number, number, number, number, number];
      // Shapes of the variables, walking the layers as the addon does.
      const shapes: number[][] = [];
      let [h, w, ch] = [H, W, C];
      for (let i = 0; i < nl; i++) {
        const [type, p1, p2] = c.spec.slice(5 + 4 * i, 8 + 4 * i) as [number, number, number];
        if (type === 1) {
          shapes.push([p1, p1, ch, p2], [p2]);
          [h, w, ch] = [h - p1 + 1, w - p1 + 1, p2];
        } else if (type === 2) {
          [h, w] = [Math.floor((h - p1) / p2) + 1, Math.floor((w - p1) / p2) + 1];
        } else {
          shapes.push([h * w * ch, p1], [p1]);
          [h, w, ch] = [1, 1, p1];
        }
      }
      const sizes = shapes.map((s) => s.reduce((p, q) => p * q, 1));
      const total = sizes.reduce((p, q) => p + q, 0);
      const t = a.trainerCreate(spec);
      try {
        assert.equal(a.trainerParams(t), total);
        const w0 = new Float32Array(total);
        const r = learnableData({ model: 'cnn', inputShape: [H, W, C], hiddenSize: 0, numClasses: classes }, c.batch, 31, 0.4);
        let off = 0;
        shapes.forEach((s, v) => {
          const fanIn = s.length === 1 ? 1 : s.slice(0, -1).reduce((p, q) => p * q, 1);
          const bound = Math.sqrt(6 / (fanIn + s[s.length - 1]!));
          const rnd = randomArray(sizes[v]!, 40 + v);
          for (let i = 0; i < sizes[v]!; i++) w0[off + i] = (s.length === 1 ? 0.025 : bound) * rnd[i]!;
          off += sizes[v]!;
        });
        a.trainerStart(t, w0);
        const result = new Float64Array(2);
        a.trainerStep(t, r.x, Int32Array.from(r.y), c.batch, 0, Float64Array.from([-1024, 0, 0, 0, 0, 0, 0, 0, 0]), result);
        const w1 = new Float32Array(total);
        a.trainerWeights(t, w1);
        useKernelSet('stock');
        const ref = tf.tidy(() => {
          let o = 0;
          const ws = shapes.map((s, v) => {
            const x = tf.tensor(w0.slice(o, o + sizes[v]!), s, 'float32');
            o += sizes[v]!;
            return x;
          });
          const x = tf.tensor4d(r.x, [c.batch, H, W, C]);
          const onehot = tf.oneHot(tf.tensor1d(Array.from(r.y), 'int32'), classes) as tf.Tensor2D;
          const f = (...v: tf.Tensor[]) => {
            let y: tf.Tensor = x;
            let vi = 0;
            for (let i = 0; i < nl; i++) {
              const [type, p1, p2, relu] = c.spec.slice(5 + 4 * i, 9 + 4 * i) as [number, number, number, number];
              if (type === 1) y = tf.add(tf.conv2d(y as tf.Tensor4D, v[vi++] as tf.Tensor4D, 1, 'valid'), v[vi++]!);
              else if (type === 2) y = tf.maxPool(y as tf.Tensor4D, p1, p2, 'valid');
              else y = tf.add(tf.matMul(tf.reshape(y, [c.batch, -1]), v[vi++] as tf.Tensor2D), v[vi++]!);
              if (relu) y = tf.relu(y);
            }
            return tf.losses.softmaxCrossEntropy(onehot, y as tf.Tensor2D) as tf.Scalar;
          };
          const { value, grads } = tf.valueAndGrads(f)(ws);
          return { loss: value.dataSync()[0]!, grads: grads.map((g) => g.dataSync() as Float32Array) };
        });
        useKernelSet('native');
        assert.ok(Math.abs(result[0]! - ref.loss) <= 1e-6 * ref.loss, `loss ${result[0]} (fused) vs ${ref.loss} (tfjs)`);
        off = 0;
        shapes.forEach((s, v) => {
          const want = ref.grads[v]!;
          let diff = 0;
          for (let i = 0; i < want.length; i++) diff = Math.max(diff, Math.abs((w0[off + i]! - w1[off + i]!) / 1024 - want[i]!));
          off += want.length;
          assert.ok(diff <= 1e-5 * maxAbs(want) + 1e-9, `variable ${v} [${s.join(',')}]: max |fused − tfjs| ${diff}, max |tfjs| ${maxAbs(want)}`);
        });
      } finally {
        a.trainerDispose(t);
        useKernelSet('native');
      }
    });
  }

  it('several steps agree with the kernel-by-kernel native path (SGD weights, Adam losses)', async () => {
    useKernelSet('native');
    for (const spec of [CNN, MLP]) {
      const data = learnableData(spec, 70, 21, 0.4);
      const w0 = await initialWeights(spec, 6);
      const run = async (fused: boolean, train: TrainSpec) => {
        setFusedStep(fused);
        const losses: number[] = [];
        const r = await trainLocal(spec, w0, data, train, (_, l) => losses.push(l));
        return { w: r.weights.data, losses };
      };
      const sgd: TrainSpec = { optimizer: 'sgd', lr: 0.05, localEpochs: 1, batchSize: 16, seed: 2 };
      const [a, b] = [await run(false, sgd), await run(true, sgd)];
      let diff = 0;
      for (let i = 0; i < a.w.length; i++) diff = Math.max(diff, Math.abs(a.w[i]! - b.w[i]!));
      assert.ok(diff <= 1e-5 * maxAbs(a.w), `${spec.model} sgd: max weight difference ${diff}`);
      const adam: TrainSpec = { ...sgd, optimizer: 'adam', lr: 1e-3 };
      const [c, d] = [await run(false, adam), await run(true, adam)];
      assert.equal(c.losses.length, 5);
      c.losses.forEach((l, i) => assert.ok(Math.abs(d.losses[i]! - l) <= 1e-5 * l, `${spec.model} adam step ${i}: loss ${d.losses[i]} vs ${l}`));
    }
    setFusedStep(true);
  });

  it('same seed, same weights bit for bit with 1, 2 and 3 threads (every optimizer, a short last batch)', async () => {
    useKernelSet('native');
    setFusedStep(true);
    const threads = native.ok ? native.threads : 1;
    try {
      for (const spec of [CNN, MLP]) {
        const data = learnableData(spec, 45, 8, 0.4);
        const w0 = await initialWeights(spec, 7);
        for (const optimizer of ['adam', 'nadam', 'sgd'] as const) {
          const train: TrainSpec = { optimizer, lr: optimizer === 'sgd' ? 0.05 : 1e-3, localEpochs: 2, batchSize: 16, seed: 4 };
          const runs: Buffer[] = [];
          for (const t of [1, 2, 3, 2]) {
            if (native.ok) native.addon.setThreads(t);
            runs.push(bytes((await trainLocal(spec, w0, data, train)).weights.data));
          }
          runs.forEach((r, i) => assert.ok(r.equals(runs[0]!), `${spec.model} ${optimizer}: run ${i} differs`));
        }
      }
    } finally {
      if (native.ok) native.addon.setThreads(threads);
    }
  });

  it('trainLocal runs the fused step on wasm+native, and not when it is switched off or on another kernel set', async () => {
    if (!native.ok) return;
    const addon = native.addon as unknown as Record<string, (...a: unknown[]) => unknown>;
    const saved = addon['trainerStep']!;
    let calls = 0;
    addon['trainerStep'] = (...a: unknown[]) => {
      calls++;
      return saved(...a);
    };
    try {
      const data = learnableData(MLP, 20, 9, 0.4);
      const w0 = await initialWeights(MLP, 1);
      const train: TrainSpec = { optimizer: 'adam', lr: 1e-3, localEpochs: 1, batchSize: 10, seed: 1 };
      useKernelSet('native');
      setFusedStep(true);
      await trainLocal(MLP, w0, data, train);
      assert.equal(calls, 2);
      setFusedStep(false);
      await trainLocal(MLP, w0, data, train);
      useKernelSet('wasm');
      setFusedStep(true);
      await trainLocal(MLP, w0, data, train);
      assert.equal(calls, 2);
    } finally {
      addon['trainerStep'] = saved;
      useKernelSet('native');
      setFusedStep(true);
    }
  });

  it('refuses bad input with an error', () => {
    if (!native.ok) return;
    const a = native.addon;
    assert.throws(() => a.trainerCreate(Int32Array.from([28, 28, 1, 10, 1, 9, 1, 1, 0])), /invalid trainer spec/);
    assert.throws(() => a.trainerCreate(Int32Array.from([28, 28, 1, 10, 1, 3, 11, 0, 0])), /invalid trainer spec/); // 11 outputs, 10 classes
    assert.throws(() => a.trainerCreate(Int32Array.from([4, 4, 1, 10, 2, 1, 5, 8, 1, 3, 10, 0, 0])), /invalid trainer spec/); // 5x5 filter on 4x4
    const t = a.trainerCreate(trainerSpec(MLP));
    const n = a.trainerParams(t);
    assert.equal(n, weightShapes(MLP).reduce((p, s) => p + s.reduce((q, d) => q * d, 1), 0));
    a.trainerStart(t, new Float32Array(n));
    const x = new Float32Array(2 * 784);
    const scalars = new Float64Array(9);
    const result = new Float64Array(2);
    assert.throws(() => a.trainerStep(t, x, Int32Array.from([1, 10]), 2, 0, scalars, result), /label out of range/);
    assert.throws(() => a.trainerStep(t, x, Int32Array.from([1, 2]), 3, 0, scalars, result), /out of the heap's bounds/);
    a.trainerStep(t, x, Int32Array.from([1, 2]), 2, 0, scalars, result);
    assert.ok(Math.abs(result[0]! - Math.log(10)) < 1e-6, `loss ${result[0]} with zero weights`);
    a.trainerDispose(t);
    assert.throws(() => a.trainerWeights(t, new Float32Array(n)), /disposed/);
  });
});
