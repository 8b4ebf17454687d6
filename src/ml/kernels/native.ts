/**
 * Native (OpenBLAS, see native/) kernels for the tfjs wasm backend. They read and write the tensors where the wasm
 * backend keeps them, in its heap, so they mix freely with wasm's own kernels.
 *
 * Covered: float32, NHWC, dilation 1, any stride and padding (with the padding before the image smaller than the
 * filter) for Conv2D, FusedConv2D (bias of [outChannels], linear or relu), Conv2DBackpropInput and
 * Conv2DBackpropFilter; MaxPoolGrad; BatchMatMul and _FusedMatMul (any transposes, a batch of 1 broadcasts; fused:
 * bias of [n], linear or relu); Sum over leading axes. Anything else -- another layout, dtype, dilation, activation, broadcast, an empty
 * tensor -- is passed to the kernel this one wraps (the pure-wasm or stock kernel), never an error.
 */
import * as tf from '@tensorflow/tfjs';
import type { NativeAddon } from '../native.js';
import { asPairOrNull, heapBuffer, heapOffset, wasmInternals } from './wasm-util.js';

const internals = wasmInternals;
const offsetOf = heapOffset;
const heap = heapBuffer;

function isF32(...ts: (tf.TensorInfo | undefined)[]): boolean {
  return ts.every((t) => t !== undefined && t.dtype === 'float32' && t.shape.every((d) => d > 0));
}

type ConvAttrs = {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat?: 'NHWC' | 'NCHW';
  dilations?: number | [number, number];
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
};

/** [B,H,W,Ci, fh,fw,Co, oh,ow, sh,sw, pt,pl] for an NHWC, dilation-1 convolution, or null if not covered. */
function convDims(xShape: readonly number[], filterShape: readonly number[], a: ConvAttrs): number[] | null {
  if (a.dataFormat !== undefined && a.dataFormat !== 'NHWC') return null;
  if (xShape.length !== 4 || filterShape.length !== 4 || xShape[3] !== filterShape[2]) return null;
  const dil = asPairOrNull(a.dilations);
  if (!dil || dil[0] !== 1 || dil[1] !== 1) return null;
  let info: tf.backend_util.Conv2DInfo;
  try {
    info = tf.backend_util.computeConv2DInfo(
      xShape as [number, number, number, number],
      filterShape as [number, number, number, number],
      a.strides,
      1,
      a.pad,
      a.dimRoundingMode,
      false,
      'channelsLast',
    );
  } catch {
    return null;
  }
  const { top, left } = info.padInfo;
  const d = [
    info.batchSize,
    info.inHeight,
    info.inWidth,
    info.inChannels,
    info.filterHeight,
    info.filterWidth,
    info.outChannels,
    info.outHeight,
    info.outWidth,
    info.strideHeight,
    info.strideWidth,
    top,
    left,
  ];
  if (!d.every((v) => Number.isInteger(v))) return null;
  if (d.slice(0, 11).some((v) => v < 1) || top < 0 || left < 0 || top >= info.filterHeight || left >= info.filterWidth) return null;
  return d;
}

type Wrap = (addon: NativeAddon, fallback: tf.KernelFunc) => tf.KernelFunc;

const conv2D: Wrap = (addon, fallback) => (args) => {
  const b = internals(args.backend);
  const x = args.inputs['x'] as tf.TensorInfo | undefined;
  const filter = args.inputs['filter'] as tf.TensorInfo | undefined;
  const d = b && isF32(x, filter) ? convDims(x!.shape, filter!.shape, args.attrs as unknown as ConvAttrs) : null;
  if (!b || !d) return fallback(args);
  const out = b.makeOutput([d[0]!, d[7]!, d[8]!, d[6]!], 'float32');
  addon.conv2d(heap(b), offsetOf(b, x!), offsetOf(b, filter!), offsetOf(b, out), -1, 0, ...d);
  return out;
};

/** 0 linear, 1 relu, or null (not covered). */
function activationCode(a: unknown): number | null {
  if (a === undefined || a === null || a === 'linear') return 0;
  if (a === 'relu') return 1;
  return null;
}

const fusedConv2D: Wrap = (addon, fallback) => (args) => {
  const b = internals(args.backend);
  const x = args.inputs['x'] as tf.TensorInfo | undefined;
  const filter = args.inputs['filter'] as tf.TensorInfo | undefined;
  const bias = args.inputs['bias'] as tf.TensorInfo | undefined | null;
  const act = activationCode(args.attrs?.['activation']);
  const prelu = args.inputs['preluActivationWeights'];
  const d =
    b && act !== null && !prelu && isF32(x, filter) ? convDims(x!.shape, filter!.shape, args.attrs as unknown as ConvAttrs) : null;
  const biasOk = !bias || (isF32(bias) && bias.shape.length === 1 && d !== null && bias.shape[0] === d[6]);
  if (!b || !d || !biasOk) return fallback(args);
  const out = b.makeOutput([d[0]!, d[7]!, d[8]!, d[6]!], 'float32');
  const biasOff = bias ? offsetOf(b, bias) : -1;
  addon.conv2d(heap(b), offsetOf(b, x!), offsetOf(b, filter!), offsetOf(b, out), biasOff, act!, ...d);
  return out;
};

