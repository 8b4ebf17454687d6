/**
 * Picks the OpenBLAS core (OPENBLAS_CORETYPE) the native kernels run, before OpenBLAS loads.
 *
 * Debian's OpenBLAS does not recognise some CPUs and falls back to its generic kernels (`Prescott`: a third to a
 * fifth of the speed of `Haswell` or `SkylakeX` on an AVX2 / AVX-512 CPU). When the CPU has AVX2+FMA or AVX-512
 * (Linux: /proc/cpuinfo; elsewhere nothing is selected) and OpenBLAS, left alone, picks a core without AVX2
 * kernels, every candidate core for those flags is tried in a probe process of its own (blas-probe.ts: OpenBLAS
 * must report the core asked for, and the project's kernels must match a plain reference; a crash, a timeout or a
 * wrong result rules a core out) and timed; the fastest correct one is chosen if it beats OpenBLAS's own pick by
 * 10 %. By proof, not by name: some OpenBLAS builds compute wrong results or crash with some newer cores' kernels.
 *
 * The user's OPENBLAS_CORETYPE always wins; FEDKEEPER_BLAS_PROBE=0 turns probing off. The decision is cached per
 * machine ($XDG_CACHE_HOME/fedkeeper/ or ~/.cache/fedkeeper/; key: CPU model and flags, OpenBLAS's version and
 * build, the addon file), so probing runs once; a cache that cannot be written is decided again next time.
 *
 * Who decides: a process that has the repository (the keeper, for the local platforms it starts — see
 * blasPlatformEnv — and benchmarks or tests that load the addon themselves). A function package never probes (the
 * probe script is not in it): it runs what its environment says (blas-env.ts).
 *
 * Test and benchmark only: FEDKEEPER_BLAS_PROBE_BASELINE=<core> plays an OpenBLAS that picks <core> by itself
 * (e.g. Prescott, as on a CPU it does not recognise): the baseline probe and a process left on the default run it.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { blasChoiceEnv, blasProbeDisabled, choiceFromEnv, restoreOpenblasEnv, type BlasChoice } from './blas-env.js';

export interface CpuInfo {
  model: string;
  vendor: string;
  flags: string[];
}

/** One probe process's answer. `core` null: OpenBLAS's own pick (no OPENBLAS_CORETYPE). */
export interface ProbeResult {
  core: string | null;
  /** Ran, reported the core asked for, and its kernels matched the reference. */
  correct: boolean;
  corename?: string;
  config?: string;
  /** Time of the probe's kernel pass (only when correct). */
  seconds?: number;
  /** Why it is not correct. */
  error?: string;
  /** Failed for a reason that may not last (a timeout, the time budget): such a decision is not cached. */
  transient?: boolean;
}

export interface BlasDecision extends BlasChoice {
  /** Why, in a few words. */
  reason: string;
  /** The core OpenBLAS picks by itself, when a probe saw it. */
  defaultCore?: string;
  /** The probes run for this decision (baseline first), when it was made by probing. */
  probes?: ProbeResult[];
  /** Read from the cache rather than probed now. */
  cached?: boolean;
}

/** Runs one probe; `timeoutMs` (optional) shortens the runner's own limit (the decision's remaining budget). */
export type ProbeRunner = (core: string | null, mode: 'info' | 'check', timeoutMs?: number) => ProbeResult;

/** Cores with AVX2 (and up) kernels: when OpenBLAS picks one of these itself, there is nothing to select. */
const FAST_CORES = new Set(['haswell', 'zen', 'skylakex', 'cooperlake', 'sapphirerapids']);

/** A candidate must be this much faster than OpenBLAS's own pick to replace it. */
const MARGIN = 1.1;
export const PROBE_TIMEOUT_MS = 3000;
/** All probes of one decision: a probe gets at most what is left; candidates not started by then are skipped (and the decision is not cached). */
export const PROBE_BUDGET_MS = 8000;

