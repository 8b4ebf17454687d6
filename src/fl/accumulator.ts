/**
 * Streaming aggregation: a server strategy sees a round's client updates one at a time (begin → add … add → finish),
 * so the aggregator holds one update plus the strategy's own state, never the whole round (1,000 updates of the
 * paper CNN would be > 2.3 GB). Pure: no I/O, no tfjs.
 *
 * FedAvgAccumulator: the weighted mean Σ n_i·w_i / N, summed in a float64 accumulator and rounded to float32 once at
 * the end. Each product n_i·w_i is exact in float64 (a float32 has a 24-bit significand, so this holds for any
 * integer n_i below 2^29); the divide by N = Σ n_i happens once, in finish(), because N is known only when the last
 * update is in (the aggregator learns which updates count while it reads them). Compared with the earlier
 * Σ (n_i/N)·w_i this drops two roundings per term (n_i/N, then the product), and the last bits change: measured on
 * paper-CNN-sized random updates, 0 to a few dozen of 582,026 float32 values differ, each by 1 ulp, and in every
 * such case checked against the exact rational mean that mean lay exactly halfway between two float32 values: this
 * sum lands on it and rounds half to even, the earlier one was pushed to either side by its roundings.
 *
 * Order: float64 addition is not associative, so the sum is defined in one fixed order, ascending client id, and
 * add() refuses an update whose client id is not greater than the previous one's (a duplicate or an out-of-order
 * update is an AggregationError, never a silently different result). The result thus depends only on the set of
 * updates, never on their arrival order; callers that hold updates in another order sort them first (fedAvg does).
 */
import { type WeightVector, sameShapes, totalSize } from './weights.js';

export interface WeightedUpdate {
  clientId: number;
  numSamples: number;
  weights: WeightVector;
}

export class AggregationError extends Error {
  override name = 'AggregationError';
}

/** What a strategy may know about the round it aggregates, beyond the model's shapes. */
export interface RoundContext {
  /**
   * The global weights the round's clients started from (the previous round's result). FedAvg does not need them;
   * server optimizers (FedAdam, FedYogi, server momentum …) aggregate the pseudo-gradient Σ n_i·(w_i − previous) / N.
   */
  previous?: WeightVector;
}

/**
 * A server-side aggregation strategy fed one update at a time. begin() starts a round (and resets the per-round
 * state, so one instance serves every round: state kept across rounds, such as a server optimizer's moments, lives
 * in the instance); add() takes the round's updates in ascending client-id order; finish() returns the new global
 * weights and ends the round. An update given to add() is not retained after add() returns.
 */
export interface AggregationStrategy {
  readonly name: string;
  begin(shapes: readonly (readonly number[])[], round?: RoundContext): void;
  add(update: WeightedUpdate): void;
  finish(): WeightVector;
}

/** FedAvg (McMahan et al. 2017) as a streaming strategy: see the top of this file. */
export class FedAvgAccumulator implements AggregationStrategy {
  readonly name = 'fedavg';
  private shapes: number[][] | undefined;
  private acc: Float64Array | undefined;
  private totalSamples = 0;
  private added = 0;
  private lastClientId = -Infinity;

  begin(shapes: readonly (readonly number[])[], _round?: RoundContext): void {
    this.shapes = shapes.map((s) => [...s]);
    this.acc = new Float64Array(totalSize(this.shapes));
    this.totalSamples = 0;
    this.added = 0;
    this.lastClientId = -Infinity;
  }

  /** Updates added so far in this round. */
  get count(): number {
    return this.added;
  }

  /** Sum of the sample counts added so far in this round (N). */
  get samples(): number {
    return this.totalSamples;
  }

  add(u: WeightedUpdate): void {
    const acc = this.acc;
    if (!acc || !this.shapes) throw new AggregationError('FedAvg: add() before begin()');
    if (!Number.isInteger(u.clientId)) throw new AggregationError(`FedAvg: client id ${u.clientId} is not an integer`);
    if (u.clientId === this.lastClientId) throw new AggregationError(`client ${u.clientId} appears twice in one aggregation`);
    if (u.clientId < this.lastClientId) {
      throw new AggregationError(`client ${u.clientId} was added after client ${this.lastClientId}: updates must be added in ascending client-id order`);
    }
    const n = u.numSamples;
    if (!(typeof n === 'number' && Number.isFinite(n) && n > 0)) {
      throw new AggregationError(`client ${u.clientId} reported ${n} samples; need a positive count`);
    }
    const d = u.weights.data;
    if (!sameShapes(u.weights.shapes, this.shapes) || d.length !== acc.length) {
      throw new AggregationError(`client ${u.clientId} sent weights whose shapes differ from the model's (${d.length} values, the model has ${acc.length})`);
    }
    for (let i = 0; i < acc.length; i++) acc[i] += n * d[i]!;
    this.totalSamples += n;
    this.added++;
    this.lastClientId = u.clientId;
  }

  finish(): WeightVector {
    const acc = this.acc;
    if (!acc || !this.shapes) throw new AggregationError('FedAvg: finish() before begin()');
    if (this.added === 0) throw new AggregationError('FedAvg needs at least one update');
    const total = this.totalSamples;
    const data = new Float32Array(acc.length);
    for (let i = 0; i < acc.length; i++) data[i] = acc[i]! / total;
    const out = { shapes: this.shapes, data };
    this.acc = undefined;
    this.shapes = undefined;
    return out;
  }
}
