/**
 * Kernels written in plain JS over the wasm backend's heap, for what wasm runs slowly and the native addon may be
 * missing for: max-pool gradients, reductions over leading axes (bias gradients), and the optimizers' updates. Same signatures and same arithmetic as the addon's (native/src/fedkeeper_native.cc): every float32
 * operation is a Math.fround of the exact double result, which is the correctly rounded float32 result, so the
 * optimizer updates are bit-identical to tfjs' (and to the addon's).
 */
import type { HeapUpdates } from '../heap-optimizers.js';

const f = Math.fround;

/** See the addon's maxPoolGrad: dx[first argmax of each window] += dy[window]. */
export function maxPoolGradJs(heap: ArrayBuffer, xOff: number, dyOff: number, dxOff: number, ...dims: number[]): void {
  const [B, H, W, C, oh, ow, fh, fw, sh, sw, pt, pl] = dims as [number, number, number, number, number, number, number, number, number, number, number, number];
  const img = H * W * C;
  const x = new Float32Array(heap, xOff, B * img);
  const dy = new Float32Array(heap, dyOff, B * oh * ow * C);
  const dx = new Float32Array(heap, dxOff, B * img);
  dx.fill(0);
  const best = new Float32Array(C);
  const pos = new Int32Array(C);
  let dyBase = 0;
  for (let b = 0; b < B; b++) {
    const xb = b * img;
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++, dyBase += C) {
        best.fill(-Infinity);
        pos.fill(-1);
        for (let wr = 0; wr < fh; wr++) {
          const iy = oy * sh + wr - pt;
          if (iy < 0 || iy >= H) continue;
          for (let wc = 0; wc < fw; wc++) {
            const ix = ox * sw + wc - pl;
            if (ix < 0 || ix >= W) continue;
            const base = xb + (iy * W + ix) * C;
            for (let c = 0; c < C; c++) {
              const v = x[base + c]!;
              if (v > best[c]!) {
                best[c] = v;
                pos[c] = base + c;
              }
            }
          }
        }
        for (let c = 0; c < C; c++) {
          const p = pos[c]!;
          if (p >= 0) dx[p] = dx[p]! + dy[dyBase + c]!;
        }
      }
    }
  }
}

/** See the addon's sumLeading: out[j] = Σ_r x[r*inner + j], accumulated in double in row order. */
export function sumLeadingJs(heap: ArrayBuffer, xOff: number, outOff: number, rows: number, inner: number): void {
  const x = new Float32Array(heap, xOff, rows * inner);
  const acc = new Float64Array(inner);
  for (let r = 0, o = 0; r < rows; r++, o += inner) {
    for (let j = 0; j < inner; j++) acc[j] += x[o + j]!;
  }
  new Float32Array(heap, outOff, inner).set(acc);
}

/** The optimizers' updates (see the addon's adam / nadam / sgd for the argument lists). */
export const jsUpdates: HeapUpdates = {
  adam(heap, vOff, gOff, oOff, n, m, v, ...s) {
    const [b1, ob1, b2, ob2, acc1, acc2, eps, negLr] = s as [number, number, number, number, number, number, number, number];
    const val = new Float32Array(heap, vOff, n);
    const g = new Float32Array(heap, gOff, n);
    const out = new Float32Array(heap, oOff, n);
    const omab1 = f(1 - acc1);
    const omab2 = f(1 - acc2);
    for (let i = 0; i < n; i++) {
      const gi = g[i]!;
      const mi = f(f(m[i]! * b1) + f(gi * ob1));
      const vi = f(f(v[i]! * b2) + f(f(gi * gi) * ob2));
      m[i] = mi;
      v[i] = vi;
      const q = f(f(mi / omab1) / f(f(Math.sqrt(f(vi / omab2))) + eps));
      out[i] = f(q * negLr) + val[i]!;
    }
  },
  nadam(heap, vOff, gOff, oOff, n, m, v, ...s) {
    const [b1, ob1, b2, ob2, cG, cM, vDenom, eps, lr] = s as [number, number, number, number, number, number, number, number, number];
    const val = new Float32Array(heap, vOff, n);
    const g = new Float32Array(heap, gOff, n);
    const out = new Float32Array(heap, oOff, n);
    for (let i = 0; i < n; i++) {
      const gi = g[i]!;
      const mT = f(f(m[i]! * b1) + f(gi * ob1));
      const vT = f(f(v[i]! * b2) + f(f(gi * gi) * ob2));
      m[i] = mT;
      v[i] = vT;
      const mBar = f(f(gi * cG) + f(mT * cM));
      const denom = f(f(Math.sqrt(f(vT / vDenom))) + eps);
      out[i] = val[i]! - f(f(mBar / denom) * lr);
    }
  },
  sgd(heap, vOff, gOff, oOff, n, negLr) {
    const val = new Float32Array(heap, vOff, n);
    const g = new Float32Array(heap, gOff, n);
    const out = new Float32Array(heap, oOff, n);
    for (let i = 0; i < n; i++) out[i] = f(negLr * g[i]!) + val[i]!;
  },
};
