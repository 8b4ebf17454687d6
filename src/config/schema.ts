/**
 * The zod schema of a FedKeeper config file (the seed's YAML shape) producing exactly `FedKeeperConfig`:
 * lenient scalars, defaults filled in, unknown keys rejected inside the FL blocks, cross-field checks, a local
 * cluster added when no provider declares one, and the seed's `mongo_config` answered rather than ignored.
 */
import os from 'node:os';
import { z } from 'zod';
import { isPostgresUrl, redactUrlPassword } from '../store/store-url.js';
import { clusterBlockShape } from './cluster-blocks.js';
import { checkClients, checkDataSampling, checkServerCluster, listClusters } from './checks.js';
import { describeValue } from './errors.js';
import {
  durationMs, int, maybe, memoryMB, nameList, num, oneOf, required, strict, text, withDefault, withDefaults,
} from './fields.js';
import type {
  FedKeeperConfig, FederatedLearningScenario, ProvidersConfig, StoreConfig, TrainingTestData,
} from './types.js';

const defaultPoolSize = (): number => os.availableParallelism();

const LocalCluster = z.looseObject({
  pool_size: withDefault(int((n) => n.min(1)), defaultPoolSize()),
  ...clusterBlockShape,
});

/** A remote or local platform's cluster: kept as given for its provider, but the keeper's blocks are checked here. */
const PlatformCluster = z.looseObject({ ...clusterBlockShape });

/** cluster name → settings kept as given (`cluster:` with no value is an empty block). */
const clusterBlocks = <T extends z.ZodType>(cluster: T) =>
  withDefaults(z.record(z.string(), withDefaults(cluster)));

const Providers = z.looseObject({
  local: clusterBlocks(LocalCluster),
  openwhisk: clusterBlocks(PlatformCluster),
  google: clusterBlocks(PlatformCluster),
  lambda: clusterBlocks(PlatformCluster),
});

const ServerConfig = strict({
  server_cluster_name: maybe(z.string().min(1)),
  server_manager_functions: withDefault(nameList(), ['fl_server_init', 'fl_server_aggregator']),
});

const count = () => maybe(int((n) => n.min(0)));

const ClientsInfo = strict({
  total_num_clients: required(int((n) => n.min(1))),
  num_clients_per_round: required(int((n) => n.min(1))),
  edge_clients_count: count(),
  ow_clients_count: count(),
  gcf_clients_count: count(),
  local_clients_count: count(),
  lambda_clients_count: count(),
  client_functions: withDefault(nameList(), ['fl_client']),
}).superRefine((c, ctx) => {
  for (const i of checkClients(c)) ctx.addIssue({ code: 'custom', path: [...i.path], message: i.message });
});

const DataSampling = strict({
  input_size: withDefault(int((n) => n.min(1)), 784),
  hidden_size: withDefault(int((n) => n.min(1)), 500),
  output_size: withDefault(int((n) => n.min(2)), 10),
  input_shape_x: withDefault(int((n) => n.min(1)), 28),
  input_shape_y: withDefault(int((n) => n.min(1)), 28),
  batch_size: withDefault(int((n) => n.min(1)), 10),
  model: withDefault(oneOf(['cnn', 'mnistnn']), 'cnn'),
  partition: withDefault(oneOf(['iid', 'shards', 'dirichlet']), 'iid'),
  shards_per_client: withDefault(int((n) => n.min(1)), 2),
  alpha: withDefault(num((n) => n.gt(0)), 0.5),
}).superRefine((d, ctx) => {
  for (const i of checkDataSampling(d)) ctx.addIssue({ code: 'custom', path: [...i.path], message: i.message });
});

const ModelParams = strict({
  lr: withDefault(num((n) => n.gt(0)), 1e-3),
  optim: withDefault(oneOf(['adam', 'sgd', 'nadam']), 'adam'),
  local_epochs: withDefault(int((n) => n.min(1)), 1),
});

const URL_KEYS = ['train_images_url', 'train_labels_url', 'test_images_url', 'test_labels_url'] as const;

