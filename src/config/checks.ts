/**
 * Cross-field checks of the federated-learning scenario. Each returns the problems found as issues whose path is
 * relative to the block it checks and whose message names both fields, what was expected and what was found.
 */
import { closest, describeValue, type ConfigPath } from './errors.js';

export interface CheckIssue {
  path: ConfigPath;
  message: string;
}

interface ClientCounts {
  total_num_clients: number;
  num_clients_per_round: number;
  local_clients_count?: number | undefined;
  ow_clients_count?: number | undefined;
  gcf_clients_count?: number | undefined;
  edge_clients_count?: number | undefined;
  lambda_clients_count?: number | undefined;
}

const PLATFORM_COUNTS = ['local_clients_count', 'ow_clients_count', 'gcf_clients_count', 'lambda_clients_count', 'edge_clients_count'] as const;

export function checkClients(c: ClientCounts): CheckIssue[] {
  const issues: CheckIssue[] = [];
  if (c.num_clients_per_round > c.total_num_clients) {
    issues.push({
      path: ['num_clients_per_round'],
      message:
        `expected at most total_num_clients (${c.total_num_clients}), found ${c.num_clients_per_round}; ` +
        'lower num_clients_per_round or raise total_num_clients',
    });
  }
  const given = PLATFORM_COUNTS.filter((k) => c[k] !== undefined);
  if (given.length > 0) {
    const sum = given.reduce((s, k) => s + (c[k] ?? 0), 0);
    if (sum !== c.total_num_clients) {
      issues.push({
        path: [],
        message:
          `expected ${given.join(' + ')} to equal total_num_clients (${c.total_num_clients}), ` +
          `found ${given.map((k) => c[k]).join(' + ')} = ${sum}; ` +
          'make the per-platform counts add up to total_num_clients',
      });
    }
  }
  return issues;
}

interface Shape {
  input_size: number;
  input_shape_x: number;
  input_shape_y: number;
}

export function checkDataSampling(d: Shape): CheckIssue[] {
  const expected = d.input_shape_x * d.input_shape_y;
  if (d.input_size === expected) return [];
  return [
    {
      path: ['input_size'],
      message:
        `expected input_shape_x * input_shape_y = ${d.input_shape_x} * ${d.input_shape_y} = ${expected}, ` +
        `found ${d.input_size}; make input_size match input_shape_x and input_shape_y`,
    },
  ];
}

/** `provider.cluster` for every cluster declared under every provider. */
export function listClusters(providers: Record<string, unknown>): { provider: string; cluster: string }[] {
  const out: { provider: string; cluster: string }[] = [];
  for (const [provider, clusters] of Object.entries(providers)) {
    if (clusters === null || typeof clusters !== 'object' || Array.isArray(clusters)) continue;
    for (const cluster of Object.keys(clusters)) out.push({ provider, cluster });
  }
  return out;
}

/** server_cluster_name must name a cluster under some provider. Path is relative to server_config. */
export function checkServerCluster(providers: Record<string, unknown>, name: string | undefined): CheckIssue[] {
  const clusters = listClusters(providers);
  const names = clusters.map((c) => `${c.provider}.${c.cluster}`);
  if (name === undefined) {
    return [
      {
        path: ['server_cluster_name'],
        message:
          'expected the name of the cluster that runs the server functions ' +
          '(there is no local cluster to default to), ' +
          `found nothing; add server_cluster_name: <one of ${clusters.map((c) => c.cluster).join(', ')}>`,
      },
    ];
  }
  if (clusters.some((c) => c.cluster === name)) return [];
  const guess = closest(name, clusters.map((c) => c.cluster));
  return [
    {
      path: ['server_cluster_name'],
      message:
        `expected a cluster declared under providers (${names.join(', ') || 'none'}), found ${describeValue(name)}` +
        (guess !== undefined ? `; did you mean ${guess}?` : '; declare it under providers or pick a declared one'),
    },
  ];
}
