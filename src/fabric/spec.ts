/**
 * The description of a fabric: its clusters (name, profile, key, port …). `parseFabricSpec` checks one given as
 * JSON/YAML data — `{clusters: [...]}` or a bare list — and says in one line what to fix.
 */
import { z } from 'zod';
import { FabricConfigError } from './errors.js';
import { CLUSTER_PROFILES, type ProfileSpec } from './profiles.js';

export interface FabricClusterSpec {
  /** Unique in the fabric; letters, digits, `_ . -`. */
  name: string;
  /** `cloud` (default), `edge`, or overrides on a base: `{base: 'edge', coldStartDelayMs: 3000}`. */
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
        memoryMb: z.number().int().min(128).optional(),
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
    const i = r.error.issues[0]!;
    const where = i.path.length > 0 ? i.path.join('.') : '(top level)';
    throw new FabricConfigError(`fabric spec: ${where}: ${i.message}`);
  }
  const clusters = (Array.isArray(r.data) ? r.data : r.data.clusters) as FabricClusterSpec[];
  checkUniqueNames(clusters);
  return clusters;
}

export function checkUniqueNames(clusters: readonly FabricClusterSpec[]): void {
  const seen = new Set<string>();
  for (const c of clusters) {
    if (seen.has(c.name)) throw new FabricConfigError(`fabric spec: two clusters are named "${c.name}"`);
    seen.add(c.name);
  }
}
