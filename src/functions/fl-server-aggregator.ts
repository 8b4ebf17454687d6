/**
 * fl_server_aggregator: FedAvg over the round's client updates, evaluation of the new global model on the test set,
 * and the new global weights into the store.
 *
 * Streaming: one partitionSizes() call gives every selected client's partition size (for the plausible-sample-count
 * check; the indices are not read), then ONE streamClientUpdates() hands the round's updates out one at a time in
 * ascending client-id order (a single request through the keeper's store endpoint, a query per chunk of clients on
 * a database; the store reads ahead a bounded amount), and each is checked (attempt, then fl/validate.ts) and added
 * to a FedAvgAccumulator (fl/accumulator.ts: Σ n_i·w_i in float64, divided by N at the end) before the next is
 * taken. So the function holds the update being added (plus what the store reads ahead) and the float64
 * accumulator, whatever the number of clients, and the result is the same bits as fedAvg() over the accepted
 * updates. A selected client the stream skips has no update: the round fails, naming every such client.
 *
 * Timings in the result: aggSeconds = store reads + validation + FedAvg (from the engine being ready to the new
 * global weights), fedavgSeconds = the accumulation alone (add() and finish()), evalSeconds = the evaluation alone,
 * seconds = the whole invocation.
 */
import { FedAvgAccumulator } from '../fl/accumulator.js';
import { validateUpdate } from '../fl/validate.js';
import { loadDataset } from '../ml/datasets.js';
import { evaluate, initEngine } from '../ml/index.js';
import type { InvocationContext } from './types.js';
import { FunctionParamsError, requireFields, type AggregatorParams } from './params.js';
import { storeFor } from './shared.js';

/** Larger updates are refused: 64 MiB, ~100× the paper's CNN. */
const DEFAULT_MAX_UPDATE_BYTES = 64 * 2 ** 20;

export async function handler(raw: Record<string, unknown>, _ctx: InvocationContext): Promise<Record<string, unknown>> {
  const p = requireFields<AggregatorParams>(raw, ['runId', 'store', 'dataset', 'model', 'round', 'clientIds'], 'fl_server_aggregator');
  if (!Array.isArray(p.clientIds)) throw new FunctionParamsError('fl_server_aggregator: clientIds must be a list of client ids');
  const t0 = performance.now();
  await initEngine();
  const tAgg = performance.now();
  const store = await storeFor(p.store);
  const previous = await store.getGlobalWeights(p.runId, p.round - 1);
  if (!previous) throw new FunctionParamsError(`fl_server_aggregator: run ${p.runId} has no global weights for round ${p.round - 1}`);
  const clientIds = [...new Set(p.clientIds)].sort((a, b) => a - b);
  const maxBytes = p.maxUpdateBytes ?? DEFAULT_MAX_UPDATE_BYTES;

  const fedavg = new FedAvgAccumulator();
  fedavg.begin(previous.shapes, { previous });
  let fedavgMs = 0;
  // Every update is checked before it counts: the attempt the keeper accepted, finite values, the global model's
  // shapes, a plausible sample count. A missing update fails the round, naming every missing client.
  const missing: number[] = [];
  const rejected: { clientId: number; reason: string }[] = [];
  const partitionSizes = await store.partitionSizes(p.runId, clientIds);
  let k = 0; // clientIds[k]: the next selected client the stream has not answered yet
  for await (const u of store.streamClientUpdates(p.runId, p.round, clientIds)) {
    while (k < clientIds.length && clientIds[k]! < u.clientId) missing.push(clientIds[k++]!); // skipped: no update
    if (clientIds[k] !== u.clientId) {
      throw new Error(`fl_server_aggregator: the store handed out client ${u.clientId}'s update of round ${u.round}, not asked for or out of order`);
    }
    k++;
    if (missing.length) continue; // the round fails anyway: only look for further missing clients
    const want = p.attempts?.[String(u.clientId)];
    if (want !== undefined && u.attempt !== undefined && u.attempt !== want) {
      rejected.push({ clientId: u.clientId, reason: `client ${u.clientId}: the stored update is from attempt ${u.attempt}, the keeper accepted attempt ${want}` });
      continue;
    }
    const verdict = validateUpdate(u, { shapes: previous.shapes, partitionSize: partitionSizes.get(u.clientId) ?? 0, maxBytes });
    if (!verdict.ok) {
      rejected.push({ clientId: u.clientId, reason: verdict.reason });
      continue;
    }
    const ta = performance.now();
    fedavg.add(u);
    fedavgMs += performance.now() - ta;
  }
  while (k < clientIds.length) missing.push(clientIds[k++]!);
  if (missing.length) throw new FunctionParamsError(`fl_server_aggregator: round ${p.round} has no update from client(s) ${missing.join(', ')}`);
  if (fedavg.count === 0) throw new FunctionParamsError(`fl_server_aggregator: every update of round ${p.round} was rejected: ${rejected.map((r) => r.reason).join('; ')}`);
  const clients = fedavg.count;
  const samples = fedavg.samples;
  const tFinish = performance.now();
  const global = fedavg.finish();
  const tDone = performance.now();
  fedavgMs += tDone - tFinish;
  const aggSeconds = (tDone - tAgg) / 1000;

  const data = await loadDataset(p.dataset);
  const t1 = performance.now();
  const { accuracy, loss } = await evaluate(p.model, global, data.test);
  const evalSeconds = (performance.now() - t1) / 1000;
  await store.putGlobalWeights(p.runId, p.round, global);
  return {
    round: p.round,
    accuracy,
    loss,
    clients,
    rejected,
    samples,
    testSamples: data.test.n,
    aggSeconds,
    fedavgSeconds: fedavgMs / 1000,
    evalSeconds,
    seconds: (performance.now() - t0) / 1000,
  };
}
