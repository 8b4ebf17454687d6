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
  engine: 'tfjs-node' | 'wasm';
  simd: boolean;
  /**
   * Kernels this module registered (Conv2DBackpropFilter, absent from wasm) or replaced by XNNPACK-backed fast
   * paths (Conv2DBackpropInput, BatchMatMul) on the wasm backend; [] on tfjs-node. `simd` is always true there.
   */
  kernels: string[];
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
