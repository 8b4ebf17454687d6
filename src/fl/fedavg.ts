/**
 * FedAvg (McMahan et al. 2017): the average of the clients' weights, weighted by their sample counts. Summed in
 * float64 in ascending client-id order, so the result never depends on the order in which updates arrived.
 */
import { type WeightVector, sameShapes } from './weights.js';

export interface WeightedUpdate {
  clientId: number;
  numSamples: number;
  weights: WeightVector;
}

export class AggregationError extends Error {
  override name = 'AggregationError';
}

export function fedAvg(updates: readonly WeightedUpdate[]): WeightVector {
  if (updates.length === 0) throw new AggregationError('FedAvg needs at least one update');
  const ordered = [...updates].sort((a, b) => a.clientId - b.clientId);
  const seen = new Set<number>();
  const { shapes } = ordered[0]!.weights;
  const n = ordered[0]!.weights.data.length;
  let total = 0;
  for (const u of ordered) {
    if (seen.has(u.clientId)) throw new AggregationError(`client ${u.clientId} appears twice in one aggregation`);
    seen.add(u.clientId);
    if (!(Number.isFinite(u.numSamples) && u.numSamples > 0)) {
      throw new AggregationError(`client ${u.clientId} reported ${u.numSamples} samples; need a positive count`);
    }
    if (!sameShapes(u.weights.shapes, shapes) || u.weights.data.length !== n) {
      throw new AggregationError(`client ${u.clientId} sent weights whose shapes differ from client ${ordered[0]!.clientId}'s`);
    }
    total += u.numSamples;
  }
  const acc = new Float64Array(n);
  for (const u of ordered) {
    const w = u.numSamples / total;
    const d = u.weights.data;
    for (let i = 0; i < n; i++) acc[i] += w * d[i]!;
  }
  return { shapes: shapes.map((s) => [...s]), data: Float32Array.from(acc) };
}
