/**
 * The probe of one OpenBLAS core, run as its own process by blas-select.ts (one process per candidate, with
 * OPENBLAS_CORETYPE set in its environment, so that a core whose kernels crash takes only the probe down):
 *
 *   node blas-probe.js info  <addon file>            → {"corename": …, "config": …}
 *   node blas-probe.js check <addon file> <label>     → {"corename", "config", "correct", "errors", "seconds"}
 *
 * `check` runs the project's native kernels (conv2d, both of its gradients, batchMatMul with every transpose, bias
 * and relu) on fixed pseudo-random data against plain float64 references, then times the paper CNN's heaviest
 * kernels on one thread (seconds: sum over kernels of the best of several runs; null when a check failed). The last
 * line of stdout is the JSON answer. Imports nothing at run time (it must start fast); never part of a package.
 *
 * Test only: FEDKEEPER_BLAS_PROBE_FAULT="<label>=wrong|crash|hang[,…]" makes the probe of <label> (a core name, or
 * "default" for the run without OPENBLAS_CORETYPE) corrupt one result, abort, or never finish, so that tests can
 * check that such a core is ruled out.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { NativeAddon } from './native.js';

export type ProbeFault = 'wrong' | 'crash' | 'hang';

/** The test-only fault asked for `label` in FEDKEEPER_BLAS_PROBE_FAULT, if any. */
export function probeFault(label: string, env: NodeJS.ProcessEnv = process.env): ProbeFault | undefined {
  for (const item of (env['FEDKEEPER_BLAS_PROBE_FAULT'] ?? '').split(',')) {
    const [who, what] = item.split('=').map((s) => s.trim());
    if (who && who.toLowerCase() === label.toLowerCase() && (what === 'wrong' || what === 'crash' || what === 'hang')) return what;
  }
  return undefined;
}

/** A bump allocator of float32 arrays in one ArrayBuffer (the heap the addon's kernels take byte offsets into). */
class Heap {
  readonly buffer: ArrayBuffer;
  private next = 0;
  constructor(floats: number) {
    this.buffer = new ArrayBuffer(floats * 4 + 64 * 16);
  }
  alloc(n: number): { off: number; a: Float32Array } {
    const off = this.next;
    this.next += Math.ceil((n * 4) / 64) * 64;
    if (this.next > this.buffer.byteLength) throw new Error('probe heap too small');
    return { off, a: new Float32Array(this.buffer, off, n) };
  }
}

function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function fill(a: Float32Array, r: () => number): Float32Array {
  for (let i = 0; i < a.length; i++) a[i] = r() * 2 - 1;
  return a;
}

/** |got − ref| ≤ 1e-4 · Σ|terms| + 1e-6 everywhere (float32 sums against float64 ones); the first miss, or undefined. */
function compare(what: string, got: Float32Array, ref: Float64Array, mag: Float64Array): string | undefined {
  for (let i = 0; i < ref.length; i++) {
    const err = Math.abs(got[i]! - ref[i]!);
    if (!(err <= 1e-4 * mag[i]! + 1e-6)) return `${what}: element ${i} is ${got[i]}, expected ${ref[i]!.toPrecision(7)}`;
  }
  return undefined;
}

interface MatCase {
  batchA: number;
  batchB: number;
  m: number;
  n: number;
  k: number;
  ta: boolean;
  tb: boolean;
  bias: boolean;
  relu: boolean;
}

interface ConvCase {
  B: number;
  H: number;
  W: number;
  Ci: number;
  fh: number;
  fw: number;
  Co: number;
  sh: number;
  sw: number;
  pt: number;
  pl: number;
  bias: boolean;
  relu: boolean;
}

