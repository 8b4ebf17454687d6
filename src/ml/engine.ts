/**
 * Picks and initialises the tfjs backend and its kernels, once per process. In order of preference:
 *
 *  - '@tensorflow/tfjs-node' if it is installed (optional, never required): native TensorFlow, has every kernel.
 *  - 'wasm+native': the wasm backend (XNNPACK, SIMD build, single-threaded) with this module's native kernels
 *    (native/, OpenBLAS) for the convolutions, their gradients, matmuls, max-pool gradients and bias-gradient sums,
 *    plus native optimizer updates (see heap-optimizers.ts), each falling back to the 'wasm' kernel for what it does
 *    not cover. trainLocal on this engine runs the addon's fused training step instead of tfjs (fused-step.ts). Used when the addon was built (Debian's libopenblas-dev present at `npm ci`) unless
 *    FEDKEEPER_NATIVE=0. Its threads: FEDKEEPER_NATIVE_THREADS (see native.ts).
 *  - 'wasm': the wasm backend with the pure-wasm kernels: this module's Conv2DBackpropFilter, which wasm lacks and
 *    conv nets need to train, and XNNPACK-backed fast paths for two kernels wasm has but runs as scalar loops in
 *    backprop (Conv2DBackpropInput, transposed BatchMatMul), and copy-free Identity and same-dtype Cast (wasm's
 *    copy the data; tfjs runs them for every tensor saved for backprop), plus JS loops over the wasm heap for
 *    MaxPoolGrad, bias-gradient sums and the optimizers' updates. FEDKEEPER_WASM_KERNELS=0 drops all these
 *    (stock wasm plus the filter gradient: the baseline the others are measured against).
 *
 * When the native kernels were expected but are missing, one line on stderr says so (once per process).
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { fastTransposedBatchMatMul } from './kernels/batch-mat-mul.js';
import { conv2DBackpropFilterWasm } from './kernels/conv2d-backprop-filter.js';
import { fastConv2DBackpropInput } from './kernels/conv2d-backprop-input.js';
import { jsUpdates, maxPoolGradJs, sumLeadingJs } from './kernels/heap.js';
import type { HeapUpdates } from './heap-optimizers.js';
import { maxPoolGradKernel, NATIVE_WRAPPERS, sumLeadingKernel } from './kernels/native.js';
import { sharingCast, sharingIdentity } from './kernels/share.js';
import { wrapConfig } from './kernels/wasm-util.js';
import { loadNative, type NativeAddon, type NativeLoad } from './native.js';
import type { EngineInfo } from './types.js';

/**
 * The kernel sets the wasm backend can run with: 'stock' (wasm's own kernels plus the filter gradient it lacks),
 * 'wasm' (plus the pure-wasm fast paths), 'native' (plus the native kernels, each falling back to the 'wasm' one).
 */
export type KernelSet = 'stock' | 'wasm' | 'native';

let ready: Promise<EngineInfo> | undefined;
let sets: Map<KernelSet, Map<string, tf.KernelConfig>> | undefined;
let native: NativeLoad | undefined;
let current: EngineInfo | undefined;
let activeSet: KernelSet | undefined;
let simd = false;
let warned = false;
/** The filter-gradient kernel in every set is this module's (wasm has none). */
let ownFilterKernel = false;

/** Idempotent: the first call does the work, later calls return the same answer. */
export function initEngine(): Promise<EngineInfo> {
  ready ??= start().catch((e: unknown) => {
    ready = undefined; // let a later call retry
    throw e;
  });
  return ready;
}

/** True inside a function package (an esbuild bundle made by src/packaging, which defines the marker). */
export function inPackage(): boolean {
  return process.env.FEDKEEPER_BUNDLED === '1';
}

/**
 * The directory holding the wasm backend's .wasm binaries, with a trailing separator: beside the bundle inside a
 * function package, the installed @tensorflow/tfjs-backend-wasm's otherwise.
 */
