/**
 * The settings of one Google Cloud Functions cluster, read from `providers.google.<cluster>` in the config. The
 * config module keeps platform blocks as given (unknown values), so this file is where they are checked; every
 * mistake becomes a ProviderError with exit code 2 that names the cluster and the key to fix.
 */
import os from 'node:os';
import { ProviderError } from './types.js';

export interface GoogleLocalSettings {
  mode: 'local';
  /** How long a function server may take to load its code and listen, ms. */
  startupTimeoutMs: number;
  /** `max_local_instances`: this machine's bound on one function's instances (default: localInstanceCap()). */
  maxLocalInstances?: number;
  /**
   * `queue_timeout`: how long a request waits for a free instance when the function's own max_instances are all
   * busy before it is refused with GCF's 429, ms (default 60 s, Cloud Run's documented queueing window).
   */
  queueTimeoutMs: number;
  /** `idle_timeout`: an instance idle this long (beyond min_instances) is stopped, ms (default 15 min). */
  idleTimeoutMs: number;
}

export interface ApiEndpoint {
  protocol: 'http' | 'https';
  host: string;
  port: number;
}

export interface GoogleCloudSettings {
  mode: 'cloud';
  projectId: string;
  region: string;
  /** Where the Cloud Functions v2 REST API is; default https://cloudfunctions.googleapis.com. */
  apiEndpoint?: ApiEndpoint;
  /** A service-account key: the path of its JSON file, or the parsed key. */
  credentials?: string | { client_email: string; private_key: string };
  /** A fixed OAuth access token for the API (e.g. from `gcloud auth print-access-token`). */
  accessToken?: string;
  /** A fixed identity token for invoking functions (e.g. from `gcloud auth print-identity-token`). */
  identityToken?: string;
}

export type GoogleClusterSettings = GoogleLocalSettings | GoogleCloudSettings;

const KNOWN = new Set([
  'mode',
  'project_id',
  'region',
  'api_endpoint',
  'credentials',
  'access_token',
  'identity_token',
  'startup_timeout',
  'max_local_instances',
  'queue_timeout',
  'idle_timeout',
]);

function str(cluster: string, raw: Record<string, unknown>, key: string): string | undefined {
  const v = raw[key];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw new ProviderError(`google cluster ${cluster}: ${key} must be a string`, 2);
  return v;
}

/** `http://127.0.0.1:8089`, `https://cloudfunctions.googleapis.com` or a bare host name (https). */
export function parseApiEndpoint(cluster: string, value: string): ApiEndpoint {
  const withScheme = /^[a-z]+:\/\//i.test(value) ? value : `https://${value}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new ProviderError(`google cluster ${cluster}: api_endpoint ${value} is not a URL`, 2);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ProviderError(`google cluster ${cluster}: api_endpoint must be an http(s) URL, got ${value}`, 2);
  }
  const protocol = url.protocol === 'http:' ? 'http' : 'https';
  return { protocol, host: url.hostname.replace(/^\[|\]$/g, ''), port: url.port ? Number(url.port) : protocol === 'http' ? 80 : 443 };
}

