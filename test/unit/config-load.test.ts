import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig, parseConfig, parseDurationMs, parseMemoryMB } from '../../src/config/index.js';

const MINIMAL = `
name: quickstart
scenarios:
  federated_learning:
    clients_info: { total_num_clients: 4, num_clients_per_round: 2 }
`;

/** The seed's sample (original Python tool), minus mongo_config, plus a store. */
const SEED_SAMPLE = `
version: 0.1
name: test_mnist_nn_100_clients_adam_10_local_epochs_fixed_final_training_time
providers:
  openwhisk:
    invasic_cluster:
      base_url: "https://<ADD OW_AUTH here>@<ADD_IP_HERE>:31001/api/v1/namespaces/guest/actions/"
      auth: { ow_auth: <key>, ow_api_host: <host>, ow_apigw_access_token: APIGW_ACCESS_TOKEN }
      configurations: { num_hosts: 1, concurrency: "100" }
  google:
    gcf_cluster:
      base_url: "https://us-central1-PROJECT.cloudfunctions.net/"
      auth: { type: service_account, project_id: "", private_key: "" }
scenarios:
  federated_learning:
    server_config:
      server_cluster_name: invasic_cluster
      server_manager_functions: [fl_server_init, fl_server_aggregator, fl_invoker_weights_update]
    clients_info:
      total_num_clients: 2
      num_clients_per_round: 2
      edge_clients_count: 0
      ow_clients_count: 1
      gcf_clients_count: 1
      client_functions: [fl_client]
    data_sampling: { input_size: 784, hidden_size: 500, output_size: 10, input_shape_x: 28, input_shape_y: 28, batch_size: 10, model: "cnn" }
    store: { type: sqlite, path: runs/store.sqlite }
    training_test_data: { train_images_url: "https://example.org/mnist_train_img.obj", train_labels_url: "https://example.org/a", test_images_url: "https://example.org/b", test_labels_url: "https://example.org/c" }
    model_params: { lr: "1e-3", optim: "adam", local_epochs: "5" }
    functions:
      fl_client:
        openwhisk: { func_path: functions/fl_client/openwhisk/main.py, docker_image: kkyfury/tensorflow, memory: "2048", timeout: "300000", concurrency: "100" }
        google: { func_path: functions/fl_client/google/, memory: 2048MB, timeout: 300s, region: us-central1, runtime: python37, entry-point: main }
  test:
    functions:
      nodeinfo:
        openwhisk: { func_path: ./functions/nodeinfo/openwhisk/handler.js, memory: "256", runtime: nodejs:14, timeout: "60000" }
`;

test('minimal config gets every default', () => {
  const cfg = parseConfig(MINIMAL, 'min.yaml', {});
  assert.equal(cfg.version, '0.1');
  assert.equal(cfg.name, 'quickstart');
  assert.equal(cfg.output_dir, 'runs');
  assert.deepEqual(Object.keys(cfg.providers.local), ['local']);
  assert.equal(cfg.providers.local.local!.pool_size, os.availableParallelism());
  assert.deepEqual(cfg.providers.openwhisk, {});
  assert.deepEqual(cfg.providers.google, {});
  const fl = cfg.scenarios.federated_learning;
  assert.deepEqual(fl.server_config, {
    server_cluster_name: 'local',
    server_manager_functions: ['fl_server_init', 'fl_server_aggregator'],
  });
  assert.deepEqual(fl.clients_info, { total_num_clients: 4, num_clients_per_round: 2, client_functions: ['fl_client'] });
  assert.deepEqual(fl.data_sampling, {
    input_size: 784, hidden_size: 500, output_size: 10, input_shape_x: 28, input_shape_y: 28, batch_size: 10,
    model: 'cnn', partition: 'iid', shards_per_client: 2, alpha: 0.5,
  });
  assert.deepEqual(fl.model_params, { lr: 1e-3, optim: 'adam', local_epochs: 1 });
  assert.deepEqual(fl.training_test_data, { dataset: 'mnist', test_fraction: 0.2 });
  assert.deepEqual(fl.store, { type: 'sqlite', path: '.fedkeeper/store.sqlite' });
  assert.deepEqual(fl.functions, {});
  assert.equal(fl.target_accuracy, 1);
  assert.equal(fl.max_rounds, 10);
  assert.equal(fl.seed, 0);
  assert.equal('mongo_config' in fl, false);
});

test('seed-sample-shaped config parses with numeric strings and units normalised', () => {
  const cfg = parseConfig(SEED_SAMPLE, 'seed.yaml', {});
  assert.equal(cfg.version, '0.1');
  assert.deepEqual(cfg.providers.local, {}, 'no local cluster is added when other providers declare clusters');
  assert.deepEqual(Object.keys(cfg.providers.openwhisk), ['invasic_cluster']);
  assert.equal(cfg.providers.openwhisk.invasic_cluster!.configurations !== undefined, true, 'cluster keys are kept');
  const fl = cfg.scenarios.federated_learning;
  assert.equal(fl.server_config.server_cluster_name, 'invasic_cluster');
  assert.equal(fl.server_config.server_manager_functions.length, 3);
  assert.equal(fl.clients_info.ow_clients_count, 1);
  assert.equal(fl.model_params.lr, 0.001);
  assert.equal(fl.model_params.local_epochs, 5);
  assert.equal(fl.training_test_data.dataset, 'idx');
  const ow = fl.functions.fl_client!.openwhisk!;
  const gcf = fl.functions.fl_client!.google!;
  assert.equal(ow.memory, 2048);
  assert.equal(ow.timeout, 300000);
  assert.equal(ow.concurrency, '100', 'other platform keys are passed through');
  assert.equal(gcf.memory, 2048);
  assert.equal(gcf.timeout, 300000);
  assert.equal(gcf['entry-point'], 'main');
  assert.deepEqual(fl.store, { type: 'sqlite', path: 'runs/store.sqlite' });
  assert.ok(cfg.scenarios.test, 'other scenarios are kept');
});