function convOut(c: ConvCase): { oh: number; ow: number; dims: number[] } {
  // Bottom/right padding as much as top/left ("same" for odd filters when pt = (fh − 1) / 2).
  const oh = Math.floor((c.H + 2 * c.pt - c.fh) / c.sh) + 1;
  const ow = Math.floor((c.W + 2 * c.pl - c.fw) / c.sw) + 1;
  return { oh, ow, dims: [c.B, c.H, c.W, c.Ci, c.fh, c.fw, c.Co, oh, ow, c.sh, c.sw, c.pt, c.pl] };
}

const MAT_CASES: MatCase[] = [
  // 64×48×80 (m × k × n) with every transpose; odd sizes (edge kernels), a batch with a broadcast side, bias and
  // relu; one large enough for OpenBLAS's blocking.
  ...[false, true].flatMap((ta) => [false, true].map((tb) => ({ batchA: 1, batchB: 1, m: 64, n: 80, k: 48, ta, tb, bias: false, relu: false }))),
  { batchA: 3, batchB: 1, m: 17, n: 33, k: 29, ta: false, tb: true, bias: true, relu: true },
  { batchA: 1, batchB: 2, m: 7, n: 21, k: 13, ta: true, tb: false, bias: true, relu: false },
  { batchA: 1, batchB: 1, m: 160, n: 96, k: 300, ta: false, tb: false, bias: false, relu: false },
];

const CONV_CASES: ConvCase[] = [
  { B: 2, H: 9, W: 8, Ci: 3, fh: 3, fw: 3, Co: 5, sh: 1, sw: 1, pt: 1, pl: 1, bias: true, relu: true },
  { B: 2, H: 9, W: 8, Ci: 3, fh: 3, fw: 3, Co: 5, sh: 2, sw: 2, pt: 0, pl: 0, bias: false, relu: false },
  // the paper CNN's second convolution, 3 samples
  { B: 3, H: 12, W: 12, Ci: 32, fh: 5, fw: 5, Co: 64, sh: 1, sw: 1, pt: 0, pl: 0, bias: true, relu: false },
];

function checkMatMul(addon: NativeAddon, c: MatCase, r: () => number, corrupt: boolean): string | undefined {
  const batch = Math.max(c.batchA, c.batchB);
  const heap = new Heap(c.batchA * c.m * c.k + c.batchB * c.k * c.n + batch * c.m * c.n + c.n + 64);
  const A = heap.alloc(c.batchA * c.m * c.k);
  const B = heap.alloc(c.batchB * c.k * c.n);
  const C = heap.alloc(batch * c.m * c.n);
  const bias = heap.alloc(c.n);
  fill(A.a, r);
  fill(B.a, r);
  fill(bias.a, r);
  C.a.fill(Number.NaN);
  addon.batchMatMul(heap.buffer, A.off, B.off, C.off, c.batchA, c.batchB, c.m, c.n, c.k, c.ta ? 1 : 0, c.tb ? 1 : 0, c.bias ? bias.off : -1, c.relu ? 1 : 0);
  if (corrupt) C.a[7] = C.a[7]! + 1 + Math.abs(C.a[7]!);
  const ref = new Float64Array(C.a.length);
  const mag = new Float64Array(C.a.length);
  for (let b = 0; b < batch; b++) {
    const ao = c.batchA === 1 ? 0 : b * c.m * c.k;
    const bo = c.batchB === 1 ? 0 : b * c.k * c.n;
    for (let i = 0; i < c.m; i++) {
      for (let j = 0; j < c.n; j++) {
        let s = 0;
        let abs = 0;
        for (let p = 0; p < c.k; p++) {
          const av = A.a[ao + (c.ta ? p * c.m + i : i * c.k + p)]!;
          const bv = B.a[bo + (c.tb ? j * c.k + p : p * c.n + j)]!;
          s += av * bv;
          abs += Math.abs(av * bv);
        }
        if (c.bias) {
          s += bias.a[j]!;
          abs += Math.abs(bias.a[j]!);
        }
        if (c.relu && s < 0) s = 0;
        ref[(b * c.m + i) * c.n + j] = s;
        mag[(b * c.m + i) * c.n + j] = abs;
      }
    }
  }
  return compare(`batchMatMul ${JSON.stringify(c)}`, C.a, ref, mag);
}

