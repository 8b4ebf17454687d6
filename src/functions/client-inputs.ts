/**
 * What a client function reads before training, with the store reads a warm function can skip:
 *  - the global weights: kept after a fetch, keyed by the sha256 of their encoding (what the function computes over
 *    what it got, never what it was told); an invocation naming that digest (`globalSha256`) uses them again, any
 *    other digest or none reads the store. Content-addressed, so a hit is the very weights the store holds.
 *  - the partition: from the invocation's `partition` (uint32 LE indices, base64) when the keeper sent it along,
 *    else from the store.
 * Module state lives as long as the function's process (a warm container), as the open stores of shared.ts do.
 */
import { weightsSha256 } from '../fl/codec.js';
import type { WeightVector } from '../fl/weights.js';
import { bytesToUint32, uint32ToBytes } from '../store/partition-bytes.js';
import type { FunctionStore } from '../store/types.js';
import { FunctionParamsError } from './params.js';

export { weightsSha256 };

let kept: { sha256: string; weights: WeightVector } | undefined;
/** Store reads of global weights this process made, and the reads it saved (for tests). */
export const globalWeightReads = { fetched: 0, reused: 0 };

/**
 * The global weights of `round`: the kept ones when `sha256` names them, else read from the store (and kept). The
 * weights handed out are shared between invocations: callers must not write into them (trainLocal copies them into
 * its model).
 */
export async function globalWeightsFor(store: FunctionStore, runId: string, round: number, sha256?: string): Promise<WeightVector | undefined> {
  if (sha256 !== undefined && kept?.sha256 === sha256) {
    globalWeightReads.reused++;
    return kept.weights;
  }
  const w = await store.getGlobalWeights(runId, round);
  globalWeightReads.fetched++;
  if (w && sha256 !== undefined) {
    const got = weightsSha256(w);
    kept = { sha256: got, weights: w };
  }
  return w;
}

/** Forgets the kept weights (tests). */
export function forgetGlobalWeights(): void {
  kept = undefined;
}

/** The client's partition: from the invocation when it came along, else from the store. */
export async function partitionFor(store: FunctionStore, p: { runId: string; clientId: number; partition?: unknown }, fn: string): Promise<Uint32Array | undefined> {
  if (p.partition === undefined || p.partition === null) return store.getPartition(p.runId, p.clientId);
  return decodePartition(p.partition, fn);
}

/** uint32 LE indices from base64 (a fresh, aligned array). */
export function decodePartition(raw: unknown, fn: string): Uint32Array {
  if (typeof raw !== 'string') throw new FunctionParamsError(`${fn}: partition must be a base64 string`);
  const bytes = Buffer.from(raw, 'base64');
  if (bytes.length % 4 !== 0) throw new FunctionParamsError(`${fn}: partition is not a uint32 array (${bytes.length} bytes)`);
  return bytesToUint32(bytes);
}

/** Indices as they travel in `partition`: uint32 little-endian, base64. */
export function encodePartition(indices: Uint32Array): string {
  const b = uint32ToBytes(indices);
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
}
