/**
 * The settings of one Google Cloud Functions cluster, read from `providers.google.<cluster>` in the config. The
 * config module keeps platform blocks as given (unknown values), so this file is where they are checked; every
 * mistake becomes a ProviderError with exit code 2 that names the cluster and the key to fix.
 */
import { ProviderError } from './types.js';

export interface GoogleLocalSettings {
  mode: 'local';
  /** How long a function server may take to load its code and listen, ms. */
  startupTimeoutMs: number;
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
    return { mode: 'local', startupTimeoutMs };
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
