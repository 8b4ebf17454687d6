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

test('redactConfig: the store URL never shows its password, from the environment or written in the file', () => {
  const fl = (store: string) => `name: s\nscenarios:\n  federated_learning:\n    clients_info: { total_num_clients: 2, num_clients_per_round: 1 }\n    store: ${store}\n`;
  const fromEnv = parseConfig(fl('{ type: postgres, url: "${DATABASE_URL}" }'), 'pg.yaml', { DATABASE_URL: 'postgres://fk:Sup3rSecret@db:5432/fl' });
  assert.equal(fromEnv.scenarios.federated_learning.store.type, 'postgres');
  const red = redactConfig(fromEnv) as typeof fromEnv;
  assert.deepEqual(red.scenarios.federated_learning.store, { type: 'postgres', url: '***' });
  assert.equal(JSON.stringify(red).includes('Sup3rSecret'), false);

  for (const [url, shown] of [
    ['postgres://fk:Sup3rSecret@db:5432/fl', 'postgres://fk:***@db:5432/fl'],
    ['postgresql://fk:Sup3r%40Secret@db/fl?sslmode=require', 'postgresql://fk:***@db/fl?sslmode=require'],
    ['postgres://fk@db/fl?password=Sup3rSecret&sslmode=require', 'postgres://fk@db/fl?password=***&sslmode=require'],
    ['postgres://db/fl', 'postgres://db/fl'],
  ] as const) {
    const literal = parseConfig(fl(`{ type: postgres, url: "${url}" }`), 'pg.yaml', {});
    const out = redactConfig(literal) as typeof literal;
    assert.deepEqual(out.scenarios.federated_learning.store, { type: 'postgres', url: shown });
    assert.equal(JSON.stringify(out).includes('Sup3r'), false, JSON.stringify(out));
    assert.equal(literal.scenarios.federated_learning.store.type === 'postgres' && literal.scenarios.federated_learning.store.url, url, 'the config itself keeps the real URL');
  }
});

test('redactConfig: password= parameters in any string are hidden', () => {
  const red = redactConfig({ note: 'host=db password=hunter2 dbname=x', link: 'https://h/p?password=hunter2&a=1' }) as Record<string, string>;
  assert.equal(red.note, 'host=db password=*** dbname=x');
  assert.equal(red.link, 'https://h/p?password=***&a=1');
});
