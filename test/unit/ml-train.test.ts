/** trainLocal / evaluate: learning, determinism, no leaks, cnn on wasm (which needs the Conv2DBackpropFilter kernel). */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import {
  evaluate,
  initEngine,
  initialWeights,
  trainLocal,
  type LabelledData,
  type ModelSpec,
  type TrainSpec,
} from '../../src/ml/index.js';
import { bytes, learnableData as synthetic } from '../fixtures/numeric.js';

const MLP: ModelSpec = { model: 'mnistnn', inputShape: [8, 8, 1], hiddenSize: 32, numClasses: 4 };
const CNN: ModelSpec = { model: 'cnn', inputShape: [28, 28, 1], hiddenSize: 0, numClasses: 10 };

describe('trainLocal / evaluate', () => {
  before(async () => {
    const info = await initEngine();
    assert.ok(info.engine === 'wasm' || info.engine === 'wasm+native', info.engine);
    assert.equal(info.simd, true);
    assert.deepEqual(await initEngine(), info, 'idempotent');
  });

  it('mnistnn: one trainLocal lowers the loss on a learnable set', async () => {
    const data = synthetic(MLP, 200, 1);
    const w0 = await initialWeights(MLP, 1);
    const before = await evaluate(MLP, w0, data);
    for (const optimizer of ['adam', 'sgd', 'nadam'] as const) {
      const lr = optimizer === 'sgd' ? 0.1 : 0.01;
      const r = await trainLocal(MLP, w0, data, { optimizer, lr, localEpochs: 2, batchSize: 16, seed: 3 });
      assert.equal(r.numSamples, 200);
      assert.equal(r.steps, 2 * Math.ceil(200 / 16), 'last partial batch included');
      assert.ok(r.trainSeconds > 0);
      assert.ok(Number.isFinite(r.loss) && r.accuracy >= 0 && r.accuracy <= 1);
      const after = await evaluate(MLP, r.weights, data);
      assert.ok(after.loss < before.loss * 0.5, `${optimizer}: loss ${before.loss} → ${after.loss}`);
      assert.ok(after.accuracy > 0.9, `${optimizer}: accuracy ${after.accuracy}`);
      assert.deepEqual(r.weights.shapes, w0.shapes);
    }
  });

  it('same inputs and seed give identical weights bit for bit; another seed does not', async () => {
    const data = synthetic(MLP, 100, 2);
    const w0 = await initialWeights(MLP, 5);
    const train: TrainSpec = { optimizer: 'nadam', lr: 0.01, localEpochs: 2, batchSize: 7, seed: 11 };
    const a = await trainLocal(MLP, w0, data, train);
    const b = await trainLocal(MLP, w0, data, train);
    const c = await trainLocal(MLP, w0, data, { ...train, seed: 12 });
    assert.ok(bytes(a.weights.data).equals(bytes(b.weights.data)));
    assert.equal(a.loss, b.loss);
    assert.ok(!bytes(a.weights.data).equals(bytes(c.weights.data)));
  });

  it('does not modify its input weights or data', async () => {
    const data = synthetic(MLP, 30, 3);
    const w0 = await initialWeights(MLP, 6);
    const wCopy = w0.data.slice();
    const xCopy = data.x.slice();
    await trainLocal(MLP, w0, data, { optimizer: 'adam', lr: 0.01, localEpochs: 1, batchSize: 8, seed: 1 });
    assert.ok(bytes(w0.data).equals(bytes(wCopy)));
    assert.ok(bytes(data.x).equals(bytes(xCopy)));
  });

  it('leaks no tensors across calls', async () => {
    const data = synthetic(MLP, 50, 4);
    const w0 = await initialWeights(MLP, 7);
    const run = async () => {
      for (const optimizer of ['adam', 'sgd', 'nadam'] as const) {
        const r = await trainLocal(MLP, w0, data, { optimizer, lr: 0.01, localEpochs: 1, batchSize: 8, seed: 1 });
        await evaluate(MLP, r.weights, data, 16);
      }
      await initialWeights(MLP, 8);
    };
    await run(); // warms the model cache
    const count = tf.memory().numTensors;
    const numBytes = tf.memory().numBytes;
    await run();
    await run();
    assert.equal(tf.memory().numTensors, count);
    assert.equal(tf.memory().numBytes, numBytes);
  });

  it('evaluate is independent of its batch size', async () => {
    const data = synthetic(MLP, 53, 5, 0.6);
    const w0 = await initialWeights(MLP, 9);
    const a = await evaluate(MLP, w0, data);
    const b = await evaluate(MLP, w0, data, 10);
    assert.equal(a.accuracy, b.accuracy);
    assert.ok(Math.abs(a.loss - b.loss) <= 1e-6 * a.loss);
    assert.ok(a.loss > 0);
  });

  it('handles empty data and rejects malformed input', async () => {
    const w0 = await initialWeights(MLP, 1);
    const empty: LabelledData = { x: new Float32Array(0), y: new Uint8Array(0), n: 0 };
    const r = await trainLocal(MLP, w0, empty, { optimizer: 'adam', lr: 0.01, localEpochs: 1, batchSize: 8, seed: 1 });
    assert.equal(r.steps, 0);
    assert.equal(r.numSamples, 0);
    assert.ok(bytes(r.weights.data).equals(bytes(w0.data)));
    assert.ok(Number.isNaN((await evaluate(MLP, w0, empty)).accuracy));
    const bad = synthetic(MLP, 4, 1);
    bad.y[0] = 9;
    await assert.rejects(evaluate(MLP, w0, bad), /out of range/);
    await assert.rejects(evaluate(MLP, w0, { ...bad, n: 5 }), /need n/);
    const cnnW = await initialWeights(CNN, 1);
    await assert.rejects(evaluate(MLP, cnnW, synthetic(MLP, 4, 1)), /do not match/);
  });

  it('cnn trains on wasm, and one SGD step matches the cpu backend', async () => {
    const data = synthetic(CNN, 8, 6);
    const w0 = await initialWeights(CNN, 2);
    const train: TrainSpec = { optimizer: 'sgd', lr: 0.05, localEpochs: 1, batchSize: 8, seed: 1 };
    const onWasm = await trainLocal(CNN, w0, data, train);
    assert.equal(onWasm.steps, 1);
    assert.ok(onWasm.weights.data.every(Number.isFinite));

    assert.ok(await tf.setBackend('cpu'));
    let onCpu;
    try {
      onCpu = await trainLocal(CNN, w0, data, train);
    } finally {
      assert.ok(await tf.setBackend('wasm'));
    }
    assert.ok(Math.abs(onWasm.loss - onCpu.loss) <= 1e-5 * onCpu.loss, `loss ${onWasm.loss} vs ${onCpu.loss}`);
    // Compare the updates Δw = w1 − w0 per variable, relative to the largest |Δw| of that variable.
    let off = 0;
    for (const shape of w0.shapes) {
      const n = shape.reduce((p, q) => p * q, 1);
      let maxDiff = 0;
      let maxDelta = 0;
      for (let i = off; i < off + n; i++) {
        const dCpu = onCpu.weights.data[i]! - w0.data[i]!;
        const dWasm = onWasm.weights.data[i]! - w0.data[i]!;
        maxDiff = Math.max(maxDiff, Math.abs(dWasm - dCpu));
        maxDelta = Math.max(maxDelta, Math.abs(dCpu));
      }
      assert.ok(maxDelta > 0, `variable [${shape}] was updated`);
      assert.ok(maxDiff <= 1e-4 * maxDelta, `variable [${shape}]: update differs by ${maxDiff} (max |Δ| ${maxDelta})`);
      off += n;
    }

    // And a couple of epochs on wasm learn something.
    const more = synthetic(CNN, 64, 7);
    const r = await trainLocal(CNN, w0, more, { optimizer: 'adam', lr: 0.001, localEpochs: 2, batchSize: 16, seed: 1 });
    const before = await evaluate(CNN, w0, more);
    const after = await evaluate(CNN, r.weights, more);
    assert.ok(after.loss < before.loss, `cnn loss ${before.loss} → ${after.loss}`);
  });
});
