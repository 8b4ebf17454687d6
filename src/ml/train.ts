/** Local training: our own minibatch loop (not model.fit), deterministic for given inputs and seed. */
import * as tf from '@tensorflow/tfjs';
import type { WeightVector } from '../fl/weights.js';
import { gatherBatch, validateData } from './batches.js';
import { initEngine } from './engine.js';
import { exampleShape, readWeights, withModel, writeWeights, type CachedModel } from './models.js';
import { fusedTrainer } from './fused-step.js';
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
  if (!(typeof train.lr === 'number' && Number.isFinite(train.lr) && train.lr > 0)) {
    throw new Error(`ml: lr must be a positive number, got ${String(train.lr)}`);
  }
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

/** One step on the first b examples of x and y. */
type StepFn = (x: Float32Array, y: Int32Array, b: number) => { loss: number; correct: number };

/** The minibatch loop: per-epoch seeded shuffles, one step per batch, the event loop fed now and then. */
async function runEpochs(
  spec: ModelSpec,
  data: LabelledData,
  train: TrainSpec,
  step: StepFn,
  onStep?: (step: number, loss: number) => void,
  reuseBatch = false,
): Promise<{ steps: number; lossSum: number; correct: number }> {
  const n = data.n;
  const d = spec.inputShape[0] * spec.inputShape[1] * spec.inputShape[2];
  // One batch buffer for every step, when the step does not keep its input (the fused step copies nothing out of it).
  const into = reuseBatch ? { x: new Float32Array(Math.min(n, train.batchSize) * d), y: new Int32Array(Math.min(n, train.batchSize)) } : undefined;
  let steps = 0;
  let lossSum = 0;
  let correct = 0;
  let lastYield = performance.now();
  for (let epoch = 0; epoch < train.localEpochs; epoch++) {
    const perm = epochPermutation(n, train.seed, epoch);
    lossSum = 0;
    correct = 0;
    for (let from = 0; from < n; from += train.batchSize) {
      const b = Math.min(train.batchSize, n - from);
      const batch = gatherBatch(data, d, perm, from, b, into);
      const r = step(batch.x, batch.y, b);
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
  return { steps, lossSum, correct };
}

function result(weights: WeightVector, n: number, r: { steps: number; lossSum: number; correct: number }, t0: number): TrainResult {
  const trained = r.steps > 0;
  return {
    weights,
    loss: trained ? r.lossSum / n : NaN,
    accuracy: trained ? r.correct / n : NaN,
    numSamples: n,
    steps: r.steps,
    trainSeconds: (performance.now() - t0) / 1000,
  };
}

/**
 * Trains a copy of `weights` on `data`. `onStep`, if given, is called after every optimisation step with the step's
 * index (from 0, across epochs) and its batch's mean loss (measured before the update). On 'wasm+native' a step is
 * one fused native call (fused-step.ts); elsewhere it is tfjs' minimize over the kernels.
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
  const fused = fusedTrainer(spec, train);
  if (fused) {
    try {
      const t0 = performance.now();
      fused.start(weights);
      const r = await runEpochs(spec, data, train, (x, y, b) => fused.step(x, y, b), onStep, true);
      return result(fused.weights(), data.n, r, t0);
    } finally {
      fused.dispose();
    }
  }
  return withModel(spec, async (m) => {
    const t0 = performance.now();
    writeWeights(m.vars, weights);
    const ex = exampleShape(spec);
    const opt = makeOptimizer(train);
    try {
      const r = await runEpochs(spec, data, train, (x, y, b) => step(m, opt, x, y, [b, ...ex], spec.numClasses), onStep);
      return result(readWeights(m.vars), data.n, r, t0);
    } finally {
      opt.dispose();
    }
  });
}
