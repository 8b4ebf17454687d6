/**
 * A `providers.lambda.<cluster>` block: region, optional endpoint (a local Lambda platform, or a VPC endpoint),
 * credentials (from the config — usually `${ENV}` — or AWS's standard chain), the functions' execution role, and
 * Lambda's limits on a function's settings.
 *
 *   providers:
 *     lambda:
 *       aws: { region: eu-west-1, role: "arn:aws:iam::123456789012:role/fedkeeper-functions" }
 *       here: { local: { profile: cloud } }          # a local Lambda platform started by FedKeeper
 */
import { ProviderError } from './types.js';

export interface LambdaCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface LambdaClusterSettings {
  region: string;
  /** http(s) URL of the Lambda API; default AWS's regional endpoint. */
  endpoint?: string;
  /** Absent: the SDK's standard chain (environment, shared config files, instance/container roles). */
  credentials?: LambdaCredentials;
  /** The execution role every function gets (CreateFunction requires one). */
  role: string;
  /** Skip TLS verification of a custom endpoint (test platforms only). */
  insecure: boolean;
}

/** Keys of the block the provider reads (the keeper's own keys are taken off before). */
const KNOWN = new Set(['region', 'endpoint', 'credentials', 'access_key_id', 'secret_access_key', 'session_token', 'role', 'insecure']);

/** Regions look like us-east-1, eu-central-2, ap-southeast-4, us-gov-west-1, cn-north-1, il-central-1. */
const REGION = /^(us|eu|ap|sa|ca|me|af|il|mx|cn|us-gov|us-iso|us-isob)-(north|south|east|west|central|northeast|northwest|southeast|southwest)-\d{1,2}$/;

/** A role ARN for platforms that do not check it (a local Lambda platform). */
export const LOCAL_ROLE = 'arn:aws:iam::000000000000:role/fedkeeper-local';

function str(cluster: string, raw: Record<string, unknown>, key: string): string | undefined {
  const v = raw[key];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw new ProviderError(`lambda cluster ${cluster}: ${key} must be a string`, 2);
  return v;
}

export function parseLambdaCluster(cluster: string, raw: Record<string, unknown>): LambdaClusterSettings {
  const unknown = Object.keys(raw).filter((k) => !KNOWN.has(k));
  if (unknown.length > 0) throw new ProviderError(`lambda cluster ${cluster}: unknown key ${unknown.join(', ')} (known: ${[...KNOWN].join(', ')})`, 2);
  const region = str(cluster, raw, 'region') ?? 'us-east-1';
  if (!REGION.test(region)) throw new ProviderError(`lambda cluster ${cluster}: unknown region ${region}; use an AWS region such as us-east-1 or eu-west-1`, 2);
  const endpoint = str(cluster, raw, 'endpoint');
  if (endpoint !== undefined) {
    let u: URL;
    try {
      u = new URL(endpoint);
    } catch {
      throw new ProviderError(`lambda cluster ${cluster}: endpoint ${endpoint} is not a URL`, 2);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ProviderError(`lambda cluster ${cluster}: endpoint must be an http(s) URL, got ${endpoint}`, 2);
  }
  const c = (raw.credentials ?? {}) as Record<string, unknown>;
  if (typeof c !== 'object' || Array.isArray(c)) throw new ProviderError(`lambda cluster ${cluster}: credentials must be a map with access_key_id and secret_access_key`, 2);
  const accessKeyId = str(cluster, { ...raw, ...c }, 'access_key_id');
  const secretAccessKey = str(cluster, { ...raw, ...c }, 'secret_access_key');
  const sessionToken = str(cluster, { ...raw, ...c }, 'session_token');
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
    throw new ProviderError(`lambda cluster ${cluster}: credentials need both access_key_id and secret_access_key (or neither, for AWS's standard credential chain)`, 2);
  }
  const role = str(cluster, raw, 'role') ?? (endpoint ? LOCAL_ROLE : undefined);
  if (!role) throw new ProviderError(`lambda cluster ${cluster}: role is required: the ARN of the execution role the functions run as (arn:aws:iam::ACCOUNT:role/NAME)`, 2);
  if (!/^arn:aws[\w-]*:iam::\d{12}:role\/.+$/.test(role)) throw new ProviderError(`lambda cluster ${cluster}: role must be an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME), got ${role}`, 2);
  return {
    region,
    ...(endpoint ? { endpoint: endpoint.replace(/\/+$/, '') } : {}),
    ...(accessKeyId && secretAccessKey ? { credentials: { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) } } : {}),
    role,
    insecure: raw.insecure === true,
  };
}

/** Lambda's limits on a function's memory (MB) and timeout (ms); out of range is the user's input to fix. */
export const LAMBDA_LIMITS = { minMemoryMb: 128, maxMemoryMb: 10_240, maxTimeoutMs: 900_000 } as const;

export function checkLambdaFunction(cluster: string, name: string, memoryMb: number, timeoutMs: number): void {
  if (memoryMb < LAMBDA_LIMITS.minMemoryMb || memoryMb > LAMBDA_LIMITS.maxMemoryMb) {
    throw new ProviderError(`lambda cluster ${cluster}: function ${name}: memory ${memoryMb} MB is outside Lambda's 128–10,240 MB; set functions.${name}.lambda.memory within it`, 2);
  }
  if (timeoutMs > LAMBDA_LIMITS.maxTimeoutMs) {
    throw new ProviderError(`lambda cluster ${cluster}: function ${name}: timeout ${timeoutMs / 1000} s is over Lambda's 900 s; set functions.${name}.lambda.timeout to 900s or less`, 2);
  }
}

/** `settings.env` of a function: its Lambda environment variables. */
export function lambdaEnv(cluster: string, name: string, settings: Record<string, unknown>): Record<string, string> {
  const env = settings.env;
  if (env === undefined || env === null) return {};
  if (typeof env !== 'object' || Array.isArray(env)) throw new ProviderError(`lambda cluster ${cluster}: env of function ${name} must be a map of names to strings`, 2);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') throw new ProviderError(`lambda cluster ${cluster}: env ${k} of function ${name} must be a string`, 2);
    out[k] = String(v);
  }
  return out;
}

/** Lambda's payload limits: a RequestResponse request or response, and an Event invocation's payload. */
export const LAMBDA_PAYLOAD = { requestResponse: 6 * 1024 * 1024, event: 256 * 1024 } as const;
