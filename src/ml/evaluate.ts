/** Batched forward pass: accuracy and mean softmax cross-entropy over a labelled set. */
import * as tf from '@tensorflow/tfjs';
import type { WeightVector } from '../fl/weights.js';
import { gatherBatch, validateData } from './batches.js';
import { initEngine } from './engine.js';
import { exampleShape, withModel, writeWeights } from './models.js';
import type { EvalResult, LabelledData, ModelSpec } from './types.js';

export async function evaluate(
  spec: ModelSpec,
  weights: WeightVector,
  data: LabelledData,
  batchSize = 500,
): Promise<EvalResult> {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`ml: batchSize must be a positive integer, got ${batchSize}`);
  await initEngine();
  validateData(spec, data);
  return withModel(spec, async (m) => {
    writeWeights(m.vars, weights);
    const n = data.n;
    if (n === 0) return { accuracy: NaN, loss: NaN };
    const d = spec.inputShape[0] * spec.inputShape[1] * spec.inputShape[2];
    const ex = exampleShape(spec);
    let lossSum = 0;
    let correct = 0;
    for (let from = 0; from < n; from += batchSize) {
      const b = Math.min(batchSize, n - from);
      const batch = gatherBatch(data, d, null, from, b);
      const r = tf.tidy(() => {
        const x = tf.tensor(batch.x, [b, ...ex], 'float32');
        const labels = tf.tensor1d(batch.y, 'int32');
        const logits = m.model.apply(x, { training: false }) as tf.Tensor2D;
        const loss = tf.losses.softmaxCrossEntropy(tf.oneHot(labels, spec.numClasses), logits, undefined, undefined, tf.Reduction.SUM);
        const hits = tf.sum(tf.equal(tf.argMax(logits, 1), labels));
        return tf.stack([loss, tf.cast(hits, 'float32')]);
      });
      const v = r.dataSync();
      r.dispose();
      lossSum += v[0]!;
      correct += v[1]!;
    }
    return { accuracy: correct / n, loss: lossSum / n };
  });
}