export function wasmBinaryDir(): string {
  if (inPackage()) return path.dirname(fileURLToPath(import.meta.url)) + path.sep;
  const require = createRequire(import.meta.url);
  const pkg = require.resolve('@tensorflow/tfjs-backend-wasm/package.json');
  return path.join(path.dirname(pkg), 'dist') + path.sep;
}

function envOff(name: string): boolean {
  const v = process.env[name];
  return v !== undefined && ['0', 'false', 'off', 'no'].includes(v.trim().toLowerCase());
}

async function start(): Promise<EngineInfo> {
  if (await tryTfjsNode()) {
    current = { engine: 'tfjs-node', simd: true, kernels: [], threads: 1 };
    return current;
  }
  // The threaded build brings nothing on Node 20 (and needs worker plumbing): pin the single-threaded SIMD build.
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  setWasmPaths(wasmBinaryDir());
  native = loadNative();
  sets ??= buildKernelSets(native.ok ? native.addon : null);
  const stockOnly = envOff('FEDKEEPER_WASM_KERNELS');
  const want: KernelSet = stockOnly ? 'stock' : native.ok ? 'native' : 'wasm';
  registerSet(want);
  if (!(await tf.setBackend('wasm'))) throw new Error('ml: could not initialise the tfjs wasm backend');
  await tf.ready();
  silenceCpuNodeHint();
  simd = (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) === true;
  if (!native.ok && !stockOnly && !native.reason.startsWith('disabled') && !inPackage() && !warned) {
    warned = true;
    const why = native.reason === 'not built' ? 'not built (libopenblas-dev missing? see README, "Faster training")' : native.reason;
    process.stderr.write(`fedkeeper: native kernels ${why}: training uses the pure-wasm kernels\n`);
  }
  current = describe(want);
  return current;
}

/** Kernel names any set changes. */
const TOUCHED = ['Conv2DBackpropFilter', 'Conv2DBackpropInput', 'BatchMatMul', 'Identity', 'Cast', ...Object.keys(NATIVE_WRAPPERS)];

function buildKernelSets(addon: NativeAddon | null): Map<KernelSet, Map<string, tf.KernelConfig>> {
  const stock = new Map<string, tf.KernelConfig>();
  for (const name of new Set(TOUCHED)) {
    const cfg = tf.getKernel(name, 'wasm') as tf.KernelConfig | undefined;
    if (cfg) stock.set(name, cfg);
  }
  // wasm ships without a filter gradient; keep its own should a later version have one.
  if (!stock.has('Conv2DBackpropFilter')) {
    stock.set('Conv2DBackpropFilter', { kernelName: 'Conv2DBackpropFilter', backendName: 'wasm', kernelFunc: conv2DBackpropFilterWasm });
    ownFilterKernel = true;
  }
  const wasm = new Map(stock);
  const bmm = stock.get('BatchMatMul');
  if (bmm) wasm.set('BatchMatMul', wrapConfig(bmm, fastTransposedBatchMatMul));
  const cbi = stock.get('Conv2DBackpropInput');
  if (cbi) wasm.set('Conv2DBackpropInput', wrapConfig(cbi, fastConv2DBackpropInput));
  const identity = stock.get('Identity');
  if (identity) wasm.set('Identity', wrapConfig(identity, sharingIdentity));
  const cast = stock.get('Cast');
  if (cast) wasm.set('Cast', wrapConfig(cast, sharingCast));
  const mpg = stock.get('MaxPoolGrad');
  if (mpg) wasm.set('MaxPoolGrad', wrapConfig(mpg, maxPoolGradKernel(maxPoolGradJs)));
  const sum = stock.get('Sum');
  if (sum) wasm.set('Sum', wrapConfig(sum, sumLeadingKernel(sumLeadingJs)));
  const out = new Map<KernelSet, Map<string, tf.KernelConfig>>([
    ['stock', stock],
    ['wasm', wasm],
  ]);
  if (addon) {
    const nat = new Map(wasm);
    for (const [name, wrap] of Object.entries(NATIVE_WRAPPERS)) {
      const base = wasm.get(name);
      if (base) nat.set(name, wrapConfig(base, (fallback) => wrap(addon, fallback)));
    }
    out.set('native', nat);
  }
  return out;
}

