/**
 * fl_server_aggregator: FedAvg over the round's client updates (weighted by sample count, summed in client-id order),
 * evaluation of the new global model on the test set, and the new global weights into the store.
 */
import { fedAvg } from '../fl/fedavg.js';
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
  const t0 = performance.now();
  await initEngine();
  const store = await storeFor(p.store);
  const [stored, previous] = await Promise.all([store.getClientUpdates(p.runId, p.round, p.clientIds), store.getGlobalWeights(p.runId, p.round - 1)]);
  if (!previous) throw new FunctionParamsError(`fl_server_aggregator: run ${p.runId} has no global weights for round ${p.round - 1}`);
  const have = new Set(stored.map((u) => u.clientId));
  const missing = p.clientIds.filter((c) => !have.has(c));
  if (missing.length) throw new FunctionParamsError(`fl_server_aggregator: round ${p.round} has no update from client(s) ${missing.join(', ')}`);
  // Every update is checked before it counts: finite values, the global model's shapes, a plausible sample count.
  const rejected: { clientId: number; reason: string }[] = [];
  const updates = [];
  for (const u of stored) {
    const partition = await store.getPartition(p.runId, u.clientId);
    const want = p.attempts?.[String(u.clientId)];
    if (want !== undefined && u.attempt !== undefined && u.attempt !== want) {
      rejected.push({ clientId: u.clientId, reason: `client ${u.clientId}: the stored update is from attempt ${u.attempt}, the keeper accepted attempt ${want}` });
      continue;
    }
    const verdict = validateUpdate(u, { shapes: previous.shapes, partitionSize: partition?.length ?? 0, maxBytes: p.maxUpdateBytes ?? DEFAULT_MAX_UPDATE_BYTES });
    if (verdict.ok) updates.push(u);
    else rejected.push({ clientId: u.clientId, reason: verdict.reason });
  }
  if (updates.length === 0) throw new FunctionParamsError(`fl_server_aggregator: every update of round ${p.round} was rejected: ${rejected.map((r) => r.reason).join('; ')}`);
  const global = fedAvg(updates);
  const aggSeconds = (performance.now() - t0) / 1000;
  const data = await loadDataset(p.dataset);
  const t1 = performance.now();
  const { accuracy, loss } = await evaluate(p.model, global, data.test);
  const evalSeconds = (performance.now() - t1) / 1000;
  await store.putGlobalWeights(p.runId, p.round, global);
  return {
    round: p.round,
    accuracy,
    loss,
    clients: updates.length,
    rejected,
    samples: updates.reduce((s, u) => s + u.numSamples, 0),
    testSamples: data.test.n,
    aggSeconds,
    evalSeconds,
    seconds: (performance.now() - t0) / 1000,
  };
}
