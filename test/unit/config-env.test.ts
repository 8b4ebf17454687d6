import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, isSecretKey, parseConfig, redactConfig } from '../../src/config/index.js';

const TEXT = `
name: \${RUN_NAME:-env_demo}
output_dir: \${OUT_DIR}
providers:
  openwhisk:
    ow1:
      base_url: "https://user:hunter2@ow.example:31001/api/v1/"
      auth: { ow_auth: "\${OW_AUTH}", ow_api_host: "\${OW_HOST}" }
      region: "\${REGION:-eu}"
  google:
    gcf1:
      auth: { type: service_account, private_key: "-----BEGIN KEY-----" }
      api_token: literal-token
scenarios:
  federated_learning:
    server_config: { server_cluster_name: "\${SERVER:-ow1}" }
    clients_info: { total_num_clients: "\${CLIENTS}", num_clients_per_round: 2 }
    functions:
      fl_client:
        openwhisk: { memory: "\${MEM:-1GB}", timeout: 90s, docker_image: "img:\${TAG}" }
`;

const ENV = { OUT_DIR: 'my-runs', OW_AUTH: 'ow-secret-123', OW_HOST: 'ow.internal', CLIENTS: '6', TAG: 'v7' };

test('${VAR} and ${VAR:-default} are substituted anywhere in string values', () => {
  const cfg = parseConfig(TEXT, 'env.yaml', ENV);
  assert.equal(cfg.name, 'env_demo');
  assert.equal(cfg.output_dir, 'my-runs');
  const ow1 = cfg.providers.openwhisk.ow1!;
  assert.deepEqual(ow1.auth, { ow_auth: 'ow-secret-123', ow_api_host: 'ow.internal' });
  assert.equal(ow1.region, 'eu');
  const fl = cfg.scenarios.federated_learning;
  assert.equal(fl.server_config.server_cluster_name, 'ow1');
  assert.equal(fl.clients_info.total_num_clients, 6);
  assert.equal(fl.functions.fl_client!.openwhisk!.memory, 1024);
  assert.equal(fl.functions.fl_client!.openwhisk!.timeout, 90000);
  assert.equal(fl.functions.fl_client!.openwhisk!.docker_image, 'img:v7');
});

test('an empty variable takes the default; a set variable overrides it', () => {
  const cfg = parseConfig(TEXT, 'env.yaml', { ...ENV, RUN_NAME: '', REGION: 'us' });
  assert.equal(cfg.name, 'env_demo');
  assert.equal(cfg.providers.openwhisk.ow1!.region, 'us');
});

test('an unset variable without default names the path and the variable', () => {
  const { OW_AUTH: _omit, ...env } = ENV;
  assert.throws(
    () => parseConfig(TEXT, 'env.yaml', env),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /^config env\.yaml: providers\.openwhisk\.ow1\.auth\.ow_auth: environment variable OW_AUTH is not set/);
      assert.ok(e.message.includes('${OW_AUTH:-'), 'suggests a default');
      assert.equal(e.message.includes('\n'), false);
      return true;
    },
  );
});

test('a bad value from the environment is reported without showing it', () => {
  assert.throws(
    () => parseConfig(TEXT, 'env.yaml', { ...ENV, CLIENTS: 'many-secret', MEM: 'huge-secret' }),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /clients_info\.total_num_clients: expected an integer, found "\*\*\*" \(hidden\)/);
      for (const line of [e.message, ...e.more]) assert.equal(line.includes('secret'), false, line);
      return true;
    },
  );
});

test('redactConfig hides env-derived values, secret keys and URL credentials; the original is untouched', () => {
  const cfg = parseConfig(TEXT, 'env.yaml', ENV);
  const red = redactConfig(cfg) as typeof cfg;
  const json = JSON.stringify(red);
  for (const secret of ['ow-secret-123', 'ow.internal', 'hunter2', 'BEGIN KEY', 'literal-token', 'my-runs', 'v7']) {
    assert.equal(json.includes(secret), false, `${secret} leaked: ${json}`);
  }
  assert.equal(red.providers.openwhisk.ow1!.auth, '***');
  assert.equal(red.providers.google.gcf1!.auth, '***');
  assert.equal(red.providers.google.gcf1!.api_token, '***');
  assert.equal(red.providers.openwhisk.ow1!.base_url, 'https://***@ow.example:31001/api/v1/');
  assert.equal(red.output_dir, '***');
  assert.equal(red.scenarios.federated_learning.clients_info.total_num_clients as unknown, '***');
  // values that did not come from the environment stay readable
  assert.equal(red.name, 'env_demo');
  assert.equal(red.providers.openwhisk.ow1!.region, 'eu');
  assert.equal(red.scenarios.federated_learning.model_params.lr, 0.001);
  // a deep copy: the config itself still has the real values
  assert.deepEqual(cfg.providers.openwhisk.ow1!.auth, { ow_auth: 'ow-secret-123', ow_api_host: 'ow.internal' });
  assert.equal(cfg.output_dir, 'my-runs');
});

test('secret-looking keys', () => {
  for (const k of ['auth', 'ow_auth', 'private_key', 'apiKey', 'api-key', 'ow_apigw_access_token', 'password', 'client_secret']) {
    assert.equal(isSecretKey(k), true, k);
  }
  for (const k of ['base_url', 'monkey', 'memory', 'tokens_per_s', 'keyboard', 'region']) assert.equal(isSecretKey(k), false, k);
});