function checkConv(addon: NativeAddon, c: ConvCase, r: () => number): string | undefined {
  const { oh, ow, dims } = convOut(c);
  const nx = c.B * c.H * c.W * c.Ci;
  const nw = c.fh * c.fw * c.Ci * c.Co;
  const ny = c.B * oh * ow * c.Co;
  const heap = new Heap(2 * nx + 2 * nw + 2 * ny + c.Co + 64);
  const x = heap.alloc(nx);
  const w = heap.alloc(nw);
  const y = heap.alloc(ny);
  const dy = heap.alloc(ny);
  const dx = heap.alloc(nx);
  const dw = heap.alloc(nw);
  const bias = heap.alloc(c.Co);
  fill(x.a, r);
  fill(w.a, r);
  fill(dy.a, r);
  fill(bias.a, r);
  y.a.fill(Number.NaN);
  dx.a.fill(Number.NaN);
  dw.a.fill(Number.NaN);
  addon.conv2d(heap.buffer, x.off, w.off, y.off, c.bias ? bias.off : -1, c.relu ? 1 : 0, ...dims);
  addon.conv2dBackpropInput(heap.buffer, dy.off, w.off, dx.off, ...dims);
  addon.conv2dBackpropFilter(heap.buffer, x.off, dy.off, dw.off, ...dims);
  const yRef = new Float64Array(ny);
  const yMag = new Float64Array(ny);
  const dxRef = new Float64Array(nx);
  const dxMag = new Float64Array(nx);
  const dwRef = new Float64Array(nw);
  const dwMag = new Float64Array(nw);
  for (let b = 0; b < c.B; b++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        const yo = ((b * oh + oy) * ow + ox) * c.Co;
        for (let kh = 0; kh < c.fh; kh++) {
          const iy = oy * c.sh + kh - c.pt;
          if (iy < 0 || iy >= c.H) continue;
          for (let kw = 0; kw < c.fw; kw++) {
            const ix = ox * c.sw + kw - c.pl;
            if (ix < 0 || ix >= c.W) continue;
            const xo = ((b * c.H + iy) * c.W + ix) * c.Ci;
            for (let ci = 0; ci < c.Ci; ci++) {
              const xv = x.a[xo + ci]!;
              const wo = ((kh * c.fw + kw) * c.Ci + ci) * c.Co;
              for (let co = 0; co < c.Co; co++) {
                const wv = w.a[wo + co]!;
                const dv = dy.a[yo + co]!;
                yRef[yo + co] += xv * wv;
                yMag[yo + co] += Math.abs(xv * wv);
                dxRef[xo + ci] += dv * wv;
                dxMag[xo + ci] += Math.abs(dv * wv);
                dwRef[wo + co] += xv * dv;
                dwMag[wo + co] += Math.abs(xv * dv);
              }
            }
          }
        }
        for (let co = 0; co < c.Co; co++) {
          if (c.bias) {
            yRef[yo + co] += bias.a[co]!;
            yMag[yo + co] += Math.abs(bias.a[co]!);
          }
          if (c.relu && yRef[yo + co]! < 0) yRef[yo + co] = 0;
        }
      }
    }
  }
  const what = `(B,H,W,Ci,fh,fw,Co,oh,ow,sh,sw,pt,pl = ${dims.join(',')})`;
  return compare(`conv2d ${what}`, y.a, yRef, yMag) ?? compare(`conv2dBackpropInput ${what}`, dx.a, dxRef, dxMag) ?? compare(`conv2dBackpropFilter ${what}`, dw.a, dwRef, dwMag);
}

/**
 * The kernels against plain references; the failures (empty: all correct). `corrupt` (test only) spoils one
 * matmul result. A kernel that throws counts as a failure.
 */
