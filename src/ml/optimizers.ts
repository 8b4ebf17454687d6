/** Fresh optimizer per call (no state is carried between trainLocal invocations). */
import * as tf from '@tensorflow/tfjs';
import { Nadam } from './nadam.js';
import type { TrainSpec } from './types.js';

export { Nadam, nadamMomentumCache } from './nadam.js';

export function makeOptimizer(train: Pick<TrainSpec, 'optimizer' | 'lr'>): tf.Optimizer {
  if (!(typeof train.lr === 'number' && Number.isFinite(train.lr) && train.lr > 0)) {
    throw new Error(`ml: lr must be a positive number, got ${String(train.lr)}`);
  }
  switch (train.optimizer) {
    case 'adam':
      return tf.train.adam(train.lr); // β1 0.9, β2 0.999, ε = backend epsilon (1e-7 in float32), as Keras
    case 'sgd':
      return tf.train.sgd(train.lr);
    case 'nadam':
      return new Nadam(train.lr);
    default:
      throw new Error(`ml: unknown optimizer '${String((train as { optimizer: unknown }).optimizer)}'`);
  }
}