function registerSet(set: KernelSet): void {
  const chosen = sets?.get(set);
  if (!chosen) throw new Error(`ml: kernel set '${set}' is not available`);
  activeSet = set;
  for (const [name, cfg] of chosen) {
    if (tf.getKernel(name, 'wasm') === cfg) continue;
    if (tf.getKernel(name, 'wasm')) tf.unregisterKernel(name, 'wasm');
    tf.registerKernel(cfg);
  }
}

function describe(set: KernelSet): EngineInfo {
  const stock = sets!.get('stock')!;
  const chosen = sets!.get(set)!;
  const kernels = [...chosen].filter(([name, cfg]) => cfg !== stock.get(name) || (name === 'Conv2DBackpropFilter' && ownFilterKernel)).map(([n]) => n);
  const info: EngineInfo = { engine: set === 'native' ? 'wasm+native' : 'wasm', simd, kernels, threads: 1 };
  if (set === 'native' && native?.ok) {
    info.threads = native.threads;
    info.blas = native.blas;
  } else {
    info.nativeUnavailable = set === 'stock' ? 'FEDKEEPER_WASM_KERNELS=0' : native && !native.ok ? native.reason : 'not selected';
  }
  return info;
}

/**
 * Switches the wasm backend to another kernel set (benchmarks and tests compare them in one process); returns
 * the engine description for it. initEngine() must have completed on wasm; 'native' needs the addon.
 */
export function useKernelSet(set: KernelSet): EngineInfo {
  if (!sets || !current || current.engine === 'tfjs-node') throw new Error('ml: useKernelSet needs an initialised wasm engine');
  registerSet(set);
  current = describe(set);
  return current;
}

/** The engine in use now (after initEngine; reflects useKernelSet). */
export function currentEngine(): EngineInfo | undefined {
  return current;
}

/**
 * The heap-loop optimizer updates for the active kernel set: the addon's on 'native', the JS ones on 'wasm', none
 * (tfjs' own optimizers) on 'stock' and tfjs-node.
 */
export function activeHeapUpdates(): HeapUpdates | null {
  if (!current || current.engine === 'tfjs-node') return null;
  if (current.engine === 'wasm+native' && native?.ok) return native.addon;
  return activeSet === 'wasm' ? jsUpdates : null;
}

async function tryTfjsNode(): Promise<boolean> {
  // A variable specifier keeps tsc from requiring the (optional, normally absent) package at compile time.
  const name = '@tensorflow/tfjs-node';
  try {
    await import(name);
  } catch {
    return false;
  }
  // It registers backend 'tensorflow' on the tfjs-core it resolved; that must be ours.
  try {
    if (tf.findBackendFactory('tensorflow') && (await tf.setBackend('tensorflow'))) {
      await tf.ready();
      return true;
    }
  } catch {
    // fall through to wasm
  }
  return false;
}

/**
 * tfjs's cpu backend prints "Hi, looks like you are running TensorFlow.js in Node.js. To speed things up
 * dramatically, install our node backend..." (via backend_util.warn) on its first tensor write. We have made that
 * choice deliberately, so mark the hint as shown. Only the cpu backend's own one-shot flag is touched; other
 * warnings stay on. (With wasm active the cpu backend is normally never written to; this matters for code, such as
 * tests, that switches to 'cpu'.)
 */
function silenceCpuNodeHint(): void {
  if (!tf.findBackendFactory('cpu')) return;
  const cpu = tf.findBackend('cpu') as { firstUse?: boolean } | null;
  if (cpu && typeof cpu.firstUse === 'boolean') cpu.firstUse = false;
}
