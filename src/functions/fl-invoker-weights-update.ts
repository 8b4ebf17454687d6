/**
 * fl_invoker_weights_update — the relay (the seed's function of that name): for a client whose function cannot reach
 * the store, read the global weights and the client's partition from the store, invoke the client's function on its
 * own platform with both in the request body (binary, base64 in JSON), wait for it, check the update it answers with
 * and write it to the store, keyed by (run, round, client) as a direct client would.
 */
import { decodeWeights, encodeWeights } from '../fl/codec.js';
import { sameShapes } from '../fl/weights.js';
import { gather, isUrl, loadDataset } from '../ml/datasets.js';
import { providerFor } from '../providers/factory.js';
import type { InvocationContext } from './types.js';
import { FunctionParamsError, requireFields, type RelayedClientParams, type RelayParams } from './params.js';
import { storeFor } from './shared.js';
import { globalWeightsFor, partitionFor as clientPartition } from './client-inputs.js';
import { errorText } from '../providers/error-text.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function handler(raw: Record<string, unknown>, ctx: InvocationContext): Promise<Record<string, unknown>> {
  const p = requireFields<RelayParams>(raw, ['runId', 'store', 'round', 'clientId', 'train', 'target'], RELAY);
  const t0 = performance.now();
  const store = await storeFor(p.store);
  const [global, indices] = await Promise.all([globalWeightsFor(store, p.runId, p.round - 1, p.globalSha256), clientPartition(store, p, RELAY)]);
  if (!global) throw new FunctionParamsError(`${RELAY}: run ${p.runId} has no global weights for round ${p.round - 1}`);
  if (!indices) throw new FunctionParamsError(`${RELAY}: run ${p.runId} has no data partition for client ${p.clientId}`);

  const { target, store: _store, globalSha256: _sha, partition: _partition, ...clientParams } = p;
  const body: RelayedClientParams = {
    ...clientParams,
    relay: { globalWeights: Buffer.from(encodeWeights(global)).toString('base64'), ...(await partitionFor(p, indices)) },
  };
  const provider = providerFor(target.platform, target.cluster, target.settings);
  try {
    const activationId = await provider.invoke(target.functionName, body as unknown as Record<string, unknown>);
    const where = `${target.platform}:${target.cluster}/${target.functionName} (activation ${activationId})`;
    let wait = 20;
    for (;;) {
      const a = await provider.activation(activationId);
      if (!a) throw new Error(`${where}: the platform lost the activation`);
      if (a.status !== 'running') {
        const result = a.result ?? {};
        if (a.status !== 'success') throw new Error(`client ${p.clientId} on ${where}: ${a.status}: ${errorText(result.error)}`);
        const { update, ...metrics } = result;
        if (typeof update !== 'string') throw new Error(`client ${p.clientId} on ${where}: the answer has no update`);
        const weights = decodeWeights(Buffer.from(update, 'base64'));
        if (!sameShapes(weights.shapes, global.shapes)) throw new Error(`client ${p.clientId} on ${where}: the update's shapes differ from the global model's`);
        const numSamples = Number(metrics.numSamples);
        await store.putClientUpdate({
          runId: p.runId,
          round: p.round,
          clientId: p.clientId,
          weights,
          numSamples,
          metrics: { loss: Number(metrics.loss), accuracy: Number(metrics.accuracy), train_s: Number(metrics.trainSeconds) },
          activationId: ctx.activationId,
          attempt: p.attempt ?? 1,
        });
        return {
          ...metrics,
          relayedActivationId: activationId,
          relayedColdStart: a.coldStart,
          ...(a.instance !== undefined ? { relayedInstance: a.instance } : {}),
          relaySeconds: (performance.now() - t0) / 1000,
        };
      }
      if (Date.now() > ctx.deadline) throw new Error(`${where}: no answer before the relay's own deadline`);
      await sleep(wait);
      wait = Math.min(250, Math.ceil(wait * 1.5));
    }
  } finally {
    await provider.close();
  }
}

const RELAY = 'fl_invoker_weights_update';

/**
 * The client's partition as it travels: indices when its function can fetch the dataset itself (http(s) URLs),
 * else the samples (the dataset is a file on this machine, which the client's platform cannot read).
 */
async function partitionFor(p: RelayParams, indices: Uint32Array): Promise<Pick<RelayedClientParams['relay'], 'indices' | 'samples'>> {
  const reachable = p.dataset.dataset === 'idx' && [p.dataset.train_images_url, p.dataset.train_labels_url, p.dataset.test_images_url, p.dataset.test_labels_url].every(isUrl);
  if (reachable) return { indices: Buffer.from(indices.buffer, indices.byteOffset, indices.byteLength).toString('base64') };
  const s = gather((await loadDataset(p.dataset)).train, indices);
  return { samples: { x: Buffer.from(s.x.buffer, s.x.byteOffset, s.x.byteLength).toString('base64'), y: Buffer.from(s.y).toString('base64') } };
}
