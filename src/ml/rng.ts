/**
 * Small deterministic PRNG helpers (no tfjs). Everything that must be reproducible bit for bit across calls and
 * processes (initial weights, per-epoch shuffles) derives its randomness from here, on fl/rng's generator.
 */
import { createRng, shuffleInPlace } from '../fl/rng.js';

export { mulberry32 } from '../fl/rng.js';

/** Mixes 32-bit words into one well-distributed 32-bit unsigned seed (murmur3-style finaliser per word). */
export function mixSeed(...words: number[]): number {
  let h = 0x9e3779b9;
  for (const w of words) {
    let k = Math.imul((w | 0) ^ 0x85ebca6b, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The shuffle order of one training epoch: a function of (seed, epoch) only. */
export function epochPermutation(n: number, seed: number, epoch: number): Uint32Array {
  const order = Uint32Array.from({ length: n }, (_, i) => i);
  return shuffleInPlace(order, createRng(mixSeed(seed, epoch, 0x5eed)));
}
