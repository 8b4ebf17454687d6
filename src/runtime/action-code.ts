/**
 * What a container is given to run: the code of an action (its own for 'nodejs:*' kinds, the one a blackbox image
 * maps to locally), and the environment of its runtime process.
 */
import { OPENBLAS_VARIABLES } from '../ml/blas-env.js';
import type { ContainerAction } from './container-types.js';

export interface ActionCode {
  code: string;
  main: string;
  binary: boolean;
}

/** Blackbox image → the action it runs locally (no docker here: an image stands for a Node.js action). */
export type ImageMap = Record<string, { code: string; main?: string; binary?: boolean }>;

/** The code to /init a container of `action` with, or the developer error that prevents it. */
export function resolveCode(action: ContainerAction, images: ImageMap, label: string): ActionCode | string {
  const { exec } = action;
  if (exec.kind === 'blackbox') {
    const image = exec.image ?? '';
    const mapped = Object.hasOwn(images, image) ? images[image] : undefined;
    // A blackbox action that brings its own code (OpenWhisk's docker-skeleton style: `--docker IMAGE code.js`)
    // runs that code; locally every image is a Node.js runtime, so only images without code need a mapping.
    if (!mapped && typeof exec.code === 'string' && exec.code.length > 0) {
      return { code: exec.code, main: exec.main ?? 'main', binary: exec.binary ?? false };
    }
    if (!mapped) {
      const known = Object.keys(images);
      return `${label}: action ${action.name} uses the docker image "${image}", which has no local runtime here (${known.length ? `known images: ${known.join(', ')}` : 'no images are configured'})`;
    }
    return { code: mapped.code, main: mapped.main ?? 'main', binary: mapped.binary ?? false };
  }
  if (!/^nodejs(:|$)/.test(exec.kind)) {
    return `${label}: action ${action.name} has kind "${exec.kind}"; local containers run only nodejs actions (and blackbox images mapped to them)`;
  }
  if (typeof exec.code !== 'string' || exec.code.length === 0) return `${label}: action ${action.name} has no code`;
  return { code: exec.code, main: exec.main ?? 'main', binary: exec.binary ?? false };
}

/** Variables a Node.js process needs to behave normally; the rest of the parent's environment is not passed. */
const INHERITED = ['PATH', 'HOME', 'TMPDIR', 'TMP', 'TEMP', 'LANG', 'LC_ALL', 'TZ', 'SYSTEMROOT'];

/**
 * A runtime process's environment: a minimal inherited set plus the pool's. Like a real platform's container, it
 * does not see the keeper's environment (credentials of other clouds, for one); an action's own variables come
 * with /init.
 */
export function runtimeEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const k of INHERITED) {
    const v = process.env[k];
    if (v !== undefined) env[k] = v;
  }
  return { ...env, ...extra };
}

/**
 * The FEDKEEPER_* variables of `env` (engine knobs such as FEDKEEPER_NATIVE) and the user's OpenBLAS ones
 * (OPENBLAS_CORETYPE, OPENBLAS_NUM_THREADS, OPENBLAS_L2_SIZE, OPENBLAS_VERBOSE): what a local platform passes on.
 */
export function fedkeeperVariables(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  const openblas: readonly string[] = OPENBLAS_VARIABLES;
  for (const [k, v] of Object.entries(env)) if ((k.startsWith('FEDKEEPER_') || openblas.includes(k)) && v !== undefined) out[k] = v;
  return out;
}
