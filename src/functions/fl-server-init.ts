/**
 * fl_server_init: the initial global weights (round 0) from the model, and one data partition per client, both
 * into the store. Idempotent: re-running it for the same run writes the same values.
 */
import { partition } from '../fl/partition.js';
import { loadTrainLabels } from '../ml/datasets.js';
import { initEngine, initialWeights, parameterCount } from '../ml/index.js';
import type { InvocationContext } from './types.js';
import { requireFields, type InitParams } from './params.js';
import { storeFor } from './shared.js';

export async function handler(raw: Record<string, unknown>, _ctx: InvocationContext): Promise<Record<string, unknown>> {
  const p = requireFields<InitParams>(raw, ['runId', 'store', 'dataset', 'model', 'numClients', 'partition', 'seed'], 'fl_server_init');
  const t0 = performance.now();
  const engine = await initEngine();
  const store = await storeFor(p.store);
  const labels = await loadTrainLabels(p.dataset);
  const parts = partition(labels, p.numClients, p.partition, p.seed);
  for (let c = 0; c < parts.length; c++) await store.putPartition(p.runId, c, parts[c]!);
  const weights = await initialWeights(p.model, p.seed);
  await store.putGlobalWeights(p.runId, 0, weights);
  const sizes = parts.map((x) => x.length);
  return {
    engine: engine.engine,
    engineThreads: engine.threads,
    engineBlas: engine.blas ?? null,
    engineFallback: engine.nativeUnavailable ?? null,
    parameters: parameterCount(p.model),
    clients: parts.length,
    trainSamples: labels.length,
    minPartition: Math.min(...sizes),
    maxPartition: Math.max(...sizes),
    seconds: (performance.now() - t0) / 1000,
  };
}
