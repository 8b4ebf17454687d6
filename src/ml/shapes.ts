/**
 * The models' variable shapes, computed without tfjs (so the keeper can size weights before anything runs).
 * Variable order (= WeightVector order): for each layer with weights, kernel then bias.
 */
import { totalSize } from '../fl/weights.js';
import type { ModelSpec } from './types.js';

function positiveInt(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new Error(`ml: ${what} must be a positive integer, got ${String(v)}`);
  return v;
}

/** Feature-map side after the cnn's conv(5,'valid') → pool(2) → conv(5,'valid') → pool(2) stack. */
export function cnnSide(side: number): number {
  return Math.floor((Math.floor((side - 4) / 2) - 4) / 2);
}

export function validateSpec(spec: ModelSpec): void {
  if (spec.model !== 'cnn' && spec.model !== 'mnistnn') throw new Error(`ml: unknown model '${String(spec.model)}'`);
  if (!Array.isArray(spec.inputShape) || spec.inputShape.length !== 3) {
    throw new Error(`ml: inputShape must be [height, width, channels], got ${JSON.stringify(spec.inputShape)}`);
  }
  spec.inputShape.forEach((d, i) => positiveInt(d, `inputShape[${i}]`));
  positiveInt(spec.numClasses, 'numClasses');
  if (spec.model === 'mnistnn') positiveInt(spec.hiddenSize, 'hiddenSize');
  if (spec.model === 'cnn') {
    const [h, w] = spec.inputShape;
    if (cnnSide(h) < 1 || cnnSide(w) < 1) throw new Error(`ml: cnn needs inputs of at least 16x16, got ${h}x${w}`);
  }
}

/** Shapes of the model's variables, in WeightVector order (computed, no tfjs needed). */
export function weightShapes(spec: ModelSpec): number[][] {
  validateSpec(spec);
  const [h, w, c] = spec.inputShape;
  const k = spec.numClasses;
  if (spec.model === 'cnn') {
    const flat = cnnSide(h) * cnnSide(w) * 64;
    return [[5, 5, c, 32], [32], [5, 5, 32, 64], [64], [flat, 512], [512], [512, k], [k]];
  }
  const hid = spec.hiddenSize;
  return [[h * w * c, hid], [hid], [hid, k], [k]];
}

export function parameterCount(spec: ModelSpec): number {
  return totalSize(weightShapes(spec));
}