const conv2DBackpropInput: Wrap = (addon, fallback) => (args) => {
  const b = internals(args.backend);
  const dy = args.inputs['dy'] as tf.TensorInfo | undefined;
  const filter = args.inputs['filter'] as tf.TensorInfo | undefined;
  const a = args.attrs as unknown as ConvAttrs & { inputShape: number[] };
  const d =
    b && isF32(dy, filter) && Array.isArray(a.inputShape) && a.inputShape.every((v) => v > 0)
      ? convDims(a.inputShape, filter!.shape, a)
      : null;
  if (!b || !d || dy!.shape.length !== 4 || dy!.shape.join() !== [d[0], d[7], d[8], d[6]].join()) return fallback(args);
  const out = b.makeOutput([d[0]!, d[1]!, d[2]!, d[3]!], 'float32');
  addon.conv2dBackpropInput(heap(b), offsetOf(b, dy!), offsetOf(b, filter!), offsetOf(b, out), ...d);
  return out;
};

const conv2DBackpropFilter: Wrap = (addon, fallback) => (args) => {
  const b = internals(args.backend);
  const x = args.inputs['x'] as tf.TensorInfo | undefined;
  const dy = args.inputs['dy'] as tf.TensorInfo | undefined;
  const a = args.attrs as unknown as ConvAttrs & { filterShape: number[] };
  const d =
    b && isF32(x, dy) && Array.isArray(a.filterShape) && a.filterShape.every((v) => v > 0)
      ? convDims(x!.shape, a.filterShape, a)
      : null;
  if (!b || !d || dy!.shape.length !== 4 || dy!.shape.join() !== [d[0], d[7], d[8], d[6]].join()) return fallback(args);
  const out = b.makeOutput([d[4]!, d[5]!, d[3]!, d[6]!], 'float32');
  addon.conv2dBackpropFilter(heap(b), offsetOf(b, x!), offsetOf(b, dy!), offsetOf(b, out), ...d);
  return out;
};

function product(s: readonly number[]): number {
  return s.reduce((p, q) => p * q, 1);
}

/** Shared by BatchMatMul and _FusedMatMul: null if not covered. */
function matMulPlan(a: tf.TensorInfo | undefined, bt: tf.TensorInfo | undefined, ta: boolean, tb: boolean) {
  if (!isF32(a, bt) || a!.shape.length < 2 || bt!.shape.length < 2) return null;
  const ra = a!.shape.length;
  const rb = bt!.shape.length;
  const m = ta ? a!.shape[ra - 1]! : a!.shape[ra - 2]!;
  const k = ta ? a!.shape[ra - 2]! : a!.shape[ra - 1]!;
  const k2 = tb ? bt!.shape[rb - 1]! : bt!.shape[rb - 2]!;
  const n = tb ? bt!.shape[rb - 2]! : bt!.shape[rb - 1]!;
  if (k !== k2) return null;
  const outerA = a!.shape.slice(0, -2);
  const outerB = bt!.shape.slice(0, -2);
  const batchA = product(outerA);
  const batchB = product(outerB);
  let outer: number[];
  try {
    outer = tf.broadcast_util.assertAndGetBroadcastShape(outerA, outerB);
  } catch {
    return null;
  }
  const batch = Math.max(batchA, batchB);
  // Either operand repeated whole (batch 1) or both with the same batch layout.
  if (!(batchA === batchB || batchA === 1 || batchB === 1) || product(outer) !== batch) return null;
  if (batchA === batchB && outerA.join() !== outerB.join() && batchA !== 1) return null;
  return { m, n, k, batchA, batchB, outShape: [...outer, m, n] };
}

const batchMatMul: Wrap = (addon, fallback) => (args) => {
  const b = internals(args.backend);
  const a = args.inputs['a'] as tf.TensorInfo | undefined;
  const bt = args.inputs['b'] as tf.TensorInfo | undefined;
  const ta = args.attrs?.['transposeA'] === true;
  const tb = args.attrs?.['transposeB'] === true;
  const p = b ? matMulPlan(a, bt, ta, tb) : null;
  if (!b || !p) return fallback(args);
  const out = b.makeOutput(p.outShape, 'float32');
  addon.batchMatMul(heap(b), offsetOf(b, a!), offsetOf(b, bt!), offsetOf(b, out), p.batchA, p.batchB, p.m, p.n, p.k, ta ? 1 : 0, tb ? 1 : 0, -1, 0);
  return out;
};

