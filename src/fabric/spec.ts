/**
 * The description of a fabric: its clusters (kind, name, profile, key, port …). `parseFabricSpec` checks one given
 * as JSON/YAML data — `{clusters: [...]}` or a bare list — and says in one line what to fix. A cluster is a local
 * OpenWhisk cluster (`kind: openwhisk`, the default) or a local AWS Lambda platform (`kind: lambda`).
 */
import { z } from 'zod';
import { FabricConfigError } from './errors.js';
import { CLUSTER_PROFILES, resolveProfile, type ProfileSpec } from './profiles.js';

export type FabricClusterSpec = OpenWhiskClusterSpec | LambdaClusterSpec;

export interface OpenWhiskClusterSpec {
  kind?: 'openwhisk';
  /** Unique in the fabric; letters, digits, `_ . -`. */
  name: string;
  /**
   * `cloud` (default), `edge`, or overrides on a base: `{base: 'edge', coldStartDelayMs: 3000}`; with faults:
   * `{base: 'cloud', failureProbability: 0.1, errorProbability: 0.3, timeoutProbability: 0.1,
   *   outages: [{startMs: 60000, durationMs: 10000}]}`; with what an operator sets on the controller:
   * `{base: 'cloud', limits: {memory: {max: 2048}}, invocationsPerMinute: 60, concurrentInvocations: 30}`
   * (see profiles.ts).
   */
  profile?: ProfileSpec;
  /** The cluster's API key, `uuid:key`. */
  auth: string;
  /** Default 0: a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Overrides the profile's memory. */
  memoryMb?: number;
  seed?: number;
  /** Activations running at once on the cluster (default: bounded by its memory only). */
  maxActive?: number;
  /** Default `guest`. */
  namespace?: string;
}

/** A local AWS Lambda platform, reached with `@aws-sdk/client-lambda` (endpoint = its URL, this region and key). */
export interface LambdaClusterSpec {
  kind: 'lambda';
  /** Unique in the fabric; letters, digits, `_ . -`. */
  name: string;
  /** Requests must be signed for it; default us-east-1. */
  region?: string;
  /** The key requests must be signed with (SigV4). */
  accessKeyId: string;
  secretAccessKey: string;
  /** As an OpenWhisk cluster's, without the controller's `limits` and throttles: `cloud` (default), `edge`, or overrides with faults (see profiles.ts). */
  profile?: ProfileSpec;
  /** Default 0: a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Overrides the profile's memory: bounds the execution environments alive at once. */
  memoryMb?: number;
  seed?: number;
  /** The account's concurrent executions; default 1000. Over it (or a function's reserved concurrency) → 429. */
  concurrency?: number;
  /** How long a new function stays Pending and an update InProgress, ms; default 0. */
  settleMs?: number;
}

const profileNames = Object.keys(CLUSTER_PROFILES) as [keyof typeof CLUSTER_PROFILES, ...(keyof typeof CLUSTER_PROFILES)[]];
const ProfileNameSchema = z.enum(profileNames);

const NameSchema = z.string().regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, "_", "." and "-" only');
const poolFields = {
  base: ProfileNameSchema.optional(),
  coldStartDelayMs: z.number().min(0).optional(),
  speedFactor: z.number().min(1).optional(),
  failureProbability: z.number().min(0).max(1).optional(),
  errorProbability: z.number().min(0).max(1).optional(),
  timeoutProbability: z.number().min(0).max(1).optional(),
  memoryMb: z.number().int().min(128).optional(),
  outages: z.array(z.strictObject({ startMs: z.number().min(0), durationMs: z.number().positive() })).optional(),
};
const RangeSchema = z.strictObject({ min: z.number().int().min(0).optional(), max: z.number().int().min(0).optional() }).optional();
/** An OpenWhisk cluster's profile also has what its operator configures on the controller (profiles.ts). */
const controllerFields = {
  limits: z.strictObject({ memory: RangeSchema, timeout: RangeSchema, concurrency: RangeSchema, logs: RangeSchema }).optional(),
  invocationsPerMinute: z.number().int().min(1).optional(),
  concurrentInvocations: z.number().int().min(1).optional(),
  payloadMaxMb: z.number().positive().optional(),
};
const ProfileSchema = z.union([ProfileNameSchema, z.strictObject({ ...poolFields, ...controllerFields })]).optional();
const LambdaProfileSchema = z.union([ProfileNameSchema, z.strictObject(poolFields)]).optional();

