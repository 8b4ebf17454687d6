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
import { asPair, single, wasmKernel, withTemps } from './wasm-util.js';

const KERNEL = 'Conv2DBackpropFilter';

export const conv2DBackpropFilterWasm: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const x = inputs['x'] as tf.TensorInfo | undefined;
  const dy = inputs['dy'] as tf.TensorInfo | undefined;
  if (!x || !dy) throw new Error(`${KERNEL} (wasm): inputs x and dy are required`);
  const a = (attrs ?? {}) as unknown as tf.Conv2DBackpropFilterAttrs & { dilations?: number | [number, number] };

  if (a.dataFormat !== undefined && a.dataFormat !== 'NHWC') {
    throw new Error(`${KERNEL} (wasm): unsupported dataFormat '${a.dataFormat}' (only 'NHWC')`);
  }
  const [dh, dw] = asPair(a.dilations, 'dilations', KERNEL);
  if (dh !== 1 || dw !== 1) throw new Error(`${KERNEL} (wasm): unsupported dilations [${dh},${dw}] (only 1)`);
  if (x.shape.length !== 4 || dy.shape.length !== 4) {
    throw new Error(`${KERNEL} (wasm): x and dy must be rank 4, got [${x.shape}] and [${dy.shape}]`);
  }
  if (x.dtype !== 'float32' || dy.dtype !== 'float32') {
    throw new Error(`${KERNEL} (wasm): unsupported dtype ${x.dtype}/${dy.dtype} (only float32)`);
  }
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    a.filterShape,
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
  // Rows/cols the forward pass read: (o-1)*s + f of them, from -top/-left on.
  const bottom = Math.max(0, (oh - 1) * sh + fh - top - info.inHeight);
  const right = Math.max(0, (ow - 1) * sw + fw - left - info.inWidth);

  const transpose = wasmKernel('Transpose', KERNEL);
  return withTemps(backend, (temp) => {
    let xp = x;
    if (top > 0 || bottom > 0 || left > 0 || right > 0) {
      const paddings = [[0, 0], [top, bottom], [left, right], [0, 0]];
      xp = temp(single(wasmKernel('PadV2', KERNEL)({ inputs: { x }, backend, attrs: { paddings, constantValue: 0 } }), KERNEL));
    }
    // [B, Hp, Wp, Ci] -> [Ci, Hp, Wp, B]
    const xT = temp(single(transpose({ inputs: { x: xp }, backend, attrs: { perm: [3, 1, 2, 0] } }), KERNEL));
    // [B, oh, ow, Co] -> [oh, ow, B, Co]
    const dyT = temp(single(transpose({ inputs: { x: dy }, backend, attrs: { perm: [1, 2, 0, 3] } }), KERNEL));
    let r = temp(
      single(
        wasmKernel('Conv2D', KERNEL)({
          inputs: { x: xT, filter: dyT },
          backend,
          attrs: { strides: [1, 1], pad: 'valid', dataFormat: 'NHWC', dilations: [sh, sw] },
        }),
        KERNEL,
      ),
    );
    // r: [Ci, Hp - (oh-1)*sh, Wp - (ow-1)*sw, Co]; keep the first fh x fw taps.
    if (r.shape[1] !== fh || r.shape[2] !== fw) {
      const attrs = { begin: [0, 0, 0, 0], size: [inC, fh, fw, outC] };
      r = temp(single(wasmKernel('Slice', KERNEL)({ inputs: { x: r }, backend, attrs }), KERNEL));
    }
    // [Ci, fh, fw, Co] -> [fh, fw, Ci, Co]
    return single(transpose({ inputs: { x: r }, backend, attrs: { perm: [1, 2, 0, 3] } }), KERNEL);
  });
};
