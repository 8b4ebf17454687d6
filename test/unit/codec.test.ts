import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WeightCodecError, decodeWeights, encodeWeights } from '../../src/fl/codec.js';
import type { WeightVector } from '../../src/fl/weights.js';

/** Bit patterns of a float32 array, for bit-exact comparison (NaN payloads, -0). */
function bits(a: Float32Array): number[] {
  return Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
}

/** Shapes [2,3], [] (scalar), [0] (empty), [4], [1,1,2]: 6 + 1 + 0 + 4 + 2 = 13 values with tricky bit patterns. */
function sample(): WeightVector {
  const shapes = [[2, 3], [], [0], [4], [1, 1, 2]];
  const data = new Float32Array(13);
  data.set([1.5, -2.25, 3.4028234663852886e38, 1.401298464324817e-45, 0.1, -1e-20, 42]);
  const u = new Uint32Array(data.buffer);
  u[7] = 0x7fc00001; // quiet NaN with a payload
  u[8] = 0xffa00000; // negative signalling NaN
  u[9] = 0x80000000; // -0
  u[10] = 0x7f800000; // +Infinity
  u[11] = 0xff800000; // -Infinity
  u[12] = 0x7fffffff; // NaN with all payload bits set
  return { shapes, data };
}

describe('weight codec', () => {
  it('roundtrips bit-exact, including scalar and empty variables, NaN payloads and -0', () => {
    const w = sample();
    const blob = encodeWeights(w);
    const back = decodeWeights(blob);
    assert.deepEqual(back.shapes, w.shapes);
    assert.equal(back.data.length, 13);
    assert.deepEqual(bits(back.data), bits(w.data));
    assert.ok(Object.is(back.data[9], -0));
  });

  it('decodes from an unaligned view inside a larger buffer', () => {
    const w = sample();
    const blob = encodeWeights(w);
    const big = new Uint8Array(blob.length + 3);
    big.set(blob, 1);
    const back = decodeWeights(big.subarray(1, 1 + blob.length));
    assert.deepEqual(bits(back.data), bits(w.data));
  });

  it('encodes a subarray view of a larger buffer', () => {
    const base = new Float32Array([9, 1, 2, 3, 9]);
    const back = decodeWeights(encodeWeights({ shapes: [[3]], data: base.subarray(1, 4) }));
    assert.deepEqual(Array.from(back.data), [1, 2, 3]);
  });

  it('roundtrips an empty weight vector', () => {
    const back = decodeWeights(encodeWeights({ shapes: [], data: new Float32Array(0) }));
    assert.deepEqual(back.shapes, []);
    assert.equal(back.data.length, 0);
  });

  it('data starts 4-byte aligned after the header', () => {
    for (const shapes of [[[1]], [[12, 34]], [[1], [2, 3]], [[]]]) {
      const n = shapes.reduce((acc, s) => acc + s.reduce((a, d) => a * d, 1), 0);
      const blob = encodeWeights({ shapes, data: new Float32Array(n) });
      assert.equal((blob.length - n * 4) % 4, 0);
    }
  });

  it('rejects a wrong magic', () => {
    const blob = encodeWeights(sample());
    blob[0] ^= 0xff;
    assert.throws(() => decodeWeights(blob), WeightCodecError);
  });

  it('rejects truncated blobs', () => {
    const blob = encodeWeights(sample());
    for (const len of [0, 3, 7, 12, blob.length - 1, blob.length - 4]) {
      assert.throws(() => decodeWeights(blob.subarray(0, len)), WeightCodecError, `length ${len}`);
    }
  });

  it('rejects a header/data size mismatch', () => {
    const w = { shapes: [[2, 2]], data: new Float32Array([1, 2, 3, 4]) };
    const blob = encodeWeights(w);
    // Extra trailing data.
    const longer = new Uint8Array(blob.length + 4);
    longer.set(blob);
    assert.throws(() => decodeWeights(longer), WeightCodecError);
    // Header claiming more values than the data holds (same header length: [2,2] → [2,3]).
    const lied = blob.slice();
    const header = new TextDecoder().decode(lied.subarray(8, 8 + new DataView(lied.buffer).getUint32(4, true)));
    const forged = new TextEncoder().encode(header.replace('[2,2]', '[2,3]'));
    assert.equal(forged.length, header.length);
    lied.set(forged, 8);
    assert.throws(() => decodeWeights(lied), WeightCodecError);
  });

  it('rejects a header that is not valid JSON or has invalid shapes', () => {
    const blob = encodeWeights({ shapes: [[1]], data: new Float32Array(1) });
    const broken = blob.slice();
    broken[8] = 0x7b + 1; // '{' → '|'
    assert.throws(() => decodeWeights(broken), WeightCodecError);
    const neg = blob.slice();
    const hlen = new DataView(neg.buffer).getUint32(4, true);
    const header = new TextDecoder().decode(neg.subarray(8, 8 + hlen));
    const forged = new TextEncoder().encode(header.replace('[[1]]', '[[.]]'));
    neg.set(forged, 8);
    assert.throws(() => decodeWeights(neg), WeightCodecError);
  });

  it('refuses to encode data whose length does not match the shapes', () => {
    assert.throws(() => encodeWeights({ shapes: [[2, 3]], data: new Float32Array(5) }), WeightCodecError);
    assert.throws(() => encodeWeights({ shapes: [[2], []], data: new Float32Array(2) }), WeightCodecError);
    assert.throws(() => encodeWeights({ shapes: [[0]], data: new Float32Array(1) }), WeightCodecError);
  });
});
