/**
 * The project's Conv2DBackpropFilter kernel for wasm vs tfjs's reference cpu kernel: the filter gradient from
 * tf.grad of the same random conv on both backends.
 *
 * Error measure: max |wasm − cpu| / max |cpu| over the whole gradient (relative to the largest magnitude, not
 * element-wise, since near-zero elements make element-wise ratios meaningless). Bound: 1e-5.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initEngine, useKernelSet } from '../../src/ml/index.js';
import { randomArray, relErr } from '../fixtures/numeric.js';

interface Case {
  batch: number;
  inC: number;
  outC: number;
  k: number;
  pad: 'valid' | 'same';
  stride: number;
  size: number;
}

/** d/dW of Σ conv2d(x, W) ⊙ r, i.e. Conv2DBackpropFilter with dy = r, on the named backend. */
async function filterGrad(backend: string, c: Case, seed: number): Promise<Float32Array> {
  assert.ok(await tf.setBackend(backend));
  const xShape: [number, number, number, number] = [c.batch, c.size, c.size, c.inC];
  const wShape: [number, number, number, number] = [c.k, c.k, c.inC, c.outC];
  return tf.tidy(() => {
    const x = tf.tensor4d(randomArray(xShape.reduce((p, q) => p * q), seed), xShape);
    const w = tf.tensor4d(randomArray(wShape.reduce((p, q) => p * q), seed + 1), wShape);
    const yShape = tf.conv2d(x, w, c.stride, c.pad).shape;
    const r = tf.tensor(randomArray(yShape.reduce((p, q) => p * q), seed + 2), yShape);
    const g = tf.grad((wv: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(x, wv as tf.Tensor4D, c.stride, c.pad), r)))(w);
    return g.dataSync() as Float32Array;
  });
}

describe('Conv2DBackpropFilter on wasm', () => {
  let native = false;
  before(async () => {
    const info = await initEngine();
    native = info.engine === 'wasm+native';
    assert.ok(info.kernels.includes('Conv2DBackpropFilter'));
    // The pure-wasm kernel (the native one is checked in ml-native-kernels.test.ts).
    assert.equal(useKernelSet('wasm').engine, 'wasm');
  });
  after(async () => {
    assert.ok(await tf.setBackend('wasm'));
    if (native) useKernelSet('native');
  });

  const cases: Case[] = [];
  for (const pad of ['valid', 'same'] as const)
    for (const batch of [1, 3, 8])
      for (const [inC, outC] of [[1, 4], [3, 5], [8, 16]] as const)
        for (const k of [5, 3]) cases.push({ batch, inC, outC, k, pad, stride: 1, size: 12 });
  // Strides are not needed by the paper's models but the kernel supports them (as dilation of its helper conv).
  for (const pad of ['valid', 'same'] as const)
    for (const size of [11, 12]) cases.push({ batch: 3, inC: 3, outC: 5, k: 3, pad, stride: 2, size });

  it(`matches the cpu kernel within 1e-5 (max-abs relative) in ${cases.length} configurations`, async () => {
    let seed = 100;
    for (const c of cases) {
      const want = await filterGrad('cpu', c, seed);
      const got = await filterGrad('wasm', c, seed);
      const err = relErr(got, want);
      assert.ok(err <= 1e-5, `${JSON.stringify(c)}: relative error ${err}`);
      seed += 10;
    }
  });

  it('leaves no tensors behind', async () => {
    assert.ok(await tf.setBackend('wasm'));
    const c: Case = { batch: 3, inC: 3, outC: 5, k: 5, pad: 'same', stride: 1, size: 12 };
    await filterGrad('wasm', c, 7);
    const before = tf.memory().numTensors;
    const bytes = tf.memory().numBytes;
    for (let i = 0; i < 3; i++) await filterGrad('wasm', c, 7);
    assert.equal(tf.memory().numTensors, before);
    assert.equal(tf.memory().numBytes, bytes);
  });
});
