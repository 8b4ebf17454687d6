/**
 * Model weights as they cross every boundary outside ml/: one contiguous float32 buffer plus the shape of each
 * variable, in the model's variable order. No tfjs here.
 */
export interface WeightVector {
  /** Shape of each variable, in model order. */
  shapes: number[][];
  /** All variables concatenated, row-major, float32. Length = sum of prod(shape). */
  data: Float32Array;
}

export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function totalSize(shapes: readonly (readonly number[])[]): number {
  let n = 0;
  for (const s of shapes) n += shapeSize(s);
  return n;
}

/** Views (no copies) of each variable's slice of the flat buffer. */
export function splitWeights(w: WeightVector): Float32Array[] {
  const out: Float32Array[] = [];
  let off = 0;
  for (const s of w.shapes) {
    const n = shapeSize(s);
    out.push(w.data.subarray(off, off + n));
    off += n;
  }
  return out;
}

/** Concatenates per-variable arrays into one WeightVector. */
export function joinWeights(shapes: number[][], parts: ArrayLike<number>[]): WeightVector {
  if (shapes.length !== parts.length) throw new Error(`joinWeights: ${shapes.length} shapes but ${parts.length} arrays`);
  const data = new Float32Array(totalSize(shapes));
  let off = 0;
  shapes.forEach((s, i) => {
    const n = shapeSize(s);
    const p = parts[i]!;
    if (p.length !== n) throw new Error(`joinWeights: variable ${i} has ${p.length} values, shape [${s}] needs ${n}`);
    data.set(p, off);
    off += n;
  });
  return { shapes: shapes.map((s) => [...s]), data };
}

export function sameShapes(a: readonly (readonly number[])[], b: readonly (readonly number[])[]): boolean {
  return a.length === b.length && a.every((s, i) => s.length === b[i]!.length && s.every((d, j) => d === b[i]![j]));
}