const fusedMatMul: Wrap = (addon, fallback) => (args) => {
  const b = internals(args.backend);
  const a = args.inputs['a'] as tf.TensorInfo | undefined;
  const bt = args.inputs['b'] as tf.TensorInfo | undefined;
  const bias = args.inputs['bias'] as tf.TensorInfo | undefined | null;
  const ta = args.attrs?.['transposeA'] === true;
  const tb = args.attrs?.['transposeB'] === true;
  const act = activationCode(args.attrs?.['activation']);
  const p = b && act !== null && !args.inputs['preluActivationWeights'] ? matMulPlan(a, bt, ta, tb) : null;
  const biasOk = !bias || (isF32(bias) && bias.shape.length === 1 && p !== null && bias.shape[0] === p.n);
  if (!b || !p || !biasOk) return fallback(args);
  const out = b.makeOutput(p.outShape, 'float32');
  const biasOff = bias ? offsetOf(b, bias) : -1;
  addon.batchMatMul(heap(b), offsetOf(b, a!), offsetOf(b, bt!), offsetOf(b, out), p.batchA, p.batchB, p.m, p.n, p.k, ta ? 1 : 0, tb ? 1 : 0, biasOff, act!);
  return out;
};

type MaxPoolGradExec = (heap: ArrayBuffer, x: number, dy: number, dx: number, ...dims: number[]) => void;

/** MaxPoolGrad on the wasm heap by `exec` (the addon's or heap.ts' loop); other cases go to `fallback`. */
export const maxPoolGradKernel = (exec: MaxPoolGradExec) => (fallback: tf.KernelFunc): tf.KernelFunc => (args) => {
  const b = internals(args.backend);
  const dy = args.inputs['dy'] as tf.TensorInfo | undefined;
  const input = args.inputs['input'] as tf.TensorInfo | undefined;
  const a = args.attrs as unknown as {
    filterSize: number | [number, number];
    strides: number | [number, number];
    pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
    dimRoundingMode?: 'floor' | 'round' | 'ceil';
  };
  if (!b || !isF32(dy, input) || input!.shape.length !== 4 || dy!.shape.length !== 4) return fallback(args);
  let info: tf.backend_util.Conv2DInfo;
  try {
    info = tf.backend_util.computePool2DInfo(input!.shape as [number, number, number, number], a.filterSize, a.strides, 1, a.pad, a.dimRoundingMode);
  } catch {
    return fallback(args);
  }
  const { top, left } = info.padInfo;
  const expected = [info.batchSize, info.outHeight, info.outWidth, info.inChannels];
  if (dy!.shape.join() !== expected.join() || top < 0 || left < 0 || info.inHeight * info.inWidth * info.inChannels >= 2 ** 31) {
    return fallback(args);
  }
  const out = b.makeOutput([...input!.shape], 'float32');
  exec(
    heap(b),
    offsetOf(b, input!),
    offsetOf(b, dy!),
    offsetOf(b, out),
    info.batchSize,
    info.inHeight,
    info.inWidth,
    info.inChannels,
    info.outHeight,
    info.outWidth,
    info.effectiveFilterHeight,
    info.effectiveFilterWidth,
    info.strideHeight,
    info.strideWidth,
    top,
    left,
  );
  return out;
};

type SumLeadingExec = (heap: ArrayBuffer, x: number, out: number, rows: number, inner: number) => void;

/**
 * Sum over leading axes only (bias gradients: [b,h,w,c] → [c]), float32, by `exec` (accumulating in double); other
 * reductions go to `fallback`. wasm's own Sum transposes such inputs first.
 */
export const sumLeadingKernel = (exec: SumLeadingExec) => (fallback: tf.KernelFunc): tf.KernelFunc => (args) => {
  const b = internals(args.backend);
  const x = args.inputs['x'] as tf.TensorInfo | undefined;
  if (!b || !isF32(x) || x!.shape.length === 0) return fallback(args);
  let axes: number[];
  try {
    axes = [...new Set(tf.util.parseAxisParam((args.attrs?.['axis'] ?? null) as unknown as number[], x!.shape))].sort((p, q) => p - q);
  } catch {
    return fallback(args);
  }
  const k = axes.length;
  if (k === 0 || !axes.every((ax, i) => ax === i)) return fallback(args);
  const rows = product(x!.shape.slice(0, k));
  const inner = product(x!.shape.slice(k));
  const outShape = args.attrs?.['keepDims'] === true ? x!.shape.map((d, i) => (i < k ? 1 : d)) : x!.shape.slice(k);
  const out = b.makeOutput(outShape, 'float32');
  exec(heap(b), offsetOf(b, x!), offsetOf(b, out), rows, inner);
  return out;
};

/** Kernel name → native wrapper of whatever kernel was registered before. */
export const NATIVE_WRAPPERS: Readonly<Record<string, Wrap>> = {
  Conv2D: conv2D,
  FusedConv2D: fusedConv2D,
  Conv2DBackpropInput: conv2DBackpropInput,
  Conv2DBackpropFilter: conv2DBackpropFilter,
  BatchMatMul: batchMatMul,
  _FusedMatMul: fusedMatMul,
  MaxPoolGrad: (addon, fallback) => maxPoolGradKernel((...a) => addon.maxPoolGrad(...a))(fallback),
  Sum: (addon, fallback) => sumLeadingKernel((...a) => addon.sumLeading(...a))(fallback),
};
