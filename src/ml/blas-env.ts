/**
 * The environment side of OpenBLAS core selection (see blas-select.ts for the probe): which OpenBLAS variables pass
 * to the training processes of local platforms, how a keeper's decision travels to them, and how a process reads it
 * back. No imports: this module ends up in every function package.
 *
 * Variables:
 *   OPENBLAS_CORETYPE            the user's choice of kernels; always wins over the probe.
 *   FEDKEEPER_BLAS_PROBE=0       no probing: OpenBLAS keeps the core it picks itself.
 *   FEDKEEPER_BLAS_CHOICE        set by a keeper (or a process) that decided: probe | user | default | off. A process
 *                                that finds it does not decide again.
 *   FEDKEEPER_OPENBLAS_<NAME>    carries OPENBLAS_<NAME> to containers of platforms that pass on only FEDKEEPER_*
 *                                variables (the local fabric); a process restores it before OpenBLAS loads, unless
 *                                OPENBLAS_<NAME> itself is set.
 */

/** OpenBLAS's own variables a user may set for training; local platforms pass them on like FEDKEEPER_* ones. */
export const OPENBLAS_VARIABLES = ['OPENBLAS_CORETYPE', 'OPENBLAS_NUM_THREADS', 'OPENBLAS_L2_SIZE', 'OPENBLAS_VERBOSE'] as const;

/**
 * How the core in use was chosen: 'probe' (the fastest core that passed the probe), 'user' (OPENBLAS_CORETYPE),
 * 'default' (OpenBLAS's own pick: nothing to choose, or nothing beat it), 'off' (FEDKEEPER_BLAS_PROBE=0).
 */
export type BlasSource = 'probe' | 'user' | 'default' | 'off';

const SOURCES: readonly string[] = ['probe', 'user', 'default', 'off'];

export interface BlasChoice {
  /** The OPENBLAS_CORETYPE to run with; null: none (OpenBLAS picks). */
  core: string | null;
  source: BlasSource;
}

const CARRIER = 'FEDKEEPER_';

function nonEmpty(v: string | undefined): string | undefined {
  return v !== undefined && v.trim() !== '' ? v.trim() : undefined;
}

export function blasProbeDisabled(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env['FEDKEEPER_BLAS_PROBE'];
  return v !== undefined && ['0', 'false', 'off', 'no'].includes(v.trim().toLowerCase());
}

/** Sets OPENBLAS_<NAME> from FEDKEEPER_OPENBLAS_<NAME> where only the carrier is set (before OpenBLAS loads). */
export function restoreOpenblasEnv(env: NodeJS.ProcessEnv = process.env): void {
  for (const name of OPENBLAS_VARIABLES) {
    const carried = env[CARRIER + name];
    if (env[name] === undefined && carried !== undefined) env[name] = carried;
  }
}

/**
 * The choice the environment already makes, if any: a deciding parent's (FEDKEEPER_BLAS_CHOICE, with the core it
 * set), or the user's OPENBLAS_CORETYPE. Undefined: nothing decided yet.
 */
export function choiceFromEnv(env: NodeJS.ProcessEnv = process.env): BlasChoice | undefined {
  const user = nonEmpty(env['OPENBLAS_CORETYPE']);
  const carried = nonEmpty(env[CARRIER + 'OPENBLAS_CORETYPE']);
  const given = env['FEDKEEPER_BLAS_CHOICE']?.trim().toLowerCase();
  if (given !== undefined && SOURCES.includes(given)) {
    // OPENBLAS_CORETYPE set for this process on top of what the parent passed: the user's.
    if (user && carried && user.toLowerCase() !== carried.toLowerCase()) return { core: user, source: 'user' };
    if (given === 'probe' || given === 'user') {
      const core = user ?? carried;
      return core ? { core, source: given } : { core: null, source: 'default' };
    }
    // The parent set no core ('default', 'off'): a core here was set for this process.
    if (user) return { core: user, source: 'user' };
    return { core: null, source: given as BlasSource };
  }
  const core = user ?? carried;
  return core ? { core, source: 'user' } : undefined;
}

/**
 * What a local platform hands its containers for `choice`: the core (OPENBLAS_CORETYPE and its carrier), how it was
 * chosen, and carriers of the user's other OpenBLAS variables (the variables themselves reach the `local` provider
 * through fedkeeperVariables and GCF-local instances by inheritance; the fabric passes on only FEDKEEPER_*).
 */
export function blasChoiceEnv(choice: BlasChoice, env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = { FEDKEEPER_BLAS_CHOICE: choice.source };
  if (choice.core) {
    out['OPENBLAS_CORETYPE'] = choice.core;
    out[CARRIER + 'OPENBLAS_CORETYPE'] = choice.core;
  }
  for (const name of OPENBLAS_VARIABLES) {
    const v = env[name];
    if (name !== 'OPENBLAS_CORETYPE' && v !== undefined) out[CARRIER + name] = v;
  }
  return out;
}

/**
 * The engine's BLAS line (start-up message, summary.json `engine_blas`): version, the core OpenBLAS actually runs
 * and how it came to run it, e.g. "OpenBLAS 0.3.21 SkylakeX (chosen by probe)".
 */
export function describeBlas(config: string, corename: string, choice: BlasChoice): string {
  const version = /OpenBLAS\s+([\d.]+)/.exec(config)?.[1];
  const head = `OpenBLAS${version ? ` ${version}` : ''} ${corename}`;
  let how =
    choice.source === 'probe'
      ? 'chosen by probe'
      : choice.source === 'user'
        ? 'OPENBLAS_CORETYPE set by user'
        : choice.source === 'off'
          ? 'OpenBLAS default, FEDKEEPER_BLAS_PROBE=0'
          : 'OpenBLAS default';
  if ((choice.source === 'probe' || choice.source === 'user') && choice.core && choice.core.toLowerCase() !== corename.toLowerCase()) {
    how += `; OpenBLAS did not take ${choice.core}`;
  }
  return `${head} (${how})`;
}