export function checkKernels(addon: NativeAddon, corrupt = false): string[] {
  const r = random(20240611);
  const errors: string[] = [];
  const run = (f: () => string | undefined) => {
    try {
      const e = f();
      if (e) errors.push(e);
    } catch (e) {
      errors.push(e instanceof Error ? e.message : String(e));
    }
  };
  MAT_CASES.forEach((c, i) => run(() => checkMatMul(addon, c, r, corrupt && i === 0)));
  CONV_CASES.forEach((c) => run(() => checkConv(addon, c, r)));
  return errors;
}

/**
 * Seconds for one pass over the paper CNN's heaviest kernels at batch 8 (second convolution forward and both
 * gradients, the dense layer's matmul and its weight gradient), best of `reps` for each, summed.
 */
export function timeKernels(addon: NativeAddon, reps = 7): number {
  const conv: ConvCase = { B: 8, H: 12, W: 12, Ci: 32, fh: 5, fw: 5, Co: 64, sh: 1, sw: 1, pt: 0, pl: 0, bias: false, relu: false };
  const { dims } = convOut(conv);
  const nx = 8 * 12 * 12 * 32;
  const nw = 5 * 5 * 32 * 64;
  const ny = 8 * 8 * 8 * 64;
  const [m, k, n] = [32, 1024, 512];
  const heap = new Heap(2 * nx + 2 * nw + 2 * ny + m * k + k * n + m * n + 64);
  const r = random(7);
  const x = heap.alloc(nx);
  const w = heap.alloc(nw);
  const y = heap.alloc(ny);
  const dx = heap.alloc(nx);
  const dw = heap.alloc(nw);
  const A = heap.alloc(m * k);
  const B = heap.alloc(k * n);
  const C = heap.alloc(m * n);
  for (const t of [x, w, y, A, B, C]) fill(t.a, r);
  const h = heap.buffer;
  const kernels: (() => void)[] = [
    () => addon.conv2d(h, x.off, w.off, y.off, -1, 0, ...dims),
    () => addon.conv2dBackpropInput(h, y.off, w.off, dx.off, ...dims),
    () => addon.conv2dBackpropFilter(h, x.off, y.off, dw.off, ...dims),
    () => addon.batchMatMul(h, A.off, B.off, C.off, 1, 1, m, n, k, 0, 0, -1, 0),
    // weight gradient of the dense layer: Aᵀ · C, [k, m] · [m, n]
    () => addon.batchMatMul(h, A.off, C.off, B.off, 1, 1, k, n, m, 1, 0, -1, 0),
  ];
  let total = 0;
  for (const f of kernels) {
    f(); // warm-up
    let best = Infinity;
    for (let i = 0; i < reps; i++) {
      const t0 = process.hrtime.bigint();
      f();
      best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
    }
    total += best;
  }
  return total;
}

function main(argv: string[]): void {
  const [mode, file, label = 'default'] = argv;
  if ((mode !== 'info' && mode !== 'check') || !file) {
    process.stderr.write('usage: node blas-probe.js info|check <addon file> [label]\n');
    process.exit(2);
  }
  const fault = mode === 'check' ? probeFault(label) : undefined;
  const addon = createRequire(import.meta.url)(file) as NativeAddon;
  const info = addon.info();
  if (mode === 'info') {
    process.stdout.write(`${JSON.stringify({ corename: info.corename, config: info.config })}\n`);
    return;
  }
  if (fault === 'crash') process.abort();
  if (fault === 'hang') for (;;);
  addon.setThreads(1);
  addon.setParts(2); // exercises the kernels' split paths (partial sums of the filter gradient) on one thread
  const errors = checkKernels(addon, fault === 'wrong');
  addon.setParts(1);
  const seconds = errors.length === 0 ? timeKernels(addon) : null;
  process.stdout.write(`${JSON.stringify({ corename: info.corename, config: info.config, correct: errors.length === 0, errors, seconds })}\n`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main(process.argv.slice(2));
