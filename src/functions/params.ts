/**
 * What the keeper sends each FL function. Plain JSON-able data: a function is deployable alone and gets everything
 * it needs (where the store is, which dataset, which model) in its invocation parameters.
 */
import type { PartitionSpec } from '../fl/partition.js';
import type { DatasetSpec } from '../ml/datasets.js';
import type { FunctionStoreSpec } from '../store/types.js';

export interface ModelParamsSpec {
  model: 'cnn' | 'mnistnn';
  inputShape: [number, number, number];
  hiddenSize: number;
  numClasses: number;
}

export interface CommonParams {
  runId: string;
  store: FunctionStoreSpec;
  dataset: DatasetSpec;
  model: ModelParamsSpec;
}

export interface InitParams extends CommonParams {
  numClients: number;
  partition: PartitionSpec;
  seed: number;
}

export interface ClientParams extends CommonParams {
  round: number;
  clientId: number;
  attempt: number;
  train: { optimizer: 'adam' | 'sgd' | 'nadam'; lr: number; localEpochs: number; batchSize: number; seed: number };
  /**
   * sha256 (hex) of the global weights of round `round - 1` as fl/codec encodes them: a warm function that fetched
   * weights with this digest before uses them again instead of reading the store (functions/client-inputs.ts).
   */
  globalSha256?: string;
  /** The client's partition, when small: its indices as uint32 little-endian, base64; else it is read from the store. */
  partition?: string;
}

/** The relay (fl_invoker_weights_update): a client's parameters plus where its function lives. */
export interface RelayParams extends ClientParams {
  target: { platform: 'local' | 'openwhisk' | 'google' | 'lambda'; cluster: string; functionName: string; settings: Record<string, unknown> };
}

/**
 * What a client invoked through the relay gets instead of store access, in binary (base64): the global weights, and
 * its partition — as indices into a dataset it can fetch itself (http(s) URLs), or as the samples themselves
 * (float32 LE images, uint8 labels) when the dataset exists only on the keeper's machine.
 */
export interface RelayedClientParams extends Omit<ClientParams, 'store'> {
  relay: { globalWeights: string; indices?: string; samples?: { x: string; y: string } };
}

export interface AggregatorParams extends CommonParams {
  round: number;
  clientIds: number[];
  /** The attempt whose update counts, per client id: any other stored attempt is rejected. */
  attempts?: Record<string, number>;
  /** Updates larger than this (encoded) are rejected. */
  maxUpdateBytes?: number;
}

/** Bad parameters: the caller's fault, reported as an application error. */
export class FunctionParamsError extends Error {
  override name = 'FunctionParamsError';
}

export function requireFields<T>(params: Record<string, unknown>, fields: string[], fn: string): T {
  const missing = fields.filter((f) => params[f] === undefined || params[f] === null);
  if (missing.length) throw new FunctionParamsError(`${fn}: missing parameter(s) ${missing.join(', ')}`);
  return params as T;
}
