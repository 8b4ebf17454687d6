/**
 * Zod building blocks shared by the config schema: lenient numbers, units, enums, null-tolerant defaults and
 * strict objects whose unknown-key message suggests the closest known key ("did you mean local_epochs?").
 */
import { z } from 'zod';
import { closest, describeValue } from './errors.js';
import { numberLike, parseDurationMs, parseMemoryMB } from './units.js';

/** YAML `key:` with no value is null: treat it as "not given". */
const nullToUndefined = (v: unknown): unknown => (v === null ? undefined : v);

type NumberRule = (n: z.ZodNumber) => z.ZodNumber;

/** A number, also from a numeric string ("1e-3"); `rule` adds bounds: `num((n) => n.gt(0))`. */
export const num = (rule: NumberRule = (n) => n) => z.preprocess(numberLike, rule(z.number()));
/** An integer, also from a numeric string ("5"); `rule` adds bounds: `int((n) => n.min(1))`. */
export const int = (rule: NumberRule = (n) => n) =>
  z.preprocess(
    numberLike,
    rule(z.number({ error: (iss) => (iss.code === 'invalid_type' ? 'expected an integer' : undefined) }).int()),
  );
/** A string; plain YAML numbers (`name: 2024`) are read as their text. */
export const text = () => z.preprocess((v) => (typeof v === 'number' ? String(v) : v), z.string().min(1));

/** One of a fixed set of lower-case words, case-insensitive. */
export function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.preprocess((v) => (typeof v === 'string' ? v.trim().toLowerCase() : v), z.enum(values));
}

/** Memory in MB: 2048, "2048", "2048MB", "2GB". */
export const memoryMB = () =>
  z.unknown().transform((v, ctx) => {
    const mb = parseMemoryMB(v);
    if (mb !== undefined) return mb;
    ctx.addIssue({
      code: 'custom',
      message: `expected a memory size in MB such as 2048, "2048MB" or "2GB", found ${describeValue(v)}`,
    });
    return z.NEVER;
  });

/** Timeout in ms: 300000, "300000", "300s", "5m" (a bare number is ms). */
export const durationMs = () =>
  z.unknown().transform((v, ctx) => {
    const ms = parseDurationMs(v);
    if (ms !== undefined) return ms;
    ctx.addIssue({
      code: 'custom',
      message: `expected a duration such as 300000 (ms), "300s" or "5m", found ${describeValue(v)}`,
    });
    return z.NEVER;
  });

/** A list of function names; a single name is accepted as a one-element list. */
export const nameList = () =>
  z.preprocess((v) => (typeof v === 'string' ? [v] : v), z.array(z.string().min(1)).min(1));

/** Optional value with a default (`key:` with no value also takes the default). */
export function withDefault<T extends z.ZodType>(schema: T, def: z.util.NoUndefined<z.output<T>>) {
  return z.preprocess(nullToUndefined, schema.default(def));
}

/** Optional mapping whose missing/empty form is `{}` run through the schema (so inner defaults apply). */
export function withDefaults<T extends z.ZodType>(schema: T) {
  return z.preprocess((v) => (v === null || v === undefined ? {} : v), schema);
}

/** Optional value without a default (`key:` with no value counts as absent). */
export function maybe<T extends z.ZodType>(schema: T) {
  return z.preprocess(nullToUndefined, schema.optional());
}

/** Required value (`key:` with no value is reported as "found nothing"). */
export function required<T extends z.ZodType>(schema: T) {
  return z.preprocess(nullToUndefined, schema);
}

/**
 * An object that rejects unknown keys, naming the first one found and the closest known key.
 * `hidden` keys are accepted by the shape but not advertised in the message.
 */
export function strict<S extends z.core.$ZodLooseShape>(shape: S, hidden: readonly string[] = []) {
  const known = Object.keys(shape).filter((k) => !hidden.includes(k));
  return z.strictObject(shape, {
    error: (iss) => {
      if (iss.code !== 'unrecognized_keys') return undefined;
      const [first, ...rest] = iss.keys;
      const guess = closest(first ?? '', known);
      let msg = `unknown key ${JSON.stringify(first)} (expected one of ${known.join(', ')})`;
      if (guess !== undefined) msg += `; did you mean ${guess}?`;
      if (rest.length > 0) msg += `; also unknown: ${rest.map((k) => JSON.stringify(k)).join(', ')}`;
      return msg;
    },
  });
}
