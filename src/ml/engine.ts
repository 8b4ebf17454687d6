/**
 * Picks and initialises the tfjs backend, once per process.
 *
 *  - '@tensorflow/tfjs-node' if it is installed (optional, never required): native TensorFlow, has every kernel.
 *  - otherwise the wasm backend (XNNPACK, SIMD build, single-threaded), plus this module's own
 *    Conv2DBackpropFilter kernel, which wasm lacks and conv nets need to train, and XNNPACK-backed fast paths
 *    for two kernels wasm has but runs as scalar loops in backprop (Conv2DBackpropInput, transposed BatchMatMul).
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { installFastBatchMatMulWasm } from './kernels/batch-mat-mul.js';
import { registerConv2DBackpropFilterWasm } from './kernels/conv2d-backprop-filter.js';
import { installFastConv2DBackpropInputWasm } from './kernels/conv2d-backprop-input.js';
import type { EngineInfo } from './types.js';

let ready: Promise<EngineInfo> | undefined;
/** Kernels registered or replaced on wasm by this module (kept across a failed-and-retried initialisation). */
const ownKernels = new Set<string>();

/** Idempotent: the first call does the work, later calls return the same answer. */
export function initEngine(): Promise<EngineInfo> {
  ready ??= start().catch((e: unknown) => {
    ready = undefined; // let a later call retry
    throw e;
  });
  return ready;
}

/** The directory holding the .wasm binaries of the installed @tensorflow/tfjs-backend-wasm, with a trailing separator. */
export function wasmBinaryDir(): string {
  const require = createRequire(import.meta.url);
  const pkg = require.resolve('@tensorflow/tfjs-backend-wasm/package.json');
  return path.join(path.dirname(pkg), 'dist') + path.sep;
}

async function start(): Promise<EngineInfo> {
  if (await tryTfjsNode()) return { engine: 'tfjs-node', simd: true, kernels: [] };

  // The threaded build brings nothing on Node 20 (and needs worker plumbing): pin the single-threaded SIMD build.
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  setWasmPaths(wasmBinaryDir());
  if (registerConv2DBackpropFilterWasm()) ownKernels.add('Conv2DBackpropFilter');
  // wasm has these two, but runs them as scalar loops in the cases backprop needs: route them through XNNPACK.
  if (installFastConv2DBackpropInputWasm()) ownKernels.add('Conv2DBackpropInput');
  if (installFastBatchMatMulWasm()) ownKernels.add('BatchMatMul');
  if (!(await tf.setBackend('wasm'))) throw new Error('ml: could not initialise the tfjs wasm backend');
  await tf.ready();
  silenceCpuNodeHint();
  const simd = (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) === true;
  return { engine: 'wasm', simd, kernels: [...ownKernels] };
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
