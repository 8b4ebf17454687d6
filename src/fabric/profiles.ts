/**
 * Named cluster profiles, so one fabric can mix a fast "cloud" cluster and a slow "edge" cluster. A profile is the
 * container pool's character (cold-start delay, speed factor, injected faults) plus the cluster's memory and its
 * controller outages. Any field can be overridden: `{base: 'edge', memoryMb: 1024}`,
 * `{base: 'cloud', errorProbability: 0.3, timeoutProbability: 0.1, outages: [{startMs: 60000, durationMs: 10000}]}`.
 *
 * Faults (all real, see runtime/container-types.ts ClusterProfile and openwhisk-server.ts):
 *  - failureProbability: the container crashes mid-activation → 'action developer error', a new container next time;
 *  - errorProbability:   the runtime answers `{error: "injected fault"}` → 'application error';
 *  - timeoutProbability: the activation is held until its time limit → 'action developer error', OpenWhisk's
 *                        time-limit message, the container killed;
 *  the three are disjoint outcomes of one draw per activation, so their sum must be ≤ 1;
 *  - outages: windows, in ms after the cluster's server first listened, during which its controller does not listen
 *             (connections are refused) — running activations go on and their records are kept.
 */
import type { ClusterProfile } from '../runtime/container-types.js';
import { FabricConfigError } from './errors.js';

/** A controller outage, relative to the moment the cluster's HTTP server first listened. */
export interface OutageWindow {
  /** ms after the server started listening. */
  startMs: number;
  /** ms the controller stays down. */
  durationMs: number;
}

export interface ClusterCharacter extends ClusterProfile {
  /** Memory of the cluster's invoker: bounds how many containers run at once (each takes its action's memory). */
  memoryMb: number;
  /** Controller outages (none by default); sorted, non-overlapping. */
  outages?: OutageWindow[];
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
  for (const k of ['failureProbability', 'errorProbability', 'timeoutProbability'] as const) {
    const v = c[k] ?? 0;
    check(v >= 0 && v <= 1, `${k} must be in [0, 1]`, v);
  }
  const sum = c.failureProbability + (c.errorProbability ?? 0) + (c.timeoutProbability ?? 0);
  check(sum <= 1 + 1e-9, 'failureProbability + errorProbability + timeoutProbability must be ≤ 1 (one draw per activation, disjoint outcomes)', sum);
  check(Number.isInteger(c.memoryMb) && c.memoryMb >= 128, 'memoryMb must be an integer ≥ 128', c.memoryMb);
  if (c.outages !== undefined) c.outages = checkOutages(c.outages);
  return c;
}

/** The pool's part of a character. */
export function poolProfile(c: ClusterCharacter): ClusterProfile {
  const p: ClusterProfile = { coldStartDelayMs: c.coldStartDelayMs, speedFactor: c.speedFactor, failureProbability: c.failureProbability };
  if (c.errorProbability !== undefined) p.errorProbability = c.errorProbability;
  if (c.timeoutProbability !== undefined) p.timeoutProbability = c.timeoutProbability;
  return p;
}

/** Sorted copies of the windows; each must have startMs ≥ 0 and durationMs > 0, and none may overlap another. */
export function checkOutages(outages: readonly OutageWindow[]): OutageWindow[] {
  if (!Array.isArray(outages)) throw new FabricConfigError(`cluster profile: outages must be a list of {startMs, durationMs}, got ${String(outages)}`);
  const sorted = outages.map((w, i) => {
    const ok = w !== null && typeof w === 'object' && Number.isFinite(w.startMs) && w.startMs >= 0 && Number.isFinite(w.durationMs) && w.durationMs > 0;
    if (!ok) throw new FabricConfigError(`cluster profile: outages[${i}] must be {startMs ≥ 0, durationMs > 0} in ms, got ${JSON.stringify(w)}`);
    return { startMs: w.startMs, durationMs: w.durationMs };
  });
  sorted.sort((a, b) => a.startMs - b.startMs);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    const w = sorted[i]!;
    if (w.startMs < prev.startMs + prev.durationMs) {
      throw new FabricConfigError(
        `cluster profile: outages overlap: [${prev.startMs}, ${prev.startMs + prev.durationMs}) ms and [${w.startMs}, ${w.startMs + w.durationMs}) ms`,
      );
    }
  }
  return sorted;
}

function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function check(ok: boolean, rule: string, got: unknown): void {
  if (!ok) throw new FabricConfigError(`cluster profile: ${rule}, got ${String(got)}`);
}
