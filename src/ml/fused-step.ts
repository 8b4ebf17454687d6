/**
 * The fused training step on 'wasm+native': the whole model -- forward (convolution + bias + relu, max-pool with
 * its argmax kept, dense + bias + relu), softmax cross-entropy, backward and the optimizer's update -- is one call
 * into the addon per minibatch (native/src/train_step.h), and the weights and the optimizer's moments stay on the
 * native heap for the whole of trainLocal. No tfjs kernel, tape or tensor runs in between.
 *
 * The arithmetic is the kernels' (same OpenBLAS products, same update loops as heap-optimizers.ts), summed in a
 * different order in places (bias gradients, the softmax in double), so its weights differ from the kernel path's
 * in the last bits; like it, the same seed gives the same weights bit for bit for any thread count.
 *
 * Used by trainLocal when the native kernel set is active, unless FEDKEEPER_NATIVE_FUSED=0 or setFusedStep(false)
 * (benchmarks and tests compare it with the kernel-by-kernel path in one process).
 */
import { currentEngine } from './engine.js';
import { nadamStep } from './nadam.js';
import { loadNative, type NativeAddon, type NativeTrainer } from './native.js';
import { parameterCount, weightShapes } from './shapes.js';
import type { ModelSpec, TrainSpec } from './types.js';
import type { WeightVector } from '../fl/weights.js';

const CONV = 1;
const POOL = 2;
const DENSE = 3;

/** The model as the addon's trainer spec: [H, W, C, classes, layers, then per layer: type, p1, p2, relu]. */
export function trainerSpec(spec: ModelSpec): Int32Array {
  const [h, w, c] = spec.inputShape;
  const k = spec.numClasses;
  const layers =
    spec.model === 'cnn'
      ? [[CONV, 5, 32, 1], [POOL, 2, 2, 0], [CONV, 5, 64, 1], [POOL, 2, 2, 0], [DENSE, 512, 0, 1], [DENSE, k, 0, 0]]
      : [[DENSE, spec.hiddenSize, 0, 1], [DENSE, k, 0, 0]];
  return Int32Array.from([h, w, c, k, layers.length, ...layers.flat()]);
}

let enabled = !['0', 'false', 'off', 'no'].includes((process.env['FEDKEEPER_NATIVE_FUSED'] ?? '').trim().toLowerCase());

/** Turns the fused step on or off for this process (on by default; FEDKEEPER_NATIVE_FUSED=0 starts it off). */
export function setFusedStep(on: boolean): void {
  enabled = on;
}

/**
 * Where the fused steps' time went (the addon's trainerProfile): wall seconds of each phase of a step on the calling
 * thread, summed over steps, and per layer the CPU seconds of its forward and backward summed over the parts (the
 * dense layers' work is in the dense phases; `update` includes the first dense layer's input gradient, computed
 * there block by block, and a fused conv + pool pair is counted on the conv's forward and the pool's backward).
 */
export interface FusedProfile {
  steps: number;
  phases: { partsForward: number; denseForward: number; lossAndDenseBackward: number; partsBackward: number; update: number };
  layers: { name: string; forwardCpu: number; backwardCpu: number }[];
}

let profileSink: ((p: FusedProfile) => void) | null = null;

/** Hands each trainLocal's FusedProfile to `sink` when it ends (benchmarks); null stops it. */
export function setFusedProfileSink(sink: ((p: FusedProfile) => void) | null): void {
  profileSink = sink;
}

const PROFILE_SLOTS = 40;
const LAYER_FWD = 8;
const LAYER_BWD = 24;

function profileOf(spec: ModelSpec, raw: Float64Array): FusedProfile {
  const s = trainerSpec(spec);
  const names = { [CONV]: 'conv', [POOL]: 'maxpool', [DENSE]: 'dense' } as Record<number, string>;
  const layers = Array.from({ length: s[4]! }, (_, i) => {
    const [type, p1, p2, relu] = [s[5 + 4 * i]!, s[6 + 4 * i]!, s[7 + 4 * i]!, s[8 + 4 * i]!];
    const what = type === CONV ? `${p1}x${p1}x${p2}` : type === POOL ? `${p1}x${p1}/${p2}` : `${p1}`;
    return { name: `${i} ${names[type]} ${what}${relu ? ' relu' : ''}`, forwardCpu: raw[LAYER_FWD + i]!, backwardCpu: raw[LAYER_BWD + i]! };
  });
  return {
    steps: raw[5]!,
    phases: { partsForward: raw[0]!, denseForward: raw[1]!, lossAndDenseBackward: raw[2]!, partsBackward: raw[3]!, update: raw[4]! },
    layers,
  };
}

