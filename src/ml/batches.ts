/** Checks on LabelledData shared by training and evaluation. */
import type { LabelledData, ModelSpec } from './types.js';

export function validateData(spec: ModelSpec, data: LabelledData): void {
  const [h, w, c] = spec.inputShape;
  const d = h * w * c;
  if (!Number.isInteger(data.n) || data.n < 0) throw new Error(`ml: data.n must be a non-negative integer, got ${data.n}`);
  if (!(data.x instanceof Float32Array)) throw new Error('ml: data.x must be a Float32Array');
  if (!(data.y instanceof Uint8Array)) throw new Error('ml: data.y must be a Uint8Array');
  if (data.x.length < data.n * d) throw new Error(`ml: data.x has ${data.x.length} floats, need n*h*w*c = ${data.n * d}`);
  if (data.y.length < data.n) throw new Error(`ml: data.y has ${data.y.length} labels, need n = ${data.n}`);
  for (let i = 0; i < data.n; i++) {
    if (data.y[i]! >= spec.numClasses) {
      throw new Error(`ml: label ${data.y[i]} at ${i} is out of range for ${spec.numClasses} classes`);
    }
  }
}

/**
 * Gathers examples idx[from..from+b) into one contiguous batch (x: b*d floats, y: b int32 labels): into `into`'s
 * arrays when given (they must hold at least b examples; the batch is then their first b), else fresh ones.
 */
export function gatherBatch(
  data: LabelledData,
  d: number,
  idx: ArrayLike<number> | null,
  from: number,
  b: number,
  into?: { x: Float32Array; y: Int32Array },
): { x: Float32Array; y: Int32Array } {
  const x = into ? into.x : new Float32Array(b * d);
  const y = into ? into.y : new Int32Array(b);
  for (let i = 0; i < b; i++) {
    const j = idx ? idx[from + i]! : from + i;
    x.set(data.x.subarray(j * d, j * d + d), i * d);
    y[i] = data.y[j]!;
  }
  return { x, y };
}
