/**
 * What a relayed invocation carries, against the payload limits of the platform it goes to. A client behind the
 * relay gets the global weights (and, when the dataset is not at URLs it can fetch, its samples) in the invocation
 * body and answers with its update; Lambda carries at most 6 MB each way in a RequestResponse call. A plan that
 * cannot fit is refused before anything is deployed, naming the cluster, the function, the size and the limit.
 */
import { weightShapes } from '../ml/shapes.js';
import { totalSize } from '../fl/weights.js';
import { isUrl } from '../ml/datasets.js';
import type { ModelParamsSpec } from '../functions/params.js';
import type { DatasetSpec } from '../ml/datasets.js';
import { BadInputError } from './errors.js';

/** Payload limits per platform (request, response), bytes; a platform absent here has none that bind FL payloads. */
const LIMITS: Record<string, { request: number; response: number; what: string }> = {
  lambda: { request: 6 * 1024 * 1024, response: 6 * 1024 * 1024, what: "Lambda's 6 MB RequestResponse payload limit" },
};

const base64 = (n: number) => Math.ceil(n / 3) * 4;

export interface RelayedCluster {
  name: string;
  platform: string;
  functionName: string;
}

/** Bytes of a relayed client's request (weights + samples or indices) and response (its update), estimated from above. */
export function relayedPayload(model: ModelParamsSpec, dataset: DatasetSpec, maxPartition: number): { request: number; response: number } {
  const weights = base64(totalSize(weightShapes(model)) * 4 + 64 * 8 + 64);
  const [h, w, c] = model.inputShape;
  const urls = dataset.dataset === 'idx' && [dataset.train_images_url, dataset.train_labels_url, dataset.test_images_url, dataset.test_labels_url].every(isUrl);
  const part = urls ? base64(maxPartition * 4) : base64(maxPartition * h * w * c * 4) + base64(maxPartition);
  const params = 4096; // run id, dataset URLs, model and training settings
  return { request: weights + part + params, response: weights + 4096 };
}

export function checkRelayedPayloads(clusters: readonly RelayedCluster[], model: ModelParamsSpec, dataset: DatasetSpec, maxPartition: number): void {
  const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;
  for (const c of clusters) {
    const limit = LIMITS[c.platform];
    if (!limit) continue;
    const p = relayedPayload(model, dataset, maxPartition);
    if (p.request > limit.request || p.response > limit.response) {
      const which = p.request > limit.request ? `each invocation would carry ${mb(p.request)} (the weights and the client's data)` : `each answer would carry ${mb(p.response)} (the update)`;
      throw new BadInputError(
        `${c.platform} cluster ${c.name}: function ${c.functionName}: through the relay ${which}, over ${limit.what}; give the cluster store_access: direct (a postgres store it can reach) or serve the dataset at http(s) URLs, or use a smaller model`,
      );
    }
  }
}