test('a local provider plus the seed scenario defaults server_cluster_name to the first local cluster', () => {
  const text = `
name: mixed
providers:
  local:
    laptop: { pool_size: "3" }
    other: {}
  openwhisk:
    ow1: { base_url: "http://ow" }
scenarios:
  federated_learning:
    clients_info: { total_num_clients: 3, num_clients_per_round: 2, local_clients_count: 2, ow_clients_count: 1 }
    functions:
      fl_client:
        local: {}
        openwhisk: { memory: 2GB, timeout: 5m }
`;
  const cfg = parseConfig(text, 'mixed.yaml', {});
  assert.equal(cfg.providers.local.laptop!.pool_size, 3);
  assert.equal(cfg.providers.local.other!.pool_size, os.availableParallelism());
  const fl = cfg.scenarios.federated_learning;
  assert.equal(fl.server_config.server_cluster_name, 'laptop');
  assert.deepEqual(fl.functions.fl_client!.local, { timeout: 300000, memory: 2048 });
  assert.deepEqual(fl.functions.fl_client!.openwhisk, { timeout: 300000, memory: 2048 });
});

test('unit parsers', () => {
  assert.equal(parseMemoryMB('2048MB'), 2048);
  assert.equal(parseMemoryMB('2GB'), 2048);
  assert.equal(parseMemoryMB(512), 512);
  assert.equal(parseMemoryMB('lots'), undefined);
  assert.equal(parseDurationMs('300s'), 300000);
  assert.equal(parseDurationMs('5m'), 300000);
  assert.equal(parseDurationMs('300000'), 300000);
  assert.equal(parseDurationMs(1500), 1500);
  assert.equal(parseDurationMs('250ms'), 250);
  assert.equal(parseDurationMs('soon'), undefined);
});

test('loadConfig reads a file; missing file, syntax error and empty file are ConfigErrors', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'fk-config-'));
  try {
    const good = path.join(dir, 'good.yaml');
    await writeFile(good, MINIMAL);
    const cfg = await loadConfig(good, {});
    assert.equal(cfg.name, 'quickstart');

    const missing = path.join(dir, 'nope.yaml');
    await assert.rejects(loadConfig(missing, {}), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.name, 'ConfigError');
      assert.equal(e.exitCode, 2);
      assert.equal(e.message, `config ${missing}: file not found`);
      return true;
    });

    const bad = path.join(dir, 'bad.yaml');
    await writeFile(bad, 'name: x\nscenarios: [1, 2\nfoo: 1\n');
    await assert.rejects(loadConfig(bad, {}), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, new RegExp(`^config ${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: YAML syntax error at line \\d+, column \\d+: `));
      assert.equal(e.message.includes('\n'), false);
      return true;
    });

    const empty = path.join(dir, 'empty.yaml');
    await writeFile(empty, '# nothing here\n');
    await assert.rejects(loadConfig(empty, {}), /the file is empty/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('duplicate keys and a non-mapping top level are reported', () => {
  assert.throws(() => parseConfig('name: a\nname: b\n', 'dup.yaml', {}), /config dup\.yaml: YAML syntax error at line 2, column 1: .*unique/);
  assert.throws(() => parseConfig('- a\n- b\n', 'list.yaml', {}), /config list\.yaml: \(top level\): expected a mapping .* found a list/);
});

test('store: sqlite with a path, or postgres with a url (also from ${DATABASE_URL})', () => {
  const store = (yaml: string, env: NodeJS.ProcessEnv = {}) =>
    parseConfig(`${MINIMAL}    store: ${yaml}\n`, 'store.yaml', env).scenarios.federated_learning.store;
  assert.deepEqual(store('{ type: sqlite }'), { type: 'sqlite', path: '.fedkeeper/store.sqlite' });
  assert.deepEqual(store('{ path: my.sqlite }'), { type: 'sqlite', path: 'my.sqlite' });
  assert.deepEqual(store('{ type: postgres, url: "postgres://fk:pw@db:5432/fl" }'), { type: 'postgres', url: 'postgres://fk:pw@db:5432/fl' });
  assert.deepEqual(store('{ type: PostgreS, url: "postgresql://db/fl?sslmode=require" }'), { type: 'postgres', url: 'postgresql://db/fl?sslmode=require' });
  const url = 'postgres://fk:s3cret@db.internal:5432/fl';
  assert.deepEqual(store('{ type: postgres, url: "${DATABASE_URL}" }', { DATABASE_URL: url }), { type: 'postgres', url });
});
