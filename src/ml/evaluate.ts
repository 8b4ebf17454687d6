/**
 * Batched forward pass (inference only: no gradients, layers in inference mode): accuracy and mean softmax
 * cross-entropy over a labelled set. 1,000 examples per forward pass by default, every tensor of a batch disposed
 * before the next (the paper CNN at this size is compute-bound: ~24 GFLOP/s on one wasm SIMD core, the same per
 * image at 500 or 10,000 per batch; larger batches only grow the wasm heap, by ~70 MB per 1,000 images). The loss
 * is the sum of the per-example losses (float32, as tfjs computes them) taken in float64 in example order, and the
 * accuracy an exact count.
 */
import * as tf from '@tensorflow/tfjs';
import type { WeightVector } from '../fl/weights.js';
import { gatherBatch, validateData } from './batches.js';
import { initEngine } from './engine.js';
import { exampleShape, withModel, writeWeights } from './models.js';
import type { EvalResult, LabelledData, ModelSpec } from './types.js';

/** Examples per forward pass unless the caller says otherwise. */
export const DEFAULT_EVAL_BATCH = 1000;

export async function evaluate(
  spec: ModelSpec,
  weights: WeightVector,
  data: LabelledData,
  batchSize = DEFAULT_EVAL_BATCH,
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
      const [losses, hits] = tf.tidy(() => {
        const x = tf.tensor(batch.x, [b, ...ex], 'float32');
        const labels = tf.tensor1d(batch.y, 'int32');
        const logits = m.model.apply(x, { training: false }) as tf.Tensor2D;
        const perExample = tf.losses.softmaxCrossEntropy(tf.oneHot(labels, spec.numClasses), logits, undefined, undefined, tf.Reduction.NONE);
        return [perExample, tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), labels), 'int32'))];
      });
      try {
        const l = losses.dataSync();
        for (let i = 0; i < l.length; i++) lossSum += l[i]!;
        correct += hits.dataSync()[0]!;
      } finally {
        losses.dispose();
        hits.dispose();
      }
    }
    return { accuracy: correct / n, loss: lossSum / n };
  });
}
