/** Shared pieces of the training benchmarks: fixed pseudo-random inputs (speed does not depend on them) and a median. */
import { mulberry32 } from '../src/fl/rng.js';
import type { LabelledData, ModelSpec } from '../src/ml/types.js';

export function synthetic(spec: ModelSpec, n: number): LabelledData {
  const d = spec.inputShape[0] * spec.inputShape[1] * spec.inputShape[2];
  const r = mulberry32(42);
  const x = new Float32Array(n * d);
  for (let i = 0; i < x.length; i++) x[i] = r();
  const y = new Uint8Array(n);
  for (let i = 0; i < n; i++) y[i] = i % spec.numClasses;
  return { x, y, n };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}
