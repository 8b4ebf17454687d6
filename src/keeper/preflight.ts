/**
 * Checks that can fail on the user's input, done before anything is created: the dataset is reachable and
 * parseable, the model fits the data, and the partitioner can serve the clients.
 */
import path from 'node:path';
import type { FedKeeperConfig } from '../config/types.js';
import { partition, PartitionError, type PartitionSpec } from '../fl/partition.js';
import type { ModelParamsSpec } from '../functions/params.js';
import { loadTrainLabels, type DatasetSpec } from '../ml/datasets.js';
import { BadInputError } from './errors.js';

export interface Preflight {
  dataset: DatasetSpec;
  model: ModelParamsSpec;
  partition: PartitionSpec;
  trainSamples: number;
  partitionSizes: number[];
}

/** The dataset spec with local paths made absolute (functions may run elsewhere). */
export function datasetSpec(cfg: FedKeeperConfig): DatasetSpec {
  const d = cfg.scenarios.federated_learning.training_test_data;
  if (d.dataset === 'mnist') return { dataset: 'mnist', test_fraction: d.test_fraction };
  const abs = (s: string) => (/^https?:\/\//i.test(s) ? s : path.resolve(s));
  return {
    dataset: 'idx',
    train_images_url: abs(d.train_images_url),
    train_labels_url: abs(d.train_labels_url),
    test_images_url: abs(d.test_images_url),
    test_labels_url: abs(d.test_labels_url),
  };
}

export function partitionSpec(cfg: FedKeeperConfig): PartitionSpec {
  const ds = cfg.scenarios.federated_learning.data_sampling;
  switch (ds.partition) {
    case 'iid':
      return { kind: 'iid' };
    case 'shards':
      return { kind: 'shards', shardsPerClient: ds.shards_per_client };
    case 'dirichlet':
      return { kind: 'dirichlet', alpha: ds.alpha };
  }
}

export function modelSpec(cfg: FedKeeperConfig): ModelParamsSpec {
  const ds = cfg.scenarios.federated_learning.data_sampling;
  return { model: ds.model, inputShape: [ds.input_shape_x, ds.input_shape_y, 1], hiddenSize: ds.hidden_size, numClasses: ds.output_size };
}

export async function preflight(cfg: FedKeeperConfig): Promise<Preflight> {
  const fl = cfg.scenarios.federated_learning;
  const dataset = datasetSpec(cfg);
  const labels = await loadTrainLabels(dataset); // DatasetError (exit 2) names the file or URL
  const model = modelSpec(cfg);
  let maxLabel = 0;
  for (const l of labels) maxLabel = Math.max(maxLabel, l);
  if (maxLabel >= model.numClasses) {
    throw new BadInputError(
      `scenarios.federated_learning.data_sampling.output_size: the dataset has ${maxLabel + 1} classes but output_size is ${model.numClasses}`,
    );
  }
  const spec = partitionSpec(cfg);
  let parts: Uint32Array[];
  try {
    parts = partition(labels, fl.clients_info.total_num_clients, spec, fl.seed);
  } catch (e) {
    if (e instanceof PartitionError) throw new BadInputError(`scenarios.federated_learning.data_sampling (${fl.data_sampling.partition}): ${e.message}`);
    throw e;
  }
  return { dataset, model, partition: spec, trainSamples: labels.length, partitionSizes: parts.map((p) => p.length) };
}
