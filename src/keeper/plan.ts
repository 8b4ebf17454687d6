/**
 * The deployment plan: one provider object per cluster of the config (local, OpenWhisk and AWS Lambda — remote or
 * started here by the fabric — and Google Cloud Functions), which functions go where (server functions on server_cluster_name,
 * client functions on every cluster that hosts clients), which cluster hosts each client, and whether a client
 * reaches the store itself or through the relay function (`fl_invoker_weights_update`).
 */
import os from 'node:os';
import path from 'node:path';
import type { FedKeeperConfig, FunctionPlatformSettings } from '../config/types.js';
import { isUrl } from '../ml/datasets.js';
import { blasPlatformEnv } from '../ml/blas-select.js';
import { localNativeAddon } from '../ml/native.js';
import { createGoogleProvider } from '../providers/google.js';
import { LocalProvider } from '../providers/local.js';
import { LambdaProvider } from '../providers/lambda.js';
import { OpenWhiskProvider, openWhiskOptions } from '../providers/openwhisk.js';
import type { FunctionSpec, Provider } from '../providers/types.js';
import { BadInputError } from './errors.js';
import { launchLocalClusters, type LaunchedFabric, type LocalClusterRequest } from './fabric-launcher.js';
import { placeClients, type ClientGroup, type ClusterSlot } from './placement.js';

export { RELAY_FUNCTION } from './packages.js';
import { RELAY_FUNCTION } from './packages.js';

/** Keys of a cluster block that the keeper reads (placement), not the provider. */
const KEEPER_KEYS = ['clients', 'edge', 'store_access', 'local', 'max_package_mb', 'max_payload_mb', 'prometheus_config', 'configurations'] as const;

export interface ClusterPlan {
  name: string;
  platform: 'local' | 'openwhisk' | 'google' | 'lambda';
  provider: Provider;
  group: ClientGroup;
  /** Runs on this machine (can open the SQLite store). */
  onThisMachine: boolean;
  storeAccess: 'direct' | 'relay';
  /** The provider block as the relay needs it to reach this cluster (API host resolved). */
  settings: Record<string, unknown>;
  /** The cluster's own limit on a function package (`max_package_mb`), if its block sets one. */
  maxPackageMb?: number;
  /** The cluster's limit on an invocation's payload and on a result (`max_payload_mb`), if its block sets one. */
  maxPayloadMb?: number;
}

export interface DeploymentPlan {
  clusters: Map<string, ClusterPlan>;
  serverCluster: string;
  serverFunctions: string[];
  clientFunctions: string[];
  /** clientId → cluster name. */
  placement: string[];
  /** Function specs per cluster. */
  specs: Map<string, FunctionSpec[]>;
  /** Stops what the plan started (the local fabric) and releases the providers. */
  close(): Promise<void>;
}

const DEFAULT_SETTINGS: FunctionPlatformSettings = { timeout: 300_000, memory: 2048 };

export function functionSpec(cfg: FedKeeperConfig, name: string, platform: string): FunctionSpec {
  const s = cfg.scenarios.federated_learning.functions[name]?.[platform] ?? DEFAULT_SETTINGS;
  return { name, timeoutMs: s.timeout, memoryMb: s.memory, settings: s };
}

function providerBlock(raw: Record<string, unknown>): Record<string, unknown> {
  const out = { ...raw };
  for (const k of KEEPER_KEYS) delete out[k];
  return out;
}

function clientsOf(cluster: string, raw: Record<string, unknown>): number | undefined {
  if (raw.clients === undefined) return undefined;
  const n = Number(raw.clients);
  if (!Number.isInteger(n) || n < 0) throw new BadInputError(`providers.*.${cluster}.clients: expected a whole number ≥ 0, found ${JSON.stringify(raw.clients)}`);
  return n;
}

/**
 * What a function away from this machine cannot reach: a SQLite store (a file here, served to this machine's
 * functions only) and a dataset that is not at http(s) URLs (the embedded digits, local files). Undefined if it can.
 */
export function unreachableFromElsewhere(cfg: FedKeeperConfig): string | undefined {
  const fl = cfg.scenarios.federated_learning;
  if (fl.store.type !== 'postgres') return `the ${fl.store.type} store is a file on this machine (use store: {type: postgres, url: …} that the cluster can reach)`;
  const d = fl.training_test_data;
  if (d.dataset !== 'idx') return 'the embedded mnist digits exist only on this machine (use dataset: idx with http(s) URLs the cluster can fetch)';
  const local = [d.train_images_url, d.train_labels_url, d.test_images_url, d.test_labels_url].find((u) => !isUrl(u));
  if (local) return `the dataset file ${local} exists only on this machine (use http(s) URLs the cluster can fetch)`;
  return undefined;
}