export function isGenericCore(corename: string): boolean {
  return !FAST_CORES.has(corename.trim().toLowerCase());
}

/** The first processor's model name, vendor and flags from /proc/cpuinfo's text; undefined without flags. */
export function parseCpuinfo(text: string): CpuInfo | undefined {
  const block = text.split(/\n\s*\n/)[0] ?? '';
  const field = (name: string) => new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(block)?.[1]?.trim();
  const flags = field('flags');
  if (flags === undefined) return undefined;
  return { model: field('model name') ?? '', vendor: field('vendor_id') ?? '', flags: flags.split(/\s+/).filter(Boolean) };
}

/** This CPU's features (Linux only; undefined elsewhere or when unreadable). */
export function readCpuInfo(): CpuInfo | undefined {
  if (process.platform !== 'linux') return undefined;
  try {
    return parseCpuinfo(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * OpenBLAS cores worth trying on a CPU with these flags, best first: AVX-512 (F, CD, BW, DQ, VL: what SkylakeX's
 * kernels use) → Cooperlake (with AVX512_BF16), SkylakeX, Haswell; AVX2 with FMA → Zen (AMD), Haswell; else none.
 */
export function coreCandidates(cpu: { flags: string | readonly string[]; vendor?: string }): string[] {
  const f = new Set(typeof cpu.flags === 'string' ? cpu.flags.split(/\s+/) : cpu.flags);
  if (!(f.has('avx2') && f.has('fma'))) return [];
  if (['avx512f', 'avx512cd', 'avx512bw', 'avx512dq', 'avx512vl'].every((x) => f.has(x))) {
    return [...(f.has('avx512_bf16') ? ['Cooperlake'] : []), 'SkylakeX', 'Haswell'];
  }
  return [...(/AuthenticAMD|HygonGenuine/i.test(cpu.vendor ?? '') ? ['Zen'] : []), 'Haswell'];
}

export function flagsHash(flags: readonly string[]): string {
  return createHash('sha256').update([...new Set(flags)].sort().join(' ')).digest('hex').slice(0, 16);
}

export interface BlasCacheKey {
  v: 1;
  model: string;
  vendor: string;
  flags: string;
  /** OpenBLAS's version and build (its config string, without the core name a DYNAMIC_ARCH build appends). */
  blas: string;
  addon: { size: number; mtimeMs: number };
  baseline?: string;
}

export function blasCacheKey(cpu: CpuInfo, config: string, corename: string, addon: { size: number; mtimeMs: number }, baseline?: string): BlasCacheKey {
  const blas = config
    .split(/\s+/)
    .filter((t) => t && t.toLowerCase() !== corename.toLowerCase())
    .join(' ');
  return { v: 1, model: cpu.model, vendor: cpu.vendor, flags: flagsHash(cpu.flags), blas, addon: { size: addon.size, mtimeMs: Math.round(addon.mtimeMs) }, ...(baseline ? { baseline } : {}) };
}

/** $XDG_CACHE_HOME/fedkeeper, or ~/.cache/fedkeeper. */
export function blasCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env['XDG_CACHE_HOME'];
  return path.join(xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.cache'), 'fedkeeper');
}

function cacheFile(dir: string, key: BlasCacheKey): string {
  const id = createHash('sha256').update(JSON.stringify(key)).digest('hex').slice(0, 16);
  return path.join(dir, `blas-core-${id}.json`);
}

/** The decision cached under `key`, or undefined (none, another key's, unreadable or malformed). */
export function readCachedDecision(dir: string, key: BlasCacheKey): BlasDecision | undefined {
  try {
    const raw = JSON.parse(readFileSync(cacheFile(dir, key), 'utf8')) as { key?: unknown; decision?: Partial<BlasDecision> };
    const d = raw.decision;
    if (JSON.stringify(raw.key) !== JSON.stringify(key) || !d || typeof d !== 'object') return undefined;
    if (!(d.core === null || (typeof d.core === 'string' && /^[A-Za-z0-9_]+$/.test(d.core)))) return undefined;
    if (d.source !== 'probe' && d.source !== 'default') return undefined;
    if ((d.source === 'probe') !== (d.core !== null) || typeof d.reason !== 'string') return undefined;
    return { ...(d as BlasDecision), cached: true };
  } catch {
    return undefined;
  }
}

/** Writes atomically (temporary file, then rename); false when it cannot (not an error: decided again next time). */
export function writeCachedDecision(dir: string, key: BlasCacheKey, decision: BlasDecision): boolean {
  const file = cacheFile(dir, key);
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    mkdirSync(dir, { recursive: true });
    const { cached: _c, ...rest } = decision;
    writeFileSync(tmp, `${JSON.stringify({ key, decision: rest, decidedAt: new Date().toISOString() }, null, 1)}\n`);
    renameSync(tmp, file);
    return true;
  } catch {
    try {
      rmSync(tmp, { force: true });
    } catch {
      // nothing to clean
    }
    return false;
  }
}

/** The probe script beside this module (absent inside a function package). */
export function probeScript(): string | undefined {
  const file = fileURLToPath(new URL('./blas-probe.js', import.meta.url));
  return existsSync(file) ? file : undefined;
}

/** Runs blas-probe.js in a process of its own per call, with OPENBLAS_CORETYPE = core (unset for null). */
export function spawnProbeRunner(addonFile: string, opts: { script?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv; baseline?: string } = {}): ProbeRunner {
  const script = opts.script ?? probeScript();
  const limit = opts.timeoutMs ?? PROBE_TIMEOUT_MS;
  return (core, mode, left) => {
    const timeout = Math.max(1, Math.min(limit, left ?? limit));
    if (!script) return { core, correct: false, error: 'probe script not found' };
    const env: NodeJS.ProcessEnv = { ...(opts.env ?? process.env) };
    delete env['OPENBLAS_CORETYPE'];
    delete env['FEDKEEPER_OPENBLAS_CORETYPE'];
    env['OPENBLAS_NUM_THREADS'] ??= '1';
    const set = core ?? opts.baseline;
    if (set) env['OPENBLAS_CORETYPE'] = set;
    const r = spawnSync(process.execPath, [script, mode, addonFile, core ?? 'default'], { env, timeout, killSignal: 'SIGKILL', encoding: 'utf8', maxBuffer: 1 << 20, windowsHide: true });
    const fail = (error: string, transient = false): ProbeResult => ({ core, correct: false, error, ...(transient ? { transient } : {}) });
    if (r.error) return (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT' ? fail(`timed out after ${timeout} ms`, true) : fail(`could not start: ${r.error.message}`);
    if (r.signal) return fail(`killed by ${r.signal}`);
    if (r.status !== 0) return fail(`exit code ${r.status}: ${(r.stderr ?? '').trim().split('\n').pop() ?? ''}`.trim());
    const last = (r.stdout ?? '').trim().split('\n').pop() ?? '';
    let out: { corename?: unknown; config?: unknown; correct?: unknown; errors?: unknown; seconds?: unknown };
    try {
      out = JSON.parse(last) as typeof out;
    } catch {
      return fail('no answer');
    }
    const corename = typeof out.corename === 'string' ? out.corename : '';
    const config = typeof out.config === 'string' ? out.config : '';
    const base = { core, corename, config };
    if (core !== null && corename.toLowerCase() !== core.toLowerCase()) return { ...base, correct: false, error: `OpenBLAS runs ${corename || '?'}, not ${core}` };
    if (mode === 'info') return { ...base, correct: true };
    if (out.correct !== true) {
      const errors = Array.isArray(out.errors) ? out.errors.map(String) : [];
      return { ...base, correct: false, error: `wrong result: ${errors[0] ?? 'unknown'}` };
    }
    if (typeof out.seconds !== 'number' || !(out.seconds > 0)) return { ...base, correct: false, error: 'no timing' };
    return { ...base, correct: true, seconds: out.seconds };
  };
}

/** The fastest correct candidate if it beats the baseline (OpenBLAS's own pick) by MARGIN; else none. */
export function pickCore(baseline: ProbeResult, candidates: readonly ProbeResult[]): { core: string | null; reason: string } {
  let best: ProbeResult | undefined;
  for (const c of candidates) if (c.correct && c.core && c.seconds && (!best || c.seconds < best.seconds!)) best = c;
  const base = baseline.corename || 'the default core';
  if (!best) return { core: null, reason: candidates.length ? `no candidate passed; ${base} kept` : `no candidate; ${base} kept` };
  if (baseline.correct && baseline.seconds) {
    const speedup = baseline.seconds / best.seconds!;
    if (speedup < MARGIN) return { core: null, reason: `no candidate beat ${base} (best: ${best.core}, ${speedup.toFixed(2)}×)` };
    return { core: best.core, reason: `${best.core}: ${speedup.toFixed(1)}× ${base}'s speed` };
  }
  return { core: best.core, reason: `${best.core}: ${base} failed its own check (${baseline.error ?? 'unknown'})` };
}

/** Probes the baseline and each candidate (until `until`, epoch ms) and picks. */
export function probeCores(candidates: readonly string[], runner: ProbeRunner, until = Date.now() + PROBE_BUDGET_MS): BlasDecision {
  const left = () => until - Date.now();
  const baseline = runner(null, 'check', Math.max(1, left()));
  const probes: ProbeResult[] = [baseline];
  for (const c of candidates) {
    probes.push(left() > 0 ? runner(c, 'check', left()) : { core: c, correct: false, error: 'skipped: probe time budget spent', transient: true });
  }
  const { core, reason } = pickCore(baseline, probes.slice(1));
  return { core, source: core ? 'probe' : 'default', reason, ...(baseline.corename ? { defaultCore: baseline.corename } : {}), probes };
}

export interface DecideOptions {
  addonFile: string;
  env?: NodeJS.ProcessEnv;
  /** This CPU (default: readCpuInfo()); null: unknown. */
  cpu?: CpuInfo | null;
  runner?: ProbeRunner;
  cacheDir?: string;
  /** Time for all probes of this decision (default PROBE_BUDGET_MS). */
  budgetMs?: number;
}

/**
 * The core for processes that load `addonFile` on this machine. Spawns probe processes (never loads OpenBLAS
 * itself): one cheap one to learn OpenBLAS's own pick and build, the full probes only when that pick is generic
 * and the cache has no answer.
 */
export function decideBlasCore(opts: DecideOptions): BlasDecision {
  const env = opts.env ?? process.env;
  const given = choiceFromEnv(env);
  if (given) return { ...given, reason: given.source === 'user' ? 'OPENBLAS_CORETYPE set by user' : 'decided by the parent process' };
  if (blasProbeDisabled(env)) return { core: null, source: 'off', reason: 'FEDKEEPER_BLAS_PROBE=0' };
  const cpu = opts.cpu === undefined ? readCpuInfo() : opts.cpu;
  if (!cpu) return { core: null, source: 'default', reason: 'CPU features unknown here (no /proc/cpuinfo)' };
  const candidates = coreCandidates(cpu);
  if (candidates.length === 0) return { core: null, source: 'default', reason: 'CPU without AVX2/FMA or AVX-512' };
  const baseline = env['FEDKEEPER_BLAS_PROBE_BASELINE']?.trim() || undefined;
  const runner = opts.runner ?? spawnProbeRunner(opts.addonFile, { env, ...(baseline ? { baseline } : {}) });
  const until = Date.now() + (opts.budgetMs ?? PROBE_BUDGET_MS);
  const info = runner(null, 'info');
  if (!info.correct || !info.corename) return { core: null, source: 'default', reason: `probe failed (${info.error ?? 'no core name'})` };
  if (!isGenericCore(info.corename)) return { core: null, source: 'default', reason: `OpenBLAS picks ${info.corename} itself`, defaultCore: info.corename };
  let stat: { size: number; mtimeMs: number };
  try {
    stat = statSync(opts.addonFile);
  } catch {
    stat = { size: -1, mtimeMs: -1 };
  }
  const key = blasCacheKey(cpu, info.config ?? '', info.corename, stat, baseline);
  const dir = opts.cacheDir ?? blasCacheDir(env);
  const cached = readCachedDecision(dir, key);
  if (cached) return cached;
  const decision = probeCores(candidates, runner, until);
  if (!decision.probes?.some((p) => p.transient)) writeCachedDecision(dir, key, decision);
  return decision;
}

let memo: { key: string; decision: BlasDecision } | undefined;

function memoKey(addonFile: string, env: NodeJS.ProcessEnv): string {
  const names = ['OPENBLAS_CORETYPE', 'FEDKEEPER_OPENBLAS_CORETYPE', 'FEDKEEPER_BLAS_CHOICE', 'FEDKEEPER_BLAS_PROBE', 'FEDKEEPER_BLAS_PROBE_BASELINE', 'XDG_CACHE_HOME'];
  return JSON.stringify([addonFile, ...names.map((n) => env[n] ?? null)]);
}

/** decideBlasCore for this process's environment, once per process (per addon and relevant variables). */
export function decideOnce(addonFile: string): BlasDecision {
  const key = memoKey(addonFile, process.env);
  if (memo?.key !== key) memo = { key, decision: decideBlasCore({ addonFile }) };
  return memo.decision;
}

/**
 * Called right before this process loads the addon (and so OpenBLAS): sets OPENBLAS_CORETYPE as decided (the
 * keeper's decision or the user's when the environment carries one; inside a function package OpenBLAS's own pick
 * otherwise; elsewhere the probe's), and FEDKEEPER_BLAS_CHOICE for this process's children.
 */
export function prepareBlasCore(addonFile: string, env: NodeJS.ProcessEnv = process.env): BlasDecision {
  restoreOpenblasEnv(env);
  const given = choiceFromEnv(env);
  let d: BlasDecision;
  if (given) d = { ...given, reason: given.source === 'user' ? 'OPENBLAS_CORETYPE set by user' : 'decided by the keeper' };
  else if (process.env.FEDKEEPER_BUNDLED === '1') d = { core: null, source: 'default', reason: 'function package: no probing' };
  else {
    try {
      d = env === process.env ? decideOnce(addonFile) : decideBlasCore({ addonFile, env });
    } catch (e) {
      d = { core: null, source: 'default', reason: `probe failed (${e instanceof Error ? e.message : String(e)})` };
    }
  }
  const baseline = env['FEDKEEPER_BLAS_PROBE_BASELINE']?.trim();
  if (d.core) {
    env['OPENBLAS_CORETYPE'] = d.core;
    env['FEDKEEPER_OPENBLAS_CORETYPE'] = d.core;
  } else if (baseline && d.source !== 'user' && process.env.FEDKEEPER_BUNDLED !== '1') {
    env['OPENBLAS_CORETYPE'] = baseline; // test/benchmark only: play the generic default
  }
  env['FEDKEEPER_BLAS_CHOICE'] = d.source;
  return d;
}

/**
 * What the local platforms of this machine hand their containers (keeper side, decided once per process): the
 * core and how it was chosen, in variables that survive the fabric's FEDKEEPER_*-only filter (blas-env.ts).
 */
export function blasPlatformEnv(addonFile: string): Record<string, string> {
  return blasChoiceEnv(decideOnce(addonFile), process.env);
}
