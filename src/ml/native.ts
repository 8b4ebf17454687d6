/**
 * Loader for the optional native kernel addon (native/, N-API + OpenBLAS, built by `npm ci` when Debian's
 * libopenblas-dev is installed). Never throws: a missing or broken build is reported as a reason string.
 *
 * Environment:
 *   FEDKEEPER_NATIVE=0            do not use the native kernels (training runs on the pure-wasm kernels)
 *   FEDKEEPER_NATIVE_THREADS=n    threads the native kernels split work over in this process (default: the cores
 *                                 this process may use, os.availableParallelism()). A launcher running P training
 *                                 processes side by side should set max(1, floor(cores / P)).
 *   FEDKEEPER_NATIVE_ADDON=file   load the addon from this file instead of native/build/Release/ (tests use it to
 *                                 play a missing build). Inside a function package this is the only way to the
 *                                 native kernels: a package carries no native code, and a local platform of this
 *                                 machine that wants them hands its containers the addon's path (an explicit
 *                                 opt-in; remote platforms never have it).
 *   OPENBLAS_CORETYPE, FEDKEEPER_BLAS_PROBE=0   the OpenBLAS core the kernels run: see blas-select.ts (chosen by
 *                                 a probe before OpenBLAS loads, unless the user set one; a package runs the core its
 *                                 environment names).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeBlas } from './blas-env.js';
import { prepareBlasCore, type BlasDecision } from './blas-select.js';

/** Byte offsets into the wasm heap (an ArrayBuffer); dims are plain integers. See native/src/fedkeeper_native.cc. */
export interface NativeAddon {
  conv2d(heap: ArrayBuffer, x: number, w: number, y: number, bias: number, act: number, ...dims: number[]): void;
  conv2dBackpropInput(heap: ArrayBuffer, dy: number, w: number, dx: number, ...dims: number[]): void;
  conv2dBackpropFilter(heap: ArrayBuffer, x: number, dy: number, dw: number, ...dims: number[]): void;
  batchMatMul(
    heap: ArrayBuffer,
    a: number,
    b: number,
    c: number,
    batchA: number,
    batchB: number,
    m: number,
    n: number,
    k: number,
    transposeA: number,
    transposeB: number,
    bias: number,
    act: number,
  ): void;
  maxPoolGrad(heap: ArrayBuffer, x: number, dy: number, dx: number, ...dims: number[]): void;
  sumLeading(heap: ArrayBuffer, x: number, out: number, rows: number, inner: number): void;
  adam(heap: ArrayBuffer, value: number, grad: number, out: number, n: number, m: Float32Array, v: Float32Array, ...scalars: number[]): void;
  nadam(heap: ArrayBuffer, value: number, grad: number, out: number, n: number, m: Float32Array, v: Float32Array, ...scalars: number[]): void;
  sgd(heap: ArrayBuffer, value: number, grad: number, out: number, n: number, negLr: number): void;
  /** The fused training step (native/src/train_step.h): an opaque trainer holding weights and moments. */
  trainerCreate(spec: Int32Array): NativeTrainer;
  trainerParams(t: NativeTrainer): number;
  trainerStart(t: NativeTrainer, weights: Float32Array): void;
  trainerWeights(t: NativeTrainer, out: Float32Array): void;
  trainerStep(t: NativeTrainer, x: Float32Array, y: Int32Array, batch: number, optimizer: number, scalars: Float64Array, result: Float64Array): void;
  trainerDispose(t: NativeTrainer): void;
  /** Seconds spent since the last call, by phase and layer (see TRAINER_PROFILE in fused-step.ts); then reset. */
  trainerProfile(t: NativeTrainer, out: Float64Array): void;
  setThreads(n: number): void;
  setParts(n: number): void;
  info(): { corename: string; config: string; threads: number; parts: number };
  /** Seconds for `reps` n×n×n sgemms, row blocks split `split` ways over the addon's threads. */
  sgemmSeconds(n: number, reps: number, split: number): number;
}

/** A trainer made by the addon's trainerCreate (opaque). */
export type NativeTrainer = { readonly __nativeTrainer: unique symbol };

export type NativeLoad =
  | {
      ok: true;
      addon: NativeAddon;
      threads: number;
      /** e.g. "OpenBLAS 0.3.21 SkylakeX (chosen by probe)": the core in use and how it was chosen. */
      blas: string;
      /** The decision behind the core (blas-select.ts). */
      blasChoice: BlasDecision;
    }
  | { ok: false; reason: string };

/**
 * Work is cut into this many parts (by shape only, never by thread count, so results do not depend on the number
 * of threads). 2 matches the 2-core machines this was tuned on; more threads than parts stay idle.
 */
export const NATIVE_PARTS = 2;

const ADDON = path.join('native', 'build', 'Release', 'fedkeeper_native.node');

/** The addon's path: the nearest ancestor of this module holding native/build/Release/fedkeeper_native.node. */
export function findAddon(): string | undefined {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = path.join(dir, ADDON);
    if (existsSync(candidate)) return candidate;
    const up = path.dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return undefined;
}

export function nativeThreadsFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env['FEDKEEPER_NATIVE_THREADS'];
  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  if (raw === undefined || raw.trim() === '') return Math.max(1, Math.min(64, cores));
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) return Math.max(1, Math.min(64, cores));
  return Math.min(64, n);
}

export function nativeDisabledByEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env['FEDKEEPER_NATIVE'];
  return v !== undefined && ['0', 'false', 'off', 'no'].includes(v.trim().toLowerCase());
}

/**
 * The addon a local platform of this machine may hand its containers (FEDKEEPER_NATIVE_ADDON), or undefined when it
 * was not built or FEDKEEPER_NATIVE=0 turns the native kernels off.
 */
export function localNativeAddon(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (nativeDisabledByEnv(env)) return undefined;
  const override = env['FEDKEEPER_NATIVE_ADDON'];
  if (override) return existsSync(override) ? path.resolve(override) : undefined;
  return process.env.FEDKEEPER_BUNDLED === '1' ? undefined : findAddon();
}

let loaded: NativeLoad | undefined;

/** Loads (once per process) and configures the addon. */
export function loadNative(): NativeLoad {
  if (loaded) return loaded;
  if (nativeDisabledByEnv()) return (loaded = { ok: false, reason: 'disabled by FEDKEEPER_NATIVE=0' });
  const override = process.env['FEDKEEPER_NATIVE_ADDON'];
  const bundled = process.env.FEDKEEPER_BUNDLED === '1';
  const file = override ? (existsSync(override) ? path.resolve(override) : undefined) : bundled ? undefined : findAddon();
  if (!file) return (loaded = { ok: false, reason: bundled && !override ? 'not in a function package (no FEDKEEPER_NATIVE_ADDON given)' : 'not built' });
  try {
    // The BLAS calls run on the addon's own threads, one BLAS thread each; keep OpenBLAS from starting a pool of its
    // own at load (it is also told so at run time).
    process.env['OPENBLAS_NUM_THREADS'] ??= '1';
    // OpenBLAS reads OPENBLAS_CORETYPE once, when it loads: choose the core first.
    const choice = prepareBlasCore(file);
    const addon = createRequire(import.meta.url)(file) as NativeAddon;
    const threads = nativeThreadsFromEnv();
    addon.setThreads(threads);
    addon.setParts(NATIVE_PARTS);
    const info = addon.info();
    const blas = describeBlas(info.config, info.corename, choice);
    return (loaded = { ok: true, addon, threads: info.threads, blas, blasChoice: choice });
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    return (loaded = { ok: false, reason: `failed to load: ${msg.split('\n')[0]}` });
  }
}