export function parseGoogleCluster(cluster: string, raw: Record<string, unknown>): GoogleClusterSettings {
  const unknown = Object.keys(raw).filter((k) => !KNOWN.has(k));
  if (unknown.length > 0) {
    throw new ProviderError(`google cluster ${cluster}: unknown key ${unknown.join(', ')} (known: ${[...KNOWN].join(', ')})`, 2);
  }
  const projectId = str(cluster, raw, 'project_id');
  const mode = str(cluster, raw, 'mode') ?? (projectId ? 'cloud' : 'local');
  if (mode === 'local') {
    const t = raw.startup_timeout;
    const startupTimeoutMs = t === undefined ? 30_000 : Number(t);
    if (!Number.isFinite(startupTimeoutMs) || startupTimeoutMs <= 0) {
      throw new ProviderError(`google cluster ${cluster}: startup_timeout must be a positive number of ms`, 2);
    }
    const ms = (key: string, fallback: number): number => {
      const v = raw[key] === undefined || raw[key] === null ? fallback : Number(raw[key]);
      if (!Number.isFinite(v) || v < 0) throw new ProviderError(`google cluster ${cluster}: ${key} must be a number of ms ≥ 0, got ${JSON.stringify(raw[key])}`, 2);
      return v;
    };
    const settings: GoogleLocalSettings = {
      mode: 'local',
      startupTimeoutMs,
      queueTimeoutMs: ms('queue_timeout', DEFAULT_QUEUE_TIMEOUT_MS),
      idleTimeoutMs: ms('idle_timeout', DEFAULT_IDLE_TIMEOUT_MS),
    };
    const cap = wholeNumber(raw.max_local_instances);
    if (raw.max_local_instances !== undefined && raw.max_local_instances !== null) {
      if (cap === undefined || cap < 1) {
        throw new ProviderError(`google cluster ${cluster}: max_local_instances must be a whole number ≥ 1, got ${JSON.stringify(raw.max_local_instances)}`, 2);
      }
      settings.maxLocalInstances = cap;
    }
    return settings;
  }
  if (mode !== 'cloud') throw new ProviderError(`google cluster ${cluster}: mode must be local or cloud, got ${mode}`, 2);
  if (!projectId) throw new ProviderError(`google cluster ${cluster}: project_id is required in cloud mode`, 2);

  const settings: GoogleCloudSettings = { mode: 'cloud', projectId, region: str(cluster, raw, 'region') ?? 'us-central1' };
  const endpoint = str(cluster, raw, 'api_endpoint');
  if (endpoint) settings.apiEndpoint = parseApiEndpoint(cluster, endpoint);
  const creds = raw.credentials;
  if (typeof creds === 'string' && creds !== '') settings.credentials = creds;
  else if (creds && typeof creds === 'object') {
    const c = creds as Record<string, unknown>;
    if (typeof c.client_email !== 'string' || typeof c.private_key !== 'string') {
      throw new ProviderError(`google cluster ${cluster}: credentials must be a key file path or a key with client_email and private_key`, 2);
    }
    settings.credentials = { client_email: c.client_email, private_key: c.private_key };
  } else if (creds !== undefined && creds !== null && creds !== '') {
    throw new ProviderError(`google cluster ${cluster}: credentials must be a key file path or a service-account key`, 2);
  }
  const accessToken = str(cluster, raw, 'access_token');
  if (accessToken) settings.accessToken = accessToken;
  const identityToken = str(cluster, raw, 'identity_token');
  if (identityToken) settings.identityToken = identityToken;
  return settings;
}

/**
 * Cloud Functions v2 ids are 4–63 characters of [a-z0-9-] starting with a letter, so FedKeeper's `fl_client`
 * is deployed as `fl-client`; the original name travels in a label so that `list` can give it back.
 */
export function functionIdOf(cluster: string, name: string): string {
  if (!/^[a-z][a-z0-9_-]*$/.test(name)) {
    throw new ProviderError(
      `google cluster ${cluster}: function name ${name} must start with a lowercase letter and use only a-z, 0-9, _ and -`,
      2,
    );
  }
  const id = name.replaceAll('_', '-');
  if (id.length < 4 || id.length > 63 || id.endsWith('-')) {
    throw new ProviderError(`google cluster ${cluster}: function name ${name} must be 4-63 characters and not end with - or _`, 2);
  }
  return id;
}

/** GCF v2 HTTP functions accept 1..3600 s. */
export function timeoutSecondsOf(timeoutMs: number): number {
  return Math.min(3600, Math.max(1, Math.ceil(timeoutMs / 1000)));
}

/** `settings.env` of a function spec: environment variables for the function (GCF serviceConfig.environmentVariables). */
export function functionEnv(cluster: string, name: string, settings: Record<string, unknown>): Record<string, string> {
  const env = settings.env;
  if (env === undefined || env === null) return {};
  if (typeof env !== 'object' || Array.isArray(env)) {
    throw new ProviderError(`google cluster ${cluster}: env of function ${name} must be a map of names to strings`, 2);
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') {
      throw new ProviderError(`google cluster ${cluster}: env ${k} of function ${name} must be a string`, 2);
    }
    out[k] = String(v);
  }
  return out;
}