function storeAccessOf(cfg: FedKeeperConfig, cluster: string, raw: Record<string, unknown>, onThisMachine: boolean): 'direct' | 'relay' {
  const v = raw.store_access ?? (onThisMachine ? 'direct' : 'relay');
  if (v !== 'direct' && v !== 'relay') throw new BadInputError(`providers.*.${cluster}.store_access: expected direct or relay, found ${JSON.stringify(v)}`);
  const why = v === 'direct' && !onThisMachine ? unreachableFromElsewhere(cfg) : undefined;
  if (why) throw new BadInputError(`providers.*.${cluster}.store_access: direct, but ${cluster} is not on this machine and ${why}; or use store_access: relay`);
  return v;
}

function sizeMbOf(cluster: string, raw: Record<string, unknown>, key: 'max_package_mb' | 'max_payload_mb'): number | undefined {
  if (raw[key] === undefined) return undefined;
  const n = Number(raw[key]);
  if (!(n > 0)) throw new BadInputError(`providers.*.${cluster}.${key}: expected a size in MB > 0, found ${JSON.stringify(raw[key])}`);
  return n;
}

/**
 * What the local platforms started here hand their containers: the native addon's path, when built, and the
 * OpenBLAS core its kernels run (decided here once — probe, cache or the user's OPENBLAS_CORETYPE — so that no
 * container probes; README, "Faster training").
 */
export function localPlatformEnv(): Record<string, string> {
  const addon = localNativeAddon();
  return addon ? { FEDKEEPER_NATIVE_ADDON: addon, ...blasPlatformEnv(addon) } : {};
}

/** payloadMaxMb of a local OpenWhisk cluster's profile, if it sets one. */
function profilePayloadMb(local: Record<string, unknown> | undefined): unknown {
  const p = local?.profile;
  return typeof p === 'object' && p !== null ? (p as { payloadMaxMb?: unknown }).payloadMaxMb : undefined;
}

function isEdgeProfile(profile: unknown): boolean {
  return profile === 'edge' || (typeof profile === 'object' && profile !== null && (profile as { base?: unknown }).base === 'edge');
}

function optionalMb(cluster: string, raw: Record<string, unknown>): { maxPackageMb?: number; maxPayloadMb?: number } {
  const pkg = sizeMbOf(cluster, raw, 'max_package_mb');
  const payload = sizeMbOf(cluster, raw, 'max_payload_mb');
  return { ...(pkg !== undefined ? { maxPackageMb: pkg } : {}), ...(payload !== undefined ? { maxPayloadMb: payload } : {}) };
}

/**
 * A local Lambda platform's block: the region (default us-east-1) and the access key it checks SigV4 against —
 * the config's, or a fixed local pair (a local platform guards nothing of value; a real account's keys never
 * default).
 */
function localLambdaBlock(cluster: string, block: Record<string, unknown>): Record<string, unknown> {
  const c = (block.credentials ?? {}) as Record<string, unknown>;
  const id = (c.access_key_id ?? block.access_key_id ?? LOCAL_LAMBDA_KEY.id) as string;
  const secret = (c.secret_access_key ?? block.secret_access_key ?? LOCAL_LAMBDA_KEY.secret) as string;
  if (typeof id !== 'string' || typeof secret !== 'string' || !id || !secret) {
    throw new BadInputError(`providers.lambda.${cluster}.credentials: expected access_key_id and secret_access_key strings`);
  }
  const { access_key_id: _a, secret_access_key: _s, session_token: _t, ...rest } = block;
  return { ...rest, region: block.region ?? 'us-east-1', credentials: { access_key_id: id, secret_access_key: secret } };
}

/** The key pair of a local Lambda platform whose block names none. */
export const LOCAL_LAMBDA_KEY = { id: 'AKIAFEDKEEPERLOCAL00', secret: 'fedkeeper-local-lambda-secret' } as const;

export interface OpenClusters {
  clusters: Map<string, ClusterPlan>;
  close(): Promise<void>;
}

