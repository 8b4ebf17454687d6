/**
 * Nadam (Adam with Nesterov momentum), as Keras 2 / tf.keras implement it — tfjs has none.
 *
 * With t = iteration + 1 and the momentum-cache schedule u_t = β1 · (1 − 0.5 · 0.96^(0.004·t)):
 *   μ_t      = μ_{t−1} · u_t                    (μ_0 = 1; Keras' m_schedule)
 *   g'       = g / (1 − μ_t)
 *   m        = β1·m + (1−β1)·g ;   m' = m / (1 − μ_t·u_{t+1})
 *   v        = β2·v + (1−β2)·g² ;  v' = v / (1 − β2^t)
 *   m̄        = (1 − u_t)·g' + u_{t+1}·m'
 *   θ        = θ − lr · m̄ / (√v' + ε)
 * Defaults β1 = 0.9, β2 = 0.999, ε = 1e-7 (Keras'). The scalar schedule is computed in float64 on the JS side.
 */
import * as tf from '@tensorflow/tfjs';

type VariableGradients = Parameters<tf.Optimizer['applyGradients']>[0];
type NamedTensorList = Awaited<ReturnType<tf.Optimizer['getWeights']>>;

interface Slot {
  originalName: string;
  variable: tf.Variable;
}

/** Keras' momentum-cache value u_t for step t (1-based). */
export function nadamMomentumCache(beta1: number, t: number): number {
  return beta1 * (1 - 0.5 * Math.pow(0.96, 0.004 * t));
}

/** The per-step scalars of Nadam, shared by this optimizer and the heap one (heap-optimizers.ts). */
export interface NadamStep {
  /** m̄ = cG·g + cM·m_t */
  cG: number;
  cM: number;
  /** 1 − β2^t */
  vDenom: number;
  /** The momentum schedule after this step (∏ u_1..u_t). */
  mSchedule: number;
}

export function nadamStep(beta1: number, beta2: number, mSchedule: number, t: number): NadamStep {
  const uT = nadamMomentumCache(beta1, t);
  const uT1 = nadamMomentumCache(beta1, t + 1);
  const mScheduleNew = mSchedule * uT;
  const mScheduleNext = mScheduleNew * uT1;
  return { cG: (1 - uT) / (1 - mScheduleNew), cM: uT1 / (1 - mScheduleNext), vDenom: 1 - Math.pow(beta2, t), mSchedule: mScheduleNew };
}

/** The momentum schedule after `iterations` steps, for restoring an optimizer's state. */
export function nadamScheduleAfter(beta1: number, iterations: number): number {
  let s = 1;
  for (let t = 1; t <= iterations; t++) s *= nadamMomentumCache(beta1, t);
  return s;
}

export class Nadam extends tf.Optimizer {
  static get className(): string {
    return 'Nadam';
  }

  private m: Slot[] = [];
  private v: Slot[] = [];
  /** μ_{t} of the last applied step (product of momentum caches); 1 before the first step. */
  private mSchedule = 1;

  constructor(
    readonly learningRate: number,
    readonly beta1 = 0.9,
    readonly beta2 = 0.999,
    readonly epsilon = 1e-7,
  ) {
    super();
  }

  override applyGradients(variableGradients: VariableGradients): void {
    const names = Array.isArray(variableGradients) ? variableGradients.map((v) => v.name) : Object.keys(variableGradients);
    const t = this.iterations + 1;
    // m̄ = cG·g + cM·m_t, with the schedule folded into two scalars.
    const { cG, cM, vDenom, mSchedule: mScheduleNew } = nadamStep(this.beta1, this.beta2, this.mSchedule, t);
    const b1 = this.beta1;
    const b2 = this.beta2;

    tf.tidy(() => {
      names.forEach((name, i) => {
        const value = tf.engine().registeredVariables[name];
        if (!value) throw new Error(`Nadam: unknown variable '${name}'`);
        const grad = Array.isArray(variableGradients) ? variableGradients[i]!.tensor : variableGradients[name];
        if (grad == null) return;
        this.m[i] ??= { originalName: `${name}/m`, variable: tf.tidy(() => tf.zerosLike(value).variable(false)) };
        this.v[i] ??= { originalName: `${name}/v`, variable: tf.tidy(() => tf.zerosLike(value).variable(false)) };
        const m = this.m[i]!.variable;
        const v = this.v[i]!.variable;
        const mT = tf.add(tf.mul(m, b1), tf.mul(grad, 1 - b1));
        const vT = tf.add(tf.mul(v, b2), tf.mul(tf.square(grad), 1 - b2));
        m.assign(mT);
        v.assign(vT);
        const mBar = tf.add(tf.mul(grad, cG), tf.mul(mT, cM));
        const denom = tf.add(tf.sqrt(tf.div(vT, vDenom)), this.epsilon);
        value.assign(tf.sub(value, tf.mul(tf.div(mBar, denom), this.learningRate)));
      });
    });
    this.mSchedule = mScheduleNew;
    this.incrementIterations();
  }

  override dispose(): void {
    tf.dispose(this.m.map((s) => s.variable));
    tf.dispose(this.v.map((s) => s.variable));
    this.m = [];
    this.v = [];
  }

  override async getWeights(): Promise<NamedTensorList> {
    const slots = [...this.m, ...this.v];
    return [await this.saveIterations(), ...slots.map((s) => ({ name: s.originalName, tensor: s.variable }))];
  }

  override async setWeights(weightValues: NamedTensorList): Promise<void> {
    const rest = await this.extractIterations(weightValues);
    this.dispose();
    const half = rest.length / 2;
    this.m = rest.slice(0, half).map((w) => ({ originalName: w.name, variable: w.tensor.variable(false) }));
    this.v = rest.slice(half).map((w) => ({ originalName: w.name, variable: w.tensor.variable(false) }));
    this.mSchedule = nadamScheduleAfter(this.beta1, this.iterations);
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { learningRate: this.learningRate, beta1: this.beta1, beta2: this.beta2, epsilon: this.epsilon };
  }

  static override fromConfig<T extends tf.serialization.Serializable>(
    cls: tf.serialization.SerializableConstructor<T>,
    config: tf.serialization.ConfigDict,
  ): T {
    const ctor = cls as unknown as new (lr: number, b1: number, b2: number, eps: number) => T;
    return new ctor(
      config['learningRate'] as number,
      config['beta1'] as number,
      config['beta2'] as number,
      config['epsilon'] as number,
    );
  }
}

tf.serialization.registerClass(Nadam);
