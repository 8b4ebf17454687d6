/**
 * The seed's prometheus_config and configurations blocks of a cluster: the seed's own block parses (empty strings
 * are "not given", an empty host is this machine); bad values are one line naming the field and the fix, exit 2;
 * the providers never see the blocks; configurations are listed per platform:cluster.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clusterConfigurations } from '../../src/config/cluster-blocks.js';
import { ConfigError, parseConfig } from '../../src/config/index.js';
import { openClusters } from '../../src/keeper/plan.js';
import { prometheusTargets, PrometheusRounds } from '../../src/telemetry/prometheus-rounds.js';

const SEED_BLOCKS = `
      prometheus_config:
        host: ""
        port_openwhisk_metrics: "30325"
        port_node_metrics: "30471"
      configurations:
        num_hosts: 1
        each_host_cores: ""
        each_host_ram: 755gb
        gpu_enabled: false
        cuda_cores: ""
        platform: amd64
        host_names: invasic
        concurrency: "100"`;

function config(cluster: string): string {
  return `name: blocks
providers:
  local:
    box: { pool_size: 1 }
  openwhisk:
    ow1:
      api_host: https://ow.example.org
      auth: { ow_auth: "u:k" }${cluster}
scenarios:
  federated_learning:
    server_config: { server_cluster_name: box }
    clients_info: { total_num_clients: 2, num_clients_per_round: 1 }
`;
}

function expectError(text: string, path: string, ...parts: string[]): void {
  let caught: unknown;
  try {
    parseConfig(text, 'bad.yaml', {});
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof ConfigError, 'a ConfigError');
  assert.equal(caught.exitCode, 2);
  assert.ok(caught.message.startsWith(`config bad.yaml: ${path}: `), caught.message);
  assert.equal(caught.message.includes('\n'), false);
  for (const p of parts) assert.ok(caught.message.includes(p), `${JSON.stringify(p)} in ${caught.message}`);
}

test("the seed's blocks parse: empty host is this machine, empty values are absent, numbers from strings", () => {
  const cfg = parseConfig(config(SEED_BLOCKS), 'seed.yaml', {});
  const [t, ...rest] = prometheusTargets(cfg);
  assert.equal(rest.length, 0);
  assert.deepEqual(t, { platform: 'openwhisk', cluster: 'ow1', config: { host: 'http://127.0.0.1', port_openwhisk_metrics: 30325, port_node_metrics: 30471, scrape_wait: 30_000 } });
  assert.deepEqual(clusterConfigurations(cfg.providers as unknown as Record<string, unknown>), {
    'openwhisk:ow1': { num_hosts: 1, each_host_ram: '755gb', gpu_enabled: false, platform: 'amd64', host_names: ['invasic'], concurrency: 100 },
  });
  assert.deepEqual(new PrometheusRounds(prometheusTargets(cfg)).columns(), [
    'prom_activations:ow1', 'prom_cold_starts:ow1', 'prom_wait_s:ow1', 'prom_node_cpu_busy:ow1', 'prom_node_mem_used_mb:ow1',
  ]);
});

test('hosts: names, IPs and http(s) URLs; a port in host or a path is refused', () => {
  const host = (h: string) => prometheusTargets(parseConfig(config(`\n      prometheus_config: { host: ${JSON.stringify(h)}, port_node_metrics: 9100, scrape_wait: 0 }`), 'ok.yaml', {}))[0]!.config;
  assert.equal(host('prom.example.org').host, 'http://prom.example.org');
  assert.equal(host('10.0.0.5').host, 'http://10.0.0.5');
  assert.equal(host('https://prom.example.org/').host, 'https://prom.example.org');
  assert.equal(host('::1').host, 'http://[::1]');
  assert.equal(host('x').scrape_wait, 0);
  const P = 'providers.openwhisk.ow1.prometheus_config';
  expectError(config('\n      prometheus_config: { host: "10.0.0.5:9090", port_node_metrics: 9100 }'), `${P}.host`, 'without a port', '"10.0.0.5:9090"');
  expectError(config('\n      prometheus_config: { host: "http://h/prom", port_node_metrics: 9100 }'), `${P}.host`, 'expected the host');
});

test('bad prometheus_config values: one line naming the field and the fix', () => {
  const P = 'providers.openwhisk.ow1.prometheus_config';
  expectError(config('\n      prometheus_config: { port_openwhisk_metrics: "http" }'), `${P}.port_openwhisk_metrics`, 'expected an integer', '"http"');
  expectError(config('\n      prometheus_config: { port_openwhisk_metrics: 70000 }'), `${P}.port_openwhisk_metrics`, 'at most 65535', '70000');
  expectError(config('\n      prometheus_config: { host: h }'), `${P}.port_openwhisk_metrics`, 'expected port_openwhisk_metrics or port_node_metrics', 'found neither');
  expectError(config('\n      prometheus_config: { port_node_metric: 9100 }'), `${P}.port_node_metric`, 'unknown key', 'did you mean port_node_metrics?');
  expectError(config('\n      prometheus_config: { port_node_metrics: 9100, scrape_wait: soon }'), `${P}.scrape_wait`, 'expected a duration', '"soon"');
});

test('bad configurations values: one line naming the field', () => {
  const C = 'providers.openwhisk.ow1.configurations';
  expectError(config('\n      configurations: { each_host_ram: lots }'), `${C}.each_host_ram`, 'expected a memory size', '"lots"');
  expectError(config('\n      configurations: { num_hosts: 0 }'), `${C}.num_hosts`, 'at least 1');
  expectError(config('\n      configurations: { gpu_enabled: maybe }'), `${C}.gpu_enabled`, 'true or false', '"maybe"');
  expectError(config('\n      configurations: { host_name: a }'), `${C}.host_name`, 'did you mean host_names?');
});

test('the blocks are allowed on local clusters too, and never reach a provider block', async () => {
  const cfg = parseConfig(
    `name: b
providers:
  local:
    box: { pool_size: 1, configurations: { platform: arm64, host_names: [pi1, pi2] }, prometheus_config: { port_node_metrics: 9090 } }
scenarios:
  federated_learning:
    clients_info: { total_num_clients: 2, num_clients_per_round: 1 }
`,
    'ok.yaml',
    {},
  );
  assert.deepEqual(clusterConfigurations(cfg.providers as unknown as Record<string, unknown>), { 'local:box': { platform: 'arm64', host_names: ['pi1', 'pi2'] } });
  assert.equal(prometheusTargets(cfg)[0]!.cluster, 'box');
});

test('a Lambda cluster (whose provider refuses unknown keys) accepts the blocks: the keeper takes them off', async () => {
  const cfg = parseConfig(
    `name: b
providers:
  local:
    box: { pool_size: 1 }
  lambda:
    aws:
      region: eu-west-1
      role: arn:aws:iam::123456789012:role/fl
      prometheus_config: { host: prom.example.org, port_node_metrics: 9090 }
      configurations: { num_hosts: 3 }
scenarios:
  federated_learning:
    server_config: { server_cluster_name: box }
    clients_info: { total_num_clients: 2, num_clients_per_round: 1 }
`,
    'ok.yaml',
    {},
  );
  const open = await openClusters(cfg, '/nonexistent-state');
  try {
    const aws = open.clusters.get('aws')!;
    assert.equal(aws.platform, 'lambda');
    assert.equal('prometheus_config' in aws.settings, false);
    assert.equal('configurations' in aws.settings, false);
  } finally {
    await open.close();
  }
});
