/**
 * The native (OpenBLAS) kernels against tfjs's reference cpu kernels: forward convolutions (plain and fused),
 * both convolution gradients, max-pool gradients, bias-gradient sums and matmuls (every transpose, batched,
 * broadcast, fused), over both
 * paddings, strides 1 and 2, and several batch and channel sizes. Error: max |native − cpu| / max |cpu|, bound 1e-5.
 * Also: what they do not cover goes to the kernel they wrap, results do not depend on the thread count, and nothing
 * leaks. Skipped (with a message) only when the addon is not built.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initEngine, useKernelSet } from '../../src/ml/index.js';
import { loadNative, type NativeAddon } from '../../src/ml/native.js';
import { randomArray, relErr } from '../fixtures/numeric.js';

const native = loadNative();
const skip = native.ok ? false : `native kernels unavailable (${native.reason}); apt-get install libopenblas-dev, then npm ci`;

function size(s: readonly number[]): number {
  return s.reduce((p, q) => p * q, 1);
}

/** Counts the addon's kernel calls (the kernels look the functions up on the addon object at call time). */
function countCalls(addon: NativeAddon): { counts: Map<string, number>; restore: () => void } {
  const counts = new Map<string, number>();
  const saved = new Map<string, unknown>();
  const obj = addon as unknown as Record<string, (...a: unknown[]) => unknown>;
  for (const name of ['conv2d', 'conv2dBackpropInput', 'conv2dBackpropFilter', 'batchMatMul', 'maxPoolGrad', 'sumLeading']) {
    const f = obj[name]!;
    saved.set(name, f);
    obj[name] = (...a: unknown[]) => {
      counts.set(name, (counts.get(name) ?? 0) + 1);
      return f(...a);
    };
  }
  return { counts, restore: () => saved.forEach((f, name) => (obj[name] = f as (...a: unknown[]) => unknown)) };
}

/** fn on cpu, then on wasm with the native kernels. */
async function onBoth(fn: () => tf.Tensor): Promise<{ cpu: Float32Array; native: Float32Array }> {
  assert.ok(await tf.setBackend('cpu'));
  const cpu = tf.tidy(() => fn().dataSync() as Float32Array);
  assert.ok(await tf.setBackend('wasm'));
  const nat = tf.tidy(() => fn().dataSync() as Float32Array);
  return { cpu, native: nat };
}

interface ConvCase {
  batch: number;
  inC: number;
  outC: number;
  k: number;
  pad: 'valid' | 'same';
  stride: number;
  size: number;
}

function convCases(): ConvCase[] {
  const cases: ConvCase[] = [];
  for (const pad of ['valid', 'same'] as const)
    for (const stride of [1, 2])
      for (const [batch, inC, outC, k, sz] of [
        [1, 1, 4, 5, 12],
        [3, 3, 5, 3, 11],
        [8, 8, 16, 5, 12],
        [4, 16, 32, 5, 12],
        [2, 4, 6, 1, 7],
      ] as const)
        cases.push({ batch, inC, outC, k, pad, stride, size: sz });
  return cases;
}

// CI installs libopenblas-dev (.ci/run): there the native kernels must have been built, not skipped.
it('native kernels are built when CI is set', { skip: !process.env['CI'] || process.env['FEDKEEPER_NATIVE'] === '0' }, () => {
  assert.ok(native.ok, `CI=${process.env['CI']} but ${native.ok ? '' : native.reason}`);
});

