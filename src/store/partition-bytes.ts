/** A client's partition (Uint32Array of training-set indices) as little-endian bytes and back. */

/** Uint32Array → little-endian bytes (a view, no copy, on little-endian hosts). */
export function uint32ToBytes(a: Uint32Array): Uint8Array {
  if (isLittleEndian()) return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const out = new Uint8Array(a.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < a.length; i++) view.setUint32(i * 4, a[i]!, true);
  return out;
}

/** Little-endian bytes → a fresh (aligned) Uint32Array. */
export function bytesToUint32(b: Uint8Array): Uint32Array {
  if (b.length % 4 !== 0) throw new Error(`partition blob has ${b.length} bytes, not a multiple of 4`);
  const out = new Uint32Array(b.length / 4);
  if (isLittleEndian()) {
    new Uint8Array(out.buffer).set(b);
  } else {
    const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
    for (let i = 0; i < out.length; i++) out[i] = view.getUint32(i * 4, true);
  }
  return out;
}

let le: boolean | undefined;
function isLittleEndian(): boolean {
  le ??= new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  return le;
}
