/** Local training: our own minibatch loop (not model.fit), deterministic for given inputs and seed. */
import * as tf from '@tensorflow/tfjs';
import type { WeightVector } from '../fl/weights.js';
import { gatherBatch, validateData } from './batches.js';
import { initEngine } from './engine.js';
import { exampleShape, readWeights, withModel, writeWeights, type CachedModel } from './models.js';
import { makeOptimizer } from './optimizers.js';
import { epochPermutation } from './rng.js';
import type { LabelledData, ModelSpec, TrainResult, TrainSpec } from './types.js';

/** Give the event loop a turn this often during long training runs (timers, sockets, heartbeats). */
const YIELD_EVERY_MS = 100;

function validateTrain(train: TrainSpec): void {
  if (!Number.isInteger(train.localEpochs) || train.localEpochs < 0) {
    throw new Error(`ml: localEpochs must be a non-negative integer, got ${train.localEpochs}`);
  }
  if (!Number.isInteger(train.batchSize) || train.batchSize < 1) {
    throw new Error(`ml: batchSize must be a positive integer, got ${train.batchSize}`);
  }
  if (!Number.isFinite(train.seed)) throw new Error(`ml: seed must be a finite number, got ${train.seed}`);
}

/**
 * One optimisation step on a batch. Returns the batch's mean loss and number of correct predictions, both
 * measured on the forward pass that produced the gradients (i.e. before the update, as Keras reports them).
 */
function step(
  m: CachedModel,
  opt: tf.Optimizer,
  xb: Float32Array,
  yb: Int32Array,
  shape: number[],
  numClasses: number,
): { loss: number; correct: number } {
  let correct = 0;
  const cost = tf.tidy((): tf.Scalar => {
    const x = tf.tensor(xb, shape, 'float32');
    const labels = tf.tensor1d(yb, 'int32');
    const onehot = tf.oneHot(labels, numClasses);
    const c = opt.minimize(
      () => {
        const logits = m.model.apply(x, { training: true }) as tf.Tensor2D;
        correct = tf.sum(tf.equal(tf.argMax(logits, 1), labels)).dataSync()[0]!;
        return tf.losses.softmaxCrossEntropy(onehot, logits) as tf.Scalar;
      },
      true,
      m.vars,
    );
    if (!c) throw new Error('ml: optimizer returned no cost');
    return c;
  });
  const loss = cost.dataSync()[0]!;
  cost.dispose();
  return { loss, correct };
}

/**
 * Trains a copy of `weights` on `data`. `onStep`, if given, is called after every optimisation step with the step's
 * index (from 0, across epochs) and its batch's mean loss (measured before the update).
 */
export async function trainLocal(
  spec: ModelSpec,
  weights: WeightVector,
  data: LabelledData,
  train: TrainSpec,
  onStep?: (step: number, loss: number) => void,
): Promise<TrainResult> {
  await initEngine();
  validateTrain(train);
  validateData(spec, data);
  return withModel(spec, async (m) => {
    const t0 = performance.now();
    writeWeights(m.vars, weights);
    const n = data.n;
    const d = spec.inputShape[0] * spec.inputShape[1] * spec.inputShape[2];
    const ex = exampleShape(spec);
    const opt = makeOptimizer(train);
    let steps = 0;
    let lossSum = 0;
    let correct = 0;
    let lastYield = performance.now();
    try {
      for (let epoch = 0; epoch < train.localEpochs; epoch++) {
        const perm = epochPermutation(n, train.seed, epoch);
        lossSum = 0;
        correct = 0;
        for (let from = 0; from < n; from += train.batchSize) {
          const b = Math.min(train.batchSize, n - from);
          const batch = gatherBatch(data, d, perm, from, b);
          const r = step(m, opt, batch.x, batch.y, [b, ...ex], spec.numClasses);
          lossSum += r.loss * b;
          correct += r.correct;
          onStep?.(steps, r.loss);
          steps++;
          if (performance.now() - lastYield > YIELD_EVERY_MS) {
            await new Promise<void>((resolve) => setImmediate(resolve));
            lastYield = performance.now();
          }
        }
      }
    } finally {
      opt.dispose();
    }
    const out = readWeights(m.vars);
    const trained = steps > 0;
    return {
      weights: out,
      loss: trained ? lossSum / n : NaN,
      accuracy: trained ? correct / n : NaN,
      numSamples: n,
      steps,
      trainSeconds: (performance.now() - t0) / 1000,
    };
  });
}
