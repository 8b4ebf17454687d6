import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeWeights } from '../../src/fl/codec.js';
import { encodedUpdateBytes, validateUpdate, type UpdateExpectations, type UpdateToValidate } from '../../src/fl/validate.js';

/** A small model: dense 3×2 kernel, bias 2, dense 2×1 kernel. */
const SHAPES = [[3, 2], [2], [2, 1]];
const VALUES = 6 + 2 + 2;
const expected: UpdateExpectations = { shapes: SHAPES, partitionSize: 100, maxBytes: 1 << 20 };
const good = (over: Partial<UpdateToValidate> = {}): UpdateToValidate => ({
  clientId: 7,
  numSamples: 100,
  weights: { shapes: SHAPES.map((s) => [...s]), data: Float32Array.from({ length: VALUES }, (_, i) => (i - 4) / 8) },
  ...over,
});
const withValue = (index: number, value: number): UpdateToValidate => {
  const u = good();
  u.weights.data[index] = value;
  return u;
};

function rejects(u: UpdateToValidate, reason: RegExp, exp: UpdateExpectations = expected): void {
  const v = validateUpdate(u, exp);
  assert.equal(v.ok, false, 'expected a rejection');
  if (v.ok) return;
  assert.match(v.reason, reason);
  assert.ok(!v.reason.includes('\n'), `one line: ${v.reason}`);
  assert.match(v.reason, /^client 7: /);
}

test('a valid update passes (also with fewer samples than the partition)', () => {
  assert.deepEqual(validateUpdate(good(), expected), { ok: true });
  assert.deepEqual(validateUpdate(good({ numSamples: 1 }), expected), { ok: true });
});

test('NaN: the first one, by variable and element', () => {
  const u = withValue(7, NaN); // variable 1 (bias), element 1
  u.weights.data[9] = NaN;
  rejects(u, /^client 7: variable 1 \(shape \[2\]\) element 1 is NaN \(flat index 7\): the weights must be finite$/);
});

test('+Infinity and -Infinity', () => {
  rejects(withValue(0, Infinity), /variable 0 \(shape \[3, 2\]\) element 0 is Infinity \(flat index 0\)/);
  rejects(withValue(9, -Infinity), /variable 2 \(shape \[2, 1\]\) element 1 is -Infinity \(flat index 9\)/);
});

test('wrong number of variables', () => {
  const u = good();
  u.weights = { shapes: [[3, 2], [2]], data: new Float32Array(8) };
  rejects(u, /^client 7: the weights have 2 variables, the model has 3$/);
});

test('wrong shape of a variable', () => {
  const u = good();
  u.weights = { shapes: [[2, 3], [2], [2, 1]], data: new Float32Array(VALUES) };
  rejects(u, /^client 7: variable 0 has shape \[2, 3\], the model's is \[3, 2\]$/);
});

test('wrong data length for the shapes', () => {
  const u = good();
  u.weights = { shapes: SHAPES, data: new Float32Array(VALUES - 1) };
  rejects(u, /^client 7: the weights have 9 values, the model's shapes need 10$/);
});

test('data that is not a Float32Array', () => {
  const u = good();
  u.weights = { shapes: SHAPES, data: Array.from({ length: VALUES }, () => 0) as unknown as Float32Array };
  rejects(u, /^client 7: the weights' data is not a Float32Array \(got \[0,0,/);
});

test('numSamples not a positive integer', () => {
  for (const [n, shown] of [[0, '0'], [-3, '-3'], [2.5, '2.5'], [NaN, 'NaN'], ['12', '"12"']] as const) {
    rejects(good({ numSamples: n as number }), new RegExp(`^client 7: numSamples must be a positive integer, got ${shown.replace('.', '\\.')}$`));
  }
});

test('numSamples larger than the partition', () => {
  rejects(good({ numSamples: 101 }), /^client 7: numSamples 101 is larger than the client's partition of 100 samples$/);
});

test('payload larger than maxBytes: 4 bytes per value plus the codec header', () => {
  const exact = encodeWeights(good().weights).length;
  assert.equal(encodedUpdateBytes(SHAPES, VALUES), exact, 'the estimate is what the codec writes');
  assert.deepEqual(validateUpdate(good(), { ...expected, maxBytes: exact }), { ok: true });
  rejects(good(), new RegExp(`^client 7: the update is ${exact} bytes \\(10 values × 4 \\+ ${exact - 40} header bytes\\), more than the maximum of ${exact - 1} bytes$`), {
    ...expected,
    maxBytes: exact - 1,
  });
  // checked first: a huge update is refused before its values are scanned
  const huge = good();
  huge.weights = { shapes: [[1_000_000]], data: new Float32Array(1_000_000).fill(NaN) };
  rejects(huge, /the update is 4000\d{3} bytes .* more than the maximum of 1048576 bytes/);
});
