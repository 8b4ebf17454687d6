/**
 * evaluate(): large batches, no tensor left behind, and the numbers of an independent float64 forward pass written
 * out in the test (the mnistnn model is two dense layers) on the embedded MNIST test split.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { loadDataset, type LoadedDataset } from '../../src/ml/datasets.js';
import { DEFAULT_EVAL_BATCH } from '../../src/ml/evaluate.js';
import { evaluate, initEngine, initialWeights, type ModelSpec } from '../../src/ml/index.js';
import type { WeightVector } from '../../src/fl/weights.js';

const MLP: ModelSpec = { model: 'mnistnn', inputShape: [28, 28, 1], hiddenSize: 16, numClasses: 10 };

/** Accuracy and mean cross-entropy of mnistnn (dense relu → dense logits), in float64, example by example. */
function reference(w: WeightVector, data: { x: Float32Array; y: Uint8Array; n: number }): { accuracy: number; loss: number } {
  const [d, h] = w.shapes[0]! as [number, number];
  const k = w.shapes[3]![0]!;
  const W1 = w.data.subarray(0, d * h);
  const b1 = w.data.subarray(d * h, d * h + h);
  const W2 = w.data.subarray(d * h + h, d * h + h + h * k);
  const b2 = w.data.subarray(d * h + h + h * k);
  let correct = 0;
  let loss = 0;
  const hidden = new Float64Array(h);
  const logits = new Float64Array(k);
  for (let e = 0; e < data.n; e++) {
    const x = data.x.subarray(e * d, (e + 1) * d);
    for (let j = 0; j < h; j++) {
      let s = b1[j]!;
      for (let i = 0; i < d; i++) s += x[i]! * W1[i * h + j]!;
      hidden[j] = Math.max(0, s);
    }
    let best = 0;
    for (let c = 0; c < k; c++) {
      let s = b2[c]!;
      for (let j = 0; j < h; j++) s += hidden[j]! * W2[j * k + c]!;
      logits[c] = s;
      if (s > logits[best]!) best = c;
    }
    const max = logits[best]!;
    let z = 0;
    for (let c = 0; c < k; c++) z += Math.exp(logits[c]! - max);
    loss += Math.log(z) + max - logits[data.y[e]!]!;
    if (best === data.y[e]) correct++;
  }
  return { accuracy: correct / data.n, loss: loss / data.n };
}

describe('evaluate', () => {
  let ds: LoadedDataset;
  let w: WeightVector;
  before(async () => {
    await initEngine();
    ds = await loadDataset({ dataset: 'mnist', test_fraction: 0.25 });
    w = await initialWeights(MLP, 21);
  });

  it('runs 1,000 or more examples per forward pass by default', () => {
    assert.ok(DEFAULT_EVAL_BATCH >= 1000, `default batch ${DEFAULT_EVAL_BATCH}`);
  });

  it('gives the accuracy and loss of a float64 forward pass, whatever the batch size, and leaks no tensor', async () => {
    assert.ok(ds.test.n > 2000 && ds.test.n < 3000, `${ds.test.n} test samples: two full batches and a partial one at the default size`);
    const want = reference(w, ds.test);
    await evaluate(MLP, w, ds.test); // builds and caches the model
    const tensors = tf.memory().numTensors;
    const bytes = tf.memory().numBytes;
    for (const batch of [undefined, 300, ds.test.n, 4096]) {
      const got = await evaluate(MLP, w, ds.test, batch);
      assert.equal(got.accuracy, want.accuracy, `accuracy at batch ${batch ?? 'default'}`);
      assert.ok(Math.abs(got.loss - want.loss) <= 1e-6 * want.loss, `loss ${got.loss} vs ${want.loss} at batch ${batch ?? 'default'}`);
      assert.equal(tf.memory().numTensors, tensors, `tensors left behind at batch ${batch ?? 'default'}`);
      assert.equal(tf.memory().numBytes, bytes);
    }
    assert.ok(want.accuracy > 0 && want.accuracy < 1 && want.loss > 0);
  });
});
