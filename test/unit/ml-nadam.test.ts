/**
 * Nadam (tfjs, float32) against a plain-JS float64 transcription of Keras' Nadam update, on a small quadratic
 * f(θ) = ½ Σ a_i (θ_i − c_i)², whose gradient a ⊙ (θ − c) both sides compute from their own θ.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initEngine, makeOptimizer, Nadam } from '../../src/ml/index.js';

const A = [1, 3, 0.5, 10, 0.1];
const C = [0.5, -1, 2, 0.25, -3];
const THETA0 = [0, 0.3, -1, 1, 2];

/** Keras 2 Nadam, literally (keras/optimizers.py, schedule_decay 0.004), in float64. */
function kerasNadamReference(lr: number, steps: number): number[][] {
  const beta1 = 0.9;
  const beta2 = 0.999;
  const eps = 1e-7;
  const theta = [...THETA0];
  const m = theta.map(() => 0);
  const v = theta.map(() => 0);
  let mSchedule = 1;
  const out: number[][] = [];
  for (let it = 0; it < steps; it++) {
    const t = it + 1;
    const momentumCacheT = beta1 * (1 - 0.5 * Math.pow(0.96, t * 0.004));
    const momentumCacheT1 = beta1 * (1 - 0.5 * Math.pow(0.96, (t + 1) * 0.004));
    const mScheduleNew = mSchedule * momentumCacheT;
    const mScheduleNext = mSchedule * momentumCacheT * momentumCacheT1;
    mSchedule = mScheduleNew;
    for (let i = 0; i < theta.length; i++) {
      const g = A[i]! * (theta[i]! - C[i]!);
      const gPrime = g / (1 - mScheduleNew);
      m[i] = beta1 * m[i]! + (1 - beta1) * g;
      const mPrime = m[i]! / (1 - mScheduleNext);
      v[i] = beta2 * v[i]! + (1 - beta2) * g * g;
      const vPrime = v[i]! / (1 - Math.pow(beta2, t));
      const mBar = (1 - momentumCacheT) * gPrime + momentumCacheT1 * mPrime;
      theta[i] = theta[i]! - (lr * mBar) / (Math.sqrt(vPrime) + eps);
    }
    out.push([...theta]);
  }
  return out;
}

describe('Nadam', () => {
  before(async () => {
    await initEngine();
  });

  for (const lr of [0.001, 0.05]) {
    it(`follows the Keras formula step by step (lr ${lr}, 20 steps, tol 1e-5)`, () => {
      const steps = 20;
      const want = kerasNadamReference(lr, steps);
      const before = tf.memory().numTensors;
      const theta = tf.tidy(() => tf.variable(tf.tensor1d(THETA0)));
      const a = tf.tensor1d(A);
      const c = tf.tensor1d(C);
      const opt = new Nadam(lr);
      try {
        for (let s = 0; s < steps; s++) {
          tf.tidy(() => {
            opt.minimize(() => tf.mul(0.5, tf.sum(tf.mul(a, tf.square(tf.sub(theta, c))))) as tf.Scalar, false, [theta]);
          });
          const got = theta.dataSync();
          for (let i = 0; i < THETA0.length; i++) {
            const diff = Math.abs(got[i]! - want[s]![i]!);
            assert.ok(diff <= 1e-5 * Math.max(1, Math.abs(want[s]![i]!)), `step ${s + 1} θ${i}: ${got[i]} vs ${want[s]![i]}`);
          }
        }
        assert.equal(opt.iterations, steps);
        // It actually moved towards the minimum.
        const end = theta.dataSync();
        const dist = (p: ArrayLike<number>) => C.reduce((s, ci, i) => s + A[i]! * (p[i]! - ci) ** 2, 0);
        assert.ok(dist(end) < dist(THETA0));
      } finally {
        opt.dispose();
        tf.dispose([theta, a, c]);
      }
      assert.equal(tf.memory().numTensors, before, 'optimizer state and temporaries are disposed');
    });
  }

  it('is registered for serialization and round-trips its config', () => {
    const opt = new Nadam(0.01);
    const cfg = opt.getConfig();
    assert.deepEqual(cfg, { learningRate: 0.01, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 });
    const back = Nadam.fromConfig(Nadam, cfg) as Nadam;
    assert.equal(back.learningRate, 0.01);
    assert.equal(Nadam.className, 'Nadam');
    assert.ok(tf.serialization.SerializationMap.getMap().classNameMap['Nadam']);
  });

  it('makeOptimizer builds each optimizer and rejects unknown ones', () => {
    for (const name of ['adam', 'sgd', 'nadam'] as const) {
      const o = makeOptimizer({ optimizer: name, lr: 0.01 });
      assert.ok(o instanceof tf.Optimizer);
      o.dispose();
    }
    assert.throws(() => makeOptimizer({ optimizer: 'rmsprop' as 'adam', lr: 0.01 }), /unknown optimizer/);
    assert.throws(() => makeOptimizer({ optimizer: 'adam', lr: 0 }), /lr/);
  });
});
