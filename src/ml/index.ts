/**
 * The ml module: the only place in the project that imports tfjs. Everything outside passes weights as
 * WeightVector (src/fl/weights.ts), variables concatenated in model.getWeights() order (see models.ts).
 */
export type { EngineInfo, EvalResult, LabelledData, ModelSpec, TrainResult, TrainSpec } from './types.js';
export { currentEngine, initEngine, useKernelSet, type KernelSet } from './engine.js';
export { initialWeights, parameterCount, weightShapes } from './models.js';
export { trainLocal } from './train.js';
export { evaluate } from './evaluate.js';
export { makeOptimizer, Nadam, nadamMomentumCache } from './optimizers.js';
export { mulberry32, mixSeed, epochPermutation } from './rng.js';

