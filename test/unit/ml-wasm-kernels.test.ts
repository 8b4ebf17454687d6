/**
 * The pure-wasm kernel set (what runs without the native addon): the fast paths (Conv2DBackpropInput via a full
 * Conv2D, transposed BatchMatMul via explicit transposes), the JS heap kernels (MaxPoolGrad, Sum over leading axes)
 * and copy-free Identity/Cast, against tfjs's reference cpu kernels. Error: max |wasm − cpu| / max |cpu|, bound
 * 1e-5. Runs the 'wasm' set whether or not the native kernels are built.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { currentEngine, initEngine, useKernelSet, type KernelSet } from '../../src/ml/index.js';
import { randomArray, relErr } from '../fixtures/numeric.js';

async function onBoth(fn: () => tf.Tensor): Promise<{ cpu: Float32Array; wasm: Float32Array }> {
  assert.ok(await tf.setBackend('cpu'));
  const cpu = tf.tidy(() => fn().dataSync() as Float32Array);
  assert.ok(await tf.setBackend('wasm'));
  const wasm = tf.tidy(() => fn().dataSync() as Float32Array);
  return { cpu, wasm };
}

describe('pure-wasm kernels', () => {
  let initial: KernelSet;
  before(async () => {
    const info = await initEngine();
    assert.notEqual(info.engine, 'tfjs-node');
    initial = info.engine === 'wasm+native' ? 'native' : 'wasm';
    const now = useKernelSet('wasm');
    assert.equal(now.engine, 'wasm');
    assert.deepEqual(
      [...now.kernels].sort(),
      ['BatchMatMul', 'Cast', 'Conv2DBackpropFilter', 'Conv2DBackpropInput', 'Identity', 'MaxPoolGrad', 'Sum'],
    );
  });
  after(async () => {
    assert.ok(await tf.setBackend('wasm'));
    useKernelSet(initial);
    assert.equal(currentEngine()?.engine, initial === 'native' ? 'wasm+native' : 'wasm');
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

  it('MaxPoolGrad (JS on the wasm heap) matches cpu (valid, same, overlapping windows)', async () => {
    let seed = 300;
    for (const [batch, sz, ch, f, st, pad] of [
      [10, 24, 32, 2, 2, 'valid'],
      [3, 11, 5, 2, 2, 'same'],
      [2, 9, 4, 3, 2, 'same'],
      [2, 9, 4, 3, 1, 'valid'],
    ] as const) {
      const shape: [number, number, number, number] = [batch, sz, sz, ch];
      const { cpu, wasm } = await onBoth(() => {
        const x = tf.tensor4d(randomArray(shape.reduce((p, q) => p * q), seed), shape);
        const yShape = tf.maxPool(x, f, st, pad).shape;
        const r = tf.tensor(randomArray(yShape.reduce((p, q) => p * q), seed + 1), yShape);
        return tf.grad((xv: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(xv as tf.Tensor4D, f, st, pad), r)))(x);
      });
      const err = relErr(wasm, cpu);
      assert.ok(err <= 1e-5, `pool ${f}/${st} ${pad} [${shape}]: relative error ${err}`);
      seed += 10;
    }
  });

  it('Sum over leading axes (bias gradients; JS, double accumulation) matches cpu, other sums unchanged', async () => {
    let seed = 700;
    for (const [shape, axis, keepDims] of [
      [[10, 24, 24, 32], [0, 1, 2], false],
      [[10, 512], 0, false],
      [[4, 5, 6], [1, 0], true],
      [[7, 3], null, false],
      [[7, 3], 1, false],
      [[2, 3, 4], [0, 2], false],
      [[2, 3, 4], -1, true],
    ] as const) {
      const { cpu, wasm } = await onBoth(() =>
        tf.sum(tf.tensor(randomArray(shape.reduce((p: number, q: number) => p * q, 1), seed), [...shape]), axis === null ? undefined : (axis as number | number[]), keepDims),
      );
      const err = relErr(wasm, cpu);
      assert.ok(err <= 1e-5, `sum [${shape}] axis ${JSON.stringify(axis)}: relative error ${err}`);
      seed += 10;
    }
  });

  it('Identity and same-dtype Cast share the buffer; values and disposal stay right', async () => {
    assert.ok(await tf.setBackend('wasm'));
    const before = tf.memory().numTensors;
    const bytes = tf.memory().numBytes;
    const x = tf.tensor1d([1, -2, 3.5]);
    const c = tf.clone(x);
    const k = tf.cast(x, 'float32');
    const i = tf.cast(x, 'int32');
    x.dispose();
    assert.deepEqual([...c.dataSync()], [1, -2, 3.5]);
    assert.deepEqual([...k.dataSync()], [1, -2, 3.5]);
    assert.deepEqual([...i.dataSync()], [1, -2, 3]);
    tf.dispose([c, k, i]);
    assert.equal(tf.memory().numTensors, before);
    assert.equal(tf.memory().numBytes, bytes);
  });
});
