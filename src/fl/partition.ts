/**
 * Partitioners: split the training set's indices among clients. Pure and seeded.
 *  - iid: a seeded shuffle cut into near-equal parts.
 *  - shards (McMahan et al., the FedKeeper paper's non-IID): sort by label, cut into numClients * shardsPerClient
 *    equal shards, give each client `shardsPerClient` random shards.
 *  - dirichlet (Hsu et al. 2019): per class, proportions drawn from Dir(alpha) over the clients.
 */
import { createRng, shuffleInPlace } from './rng.js';

export type PartitionSpec =
  | { kind: 'iid' }
  | { kind: 'shards'; shardsPerClient: number }
  | { kind: 'dirichlet'; alpha: number; minSamples?: number };

export class PartitionError extends Error {
  override name = 'PartitionError';
}

/** Returns one sorted index list per client. */
export function partition(labels: ArrayLike<number>, numClients: number, spec: PartitionSpec, seed: number): Uint32Array[] {
  const n = labels.length;
  if (!Number.isInteger(numClients) || numClients < 1) throw new PartitionError(`number of clients must be ≥ 1, got ${numClients}`);
  if (numClients > n) {
    throw new PartitionError(`${numClients} clients but only ${n} training samples: lower total_num_clients`);
  }
  switch (spec.kind) {
    case 'iid':
      return iid(n, numClients, seed);
    case 'shards':
      return shards(labels, numClients, spec.shardsPerClient, seed);
    case 'dirichlet':
      return dirichlet(labels, numClients, spec.alpha, spec.minSamples ?? 1, seed);
  }
}

function iid(n: number, numClients: number, seed: number): Uint32Array[] {
  const idx = shuffleInPlace(Uint32Array.from({ length: n }, (_, i) => i), createRng(seed, 'partition', 'iid'));
  const out: Uint32Array[] = [];
  const base = Math.floor(n / numClients);
  const extra = n % numClients;
  let off = 0;
  for (let c = 0; c < numClients; c++) {
    const size = base + (c < extra ? 1 : 0);
    out.push(idx.slice(off, off + size).sort());
    off += size;
  }
  return out;
}

function shards(labels: ArrayLike<number>, numClients: number, perClient: number, seed: number): Uint32Array[] {
  if (!Number.isInteger(perClient) || perClient < 1) throw new PartitionError(`shards_per_client must be ≥ 1, got ${perClient}`);
  const n = labels.length;
  const numShards = numClients * perClient;
  const shardSize = Math.floor(n / numShards);
  if (shardSize < 1) {
    throw new PartitionError(
      `${numClients} clients × ${perClient} shards = ${numShards} shards but only ${n} training samples: lower total_num_clients or shards_per_client`,
    );
  }
  // Stable sort by label (ties by index) so the shard boundaries are reproducible.
  const byLabel = Array.from({ length: n }, (_, i) => i).sort((a, b) => labels[a]! - labels[b]! || a - b);
  const shardIds = shuffleInPlace(
    Array.from({ length: numShards }, (_, i) => i),
    createRng(seed, 'partition', 'shards'),
  );
  const out: Uint32Array[] = [];
  for (let c = 0; c < numClients; c++) {
    const part = new Uint32Array(perClient * shardSize);
    for (let s = 0; s < perClient; s++) {
      const shard = shardIds[c * perClient + s]!;
      for (let j = 0; j < shardSize; j++) part[s * shardSize + j] = byLabel[shard * shardSize + j]!;
    }
    out.push(part.sort());
  }
  return out;
}

function dirichlet(labels: ArrayLike<number>, numClients: number, alpha: number, minSamples: number, seed: number): Uint32Array[] {
  if (!(alpha > 0)) throw new PartitionError(`dirichlet alpha must be > 0, got ${alpha}`);
  const n = labels.length;
  if (numClients * minSamples > n) {
    throw new PartitionError(`${numClients} clients need at least ${numClients * minSamples} samples, only ${n}: lower total_num_clients`);
  }
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    const y = labels[i]!;
    let list = byClass.get(y);
    if (!list) byClass.set(y, (list = []));
    list.push(i);
  }
  const classes = [...byClass.keys()].sort((a, b) => a - b);
  const rng = createRng(seed, 'partition', 'dirichlet');
  const maxTries = 1000;
  for (let attempt = 0; attempt < maxTries; attempt++) {
    const parts: number[][] = Array.from({ length: numClients }, () => []);
    for (const y of classes) {
      const idx = shuffleInPlace([...byClass.get(y)!], rng);
      const g = Array.from({ length: numClients }, () => rng.gamma(alpha));
      const sum = g.reduce((a, b) => a + b, 0);
      // Cumulative cut points, as numpy's np.split(idx, (cumsum(p) * len).astype(int)[:-1]).
      let prev = 0;
      let cum = 0;
      for (let c = 0; c < numClients; c++) {
        cum += g[c]! / sum;
        const cut = c === numClients - 1 ? idx.length : Math.min(idx.length, Math.floor(cum * idx.length));
        for (let j = prev; j < cut; j++) parts[c]!.push(idx[j]!);
        prev = Math.max(prev, cut);
      }
    }
    if (parts.every((p) => p.length >= minSamples)) return parts.map((p) => Uint32Array.from(p).sort());
  }
  throw new PartitionError(
    `dirichlet(alpha=${alpha}) could not give each of ${numClients} clients ≥ ${minSamples} samples in ${maxTries} draws: raise alpha or lower total_num_clients`,
  );
}

/** Label histogram of one partition (for logs and tests). */
export function labelCounts(labels: ArrayLike<number>, indices: ArrayLike<number>, numClasses: number): number[] {
  const counts = new Array<number>(numClasses).fill(0);
  for (let i = 0; i < indices.length; i++) counts[labels[indices[i]!]!]!++;
  return counts;
}