/** A provider object for every cluster of the config; starts the local fabric (OpenWhisk and Lambda clusters with a `local` block) if the config has one. */
export async function openClusters(cfg: FedKeeperConfig, stateDir: string): Promise<OpenClusters> {
  const fl = cfg.scenarios.federated_learning;
  const clusters = new Map<string, ClusterPlan>();
  const add = (c: ClusterPlan) => {
    if (clusters.has(c.name)) throw new BadInputError(`providers: the cluster name "${c.name}" is used twice; cluster names must be unique across providers`);
    clusters.set(c.name, c);
  };

  for (const [name, c] of Object.entries(cfg.providers.local)) {
    const raw = c as unknown as Record<string, unknown>;
    add({
      name,
      platform: 'local',
      provider: new LocalProvider({ cluster: name, poolSize: c.pool_size ?? os.availableParallelism(), stateDir: path.join(stateDir, 'local'), env: localPlatformEnv() }),
      group: raw.edge === true ? 'edge' : 'local',
      onThisMachine: true,
      storeAccess: storeAccessOf(cfg, name, raw, true),
      settings: {},
      ...optionalMb(name, raw),
    });
  }

  // OpenWhisk: clusters with a `local` block are started here as a fabric process (unless already running).
  const owLocal: LocalClusterRequest[] = [];
  for (const [name, raw] of Object.entries(cfg.providers.openwhisk)) {
    const local = raw.local as Record<string, unknown> | undefined;
    if (!local) continue;
    const o = openWhiskOptions(name, { ...providerBlock(raw), api_host: raw.api_host ?? 'http://127.0.0.1:0' });
    const port = Number(new URL(o.apiHost).port) || undefined;
    owLocal.push({ name, auth: o.apiKey, profile: local.profile ?? 'cloud', ...(port ? { port } : {}), ...(o.namespace !== '_' ? { namespace: o.namespace } : {}), ...(local.memory_mb !== undefined ? { memoryMb: Number(local.memory_mb) } : {}), ...(local.seed !== undefined ? { seed: Number(local.seed) } : { seed: fl.seed }) });
  }
  // Lambda: clusters with a `local` block are a local Lambda platform in the same fabric process.
  for (const [name, raw] of Object.entries(cfg.providers.lambda ?? {})) {
    const local = raw.local as Record<string, unknown> | undefined;
    if (!local) continue;
    const block = localLambdaBlock(name, providerBlock(raw));
    const port = block.endpoint ? Number(new URL(String(block.endpoint)).port) || undefined : undefined;
    const creds = block.credentials as { access_key_id: string; secret_access_key: string };
    owLocal.push({
      kind: 'lambda',
      name,
      region: String(block.region),
      accessKeyId: creds.access_key_id,
      secretAccessKey: creds.secret_access_key,
      profile: local.profile ?? 'cloud',
      ...(port ? { port } : {}),
      ...(local.memory_mb !== undefined ? { memoryMb: Number(local.memory_mb) } : {}),
      ...(local.seed !== undefined ? { seed: Number(local.seed) } : { seed: fl.seed }),
    });
  }
  let fabric: LaunchedFabric | undefined;
  if (owLocal.length) fabric = await launchLocalClusters(owLocal, { ...process.env, ...localPlatformEnv() });

  try {
    for (const [name, raw] of Object.entries(cfg.providers.openwhisk)) {
      const local = raw.local as Record<string, unknown> | undefined;
      const block = { ...providerBlock(raw), ...(local ? { api_host: fabric!.urls.get(name)! } : {}) };
      // The local block's profile says what the local controller allows (its action limits).
      const opts = openWhiskOptions(name, local ? { ...block, local } : block);
      add({
        name,
        platform: 'openwhisk',
        provider: new OpenWhiskProvider(opts),
        group: raw.edge === true || (local !== undefined && isEdgeProfile(local.profile)) ? 'edge' : 'ow',
        onThisMachine: local !== undefined,
        storeAccess: storeAccessOf(cfg, name, raw, local !== undefined),
        settings: { ...block, api_host: opts.apiHost },
        // A local cluster's payload limit is its profile's (payloadMaxMb), unless the block states one.
        ...optionalMb(name, raw.max_payload_mb === undefined && typeof profilePayloadMb(local) === 'number' ? { ...raw, max_payload_mb: profilePayloadMb(local) } : raw),
      });
    }
    for (const [name, raw] of Object.entries(cfg.providers.google)) {
      const block = providerBlock(raw);
      const gcfState = path.resolve(stateDir, 'google');
      const provider = createGoogleProvider({ cluster: name, settings: block, stateDir: gcfState, env: localPlatformEnv() });
      const onThisMachine = !(block.project_id || block.mode === 'cloud');
      add({
        name,
        platform: 'google',
        provider,
        group: raw.edge === true ? 'edge' : 'gcf',
        onThisMachine,
        storeAccess: storeAccessOf(cfg, name, raw, onThisMachine),
        settings: { ...block, state_dir: gcfState },
        ...optionalMb(name, raw),
      });
    }
    for (const [name, raw] of Object.entries(cfg.providers.lambda ?? {})) {
      const local = raw.local as Record<string, unknown> | undefined;
      const block = local ? { ...localLambdaBlock(name, providerBlock(raw)), endpoint: fabric!.urls.get(name)! } : providerBlock(raw);
      add({
        name,
        platform: 'lambda',
        provider: new LambdaProvider({ cluster: name, settings: block }),
        group: raw.edge === true || (local !== undefined && isEdgeProfile(local.profile)) ? 'edge' : 'lambda',
        onThisMachine: local !== undefined,
        storeAccess: storeAccessOf(cfg, name, raw, local !== undefined),
        settings: block,
        ...optionalMb(name, raw),
      });
    }
  } catch (e) {
    await fabric?.close();
    throw e;
  }

  const close = async () => {
    await Promise.allSettled([...clusters.values()].map((c) => c.provider.close()));
    await fabric?.close();
  };
  return { clusters, close };
}