/**
 * Cloud Run's documented window: when max instances are all busy, a request waits up to 60 s for one to free up,
 * then fails with 429 ("The request was aborted because there was no available instance.").
 */
export const DEFAULT_QUEUE_TIMEOUT_MS = 60_000;
/** How long GCF keeps an idle instance around, roughly (it scales to zero after that). */
export const DEFAULT_IDLE_TIMEOUT_MS = 15 * 60_000;
/** What one local instance is assumed to need: the framework's Node process idle is ~60–100 MB, more under load. */
export const LOCAL_INSTANCE_MB = 256;

/**
 * This machine's bound on the instances of one function in local mode, so that GCF's default max_instances (100)
 * does not start 100 Node processes here: two per core, and at most half the free memory at LOCAL_INSTANCE_MB
 * each, at least 1.
 */
export function localInstanceCap(cores = os.availableParallelism(), freeBytes = os.freemem()): number {
  const byMemory = Math.floor(freeBytes / 2 / (LOCAL_INSTANCE_MB * 1024 * 1024));
  return Math.max(1, Math.min(2 * cores, byMemory));
}

/** How one function scales (Cloud Functions v2 serviceConfig), from its settings. */
export interface FunctionScaling {
  /** `max_instances` (GCF's maxInstanceCount, default 100). */
  maxInstances: number;
  /** `min_instances` (minInstanceCount, default 0): kept running while the function is deployed. */
  minInstances: number;
  /** `concurrency` (maxInstanceRequestConcurrency, default 1): requests one instance serves at a time. */
  concurrency: number;
}

export const GCF_DEFAULT_MAX_INSTANCES = 100;
export const GCF_MAX_CONCURRENCY = 1000;
/** Cloud Functions v2 gives a function 1 vCPU from 2 GiB of memory on; concurrency > 1 needs at least 1 vCPU. */
export const GCF_ONE_VCPU_MEMORY_MB = 2048;

function wholeNumber(v: unknown): number | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  return Number.isInteger(n) ? n : undefined;
}

/** `max_instances`, `min_instances` and `concurrency` of a function spec, checked as Cloud Functions checks them. */
export function functionScaling(cluster: string, name: string, settings: Record<string, unknown>, memoryMb: number): FunctionScaling {
  const read = (key: string, fallback: number, min: number, max = Infinity): number => {
    const raw = settings[key];
    if (raw === undefined || raw === null) return fallback;
    const n = wholeNumber(raw);
    if (n === undefined || n < min || n > max) {
      const range = max === Infinity ? `≥ ${min}` : `${min}–${max}`;
      throw new ProviderError(`google cluster ${cluster}: ${key} of function ${name} must be a whole number ${range}, got ${JSON.stringify(raw)}`, 2);
    }
    return n;
  };
  const maxInstances = read('max_instances', GCF_DEFAULT_MAX_INSTANCES, 1);
  const minInstances = read('min_instances', 0, 0);
  const concurrency = read('concurrency', 1, 1, GCF_MAX_CONCURRENCY);
  if (minInstances > maxInstances) {
    throw new ProviderError(`google cluster ${cluster}: min_instances ${minInstances} of function ${name} exceeds its max_instances ${maxInstances}`, 2);
  }
  if (concurrency > 1 && memoryMb < GCF_ONE_VCPU_MEMORY_MB) {
    throw new ProviderError(
      `google cluster ${cluster}: concurrency ${concurrency} of function ${name} needs at least 1 vCPU, which Cloud Functions gives from ${GCF_ONE_VCPU_MEMORY_MB} MB of memory (it has ${memoryMb} MB); set its memory to ${GCF_ONE_VCPU_MEMORY_MB}MB or concurrency to 1`,
      2,
    );
  }
  return { maxInstances, minInstances, concurrency };
}
