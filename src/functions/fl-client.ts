/**
 * fl_client: load the global weights of the previous round and this client's partition, train `localEpochs` with
 * the configured optimizer, write the update and its sample count (keyed by run, round, client: a retry replaces,
 * never doubles), return the training metrics.
 */
import { gather, loadDataset } from '../ml/datasets.js';
import { initEngine, trainLocal } from '../ml/index.js';
import type { InvocationContext } from '../runtime/protocol.js';
import { FunctionParamsError, requireFields, type ClientParams } from './params.js';
import { storeFor } from './shared.js';

export async function handler(raw: Record<string, unknown>, ctx: InvocationContext): Promise<Record<string, unknown>> {
  const p = requireFields<ClientParams>(raw, ['runId', 'store', 'dataset', 'model', 'round', 'clientId', 'train'], 'fl_client');
  const t0 = performance.now();
  await initEngine();
  const store = await storeFor(p.store);
  const [global, indices, data] = await Promise.all([
    store.getGlobalWeights(p.runId, p.round - 1),
    store.getPartition(p.runId, p.clientId),
    loadDataset(p.dataset),
  ]);
  if (!global) throw new FunctionParamsError(`fl_client: run ${p.runId} has no global weights for round ${p.round - 1}`);
  if (!indices) throw new FunctionParamsError(`fl_client: run ${p.runId} has no data partition for client ${p.clientId}`);
  const local = gather(data.train, indices);
  const loadSeconds = (performance.now() - t0) / 1000;
  const out = await trainLocal(p.model, global, local, p.train);
  await store.putClientUpdate({
    runId: p.runId,
    round: p.round,
    clientId: p.clientId,
    weights: out.weights,
    numSamples: out.numSamples,
    metrics: { loss: out.loss, accuracy: out.accuracy, train_s: out.trainSeconds, steps: out.steps },
    activationId: ctx.activationId,
    attempt: p.attempt ?? 1,
  });
  return {
    clientId: p.clientId,
    round: p.round,
    numSamples: out.numSamples,
    loss: out.loss,
    accuracy: out.accuracy,
    steps: out.steps,
    trainSeconds: out.trainSeconds,
    loadSeconds,
    seconds: (performance.now() - t0) / 1000,
  };
}
