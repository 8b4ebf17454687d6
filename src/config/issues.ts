/**
 * Turns zod issues into the one-line "<path>: expected …, found …" problems of a ConfigError. The found value is
 * read from the (env-substituted) input at the issue's path, and hidden when that path holds a secret.
 */
import type { z } from 'zod';
import { redactUrlPassword } from '../store/store-url.js';
import { closest, describeValue, type ConfigPath } from './errors.js';

export interface Problem {
  path: ConfigPath;
  /** Text after `<path>: `. */
  message: string;
}

const HIDDEN = '"***" (hidden)';

const TYPE_NAMES: Record<string, string> = {
  number: 'a number',
  int: 'an integer',
  string: 'a string',
  object: 'a mapping',
  record: 'a mapping',
  array: 'a list',
  boolean: 'true or false',
};

function valueAt(root: unknown, path: ConfigPath): unknown {
  let cur: unknown = root;
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string | number, unknown>)[seg];
  }
  return cur;
}

function bound(origin: string, inclusive: boolean, value: unknown, big: boolean): string {
  const v = String(value);
  if (origin === 'array') return `${big ? 'at most' : 'at least'} ${v} entr${v === '1' ? 'y' : 'ies'}`;
  if (origin === 'string') return big ? `at most ${v} characters` : 'a non-empty string';
  if (big) return inclusive ? `at most ${v}` : `less than ${v}`;
  return inclusive ? `at least ${v}` : `more than ${v}`;
}

function explain(iss: z.core.$ZodIssue, found: string, input: unknown): string {
  switch (iss.code) {
    case 'invalid_type': {
      // A schema may name what it expects through its message ("expected an integer"); else use the type name.
      const named = iss.message.startsWith('expected ') ? iss.message.slice('expected '.length) : undefined;
      const what = named ?? TYPE_NAMES[iss.expected] ?? iss.expected;
      const hint = input === undefined || input === null ? ' (this key is required)' : '';
      return `expected ${what}, found ${found}${hint}`;
    }
    case 'too_small':
      return `expected ${bound(iss.origin, iss.inclusive ?? true, iss.minimum, false)}, found ${found}`;
    case 'too_big':
      return `expected ${bound(iss.origin, iss.inclusive ?? true, iss.maximum, true)}, found ${found}`;
    case 'invalid_value': {
      const values = iss.values.map(String);
      const guess = typeof input === 'string' ? closest(input, values) : undefined;
      return `expected one of ${values.join(', ')}, found ${found}` + (guess ? `; did you mean ${guess}?` : '');
    }
    default:
      return iss.message;
  }
}

/** One problem per zod issue, unknown-key problems first (a typo there usually explains a "missing" key). */
export function problemsFromZod(
  issues: readonly z.core.$ZodIssue[],
  input: unknown,
  isSensitive: (path: ConfigPath) => boolean,
): Problem[] {
  const out = issues.map((iss): Problem & { rank: number } => {
    const at: ConfigPath = iss.path.map((seg) => (typeof seg === 'number' ? seg : String(seg)));
    const path: ConfigPath = iss.code === 'unrecognized_keys' && iss.keys.length > 0 ? [...at, iss.keys[0]!] : at;
    const value = valueAt(input, at);
    const hide = isSensitive(at) && value !== undefined;
    let message = explain(iss, hide ? HIDDEN : describeValue(value), value);
    if (hide && typeof value === 'string' && value !== '') {
      // The value as written, or as a message shows it with its password redacted (a store URL).
      for (const shown of [describeValue(value), describeValue(redactUrlPassword(value))]) {
        message = message.split(shown).join(HIDDEN);
      }
    }
    return { path, message, rank: iss.code === 'unrecognized_keys' ? 0 : 1 };
  });
  return out.sort((a, b) => a.rank - b.rank).map(({ path, message }) => ({ path, message }));
}
