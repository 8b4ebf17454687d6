/**
 * The ParameterStore: everything the keeper and the FL functions share, behind one interface so that SQLite,
 * PostgreSQL, Redis … are interchangeable. Weights are always binary (fl/codec), never JSON arrays.
 */
import type { WeightVector } from '../fl/weights.js';

export type RunStatus = 'created' | 'running' | 'completed' | 'failed' | 'stopped';

export interface RunRecord {
  runId: string;
  name: string;
  /** The validated config, as JSON (secrets already redacted by the caller). */
  configJson: string;
  status: RunStatus;
  createdAt: number; // epoch ms
  updatedAt: number; // epoch ms
}

/**
 * Who drives a run: one keeper at a time holds its lease (keeper/lease.ts decides whether a holder is alive). The
 * holder renews heartbeatAt while it lives; `token` is unique per keeper process and fences the lease.
 */
export interface RunLease {
  runId: string;
  token: string;
  pid: number;
  host: string;
  acquiredAt: number; // epoch ms
  heartbeatAt: number; // epoch ms
}

/** A run as `fedkeeper runs` lists it: its record without the config, what it takes in the store, its lease. */
export interface RunInfo extends Omit<RunRecord, 'configJson'> {
  /** Highest round with global weights (0 = initial weights only), or null before init. */
  rounds: number | null;
  /** Client updates still stored. */
  updates: number;
  /** Bytes of the run's weights, client updates and partitions in the store. */
  bytes: number;
  lease?: RunLease;
}

export interface ClientUpdate {
  runId: string;
  round: number;
  clientId: number;
  weights: WeightVector;
  numSamples: number;
  /** Training metrics reported by the client (loss, accuracy, train_s …). */
  metrics: Record<string, number>;
  activationId?: string;
  attempt?: number;
}

/** Metadata of a client update without its weights (cheap to list). */
export type ClientUpdateInfo = Omit<ClientUpdate, 'weights'>;

/** A client update with its weights as an fl/codec blob (checked), for stores that keep the blob as it is. */
export type EncodedClientUpdate = ClientUpdateInfo & { blob: Uint8Array };

export type ActivationStatus =
  | 'running'
  | 'success'
  | 'application error'
  | 'developer error'
  | 'internal error'
  | 'timed out'
  | 'lost';

export interface ActivationRecord {
  activationId: string;
  runId: string;
  /** Round number; 0 for server init. */
  round: number;
  /** Client id, or -1 for server functions (init, aggregator). */
  clientId: number;
  functionName: string;
  platform: string;
  cluster: string;
  attempt: number;
  startTime: number; // epoch ms
  endTime: number | null; // epoch ms
  status: ActivationStatus;
  coldStart: boolean;
  error?: string;
}

/**
 * What an FL function needs of the store (weights, partitions, client updates): the part a function reaches from
 * its platform, directly (PostgreSQL) or through the keeper's store endpoint (store/http-store.ts, for a store that
 * is a file on the keeper's machine). Runs and activations are the keeper's business only.
 */
export interface FunctionStore {
  readonly kind: string;

  /** Global weights after `round` (round 0 = initial weights). A repeated write replaces. */
  putGlobalWeights(runId: string, round: number, weights: WeightVector): Promise<void>;
  getGlobalWeights(runId: string, round: number): Promise<WeightVector | undefined>;

  /**
   * Keyed by (run, round, client): a repeated write replaces, never doubles. A write from an older attempt than
   * the stored one is ignored, so a late answer of a superseded invocation cannot replace a newer update.
   */
  putClientUpdate(update: ClientUpdate): Promise<void>;
  /** The round's updates sorted by clientId ascending (a fixed order, whatever the arrival order). */
  getClientUpdates(runId: string, round: number, clientIds?: readonly number[]): Promise<ClientUpdate[]>;
  /**
   * The round's stored updates of `clientIds` (in any order, duplicates allowed), handed out one at a time in
   * ascending client id, each once; a client without an update is simply absent. Reads ahead a bounded amount (a
   * chunk of ids, a socket's buffers), never the whole round, so the caller decides how many updates are held.
   * Not one snapshot: each chunk is read as the store is at that moment.
   */
  streamClientUpdates(runId: string, round: number, clientIds: readonly number[]): AsyncIterable<ClientUpdate>;
  /**
   * Optional, for a store that keeps updates as fl/codec blobs (the keeper's store endpoint passes blobs through
   * instead of decoding and encoding each one): putClientUpdate and streamClientUpdates with the weights encoded.
   * The blob given must be a valid one (fl/codec checkWeightsBlob); the blobs handed out are as they were stored.
   */
  putEncodedClientUpdate?(update: EncodedClientUpdate): Promise<void>;
  streamEncodedClientUpdates?(runId: string, round: number, clientIds: readonly number[]): AsyncIterable<EncodedClientUpdate>;

