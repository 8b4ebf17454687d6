/**
 * Secrets never leave the process: `redactConfig` returns a deep copy of a config in which every value that came
 * from an environment variable, every value under a secret-looking key (auth, key, password, token, secret …), the
 * user:password part of any URL and any `password=` parameter are replaced by "***". The store URL
 * (`store.url`, e.g. postgres://user:password@host/db) keeps its user and loses its password by the stricter
 * rule of store/store-url.ts, which also catches a malformed URL. Used before a config is written to a run
 * directory or a store.
 */
import { redactUrlPassword } from '../store/store-url.js';
import type { ConfigPath } from './errors.js';

export const REDACTED = '***';

/** Paths whose values came from `${ENV}` substitution, remembered per loaded config object. */
const envPathsByConfig = new WeakMap<object, ConfigPath[]>();

export function rememberEnvPaths(cfg: object, paths: ConfigPath[]): void {
  envPathsByConfig.set(cfg, paths);
}

/** The paths of `cfg` whose values came from environment variables (empty if unknown). */
export function envPathsOf(cfg: object): ConfigPath[] {
  return envPathsByConfig.get(cfg) ?? [];
}

const SECRET_WORDS = new Set([
  'auth', 'authorization', 'key', 'apikey', 'password', 'passwd', 'pwd', 'token', 'secret', 'credential',
  'credentials', 'privatekey',
]);

/** Does this key name look like it holds a secret? `ow_auth`, `private_key`, `apiKey`, `access-token` … */
export function isSecretKey(key: string): boolean {
  const lower = key.toLowerCase();
  if (SECRET_WORDS.has(lower.replace(/[^a-z]/g, ''))) return true;
  const words = key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase().split(/[^a-z0-9]+/);
  return words.some((w) => SECRET_WORDS.has(w));
}

/** True if the path has a secret-looking key or lies at/under a path that came from the environment. */
export function isSensitivePath(path: ConfigPath, envPaths: readonly ConfigPath[] = []): boolean {
  if (path.some((seg) => typeof seg === 'string' && isSecretKey(seg))) return true;
  return envPaths.some((p) => p.length <= path.length && p.every((seg, i) => String(seg) === String(path[i])));
}

const URL_USERINFO = /(\b[a-z][a-z0-9+.-]*:\/\/)[^/@\s]+@/gi;
/** `password=…` as a URL query parameter or a libpq keyword (`host=db password=…`). */
const PASSWORD_PARAM = /(\bpassword\s*=\s*)('[^']*'|[^&#\s]*)/gi;

/** Is this the store's URL (`…store.url`)? */
function isStoreUrl(path: ConfigPath): boolean {
  return path.length >= 2 && path[path.length - 1] === 'url' && path[path.length - 2] === 'store';
}

/** A string with URL credentials (`user:password@` → `***@`) and `password=` parameters replaced by "***". */
export function redactSecrets(s: string): string {
  return s.replace(URL_USERINFO, `$1${REDACTED}@`).replace(PASSWORD_PARAM, `$1${REDACTED}`);
}

function copy(v: unknown, path: ConfigPath, envPaths: readonly ConfigPath[]): unknown {
  if (path.length > 0 && isSensitivePath(path, envPaths)) return REDACTED;
  if (typeof v === 'string') return isStoreUrl(path) ? redactUrlPassword(v) : redactSecrets(v);
  if (Array.isArray(v)) return v.map((x, i) => copy(x, [...path, i], envPaths));
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = copy(x, [...path, k], envPaths);
    return out;
  }
  return v;
}

/**
 * Deep copy of `cfg` with secrets replaced by "***". Env-derived paths are known for configs returned by
 * loadConfig/parseConfig; `extraPaths` adds more (e.g. for a copy of such a config).
 */
export function redactConfig(cfg: unknown, extraPaths: readonly ConfigPath[] = []): unknown {
  const envPaths = cfg !== null && typeof cfg === 'object' ? [...envPathsOf(cfg), ...extraPaths] : [...extraPaths];
  return copy(cfg, [], envPaths);
}
