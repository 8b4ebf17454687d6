/** Helpers for kernels composed from the wasm backend's own kernels (called directly, outside the tfjs engine). */
import * as tf from '@tensorflow/tfjs';

/** The part of the wasm backend these kernels use. */
export interface WasmBackendLike {
  disposeData(dataId: object, force?: boolean): boolean;
}

/** The parts of tfjs' BackendWasm that kernels working directly on its heap use. */
export interface WasmBackendInternals {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: 'float32'): tf.TensorInfo;
}

/** The backend as WasmBackendInternals, or null if it does not look like tfjs' wasm backend. */
export function wasmInternals(backend: unknown): WasmBackendInternals | null {
  const b = backend as Partial<WasmBackendInternals> | null;
  if (!b || !b.wasm || !(b.wasm.HEAPU8 instanceof Uint8Array) || !b.dataIdMap || typeof b.makeOutput !== 'function') return null;
  return b as WasmBackendInternals;
}

/** Byte offset of a tensor's data in the wasm heap. */
export function heapOffset(b: WasmBackendInternals, t: tf.TensorInfo): number {
  const d = b.dataIdMap.get(t.dataId);
  if (!d) throw new Error('wasm kernels: tensor data is not on the wasm backend');
  return d.memoryOffset;
}

/** The wasm heap. Take it after allocating outputs: growing wasm memory replaces the buffer. */
export function heapBuffer(b: WasmBackendInternals): ArrayBuffer {
  return b.wasm.HEAPU8.buffer as ArrayBuffer;
}

/** The wasm backend's registered kernel function for `name` (throws if there is none). */
export function wasmKernel(name: string, who: string): tf.KernelFunc {
  const cfg = tf.getKernel(name, 'wasm') as tf.KernelConfig | undefined;
  if (!cfg) throw new Error(`${who} (wasm): the wasm backend has no '${name}' kernel`);
  return cfg.kernelFunc;
}

export function single(r: tf.TensorInfo | tf.TensorInfo[], who: string): tf.TensorInfo {
  if (Array.isArray(r)) throw new Error(`${who} (wasm): expected one output`);
  return r;
}

/**
 * Runs `fn` with a `temp` registrar: every TensorInfo passed to temp() is freed (backend.disposeData) when fn
 * returns or throws. The result itself must not be registered.
 */
export function withTemps<T>(backend: unknown, fn: (temp: (t: tf.TensorInfo) => tf.TensorInfo) => T): T {
  const temps: tf.TensorInfo[] = [];
  try {
    return fn((t) => {
      temps.push(t);
      return t;
    });
  } finally {
    for (const t of temps) (backend as WasmBackendLike).disposeData(t.dataId);
  }
}

export function asPair(v: number | readonly number[] | undefined, what: string, who: string): [number, number] {
  if (v === undefined) return [1, 1];
  if (typeof v === 'number') return [v, v];
  if (v.length !== 2 || typeof v[0] !== 'number' || typeof v[1] !== 'number') {
    throw new Error(`${who} (wasm): ${what} must be a number or a pair, got ${JSON.stringify(v)}`);
  }
  return [v[0], v[1]];
}

/** Like asPair, but null instead of an error for a malformed value (callers then take another kernel). */
export function asPairOrNull(v: unknown): [number, number] | null {
  if (v === undefined) return [1, 1];
  if (typeof v === 'number') return [v, v];
  if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'number' && typeof v[1] === 'number') return [v[0], v[1]];
  return null;
}

/**
 * A kernel config running `make(original)` in place of `original`, keeping the original's setup/dispose hooks (its
 * module-level state must still be initialised).
 */
export function wrapConfig(original: tf.KernelConfig, make: (original: tf.KernelFunc) => tf.KernelFunc): tf.KernelConfig {
  const cfg: tf.KernelConfig = { kernelName: original.kernelName, backendName: 'wasm', kernelFunc: make(original.kernelFunc) };
  if (original.setupFunc) cfg.setupFunc = original.setupFunc;
  if (original.disposeFunc) cfg.disposeFunc = original.disposeFunc;
  return cfg;
}
