/**
 * The ranges an OpenWhisk controller allows for an action's limits, as the keeper checks them before deploying: a
 * stock Apache OpenWhisk's (application.conf: memory 128–512 MB, timeout 100 ms–300 s, concurrency 1) unless the
 * cluster block states its operator's (`action_limits`), or a local cluster's profile raised them. A function asking
 * for more is refused in one line (`on_limit: refuse`, the default) or clamped into the range with a warning
 * (`on_limit: clamp`).
 */
import { ProviderError } from './types.js';

export interface LimitRange {
  min: number;
  max: number;
}

export interface ActionLimits {
  /** MB */
  memory: LimitRange;
  /** ms */
  timeout: LimitRange;
  /** activations per container */
  concurrency: LimitRange;
}

export const STOCK_ACTION_LIMITS: ActionLimits = {
  memory: { min: 128, max: 512 },
  timeout: { min: 100, max: 300_000 },
  concurrency: { min: 1, max: 1 },
};

const KEYS = ['memory', 'timeout', 'concurrency'] as const;
const UNITS: Record<(typeof KEYS)[number], string> = { memory: 'MB', timeout: 'ms', concurrency: 'activations per container' };

/**
 * The stock ranges with `overrides` laid over them, end by end (a local profile's `limits`, then the block's
 * `action_limits`). `where` names the config path in errors (exit 2).
 */
export function actionLimits(where: string, ...overrides: unknown[]): ActionLimits {
  const out: ActionLimits = { memory: { ...STOCK_ACTION_LIMITS.memory }, timeout: { ...STOCK_ACTION_LIMITS.timeout }, concurrency: { ...STOCK_ACTION_LIMITS.concurrency } };
  for (const o of overrides) {
    if (o === undefined) continue;
    if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new ProviderError(`${where}: expected {memory: {min, max}, timeout: {…}, concurrency: {…}}, found ${JSON.stringify(o)}`, 2);
    for (const [k, r] of Object.entries(o as Record<string, unknown>)) {
      if (k === 'logs') continue; // a controller limit the keeper never sets
      if (!(KEYS as readonly string[]).includes(k)) throw new ProviderError(`${where}.${k}: not an action limit (memory, timeout, concurrency)`, 2);
      const range = r as Record<string, unknown>;
      for (const [end, v] of Object.entries(range ?? {})) {
        if (end !== 'min' && end !== 'max') throw new ProviderError(`${where}.${k}.${end}: expected min or max`, 2);
        if (!(typeof v === 'number' && Number.isInteger(v) && v > 0)) throw new ProviderError(`${where}.${k}.${end}: expected a whole number > 0 (${UNITS[k as (typeof KEYS)[number]]}), found ${JSON.stringify(v)}`, 2);
        out[k as (typeof KEYS)[number]][end] = v;
      }
      const got = out[k as (typeof KEYS)[number]];
      if (got.min > got.max) throw new ProviderError(`${where}.${k}: min (${got.min}) is above max (${got.max})`, 2);
    }
  }
  return out;
}

export interface LimitRequest {
  memoryMb: number;
  timeoutMs: number;
  concurrency: number;
}

/**
 * Checks a function's limits against the cluster's ranges. Refuse: throws one line naming the function, the value,
 * the range and the fixes. Clamp: returns the values moved into the range and a warning per moved value.
 */
export function fitLimits(cluster: string, fn: string, want: LimitRequest, limits: ActionLimits, onLimit: 'refuse' | 'clamp'): { fitted: LimitRequest; warnings: string[] } {
  const fitted = { ...want };
  const warnings: string[] = [];
  const check = (key: (typeof KEYS)[number], field: keyof LimitRequest, setting: string) => {
    const v = want[field];
    const r = limits[key];
    if (v >= r.min && v <= r.max) return;
    const range = `${r.min}–${r.max} ${UNITS[key]}`;
    if (onLimit === 'refuse') {
      throw new ProviderError(
        `openwhisk cluster ${cluster}: function ${fn} asks for ${key} ${v} ${UNITS[key]}, outside the cluster's range ${range}; set functions.${fn}.openwhisk.${setting} within it, state the operator's range in providers.openwhisk.${cluster}.action_limits, or set on_limit: clamp`,
        2,
      );
    }
    fitted[field] = Math.min(r.max, Math.max(r.min, v));
    warnings.push(`openwhisk cluster ${cluster}: function ${fn}: ${key} ${v} ${UNITS[key]} is outside the cluster's range ${range}; deployed with ${fitted[field]} (on_limit: clamp)`);
  };
  check('memory', 'memoryMb', 'memory');
  check('timeout', 'timeoutMs', 'timeout');
  check('concurrency', 'concurrency', 'concurrency');
  return { fitted, warnings };
}
