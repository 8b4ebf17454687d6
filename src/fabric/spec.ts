/**
 * The description of a fabric: its clusters (name, profile, key, port …). `parseFabricSpec` checks one given as
 * JSON/YAML data — `{clusters: [...]}` or a bare list — and says in one line what to fix.
 */
import { z } from 'zod';
import { FabricConfigError } from './errors.js';
import { CLUSTER_PROFILES, resolveProfile, type ProfileSpec } from './profiles.js';

export interface FabricClusterSpec {
  /** Unique in the fabric; letters, digits, `_ . -`. */
  name: string;
  /**
   * `cloud` (default), `edge`, or overrides on a base: `{base: 'edge', coldStartDelayMs: 3000}`; with faults:
   * `{base: 'cloud', failureProbability: 0.1, errorProbability: 0.3, timeoutProbability: 0.1,
   *   outages: [{startMs: 60000, durationMs: 10000}]}` (see profiles.ts).
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

const profileNames = Object.keys(CLUSTER_PROFILES) as [keyof typeof CLUSTER_PROFILES, ...(keyof typeof CLUSTER_PROFILES)[]];
const ProfileNameSchema = z.enum(profileNames);

export const ClusterSpecSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, "_", "." and "-" only'),
  profile: z
    .union([
      ProfileNameSchema,
      z.strictObject({
        base: ProfileNameSchema.optional(),
        coldStartDelayMs: z.number().min(0).optional(),
        speedFactor: z.number().min(1).optional(),
        failureProbability: z.number().min(0).max(1).optional(),
        errorProbability: z.number().min(0).max(1).optional(),
        timeoutProbability: z.number().min(0).max(1).optional(),
        memoryMb: z.number().int().min(128).optional(),
        outages: z.array(z.strictObject({ startMs: z.number().min(0), durationMs: z.number().positive() })).optional(),
      }),
    ])
    .optional(),
  auth: z.string().regex(/^[^:\s]+:[^\s]+$/, 'expected "uuid:key"'),
  port: z.number().int().min(0).max(65535).optional(),
  host: z.string().min(1).optional(),
  memoryMb: z.number().int().min(128).optional(),
  seed: z.number().int().optional(),
  maxActive: z.number().int().min(1).optional(),
  namespace: z.string().regex(/^[\w@.-]+$/).optional(),
});

export const FabricSpecSchema = z.union([
  z.strictObject({ clusters: z.array(ClusterSpecSchema).min(1) }),
  z.array(ClusterSpecSchema).min(1),
]);

export function parseFabricSpec(data: unknown): FabricClusterSpec[] {
  const r = FabricSpecSchema.safeParse(data);
  if (!r.success) {
    const i = deepestIssue(r.error.issues[0]!, []);
    const where = i.path.length > 0 ? i.path.join('.') : '(top level)';
    throw new FabricConfigError(`fabric spec: ${where}: ${i.message}`);
  }
  const clusters = (Array.isArray(r.data) ? r.data : r.data.clusters) as FabricClusterSpec[];
  checkUniqueNames(clusters);
  // What the schema cannot say field by field: the probabilities' sum, overlapping outages.
  const where = Array.isArray(r.data) ? '' : 'clusters.';
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
