/**
 * Fast path for the wasm backend's BatchMatMul with transposed operands.
 *
 * wasm runs a matmul through XNNPACK only when neither operand is transposed (and batch is 1); otherwise it falls
 * back to a scalar triple loop, ~15x slower. Backprop through every dense layer hits that path (dW = xᵀ·dy,
 * dx = dy·Wᵀ). Here such a product is rewritten as an untransposed one on XNNPACK, using wasm's Transpose kernel:
 *
 *   direct:   out   = op(A) · op(B)          (materialise op(A), op(B) as needed)
 *   swapped:  outᵀ  = op(B)ᵀ · op(A)ᵀ        (a transposed operand is then used as stored; outᵀ is transposed back)
 *
 * whichever moves fewer floats (XNNPACK packs its right-hand operand on every call, since it changes every step).
 * Batched (batch > 1) or non-float32 calls go to the original kernel.
 */
import * as tf from '@tensorflow/tfjs';
import { single, wasmKernel, withTemps } from './wasm-util.js';

const KERNEL = 'BatchMatMul';

function batchOf(shape: readonly number[]): number {
  let n = 1;
  for (let i = 0; i < shape.length - 2; i++) n *= shape[i]!;
  return n;
}

export function fastTransposedBatchMatMul(original: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const { inputs, backend, attrs } = args;
    const a = inputs['a'] as tf.TensorInfo;
    const b = inputs['b'] as tf.TensorInfo;
    const ta = attrs?.['transposeA'] === true;
    const tb = attrs?.['transposeB'] === true;
    if (
      (!ta && !tb) ||
      a.dtype !== 'float32' ||
      b.dtype !== 'float32' ||
      a.shape.length < 2 ||
      a.shape.length !== b.shape.length ||
      batchOf(a.shape) !== 1 ||
      batchOf(b.shape) !== 1
    ) {
      return original(args);
    }
    const r = a.shape.length;
    const [a0, a1] = [a.shape[r - 2]!, a.shape[r - 1]!];
    const [b0, b1] = [b.shape[r - 2]!, b.shape[r - 1]!];
    const m = ta ? a1 : a0;
    const k = ta ? a0 : a1;
    const n = tb ? b0 : b1;
    const costDirect = (ta ? m * k : 0) + (tb ? k * n : 0) + k * n;
    const costSwapped = (tb ? 0 : k * n) + (ta ? 0 : m * k) + k * m + m * n;

    const transpose = wasmKernel('Transpose', KERNEL);
    const perm = Array.from({ length: r }, (_, i) => (i < r - 2 ? i : i === r - 2 ? r - 1 : r - 2));
    const swapLast2 = (t: tf.TensorInfo): tf.TensorInfo =>
      single(transpose({ inputs: { x: t }, backend, attrs: { perm } }), KERNEL);
    const plain = { ...attrs, transposeA: false, transposeB: false };

    return withTemps(backend, (temp) => {
      if (costDirect <= costSwapped) {
        return original({
          inputs: { a: ta ? temp(swapLast2(a)) : a, b: tb ? temp(swapLast2(b)) : b },
          backend,
          attrs: plain,
        });
      }
      // outᵀ [n, m] = op(B)ᵀ [n, k] · op(A)ᵀ [k, m]
      const lhs = tb ? b : temp(swapLast2(b));
      const rhs = ta ? a : temp(swapLast2(a));
      const outT = temp(single(original({ inputs: { a: lhs, b: rhs }, backend, attrs: plain }), KERNEL));
      return swapLast2(outT);
    });
  };
}
