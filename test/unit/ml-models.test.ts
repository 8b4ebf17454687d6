/** Model shapes, parameter counts and seeded initial weights. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { initialWeights, parameterCount, weightShapes, type ModelSpec } from '../../src/ml/index.js';

const CNN: ModelSpec = { model: 'cnn', inputShape: [28, 28, 1], hiddenSize: 0, numClasses: 10 };
const MLP: ModelSpec = { model: 'mnistnn', inputShape: [28, 28, 1], hiddenSize: 500, numClasses: 10 };

function digest(data: Float32Array): string {
  return createHash('sha256').update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)).digest('hex');
}

describe('models', () => {
  it('the paper CNN on 28x28x1 has 582,026 parameters in the documented order', () => {
    assert.equal(parameterCount(CNN), 582_026);
    assert.deepEqual(weightShapes(CNN), [[5, 5, 1, 32], [32], [5, 5, 32, 64], [64], [1024, 512], [512], [512, 10], [10]]);
    assert.equal(parameterCount({ ...CNN, inputShape: [32, 32, 3] }), 5 * 5 * 3 * 32 + 32 + 51_264 + 1600 * 512 + 512 + 5130);
  });

  it('mnistnn is dense(h*w*c → hidden) relu → dense(numClasses)', () => {
    assert.deepEqual(weightShapes(MLP), [[784, 500], [500], [500, 10], [10]]);
    assert.equal(parameterCount(MLP), 784 * 500 + 500 + 500 * 10 + 10);
  });

  it('rejects bad specs', () => {
    assert.throws(() => parameterCount({ ...CNN, inputShape: [12, 12, 1] }), /at least 16x16/);
    assert.throws(() => parameterCount({ ...MLP, hiddenSize: 0 }), /hiddenSize/);
    assert.throws(() => parameterCount({ ...MLP, model: 'resnet' as 'cnn' }), /unknown model/);
  });

  it('initialWeights matches the built model and is glorot-uniform kernels with zero biases', async () => {
    for (const spec of [CNN, MLP]) {
      const w = await initialWeights(spec, 42);
      assert.deepEqual(w.shapes, weightShapes(spec));
      assert.equal(w.data.length, parameterCount(spec));
      let off = 0;
      for (const shape of w.shapes) {
        const n = shape.reduce((p, q) => p * q, 1);
        const part = w.data.subarray(off, off + n);
        off += n;
        if (shape.length === 1) {
          assert.ok(part.every((v) => v === 0), 'bias is zeros');
        } else {
          const receptive = shape.length === 4 ? shape[0]! * shape[1]! : 1;
          const fanIn = shape[shape.length - 2]! * receptive;
          const fanOut = shape[shape.length - 1]! * receptive;
          const limit = Math.sqrt(6 / (fanIn + fanOut));
          let maxAbs = 0;
          for (const v of part) maxAbs = Math.max(maxAbs, Math.abs(v));
          assert.ok(maxAbs <= limit * (1 + 1e-6) && maxAbs > limit * 0.9, `kernel [${shape}] within ±${limit}: ${maxAbs}`);
        }
      }
    }
  });

  it('initialWeights is identical bit for bit across calls, and seed-dependent', async () => {
    const a = await initialWeights(CNN, 7);
    const b = await initialWeights(CNN, 7);
    const c = await initialWeights(CNN, 8);
    assert.equal(digest(a.data), digest(b.data));
    assert.notEqual(digest(a.data), digest(c.data));
    // Different layers get different streams (no repeated prefix).
    assert.notEqual(a.data[0], a.data[5 * 5 * 32 + 32]);
  });

  it('initialWeights is identical bit for bit in another process', async () => {
    const here = digest((await initialWeights(MLP, 123)).data);
    const index = new URL('../../src/ml/index.js', import.meta.url).href;
    const script = `const ml = await import(${JSON.stringify(index)});
      const { createHash } = await import('node:crypto');
      const w = await ml.initialWeights(${JSON.stringify(MLP)}, 123);
      process.stdout.write(createHash('sha256').update(new Uint8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength)).digest('hex'));`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script]);
    assert.equal(stdout.trim(), here);
  });
});
