/**
 * The wasm fast paths this module installs (Conv2DBackpropInput via a full Conv2D, transposed BatchMatMul via
 * explicit transposes) against tfjs's reference cpu kernels. Error: max |wasm − cpu| / max |cpu|, bound 1e-5.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initEngine, mulberry32 } from '../../src/ml/index.js';

function randomArray(n: number, seed: number): Float32Array {
  const r = mulberry32(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = r() * 2 - 1;
  return a;
}

function relErr(got: Float32Array, want: Float32Array): number {
  assert.equal(got.length, want.length);
  let maxDiff = 0;
  let maxAbs = 0;
  for (let i = 0; i < want.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(got[i]! - want[i]!));
    maxAbs = Math.max(maxAbs, Math.abs(want[i]!));
  }
  return maxAbs === 0 ? maxDiff : maxDiff / maxAbs;
}

async function onBoth(fn: () => tf.Tensor): Promise<{ cpu: Float32Array; wasm: Float32Array }> {
  assert.ok(await tf.setBackend('cpu'));
  const cpu = tf.tidy(() => fn().dataSync() as Float32Array);
  assert.ok(await tf.setBackend('wasm'));
  const wasm = tf.tidy(() => fn().dataSync() as Float32Array);
  return { cpu, wasm };
}

describe('wasm kernel fast paths', () => {
  before(async () => {
    const info = await initEngine();
    assert.equal(info.engine, 'wasm');
  });

  it('Conv2DBackpropInput (input gradient of conv2d) matches cpu', async () => {
    let seed = 1;
    for (const pad of ['valid', 'same'] as const)
      for (const stride of [1, 2])
        for (const [batch, inC, outC, k, size] of [
          [1, 1, 4, 5, 12],
          [3, 3, 5, 3, 11],
          [8, 8, 16, 5, 12],
        ] as const) {
          const xShape = [batch, size, size, inC];
          const wShape = [k, k, inC, outC];
          const { cpu, wasm } = await onBoth(() => {
            const x = tf.tensor4d(randomArray(batch * size * size * inC, seed), xShape as [number, number, number, number]);
            const w = tf.tensor4d(randomArray(k * k * inC * outC, seed + 1), wShape as [number, number, number, number]);
            const yShape = tf.conv2d(x, w, stride, pad).shape;
            const r = tf.tensor(randomArray(yShape.reduce((p, q) => p * q), seed + 2), yShape);
            return tf.grad((xv: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(xv as tf.Tensor4D, w, stride, pad), r)))(x);
          });
          const err = relErr(wasm, cpu);
          assert.ok(err <= 1e-5, `pad ${pad} stride ${stride} [${xShape}]*[${wShape}]: relative error ${err}`);
          seed += 10;
        }
  });

  it('BatchMatMul with transposed operands matches cpu', async () => {
    let seed = 500;
    for (const [m, k, n] of [
      [32, 1024, 512],
      [10, 784, 500],
      [3, 7, 2],
      [1, 5, 9],
    ] as const)
      for (const ta of [false, true])
        for (const tb of [false, true]) {
          const { cpu, wasm } = await onBoth(() => {
            const a = tf.tensor2d(randomArray(m * k, seed), ta ? [k, m] : [m, k]);
            const b = tf.tensor2d(randomArray(k * n, seed + 1), tb ? [n, k] : [k, n]);
            return tf.matMul(a, b, ta, tb);
          });
          const err = relErr(wasm, cpu);
          assert.ok(err <= 1e-5, `${m}x${k}x${n} ta=${ta} tb=${tb}: relative error ${err}`);
          seed += 10;
        }
    // Batched products go to wasm's own kernel unchanged.
    const { cpu, wasm } = await onBoth(() =>
      tf.matMul(tf.tensor3d(randomArray(2 * 3 * 4, 9), [2, 4, 3]), tf.tensor3d(randomArray(2 * 4 * 5, 10), [2, 5, 4]), true, true),
    );
    assert.ok(relErr(wasm, cpu) <= 1e-5);
  });
});
