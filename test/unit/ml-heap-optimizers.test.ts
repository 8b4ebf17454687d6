/**
 * The heap-loop optimizers (Adam, SGD, Nadam: one loop over the wasm heap per variable) against tfjs' own
 * tf.train.adam / tf.train.sgd and this module's Nadam: bit-identical weights after several steps, with the JS
 * update loops (the 'wasm' engine) and with the native addon's (the 'wasm+native' engine; skipped, with a message,
 * only when the addon is not built). Sizes include one large enough for the addon to split over threads.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initEngine, mulberry32, Nadam, useKernelSet, type KernelSet } from '../../src/ml/index.js';
import { HeapAdam, HeapNadam, HeapSgd, type HeapUpdates } from '../../src/ml/heap-optimizers.js';
import { jsUpdates } from '../../src/ml/kernels/heap.js';
import { loadNative } from '../../src/ml/native.js';
import { makeOptimizer } from '../../src/ml/optimizers.js';

const native = loadNative();
const SIZES = [1, 37, 1000, 70001];
const STEPS = 6;

function randomArray(n: number, seed: number, scale = 1): Float32Array {
  const r = mulberry32(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (r() * 2 - 1) * scale;
  return a;
}

type Kind = 'adam' | 'sgd' | 'nadam';

function reference(kind: Kind, lr: number): tf.Optimizer {
  return kind === 'adam' ? tf.train.adam(lr) : kind === 'sgd' ? tf.train.sgd(lr) : new Nadam(lr);
}

function inPlace(kind: Kind, updates: HeapUpdates, lr: number): tf.Optimizer {
  return kind === 'adam' ? new HeapAdam(updates, lr) : kind === 'sgd' ? new HeapSgd(updates, lr) : new HeapNadam(updates, lr);
}

/** Runs STEPS updates with the same gradients on fresh variables; returns the final values. */
function run(opt: tf.Optimizer, seed: number): Float32Array[] {
  const vars = SIZES.map((n, i) => tf.tidy(() => tf.variable(tf.tensor1d(randomArray(n, seed + i)), true, `v${seed}_${i}_${Math.random()}`)));
  try {
    for (let s = 0; s < STEPS; s++) {
      // Gradients of varying scale, with exact zeros in places (moments decaying) and one all-zero step.
      const grads: Record<string, tf.Tensor> = {};
      vars.forEach((v, i) => {
        const g = randomArray(v.size, 1000 * s + i, s === 3 ? 0 : 10 ** (i - 2));
        for (let j = 0; j < g.length; j += 7) g[j] = 0;
        grads[v.name] = tf.tensor1d(g);
      });
      opt.applyGradients(grads);
      tf.dispose(Object.values(grads));
    }
    return vars.map((v) => v.dataSync().slice() as Float32Array);
  } finally {
    opt.dispose();
    tf.dispose(vars);
  }
}

function sameBits(a: Float32Array[], b: Float32Array[], what: string): void {
  a.forEach((x, i) => {
    const bx = Buffer.from(x.buffer, x.byteOffset, x.byteLength);
    const by = Buffer.from(b[i]!.buffer, b[i]!.byteOffset, b[i]!.byteLength);
    if (!bx.equals(by)) {
      const j = x.findIndex((v, k) => !Object.is(v, b[i]![k]));
      assert.fail(`${what}: variable ${i} (size ${x.length}) differs at ${j}: ${x[j]} vs ${b[i]![j]}`);
    }
  });
}

describe('heap-loop optimizers', () => {
  let initial: KernelSet;
  before(async () => {
    const info = await initEngine();
    assert.notEqual(info.engine, 'tfjs-node');
    initial = info.engine === 'wasm+native' ? 'native' : 'wasm';
    assert.ok(await tf.setBackend('wasm'));
  });
  after(() => {
    useKernelSet(initial);
  });

  const impls: [string, () => HeapUpdates | null][] = [
    ['JS', () => jsUpdates],
    ['native', () => (native.ok ? native.addon : null)],
  ];
  for (const [label, get] of impls) {
    const skip = label === 'native' && !native.ok ? `native kernels unavailable (${native.ok ? '' : native.reason})` : false;
    for (const kind of ['adam', 'sgd', 'nadam'] as const) {
      it(`${kind} (${label} loops) is bit-identical to tfjs' over ${STEPS} steps`, { skip }, () => {
        const lr = kind === 'sgd' ? 0.1 : 0.01;
        const before = tf.memory().numTensors;
        const want = run(reference(kind, lr), 7);
        const got = run(inPlace(kind, get()!, lr), 7);
        sameBits(got, want, `${kind} ${label}`);
        assert.equal(tf.memory().numTensors, before, 'no tensors left behind');
      });
    }
  }

  // (tf.Optimizer overrides instanceof to accept any optimizer: compare constructors.)
  const kindOf = (kind: Kind) => makeOptimizer({ optimizer: kind, lr: 1e-3 }).constructor;

  it('makeOptimizer picks them by kernel set (tfjs\' own on the stock set and on cpu)', async () => {
    useKernelSet('stock');
    assert.equal(kindOf('adam'), tf.AdamOptimizer);
    assert.equal(kindOf('nadam'), Nadam);
    useKernelSet('wasm');
    assert.equal(kindOf('adam'), HeapAdam);
    assert.equal(kindOf('sgd'), HeapSgd);
    assert.equal(kindOf('nadam'), HeapNadam);
    if (native.ok) {
      useKernelSet('native');
      assert.equal(kindOf('adam'), HeapAdam);
    }
    assert.ok(await tf.setBackend('cpu'));
    try {
      assert.equal(kindOf('sgd'), tf.SGDOptimizer);
    } finally {
      assert.ok(await tf.setBackend('wasm'));
    }
  });

  it('an update never reaches another tensor sharing the variable\'s buffer', () => {
    useKernelSet('wasm');
    const v = tf.tidy(() => tf.variable(tf.tensor1d([1, 2, 3]), true, `shared_${Math.random()}`));
    const alias = tf.reshape(v, [3, 1]); // shares the buffer
    const opt = makeOptimizer({ optimizer: 'sgd', lr: 0.5 });
    try {
      opt.applyGradients({ [v.name]: tf.tensor1d([1, 1, 1]) });
      assert.deepEqual([...v.dataSync()], [0.5, 1.5, 2.5]);
      assert.deepEqual([...alias.dataSync()], [1, 2, 3]);
    } finally {
      opt.dispose();
      tf.dispose([v, alias]);
    }
  });
});
