/**
 * The ml module: the only place in the project that imports tfjs. Everything outside passes weights as
 * WeightVector (src/fl/weights.ts), variables concatenated in model.getWeights() order (see models.ts).
 */
import type { WeightVector } from '../fl/weights.js';
import { initEngine } from './engine.js';
import { seededWeights } from './models.js';
import type { ModelSpec } from './types.js';

export type { EngineInfo, EvalResult, LabelledData, ModelSpec, TrainResult, TrainSpec } from './types.js';
export { initEngine } from './engine.js';
export { parameterCount, weightShapes } from './models.js';
export { trainLocal } from './train.js';
export { evaluate } from './evaluate.js';

/** Seeded initial weights: identical bit for bit for the same (spec, seed), across calls and processes. */
export async function initialWeights(spec: ModelSpec, seed: number): Promise<WeightVector> {
  await initEngine();
  return seededWeights(spec, seed);
}