  /** A client's data partition: indices into the training set. A repeated write replaces. */
  putPartition(runId: string, clientId: number, indices: Uint32Array): Promise<void>;
  getPartition(runId: string, clientId: number): Promise<Uint32Array | undefined>;
  /**
   * Client id → number of indices of its partition, for those of `clientIds` that have one (absent otherwise),
   * without reading the indices themselves.
   */
  partitionSizes(runId: string, clientIds: readonly number[]): Promise<Map<number, number>>;

  close(): Promise<void>;
}

export interface ParameterStore extends FunctionStore {
  readonly kind: string;

  createRun(run: RunRecord): Promise<void>;
  getRun(runId: string): Promise<RunRecord | undefined>;
  setRunStatus(runId: string, status: RunStatus): Promise<void>;
  /** Removes a run and everything keyed by it (its lease too), and gives the space back like deleteClientUpdates. */
  deleteRun(runId: string): Promise<void>;
  /** Every run in the store, newest first, with its size and lease. */
  listRuns(): Promise<RunInfo[]>;

  getLease(runId: string): Promise<RunLease | undefined>;
  /**
   * Takes the run's lease, atomically: when nobody holds it (`replacing` absent), or when it is still held under the
   * token `replacing` (taking over a keeper that died). False if the lease is not as expected (someone else was
   * faster, or the holder changed).
   */
  acquireLease(lease: RunLease, replacing?: string): Promise<boolean>;
  /** Renews the heartbeat; false if `token` no longer holds the lease (another keeper took it over). */
  renewLease(runId: string, token: string, now: number): Promise<boolean>;
  /** Gives the lease up if `token` still holds it. */
  releaseLease(runId: string, token: string): Promise<void>;

  /** Global weights after `round` (round 0 = initial weights). A repeated write replaces. */
  putGlobalWeights(runId: string, round: number, weights: WeightVector): Promise<void>;
  getGlobalWeights(runId: string, round: number): Promise<WeightVector | undefined>;
  /** Highest round with global weights, or undefined if none. */
  latestGlobalRound(runId: string): Promise<number | undefined>;

  /**
   * Keyed by (run, round, client): a repeated write replaces, never doubles. A write from an older attempt than
   * the stored one is ignored, so a late answer of a superseded invocation cannot replace a newer update.
   */
  putClientUpdate(update: ClientUpdate): Promise<void>;
  getClientUpdate(runId: string, round: number, clientId: number): Promise<ClientUpdate | undefined>;
  /** The round's updates sorted by clientId ascending (a fixed order, whatever the arrival order). */
  getClientUpdates(runId: string, round: number, clientIds?: readonly number[]): Promise<ClientUpdate[]>;
  listClientUpdates(runId: string, round: number): Promise<ClientUpdateInfo[]>;
  /**
   * Deletes the run's client updates of rounds ≤ `upToRound` (all rounds when absent) and gives the space back
   * (SQLite: to the file system; PostgreSQL: for reuse, as its autovacuum does). Returns how many were deleted.
   */
  deleteClientUpdates(runId: string, upToRound?: number): Promise<number>;

  /** A client's data partition: indices into the training set. A repeated write replaces. */
  putPartition(runId: string, clientId: number, indices: Uint32Array): Promise<void>;
  getPartition(runId: string, clientId: number): Promise<Uint32Array | undefined>;
  countPartitions(runId: string): Promise<number>;

  /** Upsert by activationId. */
  putActivation(record: ActivationRecord): Promise<void>;
  listActivations(runId: string, round?: number): Promise<ActivationRecord[]>;

  close(): Promise<void>;
}

/** How the keeper opens a store (the config's `store`). */
export type StoreSpec = { type: 'sqlite'; path: string } | { type: 'postgres'; url: string };

/**
 * How a function reaches the store; passed to functions in their invocation parameters. A SQLite file cannot be
 * opened from inside a function package (no native addon there): the keeper serves it over HTTP on this machine
 * (`http`, a bearer token per keeper) and functions on this machine use that.
 */
export type FunctionStoreSpec = { type: 'postgres'; url: string } | { type: 'http'; url: string; token: string };
