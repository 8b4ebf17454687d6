/**
 * Client selection: `k` of `total` client ids (0-based), uniformly at random without replacement, from a stream
 * derived from (seed, round) so that a resumed run selects exactly what an uninterrupted one did.
 */
import { createRng, shuffleInPlace } from './rng.js';

export function selectClients(total: number, k: number, seed: number, round: number): number[] {
  if (!Number.isInteger(total) || total < 1) throw new RangeError(`total clients must be a positive integer, got ${total}`);
  if (!Number.isInteger(k) || k < 1 || k > total) throw new RangeError(`cannot select ${k} of ${total} clients`);
  const ids = Array.from({ length: total }, (_, i) => i);
  shuffleInPlace(ids, createRng(seed, 'select', round));
  return ids.slice(0, k).sort((a, b) => a - b);
}
