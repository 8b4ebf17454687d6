/**
 * FedAvg (McMahan et al. 2017) over updates held in memory: the average of the clients' weights, weighted by their
 * sample counts. A thin wrapper over the streaming FedAvgAccumulator (fl/accumulator.ts): the updates are sorted by
 * client id and added one by one, so the result never depends on the order in which they arrived and is bit for bit
 * what the streaming aggregator computes from the same updates (Σ n_i·w_i in float64, divided by N at the end).
 */
import { AggregationError, FedAvgAccumulator, type WeightedUpdate } from './accumulator.js';
import type { WeightVector } from './weights.js';

export { AggregationError, type WeightedUpdate } from './accumulator.js';

export function fedAvg(updates: readonly WeightedUpdate[]): WeightVector {
  if (updates.length === 0) throw new AggregationError('FedAvg needs at least one update');
  const ordered = [...updates].sort((a, b) => a.clientId - b.clientId);
  const acc = new FedAvgAccumulator();
  acc.begin(ordered[0]!.weights.shapes);
  for (const u of ordered) acc.add(u);
  return acc.finish();
}
