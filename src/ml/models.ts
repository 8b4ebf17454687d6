/**
 * The two model architectures, their variable shapes, seeded initial weights, and a per-process cache of built
 * models (building a tfjs-layers model is slow; weights are loaded from a WeightVector before every use).
 *
 * Variable order (= WeightVector order) is model.getWeights() order: for each layer with weights, kernel then bias.
 *   cnn:     conv1 [5,5,c,32], [32], conv2 [5,5,32,64], [64], dense [flat,512], [512], logits [512,K], [K]
 *   mnistnn: dense [h*w*c,H], [H], logits [H,K], [K]
 */
import * as tf from '@tensorflow/tfjs';
import { sameShapes, splitWeights, totalSize, type WeightVector } from '../fl/weights.js';
import { initEngine } from './engine.js';
import { mixSeed } from './rng.js';
import { cnnSide, parameterCount, validateSpec, weightShapes } from './shapes.js';

export { parameterCount, validateSpec, weightShapes };
import type { ModelSpec } from './types.js';

/** Input tensor shape of one example as the model takes it: [h,w,c] for cnn, [h*w*c] for mnistnn. */
export function exampleShape(spec: ModelSpec): number[] {
  const [h, w, c] = spec.inputShape;
  return spec.model === 'cnn' ? [h, w, c] : [h * w * c];
}

/**
 * Builds a fresh model. Every kernel gets glorotUniform with its own seed derived from (seed, layer index), biases
 * are zeros (Keras defaults), so the initial weights are a pure function of (spec, seed). Output is logits.
 */
export function buildModel(spec: ModelSpec, seed: number): tf.Sequential {
  validateSpec(spec);
  const init = (layer: number) => tf.initializers.glorotUniform({ seed: mixSeed(seed, layer) });
  const zeros = () => tf.initializers.zeros();
  const k = spec.numClasses;
  if (spec.model === 'cnn') {
    return tf.sequential({
      layers: [
        tf.layers.conv2d({
          inputShape: spec.inputShape,
          filters: 32,
          kernelSize: 5,
          padding: 'valid',
          activation: 'relu',
          kernelInitializer: init(1),
          biasInitializer: zeros(),
        }),
        tf.layers.maxPooling2d({ poolSize: 2 }),
        tf.layers.conv2d({
          filters: 64,
          kernelSize: 5,
          padding: 'valid',
          activation: 'relu',
          kernelInitializer: init(2),
          biasInitializer: zeros(),
        }),
        tf.layers.maxPooling2d({ poolSize: 2 }),
        tf.layers.flatten(),
        tf.layers.dense({ units: 512, activation: 'relu', kernelInitializer: init(3), biasInitializer: zeros() }),
        tf.layers.dense({ units: k, kernelInitializer: init(4), biasInitializer: zeros() }),
      ],
    });
  }
  // mnistnn: the paper's flatten → dense → dense. Inputs are fed already flat ([n, h*w*c]), so the flatten is the
  // identity and is left out (it has no weights and changes nothing).
  const [h, w, c] = spec.inputShape;
  return tf.sequential({
    layers: [
      tf.layers.dense({
        inputShape: [h * w * c],
        units: spec.hiddenSize,
        activation: 'relu',
        kernelInitializer: init(1),
        biasInitializer: zeros(),
      }),
      tf.layers.dense({ units: k, kernelInitializer: init(2), biasInitializer: zeros() }),
    ],
  });
}

/** The model's variables in WeightVector order. */
export function modelVariables(model: tf.LayersModel): tf.Variable[] {
  return model.weights.map((w) => w.read() as tf.Variable);
}

/** Copies the model's current weights out into one WeightVector. */
export function readWeights(vars: tf.Variable[]): WeightVector {
  const shapes = vars.map((v) => [...v.shape]);
  const data = new Float32Array(totalSize(shapes));
  let off = 0;
  for (const v of vars) {
    const vals = v.dataSync();
    data.set(vals, off);
    off += vals.length;
  }
  return { shapes, data };
}

/** Loads a WeightVector into the model's variables (shapes must match exactly). */
export function writeWeights(vars: tf.Variable[], w: WeightVector): void {
  const shapes = vars.map((v) => [...v.shape]);
  if (!sameShapes(shapes, w.shapes)) {
    throw new Error(`ml: weight shapes ${JSON.stringify(w.shapes)} do not match the model's ${JSON.stringify(shapes)}`);
  }
  if (w.data.length !== totalSize(shapes)) {
    throw new Error(`ml: weight vector has ${w.data.length} values, the model needs ${totalSize(shapes)}`);
  }
  const parts = splitWeights(w);
  vars.forEach((v, i) => {
    // slice(): a backend may keep a reference to the array it is given (cpu does); never alias the caller's buffer.
    const t = tf.tensor(parts[i]!.slice(), v.shape, 'float32');
    v.assign(t);
    t.dispose();
  });
}

export interface CachedModel {
  model: tf.Sequential;
  vars: tf.Variable[];
  shapes: number[][];
}

interface Entry {
  cached: CachedModel;
  /** Serialises users of the shared model (training yields to the event loop now and then). */
  tail: Promise<unknown>;
}

const cache = new Map<string, Entry>();

export function specKey(spec: ModelSpec): string {
  const [h, w, c] = spec.inputShape;
  const hid = spec.model === 'mnistnn' ? spec.hiddenSize : 0;
  return `${spec.model}:${h}x${w}x${c}:${hid}:${spec.numClasses}`;
}

function entryFor(spec: ModelSpec): Entry {
  const key = specKey(spec);
  let e = cache.get(key);
  if (!e) {
    const model = buildModel(spec, 0);
    const vars = modelVariables(model);
    const shapes = vars.map((v) => [...v.shape]);
    const expected = weightShapes(spec);
    if (!sameShapes(shapes, expected)) {
      throw new Error(`ml: built model shapes ${JSON.stringify(shapes)} differ from ${JSON.stringify(expected)}`);
    }
    e = { cached: { model, vars, shapes }, tail: Promise.resolve() };
    cache.set(key, e);
  }
  return e;
}

/** Runs fn with exclusive use of the cached model for spec (engine must be initialised). */
export function withModel<T>(spec: ModelSpec, fn: (m: CachedModel) => Promise<T> | T): Promise<T> {
  const e = entryFor(spec);
  const run = e.tail.then(() => fn(e.cached));
  e.tail = run.catch(() => undefined);
  return run;
}

/** Seeded initial weights: a fresh model is built with the seeded initialisers, read, and disposed. */
export function seededWeights(spec: ModelSpec, seed: number): WeightVector {
  const model = buildModel(spec, seed);
  try {
    return readWeights(modelVariables(model));
  } finally {
    model.dispose();
  }
}

/** Seeded initial weights: identical bit for bit for the same (spec, seed), across calls and processes. */
export async function initialWeights(spec: ModelSpec, seed: number): Promise<WeightVector> {
  if (!Number.isFinite(seed)) throw new Error(`ml: seed must be a finite number, got ${seed}`);
  await initEngine();
  return seededWeights(spec, seed);
}