const f32 = Math.fround;
const OPTIMIZER = { sgd: 0, adam: 1, nadam: 2 } as const;

/**
 * Idle native trainers, one per model layout: a trainer's buffers (weights, moments, activations: ~20 MB for the
 * paper's CNN) are reused by the next trainLocal instead of being allocated and faulted in again. Concurrent
 * trainings of one model each get their own.
 */
const idle = new Map<string, NativeTrainer>();

/** One trainLocal's native trainer: load weights, step, read weights, dispose (the trainer goes back to `idle`). */
export class FusedTrainer {
  private readonly t: NativeTrainer;
  private readonly key: string;
  private readonly scalars = new Float64Array(9);
  private readonly result = new Float64Array(2);
  private readonly beta1 = 0.9;
  private readonly beta2 = 0.999;
  private readonly epsilon = 1e-7;
  private accBeta1 = f32(0.9);
  private accBeta2 = f32(0.999);
  private mSchedule = 1;
  private iterations = 0;

  constructor(
    private readonly addon: NativeAddon,
    private readonly spec: ModelSpec,
    private readonly train: Pick<TrainSpec, 'optimizer' | 'lr'>,
  ) {
    const layout = trainerSpec(spec);
    this.key = layout.join(',');
    const cached = idle.get(this.key);
    idle.delete(this.key);
    this.t = cached ?? addon.trainerCreate(layout);
    if (addon.trainerParams(this.t) !== parameterCount(spec)) {
      addon.trainerDispose(this.t);
      throw new Error('ml: the native trainer does not match the model');
    }
  }

  /** Loads the weights and zeroes the optimizer's moments. */
  start(w: WeightVector): void {
    if (w.data.length !== parameterCount(this.spec)) {
      throw new Error(`ml: weight vector has ${w.data.length} values, the model needs ${parameterCount(this.spec)}`);
    }
    this.addon.trainerStart(this.t, w.data);
  }

  /** One minibatch (b examples, labels as int32); its mean loss and correct predictions before the update. */
  step(x: Float32Array, y: Int32Array, b: number): { loss: number; correct: number } {
    const s = this.scalars;
    const lr = this.train.lr;
    s.fill(0);
    if (this.train.optimizer === 'sgd') {
      s[0] = f32(-lr);
    } else if (this.train.optimizer === 'adam') {
      s.set([f32(this.beta1), f32(1 - this.beta1), f32(this.beta2), f32(1 - this.beta2), this.accBeta1, this.accBeta2, f32(this.epsilon), f32(-lr)]);
    } else {
      const n = nadamStep(this.beta1, this.beta2, this.mSchedule, this.iterations + 1);
      s.set([f32(this.beta1), f32(1 - this.beta1), f32(this.beta2), f32(1 - this.beta2), f32(n.cG), f32(n.cM), f32(n.vDenom), f32(this.epsilon), f32(lr)]);
      this.mSchedule = n.mSchedule;
    }
    this.addon.trainerStep(this.t, x, y, b, OPTIMIZER[this.train.optimizer], s, this.result);
    // As tf.train.adam keeps them: float32 powers, multiplied once per step.
    this.accBeta1 = f32(this.accBeta1 * f32(this.beta1));
    this.accBeta2 = f32(this.accBeta2 * f32(this.beta2));
    this.iterations++;
    return { loss: this.result[0]!, correct: this.result[1]! };
  }

  weights(): WeightVector {
    const data = new Float32Array(parameterCount(this.spec));
    this.addon.trainerWeights(this.t, data);
    return { shapes: weightShapes(this.spec), data };
  }

  dispose(): void {
    if (profileSink) {
      const raw = new Float64Array(PROFILE_SLOTS);
      this.addon.trainerProfile(this.t, raw);
      profileSink(profileOf(this.spec, raw));
    }
    if (idle.has(this.key)) this.addon.trainerDispose(this.t);
    else idle.set(this.key, this.t);
  }
}

/** A fused trainer for this training, or null when the fused step does not apply (engine, addon, switch). */
export function fusedTrainer(spec: ModelSpec, train: Pick<TrainSpec, 'optimizer' | 'lr'>): FusedTrainer | null {
  if (!enabled || currentEngine()?.engine !== 'wasm+native') return null;
  const native = loadNative();
  if (!native.ok || typeof native.addon.trainerCreate !== 'function') return null;
  if (!Object.hasOwn(OPTIMIZER, train.optimizer)) return null;
  return new FusedTrainer(native.addon, spec, train);
}
