import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, parseConfig } from '../../src/config/index.js';

const FL = 'scenarios.federated_learning';
const CLIENTS = 'clients_info: { total_num_clients: 4, num_clients_per_round: 2 }';

/** A config whose federated_learning block is `fl` (YAML lines), with optional top-level lines before scenarios. */
function config(fl: string, top = ''): string {
  const body = fl.split('\n').map((l) => `    ${l}`).join('\n');
  return `name: bad\n${top}scenarios:\n  federated_learning:\n${body}\n`;
}

/** Parsing must fail with a one-line ConfigError naming `path` and containing every `parts` string. */
function expectError(text: string, path: string, ...parts: string[]): ConfigError {
  let caught: unknown;
  try {
    parseConfig(text, 'bad.yaml', {});
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError for:\n${text}`);
  const msg = caught.message;
  assert.equal(caught.exitCode, 2);
  assert.ok(msg.startsWith(`config bad.yaml: ${path}: `), `message should start with the path ${path}: ${msg}`);
  assert.equal(msg.includes('\n'), false, 'message is one line');
  for (const p of parts) assert.ok(msg.includes(p), `message should contain ${JSON.stringify(p)}: ${msg}`);
  return caught;
}

test('enum values: what is expected and what was found', () => {
  const e = expectError(config(`${CLIENTS}\nmodel_params: { optim: rmsprop }`), `${FL}.model_params.optim`);
  assert.match(e.message, /^config bad\.yaml: scenarios\.federated_learning\.model_params\.optim: expected one of adam, sgd, nadam, found "rmsprop"/);
  expectError(config(`${CLIENTS}\nmodel_params: { optim: adma }`), `${FL}.model_params.optim`, 'did you mean adam?');
  expectError(config(`${CLIENTS}\ndata_sampling: { model: resnet }`), `${FL}.data_sampling.model`, 'cnn, mnistnn', '"resnet"');
  expectError(config(`${CLIENTS}\ndata_sampling: { partition: random }`), `${FL}.data_sampling.partition`, 'iid, shards, dirichlet', '"random"');
});

test('typos in strict blocks are reported with a suggestion', () => {
  expectError(config(`${CLIENTS}\nmodel_params: { local_epoch: 5 }`), `${FL}.model_params.local_epoch`, 'unknown key "local_epoch"', 'did you mean local_epochs?');
  expectError(config('clients_info: { total_num_clients: 4, num_clients_per_rond: 2 }'), `${FL}.clients_info.num_clients_per_rond`, 'did you mean num_clients_per_round?');
  expectError(config(`${CLIENTS}\ndata_sampling: { batchsize: 5 }`), `${FL}.data_sampling.batchsize`, 'did you mean batch_size?');
  expectError(config(`${CLIENTS}\nstore: { type: sqlite, pth: x.sqlite }`), `${FL}.store.pth`, 'did you mean path?');
  expectError(config(`${CLIENTS}\ntraining_test_data: { test_fraktion: 0.1 }`), `${FL}.training_test_data.test_fraktion`, 'did you mean test_fraction?');
  expectError(config(`${CLIENTS}\nmax_round: 5`), `${FL}.max_round`, 'did you mean max_rounds?');
  expectError(config(`${CLIENTS}\nmodel_params: { zzz: 1 }`), `${FL}.model_params.zzz`, 'expected one of lr, optim, local_epochs');
});

test('unknown keys are kept at the top level and in provider cluster blocks', () => {
  const cfg = parseConfig(
    config(CLIENTS, 'owner: me\nproviders:\n  local:\n    local: { pool_size: 2, note: fast }\n  aws:\n    lambda1: { region: eu }\n'),
    'ok.yaml',
    {},
  ) as unknown as Record<string, unknown> & { providers: Record<string, unknown> };
  assert.equal(cfg.owner, 'me');
  assert.deepEqual(cfg.providers.aws, { lambda1: { region: 'eu' } });
  assert.deepEqual(cfg.providers.local, { local: { pool_size: 2, note: 'fast' } });
});

test('numbers: type, integer and range', () => {
  expectError(config(`${CLIENTS}\nmodel_params: { lr: fast }`), `${FL}.model_params.lr`, 'expected a number', 'found "fast"');
  expectError(config(`${CLIENTS}\nmodel_params: { local_epochs: "2.5" }`), `${FL}.model_params.local_epochs`, 'expected an integer', 'found "2.5"');
  expectError(config(`${CLIENTS}\ndata_sampling: { batch_size: 0 }`), `${FL}.data_sampling.batch_size`, 'at least 1', 'found 0');
  expectError(config(`${CLIENTS}\ntarget_accuracy: 1.5`), `${FL}.target_accuracy`, 'at most 1', 'found 1.5');
  expectError(config(`${CLIENTS}\ntarget_accuracy: 0`), `${FL}.target_accuracy`, 'more than 0', 'found 0');
  expectError(config(`${CLIENTS}\nmax_rounds: 0`), `${FL}.max_rounds`, 'at least 1', 'found 0');
  expectError(config(`${CLIENTS}\nseed: -1`), `${FL}.seed`, 'at least 0', 'found -1');
  expectError(config(`${CLIENTS}\nseed: 4294967296`), `${FL}.seed`, 'less than 4294967296', 'found 4294967296');
  expectError(config(CLIENTS, 'providers:\n  local:\n    l: { pool_size: 0 }\n'), 'providers.local.l.pool_size', 'at least 1', 'found 0');
  expectError(config(`${CLIENTS}\nfunctions: { fl_client: { local: { timeout: soon } } }`), `${FL}.functions.fl_client.local.timeout`, '"300s"', 'found "soon"');
  expectError(config(`${CLIENTS}\nfunctions: { fl_client: { local: { memory: lots } } }`), `${FL}.functions.fl_client.local.memory`, '"2GB"', 'found "lots"');
});

test('missing required values', () => {
  expectError('scenarios: {}\n', 'name', 'expected a string, found nothing');
  expectError('name: x\n', 'scenarios', 'expected a mapping, found nothing');
  expectError(config('max_rounds: 3'), `${FL}.clients_info`, 'expected a mapping, found nothing');
  expectError(config('clients_info:'), `${FL}.clients_info`, 'found an empty value');
  expectError(config('clients_info: { total_num_clients: 4 }'), `${FL}.clients_info.num_clients_per_round`, 'expected an integer, found nothing');
});

test('mongo_config is answered, not ignored', () => {
  expectError(
    config(`${CLIENTS}\nmongo_config: { url: "mongo:27017", db: flweights, collection: mnist_weights }`),
    `${FL}.mongo_config`,
    'the MongoDB store is not available in this build',
    'store: {type: sqlite, path: ...}',
    'store: {type: postgres, url: ...}',
  );
});

test('store.type other than sqlite or postgres', () => {
  expectError(config(`${CLIENTS}\nstore: { type: mongodb }`), `${FL}.store.type`, 'expected one of sqlite, postgres', 'found "mongodb"');
  expectError(config(`${CLIENTS}\nstore: { type: postgress }`), `${FL}.store.type`, 'did you mean postgres?');
});

test('store: url required for postgres and must be a postgres URL; path only for sqlite; passwords never shown', () => {
  const url = 'postgres://fk:pw@db:5432/fl';
  expectError(config(`${CLIENTS}\nstore: { type: postgres }`), `${FL}.store.url`, 'expected a PostgreSQL URL', 'postgres://user:password@host:5432/database', '${DATABASE_URL}', 'found nothing');
  expectError(config(`${CLIENTS}\nstore: { type: postgres, url: }`), `${FL}.store.url`, 'found nothing');
  expectError(config(`${CLIENTS}\nstore: { type: postgres, url: "${url}", path: x.sqlite }`), `${FL}.store.path`, 'expected no path with type postgres', 'found "x.sqlite"');
  expectError(config(`${CLIENTS}\nstore: { url: "${url}" }`), `${FL}.store.url`, 'expected no url with type sqlite', 'set type: postgres');
  expectError(config(`${CLIENTS}\nstore: { type: sqlite, path: a.db, url: "${url}" }`), `${FL}.store.url`, 'expected no url with type sqlite');
  expectError(config(`${CLIENTS}\nstore: { type: postgres, url: 5432 }`), `${FL}.store.url`, 'expected a string', 'found 5432');
  expectError(config(`${CLIENTS}\nstore: { type: postgres, uri: "${url}" }`), `${FL}.store.uri`, 'did you mean url?');
  // a wrong scheme, an unparseable URL, a libpq keyword string: the message shows the value without its password
  for (const [bad, shown] of [
    ['mysql://fk:hunter22@db/fl', 'mysql://fk:***@db/fl'],
    ['postgres://fk:pa/ss@w0rd@db/fl', 'postgres://fk:***@db/fl'],
    ['host=db password=hunter22 dbname=fl', 'host=db password=*** dbname=fl'],
  ] as const) {
    const e = expectError(config(`${CLIENTS}\nstore: { type: postgres, url: "${bad}" }`), `${FL}.store.url`, 'expected a postgres:// or postgresql:// URL', `found "${shown}"`);
    for (const secret of ['hunter22', 'pa/ss', 'w0rd']) assert.equal(e.message.includes(secret), false, e.message);
  }
});

test('a bad store url from the environment is not shown at all', () => {
  let caught: unknown;
  try {
    parseConfig(config(`${CLIENTS}\nstore: { type: postgres, url: "\${DATABASE_URL}" }`), 'bad.yaml', { DATABASE_URL: 'mysql://fk:hunter22@db.internal/fl' });
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof ConfigError);
  assert.match(caught.message, /store\.url: expected a postgres:\/\/ or postgresql:\/\/ URL .*found "\*\*\*" \(hidden\)/);
  for (const secret of ['hunter22', 'db.internal', 'mysql']) assert.equal(caught.message.includes(secret), false, caught.message);
});

test('clients: per-round vs total, both at least 1, per-platform counts add up', () => {
  expectError(
    config('clients_info: { total_num_clients: 2, num_clients_per_round: 5 }'),
    `${FL}.clients_info.num_clients_per_round`,
    'total_num_clients (2)',
    'found 5',
  );
  expectError(config('clients_info: { total_num_clients: 0, num_clients_per_round: 1 }'), `${FL}.clients_info.total_num_clients`, 'at least 1', 'found 0');
  expectError(config('clients_info: { total_num_clients: 3, num_clients_per_round: 0 }'), `${FL}.clients_info.num_clients_per_round`, 'at least 1', 'found 0');
  expectError(
    config('clients_info: { total_num_clients: 4, num_clients_per_round: 2, ow_clients_count: 1, gcf_clients_count: 1 }'),
    `${FL}.clients_info`,
    'ow_clients_count + gcf_clients_count',
    'total_num_clients (4)',
    'found 1 + 1 = 2',
  );
  const ok = parseConfig(
    config('clients_info: { total_num_clients: 4, num_clients_per_round: 2, local_clients_count: 3, edge_clients_count: "1" }'),
    'ok.yaml',
    {},
  );
  assert.equal(ok.scenarios.federated_learning.clients_info.edge_clients_count, 1);
});

test('server_cluster_name must name a declared cluster', () => {
  expectError(
    config(`${CLIENTS}\nserver_config: { server_cluster_name: invasic }`, 'providers:\n  openwhisk:\n    invasic_cluster: {}\n'),
    `${FL}.server_config.server_cluster_name`,
    'providers',
    'openwhisk.invasic_cluster',
    'found "invasic"',
  );
  expectError(
    config(CLIENTS, 'providers:\n  openwhisk:\n    invasic_cluster: {}\n'),
    `${FL}.server_config.server_cluster_name`,
    'found nothing',
    'invasic_cluster',
  );
  expectError(config(`${CLIENTS}\nserver_config: { server_cluster_name: nope }`), `${FL}.server_config.server_cluster_name`, 'local.local', 'found "nope"');
  const cfg = parseConfig(config(`${CLIENTS}\nserver_config: { server_cluster_name: local }`), 'ok.yaml', {});
  assert.equal(cfg.scenarios.federated_learning.server_config.server_cluster_name, 'local');
});

test('data sampling: input_size, shards_per_client, alpha', () => {
  expectError(
    config(`${CLIENTS}\ndata_sampling: { input_size: 700 }`),
    `${FL}.data_sampling.input_size`,
    'input_shape_x * input_shape_y = 28 * 28 = 784',
    'found 700',
  );
  expectError(config(`${CLIENTS}\ndata_sampling: { partition: shards, shards_per_client: 0 }`), `${FL}.data_sampling.shards_per_client`, 'at least 1', 'found 0');
  expectError(config(`${CLIENTS}\ndata_sampling: { partition: dirichlet, alpha: 0 }`), `${FL}.data_sampling.alpha`, 'more than 0', 'found 0');
  const ok = parseConfig(config(`${CLIENTS}\ndata_sampling: { input_shape_x: 10, input_shape_y: 10, input_size: 100, alpha: "0.1" }`), 'ok.yaml', {});
  assert.equal(ok.scenarios.federated_learning.data_sampling.alpha, 0.1);
});

test('training_test_data: test_fraction range and complete idx urls', () => {
  expectError(config(`${CLIENTS}\ntraining_test_data: { test_fraction: 1 }`), `${FL}.training_test_data.test_fraction`, 'less than 1', 'found 1');
  expectError(config(`${CLIENTS}\ntraining_test_data: { test_fraction: 0 }`), `${FL}.training_test_data.test_fraction`, 'more than 0', 'found 0');
  expectError(
    config(`${CLIENTS}\ntraining_test_data: { train_images_url: a.gz }`),
    `${FL}.training_test_data.train_labels_url`,
    'train_labels_url, test_images_url, test_labels_url',
  );
  const ok = parseConfig(config(`${CLIENTS}\ntraining_test_data: { test_fraction: "0.1" }`), 'ok.yaml', {});
  assert.deepEqual(ok.scenarios.federated_learning.training_test_data, { dataset: 'mnist', test_fraction: 0.1 });
});

test('errors point at the line of the offending value', () => {
  const e = expectError(config(`${CLIENTS}\nmodel_params:\n  optim: rmsprop`), `${FL}.model_params.optim`);
  assert.match(e.message, /\(line 6\)$/);
});
