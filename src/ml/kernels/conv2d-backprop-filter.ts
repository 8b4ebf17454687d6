/**
 * Conv2DBackpropFilter for the tfjs wasm backend, which ships without it (so no conv net can train on wasm as is).
 *
 * Built only from wasm's own kernels, so it runs inside wasm memory with XNNPACK doing the heavy lifting:
 *
 *   dW[kh,kw,ci,co] = Σ_{b,i,j} xpad[b, i*sh + kh, j*sw + kw, ci] · dy[b, i, j, co]
 *
 * which is one ordinary 'valid' convolution, stride 1 and dilation (sh, sw), of
 *   input  = xpad transposed to [ci, Hp, Wp, b]   (batch ← input channels, channels ← batch)
 *   filter = dy transposed to   [oh, ow, b, co]   (the gradient image becomes the filter)
 * giving [ci, kh', kw', co] (kh' ≥ kh; the surplus rows/cols, if any, are sliced off) → transposed to [kh, kw, ci, co].
 * xpad is x zero-padded as the forward pass padded it ('same' or explicit pads, from computeConv2DInfo).
 *
 * Supported: NHWC, dilation 1 (tfjs's conv gradients never pass other dilations), any stride (as dilation of the
 * helper convolution). Anything else throws naming the attribute.
 */
import * as tf from '@tensorflow/tfjs';

const KERNEL = 'Conv2DBackpropFilter';

/** The part of the wasm backend used here. */
interface WasmBackendLike {
  disposeData(dataId: object, force?: boolean): boolean;
}

function wasmKernel(name: string): tf.KernelFunc {
  const cfg = tf.getKernel(name, 'wasm') as tf.KernelConfig | undefined;
  if (!cfg) throw new Error(`${KERNEL} (wasm): the wasm backend has no '${name}' kernel`);
  return cfg.kernelFunc;
}

function one(r: tf.TensorInfo | tf.TensorInfo[]): tf.TensorInfo {
  if (Array.isArray(r)) throw new Error(`${KERNEL} (wasm): expected one output`);
  return r;
}

function pair(v: number | [number, number] | number[] | undefined, what: string): [number, number] {
  if (v === undefined) return [1, 1];
  if (typeof v === 'number') return [v, v];
  if (v.length !== 2 || typeof v[0] !== 'number' || typeof v[1] !== 'number') {
    throw new Error(`${KERNEL} (wasm): ${what} must be a number or a pair, got ${JSON.stringify(v)}`);
  }
  return [v[0], v[1]];
}

export const conv2DBackpropFilterWasm: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const x = inputs['x'] as tf.TensorInfo | undefined;
  const dy = inputs['dy'] as tf.TensorInfo | undefined;
  if (!x || !dy) throw new Error(`${KERNEL} (wasm): inputs x and dy are required`);
  const a = (attrs ?? {}) as unknown as tf.Conv2DBackpropFilterAttrs & { dilations?: number | [number, number] };
  const be = backend as WasmBackendLike;

  if (a.dataFormat !== undefined && a.dataFormat !== 'NHWC') {
    throw new Error(`${KERNEL} (wasm): unsupported dataFormat '${a.dataFormat}' (only 'NHWC')`);
  }
  const [dh, dw] = pair(a.dilations, 'dilations');
  if (dh !== 1 || dw !== 1) throw new Error(`${KERNEL} (wasm): unsupported dilations [${dh},${dw}] (only 1)`);
  if (x.shape.length !== 4 || dy.shape.length !== 4) {
    throw new Error(`${KERNEL} (wasm): x and dy must be rank 4, got [${x.shape}] and [${dy.shape}]`);
  }
  if (x.dtype !== 'float32' || dy.dtype !== 'float32') {
    throw new Error(`${KERNEL} (wasm): unsupported dtype ${x.dtype}/${dy.dtype} (only float32)`);
  }
  const filterShape = a.filterShape;
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filterShape,
    a.strides,
    1,
    a.pad,
    a.dimRoundingMode,
    false,
    'channelsLast',
  );
  const [batch, , , inC] = x.shape as [number, number, number, number];
  const [dyB, oh, ow, outC] = dy.shape as [number, number, number, number];
  if (dyB !== batch || oh !== info.outHeight || ow !== info.outWidth || outC !== info.outChannels) {
    throw new Error(`${KERNEL} (wasm): dy shape [${dy.shape}] does not match the forward output [${info.outShape}]`);
  }
  const fh = info.filterHeight;
  const fw = info.filterWidth;
  const sh = info.strideHeight;
  const sw = info.strideWidth;
  const { top, left } = info.padInfo;
  // Rows/cols the forward pass actually read: (o-1)*s + f, starting at -top/-left.
  const needH = (oh - 1) * sh + fh;
  const needW = (ow - 1) * sw + fw;
  const bottom = Math.max(0, needH - top - info.inHeight);
  const right = Math.max(0, needW - left - info.inWidth);

  const transpose = wasmKernel('Transpose');
  const conv2d = wasmKernel('Conv2D');
  const temps: tf.TensorInfo[] = [];
  const keep = (t: tf.TensorInfo): tf.TensorInfo => {
    temps.push(t);
    return t;
  };
  try {
    let xp = x;
    if (top > 0 || bottom > 0 || left > 0 || right > 0) {
      const paddings = [
        [0, 0],
        [top, bottom],
        [left, right],
        [0, 0],
      ];
      xp = keep(one(wasmKernel('PadV2')({ inputs: { x }, backend, attrs: { paddings, constantValue: 0 } })));
    }
    // [B, Hp, Wp, Ci] -> [Ci, Hp, Wp, B]
    const xT = keep(one(transpose({ inputs: { x: xp }, backend, attrs: { perm: [3, 1, 2, 0] } })));
    // [B, oh, ow, Co] -> [oh, ow, B, Co]
    const dyT = keep(one(transpose({ inputs: { x: dy }, backend, attrs: { perm: [1, 2, 0, 3] } })));
    let r = keep(
      one(
        conv2d({
          inputs: { x: xT, filter: dyT },
          backend,
          attrs: { strides: [1, 1], pad: 'valid', dataFormat: 'NHWC', dilations: [sh, sw] },
        }),
      ),
    );
    // r: [Ci, Hp - (oh-1)*sh, Wp - (ow-1)*sw, Co]; keep the first fh x fw taps.
    if (r.shape[1] !== fh || r.shape[2] !== fw) {
      r = keep(
        one(wasmKernel('Slice')({ inputs: { x: r }, backend, attrs: { begin: [0, 0, 0, 0], size: [inC, fh, fw, outC] } })),
      );
    }
    // [Ci, fh, fw, Co] -> [fh, fw, Ci, Co]
    return one(transpose({ inputs: { x: r }, backend, attrs: { perm: [1, 2, 0, 3] } }));
  } finally {
    for (const t of temps) be.disposeData(t.dataId);
  }
};

/**
 * Registers the kernel for 'wasm' unless that backend already has one (tfjs-node has its own and is never touched).
 * Returns true if this call registered it.
 */
export function registerConv2DBackpropFilterWasm(): boolean {
  if (tf.getKernel(KERNEL, 'wasm')) return false;
  tf.registerKernel({ kernelName: KERNEL, backendName: 'wasm', kernelFunc: conv2DBackpropFilterWasm });
  return true;
}
