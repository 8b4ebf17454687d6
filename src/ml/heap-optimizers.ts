/**
 * Adam, SGD and Nadam whose whole update is one loop over the wasm heap per variable (tfjs' own optimizers run ~10
 * elementwise kernels per variable per step, each allocating a fresh tensor). The loops are either the native
 * addon's (on 'wasm+native') or plain JS (kernels/heap.ts, on 'wasm'); makeOptimizer decides.
 *
 * The new value goes to a fresh buffer that the variable is then assigned, never into the variable's own: the wasm
 * backend caches XNNPACK operators (packed weights) per tensor, and tensors sharing the buffer must not change. The
 * moments live in plain Float32Arrays, updated in place.
 *
 * The arithmetic is float32, operation for operation the same as tf.train.adam / tf.train.sgd / this module's
 * Nadam, so the results are bit-identical to theirs. Gradients must be float32 tensors on the wasm backend.
 */
import * as tf from '@tensorflow/tfjs';
import { heapBuffer, heapOffset, wasmInternals } from './kernels/wasm-util.js';
import { nadamScheduleAfter, nadamStep } from './nadam.js';

/**
 * The update loops (the native addon's signatures; kernels/heap.ts has the JS ones): read value and grad at their
 * heap offsets, write the new value at `out` (a separate buffer), update m and v in place.
 */
export interface HeapUpdates {
  adam(heap: ArrayBuffer, value: number, grad: number, out: number, n: number, m: Float32Array, v: Float32Array, ...scalars: number[]): void;
  nadam(heap: ArrayBuffer, value: number, grad: number, out: number, n: number, m: Float32Array, v: Float32Array, ...scalars: number[]): void;
  sgd(heap: ArrayBuffer, value: number, grad: number, out: number, n: number, negLr: number): void;
}

type VariableGradients = Parameters<tf.Optimizer['applyGradients']>[0];
type NamedTensorList = Awaited<ReturnType<tf.Optimizer['getWeights']>>;

const f32 = Math.fround;

interface Target {
  /** Position in the caller's list (slot index, as tfjs' optimizers number their moments). */
  index: number;
  name: string;
  value: tf.Variable;
  grad: tf.Tensor;
}

function targets(variableGradients: VariableGradients): Target[] {
  const list = Array.isArray(variableGradients)
    ? variableGradients.map((v) => ({ name: v.name, grad: v.tensor }))
    : Object.keys(variableGradients).map((name) => ({ name, grad: variableGradients[name]! }));
  const out: Target[] = [];
  list.forEach(({ name, grad }, index) => {
    const value = tf.engine().registeredVariables[name];
    if (!value) throw new Error(`optimizer: unknown variable '${name}'`);
    if (grad != null) out.push({ index, name, value, grad });
  });
  return out;
}

/** Base: runs one update loop per variable on the wasm heap and assigns the variable its new buffer. */
abstract class HeapOptimizer extends tf.Optimizer {
  constructor(protected readonly addon: HeapUpdates) {
    super();
  }

  /** loop(heap, value offset, grad offset, out offset) computes t.value's new value into a fresh buffer. */
  protected update(t: Target, loop: (heap: ArrayBuffer, value: number, grad: number, out: number) => void): void {
    const b = wasmInternals(tf.engine().backend);
    if (!b) throw new Error(`optimizer: '${t.name}' is not on the wasm backend (these updates need it)`);
    if (t.value.dtype !== 'float32' || t.grad.dtype !== 'float32' || t.value.size !== t.grad.size) {
      throw new Error(`optimizer: '${t.name}' needs float32 value and gradient of equal size`);
    }
    const out = b.makeOutput([...t.value.shape], 'float32');
    const next = tf.engine().makeTensorFromTensorInfo(out);
    try {
      // The heap after the allocation (growing wasm memory replaces the buffer).
      loop(heapBuffer(b), heapOffset(b, t.value), heapOffset(b, t.grad), heapOffset(b, out));
      t.value.assign(next);
    } finally {
      next.dispose();
    }
  }
}

/** Moments per variable, in the order applyGradients first saw the variables. */
class Moments {
  m: Float32Array[] = [];
  v: Float32Array[] = [];
  names: string[] = [];

  at(i: number, name: string, size: number): [Float32Array, Float32Array] {
    if (!this.m[i]) {
      this.m[i] = new Float32Array(size);
      this.v[i] = new Float32Array(size);
      this.names[i] = name;
    }
    return [this.m[i]!, this.v[i]!];
  }

  tensors(): NamedTensorList {
    const mk = (arrs: Float32Array[], suffix: string) =>
      arrs.map((a, i) => ({ name: `${this.names[i]}/${suffix}`, tensor: tf.tensor1d(a.slice()) }));
    return [...mk(this.m, 'm'), ...mk(this.v, 'v')];
  }

  set(list: NamedTensorList): void {
    const half = list.length / 2;
    this.m = list.slice(0, half).map((w) => Float32Array.from(w.tensor.dataSync()));
    this.v = list.slice(half).map((w) => Float32Array.from(w.tensor.dataSync()));
    this.names = list.slice(0, half).map((w) => w.name.replace(/\/m$/, ''));
  }
}

