/**
 * Binary codec for WeightVector: magic "FKW1", uint32 LE header length, a JSON header {shapes}, zero padding to a
 * multiple of 4, then the float32 values little-endian. Pure: bytes in, bytes out.
 */
import { createHash } from 'node:crypto';
import { type WeightVector, totalSize } from './weights.js';

const MAGIC = 0x31574b46; // "FKW1" read as uint32 LE

export class WeightCodecError extends Error {
  override name = 'WeightCodecError';
}

export function encodeWeights(w: WeightVector): Uint8Array {
  const expected = totalSize(w.shapes);
  if (w.data.length !== expected) {
    throw new WeightCodecError(`weights have ${w.data.length} values but their shapes need ${expected}`);
  }
  const header = new TextEncoder().encode(JSON.stringify({ shapes: w.shapes }));
  const headerEnd = 8 + header.length;
  const dataStart = (headerEnd + 3) & ~3;
  const out = new Uint8Array(dataStart + w.data.length * 4);
  const view = new DataView(out.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, header.length, true);
  out.set(header, 8);
  const le = new Uint8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength);
  if (isLittleEndian()) out.set(le, dataStart);
  else for (let i = 0; i < w.data.length; i++) view.setFloat32(dataStart + i * 4, w.data[i]!, true);
  return out;
}

/**
 * sha256 (hex) of weights as encodeWeights encodes them: the digest the keeper names in a client's `globalSha256`,
 * the one a client computes over the weights it fetched, and summary.json's `final_weights_sha256`.
 */
export function weightsSha256(w: WeightVector): string {
  return createHash('sha256').update(encodeWeights(w)).digest('hex');
}

/**
 * Checks a weight blob (magic, header, shapes, length) without copying its values: its shapes and where the float32
 * values start. Throws WeightCodecError as decodeWeights does.
 */
export function checkWeightsBlob(bytes: Uint8Array): { shapes: number[][]; dataStart: number; n: number } {
  if (bytes.length < 8) throw new WeightCodecError(`weight blob too short (${bytes.length} bytes)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== MAGIC) throw new WeightCodecError('not a FedKeeper weight blob (bad magic)');
  const hlen = view.getUint32(4, true);
  if (8 + hlen > bytes.length) throw new WeightCodecError('weight blob header runs past the end');
  let shapes: number[][];
  try {
    shapes = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + hlen))).shapes;
  } catch {
    throw new WeightCodecError('weight blob header is not valid JSON');
  }
  if (!Array.isArray(shapes) || !shapes.every((s) => Array.isArray(s) && s.every((d) => Number.isInteger(d) && d >= 0))) {
    throw new WeightCodecError('weight blob header has no valid shapes');
  }
  const dataStart = (8 + hlen + 3) & ~3;
  const n = totalSize(shapes);
  if (bytes.length !== dataStart + n * 4) {
    throw new WeightCodecError(`weight blob has ${bytes.length - dataStart} data bytes, shapes need ${n * 4}`);
  }
  return { shapes, dataStart, n };
}

export function decodeWeights(bytes: Uint8Array): WeightVector {
  const { shapes, dataStart, n } = checkWeightsBlob(bytes);
  const data = new Float32Array(n);
  if (isLittleEndian()) new Uint8Array(data.buffer).set(bytes.subarray(dataStart, dataStart + n * 4));
  else {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < n; i++) data[i] = view.getFloat32(dataStart + i * 4, true);
  }
  return { shapes, data };
}

let le: boolean | undefined;
function isLittleEndian(): boolean {
  le ??= new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  return le;
}
