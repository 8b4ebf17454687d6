/**
 * The deployment plan: which provider object serves each cluster, which functions go where (server functions on
 * server_cluster_name, client functions on every client cluster), and which cluster hosts each client.
 */
import os from 'node:os';
import path from 'node:path';
import type { FedKeeperConfig, FunctionPlatformSettings } from '../config/types.js';
import { LocalProvider } from '../providers/local.js';
import type { FunctionSpec, Provider } from '../providers/types.js';
import { BadInputError } from './errors.js';

export interface ClusterRef {
  platform: string;
  cluster: string;
}

export interface DeploymentPlan {
  providers: Map<string, Provider>;
  serverCluster: string;
  serverFunctions: string[];
  clientFunctions: string[];
  clientClusters: string[];
  /** clientId → cluster name. */
  placement: string[];
  /** Function specs per (cluster, function). */
  specs: Map<string, FunctionSpec[]>;
}

const DEFAULT_SETTINGS: FunctionPlatformSettings = { timeout: 300_000, memory: 2048 };

export function functionSpec(cfg: FedKeeperConfig, name: string, platform: string): FunctionSpec {
  const s = cfg.scenarios.federated_learning.functions[name]?.[platform] ?? DEFAULT_SETTINGS;
  return { name, timeoutMs: s.timeout, memoryMb: s.memory, settings: s };
}

export function buildPlan(cfg: FedKeeperConfig, stateDir: string): DeploymentPlan {
  const fl = cfg.scenarios.federated_learning;
  for (const platform of ['openwhisk', 'google'] as const) {
    const names = Object.keys(cfg.providers[platform] ?? {});
    if (names.length) {
      throw new BadInputError(
        `providers.${platform}.${names[0]}: the ${platform} provider is not available in this version; use providers.local for the embedded fabric`,
      );
    }
  }
  const providers = new Map<string, Provider>();
  for (const [cluster, c] of Object.entries(cfg.providers.local)) {
    providers.set(cluster, new LocalProvider({ cluster, poolSize: c.pool_size ?? os.availableParallelism(), stateDir: path.join(stateDir, 'local') }));
  }
  if (providers.size === 0) throw new BadInputError('providers: no cluster is configured; add providers.local.<name>');
  const serverCluster = fl.server_config.server_cluster_name;
  if (!providers.has(serverCluster)) {
    throw new BadInputError(`scenarios.federated_learning.server_config.server_cluster_name: no cluster named "${serverCluster}" under providers`);
  }
  const clientClusters = [...providers.keys()];
  const total = fl.clients_info.total_num_clients;
  const placement = Array.from({ length: total }, (_, i) => clientClusters[i % clientClusters.length]!);
  const specs = new Map<string, FunctionSpec[]>();
  const add = (cluster: string, fn: string) => {
    const platform = providers.get(cluster)!.platform;
    const list = specs.get(cluster) ?? [];
    if (!list.some((s) => s.name === fn)) list.push(functionSpec(cfg, fn, platform));
    specs.set(cluster, list);
  };
  for (const fn of fl.server_config.server_manager_functions) add(serverCluster, fn);
  for (const cluster of clientClusters) for (const fn of fl.clients_info.client_functions) add(cluster, fn);
  return {
    providers,
    serverCluster,
    serverFunctions: fl.server_config.server_manager_functions,
    clientFunctions: fl.clients_info.client_functions,
    clientClusters,
    placement,
    specs,
  };
}
