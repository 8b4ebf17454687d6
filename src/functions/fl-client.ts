/**
 * fl_client: load the global weights of the previous round and this client's partition, train `localEpochs` with
 * the configured optimizer, write the update and its sample count (keyed by run, round, client: a retry replaces,
 * never doubles), return the training metrics.
 */
import { gather, loadDataset, type Samples } from '../ml/datasets.js';
import { initEngine, trainLocal } from '../ml/index.js';
import type { InvocationContext } from './types.js';
import { decodeWeights, encodeWeights } from '../fl/codec.js';
import { FunctionParamsError, requireFields, type ClientParams, type RelayedClientParams } from './params.js';
import { storeFor } from './shared.js';
import { globalWeightsFor, partitionFor } from './client-inputs.js';

export async function handler(raw: Record<string, unknown>, ctx: InvocationContext): Promise<Record<string, unknown>> {
  if (raw.relay) return relayed(raw, ctx);
  const p = requireFields<ClientParams>(raw, ['runId', 'store', 'dataset', 'model', 'round', 'clientId', 'train'], 'fl_client');
  const t0 = performance.now();
  await initEngine();
  const store = await storeFor(p.store);
  const [global, indices, data] = await Promise.all([
    globalWeightsFor(store, p.runId, p.round - 1, p.globalSha256),
    partitionFor(store, p, 'fl_client'),
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
  return metricsOf(p, out, loadSeconds, t0);
}

/** Relay mode: the weights and the partition came in the body; the update goes back in the answer, not the store. */
async function relayed(raw: Record<string, unknown>, _ctx: InvocationContext): Promise<Record<string, unknown>> {
  const p = requireFields<RelayedClientParams>(raw, ['runId', 'dataset', 'model', 'round', 'clientId', 'train', 'relay'], 'fl_client');
  const t0 = performance.now();
  await initEngine();
  const global = decodeWeights(Buffer.from(p.relay.globalWeights, 'base64'));
  const local = await relayedSamples(p);
  const loadSeconds = (performance.now() - t0) / 1000;
  const out = await trainLocal(p.model, global, local, p.train);
  return { ...metricsOf(p, out, loadSeconds, t0), update: Buffer.from(encodeWeights(out.weights)).toString('base64') };
}

function metricsOf(
  p: { clientId: number; round: number },
  out: { numSamples: number; loss: number; accuracy: number; steps: number; trainSeconds: number },
  loadSeconds: number,
  t0: number,
): Record<string, unknown> {
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

/** The client's samples: sent along by the relay, or picked by index from a dataset the function fetches itself. */
async function relayedSamples(p: RelayedClientParams): Promise<Samples> {
  if (p.relay.samples) {
    const x = Buffer.from(p.relay.samples.x, 'base64');
    const y = Buffer.from(p.relay.samples.y, 'base64');
    if (x.length % 4 !== 0 || y.length === 0 || x.length / 4 % y.length !== 0) throw new FunctionParamsError('fl_client: relay.samples does not hold float32 images for its labels');
    return { x: new Float32Array(x.buffer.slice(x.byteOffset, x.byteOffset + x.length)), y: new Uint8Array(y), n: y.length };
  }
  if (typeof p.relay.indices !== 'string') throw new FunctionParamsError('fl_client: the relay sent neither samples nor indices');
  const bytes = Buffer.from(p.relay.indices, 'base64');
  if (bytes.length % 4 !== 0) throw new FunctionParamsError('fl_client: relay.indices is not a uint32 array');
  const indices = new Uint32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  return gather((await loadDataset(p.dataset)).train, indices);
}
