/** Public types of the ml module (no tfjs in here, so anything may import them). */

export interface ModelSpec {
  model: 'cnn' | 'mnistnn';
  /** [height, width, channels] of one example. */
  inputShape: [number, number, number];
  /** Width of the hidden dense layer of 'mnistnn' (ignored by 'cnn', whose dense layer is 512 wide). */
  hiddenSize: number;
  numClasses: number;
}

export interface TrainSpec {
  optimizer: 'adam' | 'sgd' | 'nadam';
  lr: number;
  localEpochs: number;
  batchSize: number;
  /** Drives the per-epoch shuffles (with the epoch index). Integers; only the low 32 bits count. */
  seed: number;
}

/** x: n * h*w*c floats in [0,1], row-major NHWC (flattened images); y: class ids. */
export interface LabelledData {
  x: Float32Array;
  y: Uint8Array;
  n: number;
}

export interface EngineInfo {
  /**
   * 'tfjs-node' (native TensorFlow, when @tensorflow/tfjs-node is installed), 'wasm+native' (the wasm backend with
   * this project's OpenBLAS kernels, native/), or 'wasm' (the wasm backend with its pure-wasm kernels).
   */
  engine: 'tfjs-node' | 'wasm+native' | 'wasm';
  simd: boolean;
  /**
   * Kernels this module registered or replaced on the wasm backend: Conv2DBackpropFilter (absent from wasm), the
   * XNNPACK-backed fast paths (Conv2DBackpropInput, BatchMatMul), and on 'wasm+native' the native ones; [] on
   * tfjs-node. `simd` is always true there.
   */
  kernels: string[];
  /** Threads the native kernels split work over in this process (FEDKEEPER_NATIVE_THREADS); 1 without them. */
  threads: number;
  /** The BLAS under the native kernels, e.g. 'OpenBLAS 0.3.21 (Haswell)'; only on 'wasm+native'. */
  blas?: string;
  /**
   * On 'wasm': why the native kernels are not used ('not built', 'disabled by FEDKEEPER_NATIVE=0',
   * 'failed to load: …', 'FEDKEEPER_WASM_KERNELS=0', 'not selected').
   */
  nativeUnavailable?: string;
}

export interface TrainResult {
  weights: import('../fl/weights.js').WeightVector;
  /** Mean training loss over the last epoch (batch-size weighted, measured before each step's update). */
  loss: number;
  /** Training accuracy over the last epoch (same convention as loss). */
  accuracy: number;
  numSamples: number;
  steps: number;
  trainSeconds: number;
}

export interface EvalResult {
  accuracy: number;
  loss: number;
}
