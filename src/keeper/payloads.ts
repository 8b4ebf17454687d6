/**
 * What a relayed invocation carries, against the payload limits of the platform it goes to. A client behind the
 * relay gets the global weights (and, when the dataset is not at URLs it can fetch, its samples) in the invocation
 * body and answers with its update. Stock Apache OpenWhisk takes at most 1 MB of invocation payload and 1 MB of result
 * (its operators may raise both), Lambda 6 MB each way in a RequestResponse call, Cloud Functions 32 MB (an HTTP
 * request's limit). A cluster's `max_payload_mb` states its own limit (what its operator configured). A plan that
 * cannot fit is refused before anything is deployed, naming the cluster, the function, the size and the limit.
 */
import { weightShapes } from '../ml/shapes.js';
import { totalSize } from '../fl/weights.js';
import { isUrl } from '../ml/datasets.js';
import type { ModelParamsSpec } from '../functions/params.js';
import type { DatasetSpec } from '../ml/datasets.js';
import { BadInputError } from './errors.js';

/** Payload limits per platform (request, response), bytes; a platform absent here has none that bind FL payloads. */
const MB = 1024 * 1024;
const LIMITS: Record<string, { request: number; response: number; what: string }> = {
  lambda: { request: 6 * MB, response: 6 * MB, what: "Lambda's 6 MB RequestResponse payload limit" },
  openwhisk: { request: 1 * MB, response: 1 * MB, what: "OpenWhisk's 1 MB limit on an activation's payload and result (stock settings; set max_payload_mb if the cluster's operator raised it)" },
  google: { request: 32 * MB, response: 32 * MB, what: "Cloud Functions' 32 MB limit on an HTTP request and response" },
};

const base64 = (n: number) => Math.ceil(n / 3) * 4;

export interface RelayedCluster {
  name: string;
  platform: string;
  functionName: string;
  /** The cluster's own limit (`max_payload_mb`), instead of the platform's. */
  maxPayloadMb?: number;
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
    const limit =
      c.maxPayloadMb !== undefined
        ? { request: c.maxPayloadMb * MB, response: c.maxPayloadMb * MB, what: `the cluster's max_payload_mb (${c.maxPayloadMb} MB)` }
        : LIMITS[c.platform];
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