const TrainingTestDataInput = strict({
  dataset: maybe(oneOf(['mnist', 'idx'])),
  test_fraction: maybe(num((n) => n.gt(0).lt(1))),
  train_images_url: maybe(z.string().min(1)),
  train_labels_url: maybe(z.string().min(1)),
  test_images_url: maybe(z.string().min(1)),
  test_labels_url: maybe(z.string().min(1)),
});

const TrainingTestDataSchema = TrainingTestDataInput.transform((t, ctx): TrainingTestData => {
  const urls = URL_KEYS.filter((k) => t[k] !== undefined);
  const dataset = t.dataset ?? (urls.length > 0 ? 'idx' : 'mnist');
  if (dataset === 'mnist') {
    for (const k of urls) {
      ctx.addIssue({
        code: 'custom',
        path: [k],
        message: `expected no ${k} with dataset mnist (the embedded digits), found one; set dataset: idx to load files`,
      });
    }
    return { dataset, test_fraction: t.test_fraction ?? 0.2 };
  }
  if (t.test_fraction !== undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['test_fraction'],
      message:
        'expected no test_fraction with dataset idx (the test set comes from test_images_url), ' +
        `found ${t.test_fraction}`,
    });
  }
  const missing = URL_KEYS.filter((k) => t[k] === undefined);
  if (missing.length > 0) {
    ctx.addIssue({
      code: 'custom',
      path: [missing[0]!],
      message:
        `expected all of ${URL_KEYS.join(', ')} for dataset idx, found no ${missing.join(', ')}; ` +
        'add the missing file paths or URLs',
    });
    return z.NEVER;
  }
  return {
    dataset: 'idx',
    train_images_url: t.train_images_url!,
    train_labels_url: t.train_labels_url!,
    test_images_url: t.test_images_url!,
    test_labels_url: t.test_labels_url!,
  };
});

const PlatformSettings = z.looseObject({
  timeout: withDefault(durationMs(), 300_000),
  memory: withDefault(memoryMB(), 2048),
});

const Functions = z.record(z.string(), withDefaults(z.record(z.string(), withDefaults(PlatformSettings))));

const DEFAULT_SQLITE_PATH = '.fedkeeper/store.sqlite';
const PG_URL_EXAMPLE = 'postgres://user:password@host:5432/database';

const StoreInput = strict({
  type: withDefault(oneOf(['sqlite', 'postgres']), 'sqlite'),
  path: maybe(z.string().min(1)),
  url: maybe(z.string().min(1)),
});

/** `{type: sqlite, path}` (path defaults) or `{type: postgres, url}` (url required); never the other's key. */
const Store = StoreInput.transform((s, ctx): StoreConfig => {
  const issue = (key: 'path' | 'url', message: string) => ctx.addIssue({ code: 'custom', path: [key], message });
  if (s.type === 'sqlite') {
    if (s.url !== undefined) {
      issue('url', 'expected no url with type sqlite (a file, named by path), found one; remove url, or set type: postgres to use a PostgreSQL database');
      return z.NEVER;
    }
    return { type: 'sqlite', path: s.path ?? DEFAULT_SQLITE_PATH };
  }
  if (s.path !== undefined) {
    issue('path', `expected no path with type postgres (the database is named by url), found ${describeValue(s.path)}; remove path, or set type: sqlite to use a file`);
  }
  if (s.url === undefined) {
    issue('url', `expected a PostgreSQL URL with type postgres, such as ${PG_URL_EXAMPLE} or "\${DATABASE_URL}", found nothing (this key is required)`);
    return z.NEVER;
  }
  if (!isPostgresUrl(s.url)) {
    issue('url', `expected a postgres:// or postgresql:// URL such as ${PG_URL_EXAMPLE} (percent-encode special characters in the password), found ${describeValue(redactUrlPassword(s.url))}`);
    return z.NEVER;
  }
  return s.path !== undefined ? z.NEVER : { type: 'postgres', url: s.url };
});