describe('native kernels vs cpu', { skip }, () => {
  let addon: NativeAddon;
  before(async () => {
    const info = await initEngine();
    assert.equal(info.engine, 'wasm+native');
    assert.ok(native.ok);
    addon = native.addon;
    useKernelSet('native');
  });
  after(async () => {
    assert.ok(await tf.setBackend('wasm'));
  });

  it('Conv2D, and its input and filter gradients, match cpu within 1e-5', async () => {
    const calls = countCalls(addon);
    try {
      let seed = 1;
      for (const c of convCases()) {
        const xShape: [number, number, number, number] = [c.batch, c.size, c.size, c.inC];
        const wShape: [number, number, number, number] = [c.k, c.k, c.inC, c.outC];
        const make = () => {
          const x = tf.tensor4d(randomArray(size(xShape), seed), xShape);
          const w = tf.tensor4d(randomArray(size(wShape), seed + 1), wShape);
          const yShape = tf.conv2d(x, w, c.stride, c.pad).shape;
          const r = tf.tensor(randomArray(size(yShape), seed + 2), yShape);
          return { x, w, r };
        };
        const label = `${c.pad} stride ${c.stride} [${xShape}]*[${wShape}]`;
        const fwd = await onBoth(() => {
          const { x, w } = make();
          return tf.conv2d(x, w, c.stride, c.pad);
        });
        assert.ok(relErr(fwd.native, fwd.cpu) <= 1e-5, `Conv2D ${label}: ${relErr(fwd.native, fwd.cpu)}`);
        const dx = await onBoth(() => {
          const { x, w, r } = make();
          return tf.grad((xv: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(xv as tf.Tensor4D, w, c.stride, c.pad), r)))(x);
        });
        assert.ok(relErr(dx.native, dx.cpu) <= 1e-5, `Conv2DBackpropInput ${label}: ${relErr(dx.native, dx.cpu)}`);
        const dw = await onBoth(() => {
          const { x, w, r } = make();
          return tf.grad((wv: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(x, wv as tf.Tensor4D, c.stride, c.pad), r)))(w);
        });
        assert.ok(relErr(dw.native, dw.cpu) <= 1e-5, `Conv2DBackpropFilter ${label}: ${relErr(dw.native, dw.cpu)}`);
        seed += 10;
      }
      const n = convCases().length;
      assert.ok((calls.counts.get('conv2d') ?? 0) >= n, 'Conv2D ran natively');
      assert.ok((calls.counts.get('conv2dBackpropInput') ?? 0) >= n, 'Conv2DBackpropInput ran natively');
      assert.ok((calls.counts.get('conv2dBackpropFilter') ?? 0) >= n, 'Conv2DBackpropFilter ran natively');
    } finally {
      calls.restore();
    }
  });

  it('FusedConv2D (bias, relu or linear) matches cpu within 1e-5', async () => {
    let seed = 900;
    for (const activation of ['relu', 'linear'] as const)
      for (const pad of ['valid', 'same'] as const)
        for (const withBias of [true, false]) {
          const xShape: [number, number, number, number] = [4, 10, 10, 3];
          const wShape: [number, number, number, number] = [3, 3, 3, 8];
          const { cpu, native: nat } = await onBoth(() =>
            tf.fused.conv2d({
              x: tf.tensor4d(randomArray(size(xShape), seed), xShape),
              filter: tf.tensor4d(randomArray(size(wShape), seed + 1), wShape),
              strides: 1,
              pad,
              ...(withBias ? { bias: tf.tensor1d(randomArray(8, seed + 2)) } : {}),
              activation,
            }),
          );
          assert.ok(relErr(nat, cpu) <= 1e-5, `${activation} ${pad} bias ${withBias}: ${relErr(nat, cpu)}`);
          seed += 10;
        }
  });

  it('MaxPoolGrad matches cpu within 1e-5 (valid, same, overlapping windows)', async () => {
    const calls = countCalls(addon);
    try {
      let seed = 300;
      for (const [batch, sz, ch, f, s, pad] of [
        [10, 24, 32, 2, 2, 'valid'],
        [3, 11, 5, 2, 2, 'same'],
        [2, 9, 4, 3, 2, 'same'],
        [2, 9, 4, 3, 1, 'valid'],
        [1, 7, 3, 3, 3, 'same'],
      ] as const) {
        const shape: [number, number, number, number] = [batch, sz, sz, ch];
        const { cpu, native: nat } = await onBoth(() => {
          const x = tf.tensor4d(randomArray(size(shape), seed), shape);
          const yShape = tf.maxPool(x, f, s, pad).shape;
          const r = tf.tensor(randomArray(size(yShape), seed + 1), yShape);
          return tf.grad((xv: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(xv as tf.Tensor4D, f, s, pad), r)))(x);
        });
        assert.ok(relErr(nat, cpu) <= 1e-5, `pool ${f}/${s} ${pad} [${shape}]: ${relErr(nat, cpu)}`);
        seed += 10;
      }
      assert.equal(calls.counts.get('maxPoolGrad'), 5);
    } finally {
      calls.restore();
    }
  });

  it('BatchMatMul (every transpose, batched, broadcast) and _FusedMatMul match cpu within 1e-5', async () => {
    const calls = countCalls(addon);
    try {
      let seed = 500;
      for (const [m, k, n] of [
        [32, 1024, 512],
        [10, 784, 500],
        [512, 10, 1024],
        [3, 7, 2],
        [1, 5, 9],
        [64, 64, 1],
      ] as const)
        for (const ta of [false, true])
          for (const tb of [false, true]) {
            const { cpu, native: nat } = await onBoth(() => {
              const a = tf.tensor2d(randomArray(m * k, seed), ta ? [k, m] : [m, k]);
              const b = tf.tensor2d(randomArray(k * n, seed + 1), tb ? [n, k] : [k, n]);
              return tf.matMul(a, b, ta, tb);
            });
            assert.ok(relErr(nat, cpu) <= 1e-5, `${m}x${k}x${n} ta=${ta} tb=${tb}: ${relErr(nat, cpu)}`);
            seed += 10;
          }
      // Batched, and a batch of one broadcast against a batch of three.
      for (const [aShape, bShape, ta, tb] of [
        [[4, 3, 5], [4, 5, 6], false, false],
        [[2, 3, 4, 3], [2, 3, 5, 4], true, true],
        [[1, 6, 5], [3, 5, 7], false, false],
        [[3, 6, 5], [5, 7], false, false],
      ] as const) {
        const { cpu, native: nat } = await onBoth(() =>
          tf.matMul(tf.tensor(randomArray(size(aShape), seed), [...aShape]), tf.tensor(randomArray(size(bShape), seed + 1), [...bShape]), ta, tb),
        );
        assert.ok(relErr(nat, cpu) <= 1e-5, `[${aShape}]x[${bShape}]: ${relErr(nat, cpu)}`);
        seed += 10;
      }
      for (const activation of ['relu', 'linear'] as const)
        for (const tb of [false, true]) {
          const { cpu, native: nat } = await onBoth(() =>
            tf.fused.matMul({
              a: tf.tensor2d(randomArray(10 * 64, seed), [10, 64]),
              b: tf.tensor2d(randomArray(64 * 20, seed + 1), tb ? [20, 64] : [64, 20]),
              transposeB: tb,
              bias: tf.tensor1d(randomArray(20, seed + 2)),
              activation,
            }),
          );
          assert.ok(relErr(nat, cpu) <= 1e-5, `fused ${activation} tb=${tb}: ${relErr(nat, cpu)}`);
          seed += 10;
        }
      assert.ok((calls.counts.get('batchMatMul') ?? 0) >= 6 * 4 + 4 + 4);
    } finally {
      calls.restore();
    }
  });

  it('Sum over leading axes (bias gradients) matches cpu within 1e-5; other sums go to the wrapped kernel', async () => {
    const calls = countCalls(addon);
    try {
      let seed = 800;
      for (const [shape, axis, keepDims, native] of [
        [[10, 24, 24, 32], [0, 1, 2], false, true],
        [[32, 512], 0, false, true],
        [[4, 5, 6], [1, 0], true, true],
        [[7, 3], null, false, true],
        [[7, 3], 1, false, false],
        [[2, 3, 4], [0, 2], false, false],
      ] as const) {
        const before = calls.counts.get('sumLeading') ?? 0;
        const { cpu, native: nat } = await onBoth(() =>
          tf.sum(tf.tensor(randomArray(size(shape), seed), [...shape]), axis === null ? undefined : (axis as number | number[]), keepDims),
        );
        assert.ok(relErr(nat, cpu) <= 1e-5, `sum [${shape}] axis ${JSON.stringify(axis)}: ${relErr(nat, cpu)}`);
        assert.equal((calls.counts.get('sumLeading') ?? 0) - before, native ? 1 : 0, `sum [${shape}] axis ${JSON.stringify(axis)} native`);
        seed += 10;
      }
    } finally {
      calls.restore();
    }
  });

  it('passes what it does not cover to the kernel it wraps (dilations, other activations, two-way batch broadcasts)', async () => {
    const calls = countCalls(addon);
    try {
      // Dilated convolution: wasm's own kernel.
      const xShape: [number, number, number, number] = [2, 9, 9, 3];
      const wShape: [number, number, number, number] = [3, 3, 3, 4];
      const { cpu, native: nat } = await onBoth(() =>
        tf.conv2d(tf.tensor4d(randomArray(size(xShape), 1), xShape), tf.tensor4d(randomArray(size(wShape), 2), wShape), 1, 'same', 'NHWC', 2),
      );
      assert.ok(relErr(nat, cpu) <= 1e-5);
      assert.equal(calls.counts.get('conv2d') ?? 0, 0, 'dilated conv was not sent to the addon');
      // Fused conv with an activation the addon lacks.
      const f = await onBoth(() =>
        tf.fused.conv2d({
          x: tf.tensor4d(randomArray(size(xShape), 3), xShape),
          filter: tf.tensor4d(randomArray(size(wShape), 4), wShape),
          strides: 1,
          pad: 'valid',
          activation: 'sigmoid',
        }),
      );
      assert.ok(relErr(f.native, f.cpu) <= 1e-5);
      assert.equal(calls.counts.get('conv2d') ?? 0, 0);
      // A matmul whose batch dims broadcast both ways ([2,1] x [1,3]) is left to wasm.
      const bm = await onBoth(() =>
        tf.matMul(tf.tensor(randomArray(2 * 1 * 3 * 4, 5), [2, 1, 3, 4]), tf.tensor(randomArray(1 * 3 * 4 * 5, 6), [1, 3, 4, 5])),
      );
      assert.ok(relErr(bm.native, bm.cpu) <= 1e-5);
      assert.equal(calls.counts.get('batchMatMul') ?? 0, 0);
    } finally {
      calls.restore();
    }
  });

  it('gives the same bits with 1 thread as with 3, and leaves no tensors behind', async () => {
    assert.ok(await tf.setBackend('wasm'));
    const xShape: [number, number, number, number] = [10, 12, 12, 32];
    const wShape: [number, number, number, number] = [5, 5, 32, 64];
    const grads = () =>
      tf.tidy(() => {
        const x = tf.tensor4d(randomArray(size(xShape), 11), xShape);
        const w = tf.tensor4d(randomArray(size(wShape), 12), wShape);
        const a = tf.tensor2d(randomArray(10 * 1024, 13), [10, 1024]);
        const b = tf.tensor2d(randomArray(1024 * 512, 14), [1024, 512]);
        const g = tf.grads((xv: tf.Tensor, wv: tf.Tensor, bv: tf.Tensor) =>
          tf.add(tf.sum(tf.square(tf.conv2d(xv as tf.Tensor4D, wv as tf.Tensor4D, 1, 'valid'))), tf.sum(tf.square(tf.matMul(a, bv as tf.Tensor2D)))),
        )([x, w, b]);
        return g.map((t) => Buffer.from((t.dataSync() as Float32Array).buffer.slice(0)));
      });
    const threads = native.ok ? native.threads : 1;
    try {
      addon.setThreads(1);
      const one = grads();
      addon.setThreads(3);
      const three = grads();
      one.forEach((g, i) => assert.ok(g.equals(three[i]!), `gradient ${i} differs between 1 and 3 threads`));
      const count = tf.memory().numTensors;
      const bytes = tf.memory().numBytes;
      grads();
      assert.equal(tf.memory().numTensors, count);
      assert.equal(tf.memory().numBytes, bytes);
    } finally {
      addon.setThreads(threads);
    }
  });
});