export const ClusterSpecSchema = z.strictObject({
  kind: z.literal('openwhisk').optional(),
  name: NameSchema,
  profile: ProfileSchema,
  auth: z.string().regex(/^[^:\s]+:[^\s]+$/, 'expected "uuid:key"'),
  port: z.number().int().min(0).max(65535).optional(),
  host: z.string().min(1).optional(),
  memoryMb: z.number().int().min(128).optional(),
  seed: z.number().int().optional(),
  maxActive: z.number().int().min(1).optional(),
  namespace: z.string().regex(/^[\w@.-]+$/).optional(),
});

export const LambdaClusterSpecSchema = z.strictObject({
  kind: z.literal('lambda'),
  name: NameSchema,
  region: z.string().regex(/^[a-z]{2}(-gov|-iso|-isob)?-[a-z]+-\d{1,2}$/, 'an AWS region such as us-east-1').optional(),
  accessKeyId: z.string().regex(/^[A-Za-z0-9]{1,128}$/, '1–128 letters and digits'),
  secretAccessKey: z.string().regex(/^\S{1,128}$/, '1–128 characters, no spaces'),
  profile: LambdaProfileSchema,
  port: z.number().int().min(0).max(65535).optional(),
  host: z.string().min(1).optional(),
  memoryMb: z.number().int().min(128).optional(),
  seed: z.number().int().optional(),
  concurrency: z.number().int().min(1).optional(),
  settleMs: z.number().int().min(0).optional(),
});

/** The outer shape; each cluster is checked against its kind's schema (see parseFabricSpec). */
export const FabricSpecSchema = z.union([z.strictObject({ clusters: z.array(z.unknown()).min(1) }), z.array(z.unknown()).min(1)]);

const KINDS = { openwhisk: ClusterSpecSchema, lambda: LambdaClusterSpecSchema } as const;

export function parseFabricSpec(data: unknown): FabricClusterSpec[] {
  const r = FabricSpecSchema.safeParse(data);
  if (!r.success) {
    const i = deepestIssue(r.error.issues[0]!, []);
    const where = i.path.length > 0 ? i.path.join('.') : '(top level)';
    throw new FabricConfigError(`fabric spec: ${where}: ${i.message}`);
  }
  // What to fix is said against the cluster's own kind, not as a union's "Invalid input".
  const where = Array.isArray(r.data) ? '' : 'clusters.';
  const clusters = (Array.isArray(r.data) ? r.data : r.data.clusters).map((c, idx) => {
    const kind = (c as { kind?: unknown } | null)?.kind ?? 'openwhisk';
    if (kind !== 'openwhisk' && kind !== 'lambda') throw new FabricConfigError(`fabric spec: ${where}${idx}.kind: expected "openwhisk" or "lambda", got ${JSON.stringify(kind)}`);
    const parsed = KINDS[kind].safeParse(c);
    if (!parsed.success) {
      const i = deepestIssue(parsed.error.issues[0]!, [idx]);
      throw new FabricConfigError(`fabric spec: ${where}${i.path.join('.')}: ${i.message}`);
    }
    return parsed.data as FabricClusterSpec;
  });
  checkUniqueNames(clusters);
  // What the schema cannot say field by field: the probabilities' sum, overlapping outages.
  clusters.forEach((c, i) => {
    try {
      resolveProfile(c.profile ?? 'cloud', c.memoryMb !== undefined ? { memoryMb: c.memoryMb } : {});
    } catch (e) {
      if (e instanceof FabricConfigError) throw new FabricConfigError(`fabric spec: ${where}${i}.profile: ${e.message.replace(/^cluster profile: /, '')}`);
      throw e;
    }
  });
  return clusters;
}

interface Issue {
  path: PropertyKey[];
  message: string;
  code?: string;
  errors?: Issue[][];
}

/**
 * A failed union (list or {clusters}; profile name or object) says only "Invalid input": the issue of the branch
 * that got furthest into the data (the longest path) says what to fix.
 */
function deepestIssue(issue: Issue, prefix: PropertyKey[]): { path: PropertyKey[]; message: string } {
  const path = [...prefix, ...issue.path];
  if (issue.code !== 'invalid_union' || !issue.errors?.length) return { path, message: issue.message };
  let best: { path: PropertyKey[]; message: string } | undefined;
  for (const branch of issue.errors) {
    for (const sub of branch) {
      const d = deepestIssue(sub, path);
      if (!best || d.path.length > best.path.length) best = d;
    }
  }
  return best ?? { path, message: issue.message };
}

export function checkUniqueNames(clusters: readonly FabricClusterSpec[]): void {
  const seen = new Set<string>();
  for (const c of clusters) {
    if (seen.has(c.name)) throw new FabricConfigError(`fabric spec: two clusters are named "${c.name}"`);
    seen.add(c.name);
  }
}
