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
 *
 * What an OpenWhisk operator configures on the controller (OpenWhisk clusters only; a Lambda platform has its own):
 *  - limits: the ranges a `PUT …/actions/NAME` may ask for, per limit `{min, max}` — memory (MB), timeout (ms),
 *            concurrency (activations per container), logs (MB). Unset: the stock controller's (application.conf):
 *            memory 128–512, timeout 100–300,000, concurrency 1–1, logs 0–10. E.g. `limits: {memory: {max: 2048}}`
 *            as an operator raises `whisk.memory.max`; outside its range a PUT is refused with HTTP 400.
 *  - payloadMaxMb: the largest invocation payload and action result (`whisk.activation.payload.max`; stock 1 MB):
 *            a larger invocation is refused with HTTP 413, a larger result is a developer error with OpenWhisk's text.
 *  - invocationsPerMinute, concurrentInvocations: the namespace's throttles (`limits.actions.invokes.perMinute` /
 *            `.concurrent` of a deployment): past them an invocation is refused with HTTP 429 and OpenWhisk's text.
 *            Unset: no throttle.
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

/** A range of one action limit, both ends inclusive. */
export interface LimitRange {
  min: number;
  max: number;
}

/** The ranges the controller allows for an action's limits: memory and logs in MB, timeout in ms. */
export interface ActionLimitRanges {
  memory: LimitRange;
  timeout: LimitRange;
  concurrency: LimitRange;
  logs: LimitRange;
}

/** A profile's `limits`: any end of any range, the rest stock. */
export type ActionLimitsSpec = { [K in keyof ActionLimitRanges]?: Partial<LimitRange> };

/** Apache OpenWhisk's stock ranges (common/scala/src/main/resources/application.conf: whisk.memory, time-limit, …). */
export const OPENWHISK_LIMIT_RANGES: Readonly<ActionLimitRanges> = Object.freeze({
  memory: Object.freeze({ min: 128, max: 512 }),
  timeout: Object.freeze({ min: 100, max: 300_000 }),
  concurrency: Object.freeze({ min: 1, max: 1 }),
  logs: Object.freeze({ min: 0, max: 10 }),
});

/** What an OpenWhisk controller is configured with, beyond its invoker's pool (see the top of this file). */
export interface ControllerSettings {
  limits?: ActionLimitsSpec;
  /** Invocations per minute of the namespace; absent: unlimited. */
  invocationsPerMinute?: number;
  /** Activations of the namespace in flight at once; absent: unlimited. */
  concurrentInvocations?: number;
  /**
   * The largest invocation payload and action result, MB (`whisk.activation.payload.max`, stock 1): a larger
   * invocation is refused with HTTP 413, a larger result ends the activation as a developer error, as OpenWhisk does.
   */
  payloadMaxMb?: number;
}

export interface ClusterCharacter extends ClusterProfile, ControllerSettings {
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
  checkControllerSettings(c, c.memoryMb);
  return c;
}

/** The controller's part of a character: only what the profile sets (an OpenWhisk server takes it as it is). */
export function controllerSettings(c: ControllerSettings): ControllerSettings {
  const s: ControllerSettings = {};
  if (c.limits !== undefined) s.limits = c.limits;
  if (c.invocationsPerMinute !== undefined) s.invocationsPerMinute = c.invocationsPerMinute;
  if (c.concurrentInvocations !== undefined) s.concurrentInvocations = c.concurrentInvocations;
  if (c.payloadMaxMb !== undefined) s.payloadMaxMb = c.payloadMaxMb;
  return s;
}

/**
 * Checks a controller's settings (FabricConfigError naming the field) and returns its ranges: the stock ones with the
 * profile's ends in place. `memoryMb`: the invoker's memory, which no action's memory limit may exceed.
 */
export function checkControllerSettings(s: ControllerSettings, memoryMb?: number): ActionLimitRanges {
  for (const k of ['invocationsPerMinute', 'concurrentInvocations'] as const) {
    const v = s[k];
    if (v !== undefined) check(Number.isInteger(v) && v >= 1, `${k} must be an integer ≥ 1 (leave it out for no throttle)`, v);
  }
  if (s.payloadMaxMb !== undefined) check(typeof s.payloadMaxMb === 'number' && s.payloadMaxMb > 0 && Number.isFinite(s.payloadMaxMb), 'payloadMaxMb must be a number of MB > 0 (stock OpenWhisk: 1)', s.payloadMaxMb);
  const given = s.limits ?? {};
  if (given === null || typeof given !== 'object' || Array.isArray(given)) check(false, 'limits must be {memory?, timeout?, concurrency?, logs?}', JSON.stringify(given));
  const ranges = {} as ActionLimitRanges;
  const floor = { memory: 1, timeout: 1, concurrency: 1, logs: 0 } as const;
  for (const k of Object.keys(given)) {
    if (!(k in OPENWHISK_LIMIT_RANGES)) check(false, `limits.${k} is not a limit an OpenWhisk controller has (memory, timeout, concurrency, logs)`, k);
  }
  for (const k of Object.keys(OPENWHISK_LIMIT_RANGES) as (keyof ActionLimitRanges)[]) {
    const r = { ...OPENWHISK_LIMIT_RANGES[k], ...defined(given[k] ?? {}) };
    for (const end of ['min', 'max'] as const) {
      check(Number.isInteger(r[end]) && r[end] >= floor[k], `limits.${k}.${end} must be an integer ≥ ${floor[k]}`, r[end]);
    }
    check(r.min <= r.max, `limits.${k}: min (${r.min}) must be ≤ max (${r.max})`, JSON.stringify(given[k]));
    ranges[k] = r;
  }
  if (memoryMb !== undefined && given.memory?.max !== undefined) {
    check(ranges.memory.max <= memoryMb, `limits.memory.max (${ranges.memory.max} MB) must be ≤ memoryMb (${memoryMb} MB, the cluster's memory: no container could hold more)`, ranges.memory.max);
  }
  return ranges;
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
