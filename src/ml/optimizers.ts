/** Fresh optimizer per call (no state is carried between trainLocal invocations). */
import * as tf from '@tensorflow/tfjs';
import { activeHeapUpdates } from './engine.js';
import { HeapAdam, HeapNadam, HeapSgd } from './heap-optimizers.js';
import { Nadam } from './nadam.js';
import type { TrainSpec } from './types.js';

export { Nadam, nadamMomentumCache } from './nadam.js';

export function makeOptimizer(train: Pick<TrainSpec, 'optimizer' | 'lr'>): tf.Optimizer {
  if (!(typeof train.lr === 'number' && Number.isFinite(train.lr) && train.lr > 0)) {
    throw new Error(`ml: lr must be a positive number, got ${String(train.lr)}`);
  }
  // On wasm each variable's update is one loop over the heap, native or JS (bit-identical to the tfjs ones below).
  const updates = tf.getBackend() === 'wasm' ? activeHeapUpdates() : null;
  if (updates) {
    switch (train.optimizer) {
      case 'adam':
        return new HeapAdam(updates, train.lr);
      case 'sgd':
        return new HeapSgd(updates, train.lr);
      case 'nadam':
        return new HeapNadam(updates, train.lr);
    }
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
