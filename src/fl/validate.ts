/**
 * Checks a client's update before it is aggregated: a faulty or hostile client must not poison FedAvg. Pure: no I/O,
 * no tfjs. Every rejection is one line that names the first thing wrong, in this order:
 *
 *  1. the payload is larger than `maxBytes` (its size as the weight codec writes it: 4 bytes per value plus the
 *     header — magic, length, JSON shapes, padding — so a giant update is refused before anything is scanned);
 *  2. numSamples is not a positive integer, or is larger than the client's partition;
 *  3. the number of variables, a variable's shape, or the length of the data differs from the model's;
 *  4. a value is NaN or ±Infinity (the first one: its variable index, its element within the variable, its flat index).
 */
import { type WeightVector, shapeSize } from './weights.js';

export interface UpdateToValidate {
  clientId: number;
  numSamples: number;
  weights: WeightVector;
}

export interface UpdateExpectations {
  /** The model's variable shapes, in order. */
  shapes: number[][];
  /** Samples in the client's partition: numSamples may not exceed it. */
  partitionSize: number;
  /** Largest accepted payload, bytes (as encoded by fl/codec.ts). */
  maxBytes: number;
}

export type UpdateVerdict = { ok: true } | { ok: false; reason: string };

/** Bytes of a weight blob as fl/codec.ts encodes it: 8-byte preamble, JSON header {shapes}, padding to 4, float32 values. */
export function encodedUpdateBytes(shapes: unknown, values: number): number {
  let header: number;
  try {
    header = new TextEncoder().encode(JSON.stringify({ shapes })).length;
  } catch {
    header = 0;
  }
  return ((8 + header + 3) & ~3) + 4 * values;
}

export function validateUpdate(update: UpdateToValidate, expected: UpdateExpectations): UpdateVerdict {
  const who = `client ${oneLine(update.clientId)}`;
  const no = (reason: string): UpdateVerdict => ({ ok: false, reason: `${who}: ${reason}` });
  const w = update.weights as Partial<WeightVector> | undefined;
  if (w === null || typeof w !== 'object') return no('the update has no weights');
  const data = w.data;
  if (!(data instanceof Float32Array)) return no(`the weights' data is not a Float32Array (got ${describe(data)})`);

  const bytes = encodedUpdateBytes(w.shapes, data.length);
  if (bytes > expected.maxBytes) {
    return no(`the update is ${bytes} bytes (${data.length} values × 4 + ${bytes - 4 * data.length} header bytes), more than the maximum of ${expected.maxBytes} bytes`);
  }

  const n = update.numSamples;
  if (typeof n !== 'number' || !Number.isInteger(n) || n <= 0) return no(`numSamples must be a positive integer, got ${describe(n)}`);
  if (n > expected.partitionSize) return no(`numSamples ${n} is larger than the client's partition of ${expected.partitionSize} samples`);

  const shapes = w.shapes;
  if (!Array.isArray(shapes)) return no(`the weights have no list of shapes (got ${describe(shapes)})`);
  if (shapes.length !== expected.shapes.length) {
    return no(`the weights have ${shapes.length} variables, the model has ${expected.shapes.length}`);
  }
  for (let i = 0; i < shapes.length; i++) {
    const got = shapes[i];
    const want = expected.shapes[i]!;
    const same = Array.isArray(got) && got.length === want.length && got.every((d, j) => d === want[j]);
    if (!same) return no(`variable ${i} has shape ${Array.isArray(got) ? `[${got.map(describe).join(', ')}]` : describe(got)}, the model's is [${want.join(', ')}]`);
  }
  let total = 0;
  for (const s of expected.shapes) total += shapeSize(s);
  if (data.length !== total) return no(`the weights have ${data.length} values, the model's shapes need ${total}`);

  // NaN or ±Inf: a scan of the flat buffer (x - x is 0 only for finite x), then locate the variable.
  for (let k = 0; k < data.length; k++) {
    const x = data[k]!;
    if (x - x !== 0) {
      let variable = 0;
      let start = 0;
      while (start + shapeSize(expected.shapes[variable]!) <= k) start += shapeSize(expected.shapes[variable++]!);
      return no(`variable ${variable} (shape [${expected.shapes[variable]!.join(', ')}]) element ${k - start} is ${x} (flat index ${k}): the weights must be finite`);
    }
  }
  return { ok: true };
}

function describe(v: unknown): string {
  if (v instanceof Float32Array || v instanceof Float64Array) return `${v.constructor.name}(${v.length})`;
  if (Array.isArray(v)) return oneLine(JSON.stringify(v).slice(0, 80));
  if (v === null || v === undefined) return String(v);
  return typeof v === 'object' ? (v.constructor?.name ?? 'object') : oneLine(typeof v === 'string' ? JSON.stringify(v) : String(v));
}

function oneLine(v: unknown): string {
  return String(v).replace(/\s+/g, ' ');
}
