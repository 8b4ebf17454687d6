/**
 * `${VAR}` and `${VAR:-default}` substitution in every string value of the parsed YAML. Records the paths whose
 * values came from the environment (so they can be redacted) and reports unset variables without a default.
 */
import { describeValue, type ConfigPath } from './errors.js';
import type { Problem } from './issues.js';

export interface EnvSubstitution {
  value: unknown;
  /** Paths of string values into which at least one environment variable was substituted. */
  envPaths: ConfigPath[];
  problems: Problem[];
}

const PATTERN = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

export function substituteEnv(root: unknown, env: NodeJS.ProcessEnv): EnvSubstitution {
  const envPaths: ConfigPath[] = [];
  const problems: Problem[] = [];

  const subst = (s: string, path: ConfigPath): string => {
    let used = false;
    const out = s.replace(PATTERN, (whole, name: string, def: string | undefined) => {
      const v = env[name];
      if (v !== undefined && (v !== '' || def === undefined)) {
        used = true;
        return v;
      }
      if (def !== undefined) return def;
      problems.push({
        path,
        message:
          `environment variable ${name} is not set (found ${describeValue(whole)}); ` +
          `set ${name} or give a default: \${${name}:-value}`,
      });
      return whole;
    });
    if (used) envPaths.push(path);
    return out;
  };

  const walk = (v: unknown, path: ConfigPath): unknown => {
    if (typeof v === 'string') return v.includes('${') ? subst(v, path) : v;
    if (Array.isArray(v)) return v.map((x, i) => walk(x, [...path, i]));
    if (v !== null && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[k] = walk(x, [...path, k]);
      return out;
    }
    return v;
  };

  return { value: walk(root, []), envPaths, problems };
}
