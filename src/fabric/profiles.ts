/**
 * Named cluster profiles, so one fabric can mix a fast "cloud" cluster and a slow "edge" cluster. A profile is the
 * container pool's character (cold-start delay, speed factor, failure probability) plus the cluster's memory.
 * Any field can be overridden: `{base: 'edge', memoryMb: 1024}`.
 */
import type { ClusterProfile } from '../runtime/container-types.js';
import { FabricConfigError } from './errors.js';

export interface ClusterCharacter extends ClusterProfile {
  /** Memory of the cluster's invoker: bounds how many containers run at once (each takes its action's memory). */
  memoryMb: number;
}

export const CLUSTER_PROFILES = {
  /** A data-centre cluster: no extra cold start, full speed, 8 GB. */
  cloud: { coldStartDelayMs: 0, speedFactor: 1, failureProbability: 0, memoryMb: 8192 },
  /** A cluster of small boards: 1.5 s extra per cold start, 2.5× slower, 2 GB. */
  edge: { coldStartDelayMs: 1500, speedFactor: 2.5, failureProbability: 0, memoryMb: 2048 },
} as const satisfies Record<string, ClusterCharacter>;

export type ProfileName = keyof typeof CLUSTER_PROFILES;
export type ProfileSpec = ProfileName | (Partial<ClusterCharacter> & { base?: ProfileName });

export function isProfileName(s: string): s is ProfileName {
  return Object.prototype.hasOwnProperty.call(CLUSTER_PROFILES, s);
}

/** The full character of a profile: a name, or overrides on a base (default `cloud`), then `overrides`. */
export function resolveProfile(spec: ProfileSpec = 'cloud', overrides: Partial<ClusterCharacter> = {}): ClusterCharacter {
  const given = typeof spec === 'string' ? { base: spec } : spec;
  const baseName = given.base ?? 'cloud';
  if (!isProfileName(baseName)) {
    throw new FabricConfigError(`unknown cluster profile "${String(baseName)}" (known: ${Object.keys(CLUSTER_PROFILES).join(', ')})`);
  }
  const { base: _base, ...fields } = given;
  const c: ClusterCharacter = { ...CLUSTER_PROFILES[baseName], ...defined(fields), ...defined(overrides) };
  check(c.coldStartDelayMs >= 0 && Number.isFinite(c.coldStartDelayMs), 'coldStartDelayMs must be ≥ 0', c.coldStartDelayMs);
  check(c.speedFactor >= 1 && Number.isFinite(c.speedFactor), 'speedFactor must be ≥ 1', c.speedFactor);
  check(c.failureProbability >= 0 && c.failureProbability <= 1, 'failureProbability must be in [0, 1]', c.failureProbability);
  check(Number.isInteger(c.memoryMb) && c.memoryMb >= 128, 'memoryMb must be an integer ≥ 128', c.memoryMb);
  return c;
}

/** The pool's part of a character. */
export function poolProfile(c: ClusterCharacter): ClusterProfile {
  return { coldStartDelayMs: c.coldStartDelayMs, speedFactor: c.speedFactor, failureProbability: c.failureProbability };
}

function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function check(ok: boolean, rule: string, got: unknown): void {
  if (!ok) throw new FabricConfigError(`cluster profile: ${rule}, got ${String(got)}`);
}