/** How the keeper treats failed invocations (issue 4 grows this block). */
const FaultTolerance = strict({
  max_attempts: withDefault(int((n) => n.min(1).max(100)), 3),
  backoff_initial: withDefault(durationMs(), 500),
  backoff_max: withDefault(durationMs(), 30_000),
  call_retries: withDefault(int((n) => n.min(0).max(100)), 5),
  invocation_timeout: maybe(durationMs()),
  round_timeout: maybe(durationMs()),
  min_fit_fraction: withDefault(num((n) => n.gt(0).lte(1)), 1),
}).superRefine((f, ctx) => {
  if (f.round_timeout !== undefined && f.invocation_timeout !== undefined && f.round_timeout < f.invocation_timeout) {
    ctx.addIssue({
      code: 'custom',
      path: ['round_timeout'],
      message: `expected at least invocation_timeout (${f.invocation_timeout} ms), found ${f.round_timeout} ms; a round cannot end before one invocation may; raise round_timeout or lower invocation_timeout`,
    });
  }
  if (f.backoff_max < f.backoff_initial) {
    ctx.addIssue({
      code: 'custom',
      path: ['backoff_max'],
      message: `expected at least backoff_initial (${f.backoff_initial} ms), found ${f.backoff_max} ms; raise backoff_max or lower backoff_initial`,
    });
  }
});

const MONGO_MESSAGE =
  'the MongoDB store is not available in this build; use store: {type: sqlite, path: ...} (a file on this machine) ' +
  'or store: {type: postgres, url: ...} (a PostgreSQL database) instead';

const FederatedLearning = strict(
  {
    mongo_config: z
      .unknown()
      .superRefine((_v, ctx) => ctx.addIssue({ code: 'custom', message: MONGO_MESSAGE }))
      .optional(),
    server_config: withDefaults(ServerConfig),
    clients_info: required(ClientsInfo),
    data_sampling: withDefaults(DataSampling),
    model_params: withDefaults(ModelParams),
    training_test_data: withDefaults(TrainingTestDataSchema),
    functions: withDefaults(Functions),
    store: withDefaults(Store),
    fault_tolerance: withDefaults(FaultTolerance),
    target_accuracy: withDefault(num((n) => n.gt(0).lte(1)), 1),
    max_rounds: withDefault(int((n) => n.min(1)), 10),
    seed: withDefault(int((n) => n.min(0).lt(2 ** 32)), 0),
    keep_updates: withDefault(z.boolean(), false),
    pricing: withDefault(
      z.record(
        z.string(),
        strict({
          gb_second_usd: maybe(num((n) => n.min(0))),
          vcpu_second_usd: maybe(num((n) => n.min(0))),
          per_million_usd: maybe(num((n) => n.min(0))),
          increment_ms: maybe(num((n) => n.min(1))),
        }),
      ),
      {},
    ),
  },
  ['mongo_config'],
);

const ConfigInput = z.looseObject({
  version: withDefault(text(), '0.1'),
  name: required(text()),
  output_dir: withDefault(text(), 'runs'),
  providers: withDefaults(Providers),
  scenarios: required(z.looseObject({ federated_learning: required(FederatedLearning) })),
});

/** The whole config file → `FedKeeperConfig`. */
export const FedKeeperConfigSchema: z.ZodType<FedKeeperConfig, unknown> = ConfigInput.transform((c, ctx) => {
  const providers: ProvidersConfig = { ...c.providers };
  if (listClusters(providers as unknown as Record<string, unknown>).length === 0) {
    providers.local = { local: { pool_size: defaultPoolSize() } };
  }
  const { mongo_config: _mongo, server_config, ...fl } = c.scenarios.federated_learning;
  const serverName = server_config.server_cluster_name ?? Object.keys(providers.local)[0];
  const problems = checkServerCluster(providers as unknown as Record<string, unknown>, serverName);
  for (const p of problems) {
    ctx.addIssue({
      code: 'custom',
      path: ['scenarios', 'federated_learning', 'server_config', ...p.path],
      message: p.message,
    });
  }
  if (problems.length > 0 || serverName === undefined) return z.NEVER;
  const federated_learning: FederatedLearningScenario = {
    server_config: {
      server_cluster_name: serverName,
      server_manager_functions: server_config.server_manager_functions,
    },
    ...fl,
  };
  return { ...c, providers, scenarios: { ...c.scenarios, federated_learning } };
});