export async function buildPlan(cfg: FedKeeperConfig, stateDir: string): Promise<DeploymentPlan> {
  const fl = cfg.scenarios.federated_learning;
  const { clusters, close } = await openClusters(cfg, stateDir);
  try {
    if (clusters.size === 0) throw new BadInputError('providers: no cluster is configured; add providers.local.<name>');
    const serverCluster = fl.server_config.server_cluster_name;
    const server = clusters.get(serverCluster);
    if (!server) throw new BadInputError(`scenarios.federated_learning.server_config.server_cluster_name: no cluster named "${serverCluster}" under providers`);
    const serverWhy = server.onThisMachine ? undefined : unreachableFromElsewhere(cfg);
    if (serverWhy) {
      throw new BadInputError(`scenarios.federated_learning.server_config.server_cluster_name: ${serverCluster} is not on this machine, but the server functions must reach the store and the dataset, and ${serverWhy}; or pick a cluster on this machine`);
    }

    const slots: ClusterSlot[] = [...clusters.values()].map((c) => {
      const raw = (c.platform === 'local' ? cfg.providers.local[c.name] : cfg.providers[c.platform][c.name]) as unknown as Record<string, unknown>;
      const clients = clientsOf(c.name, raw ?? {});
      return { name: c.name, group: c.group, ...(clients !== undefined ? { clients } : {}) };
    });
    const ci = fl.clients_info;
    const placement = placeClients(ci.total_num_clients, slots, {
      ...(ci.local_clients_count !== undefined ? { local: ci.local_clients_count } : {}),
      ...(ci.ow_clients_count !== undefined ? { ow: ci.ow_clients_count } : {}),
      ...(ci.gcf_clients_count !== undefined ? { gcf: ci.gcf_clients_count } : {}),
      ...(ci.lambda_clients_count !== undefined ? { lambda: ci.lambda_clients_count } : {}),
      ...(ci.edge_clients_count !== undefined ? { edge: ci.edge_clients_count } : {}),
    });

    const specs = new Map<string, FunctionSpec[]>();
    const want = (cluster: string, fn: string) => {
      const list = specs.get(cluster) ?? [];
      if (!list.some((s) => s.name === fn)) list.push(functionSpec(cfg, fn, clusters.get(cluster)!.platform));
      specs.set(cluster, list);
    };
    const serverFunctions = [...fl.server_config.server_manager_functions];
    for (const fn of serverFunctions) want(serverCluster, fn);
    const hosting = new Set(placement);
    for (const cluster of hosting) {
      for (const fn of ci.client_functions) want(cluster, fn);
      if (clusters.get(cluster)!.storeAccess === 'relay') want(serverCluster, RELAY_FUNCTION);
    }
    const ft = fl.fault_tolerance;
    if (ft.round_timeout !== undefined && ft.invocation_timeout === undefined) {
      for (const [cluster, list] of specs) {
        const client = list.find((x) => ci.client_functions.includes(x.name));
        if (client && ft.round_timeout < client.timeoutMs) {
          throw new BadInputError(
            `scenarios.federated_learning.fault_tolerance.round_timeout (${ft.round_timeout} ms) is shorter than functions.${client.name}.${clusters.get(cluster)!.platform}.timeout (${client.timeoutMs} ms): a round cannot end before one invocation may; raise round_timeout or lower the function's timeout`,
          );
        }
      }
    }
    return { clusters, serverCluster, serverFunctions, clientFunctions: ci.client_functions, placement, specs, close };
  } catch (e) {
    await close();
    throw e;
  }
}