/** Adam-family optimizers: first and second moments per variable, saved and restored with the iteration count. */
abstract class MomentOptimizer extends HeapOptimizer {
  protected moments = new Moments();

  override dispose(): void {
    this.moments = new Moments();
  }

  override async getWeights(): Promise<NamedTensorList> {
    return [await this.saveIterations(), ...this.moments.tensors()];
  }

  /** Restores the iteration count and the moments; subclasses then rebuild what derives from the count. */
  protected async restore(weightValues: NamedTensorList): Promise<void> {
    this.moments.set(await this.extractIterations(weightValues));
  }
}

/** tf.train.adam(lr) (β1 0.9, β2 0.999, ε = the backend's 1e-7), one heap loop per variable. */
export class HeapAdam extends MomentOptimizer {
  static get className(): string {
    return 'HeapAdam';
  }

  /** β1^t and β2^t as tfjs keeps them: float32 scalars, multiplied once per step. */
  private accBeta1: number;
  private accBeta2: number;

  constructor(
    addon: HeapUpdates,
    readonly learningRate: number,
    readonly beta1 = 0.9,
    readonly beta2 = 0.999,
    readonly epsilon = 1e-7,
  ) {
    super(addon);
    this.accBeta1 = f32(beta1);
    this.accBeta2 = f32(beta2);
  }

  override applyGradients(variableGradients: VariableGradients): void {
    targets(variableGradients).forEach((t) => {
      const [m, v] = this.moments.at(t.index, t.name, t.value.size);
      this.update(t, (heap, vOff, gOff, oOff) => this.addon.adam(heap, vOff, gOff, oOff, t.value.size, m, v,
        f32(this.beta1), f32(1 - this.beta1), f32(this.beta2), f32(1 - this.beta2),
        this.accBeta1, this.accBeta2, f32(this.epsilon), f32(-this.learningRate)));
    });
    this.accBeta1 = f32(this.accBeta1 * f32(this.beta1));
    this.accBeta2 = f32(this.accBeta2 * f32(this.beta2));
    this.incrementIterations();
  }

  override async setWeights(weightValues: NamedTensorList): Promise<void> {
    await this.restore(weightValues);
    this.accBeta1 = f32(this.beta1);
    this.accBeta2 = f32(this.beta2);
    for (let i = 0; i < this.iterations; i++) {
      this.accBeta1 = f32(this.accBeta1 * f32(this.beta1));
      this.accBeta2 = f32(this.accBeta2 * f32(this.beta2));
    }
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { learningRate: this.learningRate, beta1: this.beta1, beta2: this.beta2, epsilon: this.epsilon };
  }
}

/** tf.train.sgd(lr), one heap loop per variable. */
export class HeapSgd extends HeapOptimizer {
  static get className(): string {
    return 'HeapSGD';
  }

  constructor(
    addon: HeapUpdates,
    readonly learningRate: number,
  ) {
    super(addon);
  }

  override applyGradients(variableGradients: VariableGradients): void {
    for (const t of targets(variableGradients)) {
      this.update(t, (heap, vOff, gOff, oOff) => this.addon.sgd(heap, vOff, gOff, oOff, t.value.size, f32(-this.learningRate)));
    }
    this.incrementIterations();
  }

  override dispose(): void {}

  override async getWeights(): Promise<NamedTensorList> {
    return [await this.saveIterations()];
  }

  override async setWeights(weightValues: NamedTensorList): Promise<void> {
    await this.extractIterations(weightValues);
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { learningRate: this.learningRate };
  }
}

/** This module's Nadam (nadam.ts), one heap loop per variable. */
export class HeapNadam extends MomentOptimizer {
  static get className(): string {
    return 'HeapNadam';
  }

  private mSchedule = 1;

  constructor(
    addon: HeapUpdates,
    readonly learningRate: number,
    readonly beta1 = 0.9,
    readonly beta2 = 0.999,
    readonly epsilon = 1e-7,
  ) {
    super(addon);
  }

  override applyGradients(variableGradients: VariableGradients): void {
    const t = this.iterations + 1;
    const { cG, cM, vDenom, mSchedule: mScheduleNew } = nadamStep(this.beta1, this.beta2, this.mSchedule, t);
    targets(variableGradients).forEach((tg) => {
      const [m, v] = this.moments.at(tg.index, tg.name, tg.value.size);
      this.update(tg, (heap, vOff, gOff, oOff) => this.addon.nadam(heap, vOff, gOff, oOff, tg.value.size, m, v,
        f32(this.beta1), f32(1 - this.beta1), f32(this.beta2), f32(1 - this.beta2),
        f32(cG), f32(cM), f32(vDenom), f32(this.epsilon), f32(this.learningRate)));
    });
    this.mSchedule = mScheduleNew;
    this.incrementIterations();
  }

  override async setWeights(weightValues: NamedTensorList): Promise<void> {
    await this.restore(weightValues);
    this.mSchedule = nadamScheduleAfter(this.beta1, this.iterations);
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { learningRate: this.learningRate, beta1: this.beta1, beta2: this.beta2, epsilon: this.epsilon };
  }
}
