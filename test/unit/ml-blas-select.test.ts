/**
 * OpenBLAS core selection, the pure parts (src/ml/blas-select.ts, src/ml/blas-env.ts): candidates from CPU flags,
 * the cache key, the cache file (round trip, other keys, corrupt and unwritable caches), the decision against
 * scripted probe results (the user's OPENBLAS_CORETYPE wins, FEDKEEPER_BLAS_PROBE=0, nothing to do on a core
 * OpenBLAS already runs well, the fastest correct candidate, ruled-out candidates), and the variables that carry the
 * decision to containers. No addon or process is involved: the probes are played by a scripted runner.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { blasChoiceEnv, choiceFromEnv, describeBlas, restoreOpenblasEnv } from '../../src/ml/blas-env.js';
import {
  blasCacheDir,
  blasCacheKey,
  coreCandidates,
  decideBlasCore,
  flagsHash,
  isGenericCore,
  parseCpuinfo,
  pickCore,
  prepareBlasCore,
  probeCores,
  readCachedDecision,
  writeCachedDecision,
  type CpuInfo,
  type ProbeResult,
  type ProbeRunner,
} from '../../src/ml/blas-select.js';
import { fedkeeperVariables } from '../../src/runtime/action-code.js';

const scratch = mkdtempSync(path.join(os.tmpdir(), 'fk-blas-unit-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
let dirs = 0;
const newDir = () => path.join(scratch, `cache-${++dirs}`);

const AVX512 = 'fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 avx512f avx512dq avx512cd avx512bw avx512vl';
const XEON: CpuInfo = { model: 'Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz', vendor: 'GenuineIntel', flags: AVX512.split(' ') };
const CONFIG = (core: string) => `OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY ${core} MAX_THREADS=64`;
const ADDON = path.join(scratch, 'fake-addon.node');
writeFileSync(ADDON, 'not really an addon');

/** A scripted probe runner: per core (null = OpenBLAS's own pick), what the probe answers; counts its calls. */
function scripted(defaultCore: string, answers: Record<string, Partial<ProbeResult> & { seconds?: number }>): ProbeRunner & { calls: string[] } {
  const calls: string[] = [];
  const runner = ((core: string | null, mode: 'info' | 'check') => {
    calls.push(`${mode}:${core ?? 'default'}`);
    const a = answers[core ?? 'default'] ?? {};
    const corename = a.corename ?? core ?? defaultCore;
    if (mode === 'info') return { core, correct: true, corename, config: CONFIG(corename) };
    return { core, correct: a.correct ?? true, corename, config: CONFIG(corename), ...(a.seconds !== undefined ? { seconds: a.seconds } : {}), ...(a.error ? { error: a.error } : {}), ...(a.transient ? { transient: true } : {}) };
  }) as ProbeRunner & { calls: string[] };
  runner.calls = calls;
  return runner;
}

describe('CPU features → candidate cores', () => {
  test('/proc/cpuinfo: the first processor\'s model name, vendor and flags', () => {
    const text = `processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU\nflags\t\t: fpu avx2 fma\n\nprocessor\t: 1\nvendor_id\t: Other\nflags\t\t: fpu\n`;
    assert.deepEqual(parseCpuinfo(text), { model: 'Intel(R) Xeon(R) CPU', vendor: 'GenuineIntel', flags: ['fpu', 'avx2', 'fma'] });
    assert.equal(parseCpuinfo('processor\t: 0\nFeatures\t: neon asimd\n'), undefined, 'no x86 flags line: nothing to select');
  });

  test('AVX-512 → (Cooperlake with BF16,) SkylakeX, Haswell; AVX2+FMA → (Zen on AMD,) Haswell; older → none', () => {
    assert.deepEqual(coreCandidates({ flags: AVX512, vendor: 'GenuineIntel' }), ['SkylakeX', 'Haswell']);
    assert.deepEqual(coreCandidates({ flags: `${AVX512} avx512_bf16`, vendor: 'GenuineIntel' }), ['Cooperlake', 'SkylakeX', 'Haswell']);
    assert.deepEqual(coreCandidates({ flags: 'sse2 avx avx2 fma', vendor: 'GenuineIntel' }), ['Haswell']);
    assert.deepEqual(coreCandidates({ flags: 'sse2 avx avx2 fma', vendor: 'AuthenticAMD' }), ['Zen', 'Haswell']);
    assert.deepEqual(coreCandidates({ flags: 'sse2 avx avx2 fma avx512f', vendor: 'GenuineIntel' }), ['Haswell'], 'AVX-512F alone is not enough for SkylakeX kernels');
    assert.deepEqual(coreCandidates({ flags: 'sse2 avx avx2', vendor: 'GenuineIntel' }), [], 'AVX2 without FMA');
    assert.deepEqual(coreCandidates({ flags: ['sse2', 'sse4_2', 'avx'] }), []);
  });

  test('generic cores are the ones without AVX2 kernels', () => {
    for (const c of ['Prescott', 'Nehalem', 'Sandybridge', 'Core2', 'Unknown']) assert.equal(isGenericCore(c), true, c);
    for (const c of ['Haswell', 'SKYLAKEX', 'Zen', 'Cooperlake', 'SapphireRapids']) assert.equal(isGenericCore(c), false, c);
  });
});

describe('the cache', () => {
  const stat = { size: 1234, mtimeMs: 1700000000000.25 };

  test('key: CPU model, flags (order-free hash), OpenBLAS build without the core name, addon size and mtime', () => {
    const k = blasCacheKey(XEON, CONFIG('Prescott'), 'Prescott', stat);
    assert.equal(k.blas, 'OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY MAX_THREADS=64');
    assert.equal(k.model, XEON.model);
    assert.equal(k.flags, flagsHash([...XEON.flags].reverse()));
    assert.deepEqual(k.addon, { size: 1234, mtimeMs: 1700000000000 });
    assert.deepEqual(blasCacheKey(XEON, CONFIG('Prescott'), 'Prescott', stat), k, 'same inputs, same key');
    const others = [
      blasCacheKey({ ...XEON, flags: [...XEON.flags, 'avx512_bf16'] }, CONFIG('Prescott'), 'Prescott', stat),
      blasCacheKey({ ...XEON, model: 'Other CPU' }, CONFIG('Prescott'), 'Prescott', stat),
      blasCacheKey(XEON, CONFIG('Prescott').replace('0.3.21', '0.3.26'), 'Prescott', stat),
      blasCacheKey(XEON, CONFIG('Prescott'), 'Prescott', { ...stat, size: 1235 }),
      blasCacheKey(XEON, CONFIG('Prescott'), 'Prescott', { ...stat, mtimeMs: stat.mtimeMs + 1000 }),
    ];
    for (const o of others) assert.notDeepEqual(o, k);
  });

  test('directory: $XDG_CACHE_HOME/fedkeeper, else ~/.cache/fedkeeper', () => {
    assert.equal(blasCacheDir({ XDG_CACHE_HOME: '/x/cache' }), path.join('/x/cache', 'fedkeeper'));
    assert.equal(blasCacheDir({}), path.join(os.homedir(), '.cache', 'fedkeeper'));
    assert.equal(blasCacheDir({ XDG_CACHE_HOME: 'relative' }), path.join(os.homedir(), '.cache', 'fedkeeper'), 'a relative XDG_CACHE_HOME is ignored');
  });

  test('write then read; another key reads nothing; no temporary files left', () => {
    const dir = newDir();
    const key = blasCacheKey(XEON, CONFIG('Prescott'), 'Prescott', stat);
    const decision = { core: 'SkylakeX', source: 'probe' as const, reason: 'SkylakeX: 3.5× Prescott' };
    assert.equal(writeCachedDecision(dir, key, decision), true);
    assert.deepEqual(readCachedDecision(dir, key), { ...decision, cached: true });
    assert.equal(readCachedDecision(dir, { ...key, model: 'Other CPU' }), undefined);
    assert.ok(readdirSync(dir).every((f) => !f.endsWith('.tmp')), readdirSync(dir).join(', '));
  });

  test('a corrupt or malformed cache file reads as no cache, and the next decision rewrites it', () => {
    const dir = newDir();
    const answers = { default: { seconds: 0.04 }, SkylakeX: { seconds: 0.01 }, Haswell: { seconds: 0.012 } };
    assert.equal(decideBlasCore({ addonFile: ADDON, env: {}, cpu: XEON, runner: scripted('Prescott', answers), cacheDir: dir }).core, 'SkylakeX');
    const file = path.join(dir, readdirSync(dir)[0]!);
    const { key } = JSON.parse(readFileSync(file, 'utf8')) as { key: ReturnType<typeof blasCacheKey> };
    assert.equal(readCachedDecision(dir, key)?.core, 'SkylakeX');
    for (const bad of ['{"key": {', '', JSON.stringify({ key, decision: { core: 'Haswell; rm -rf', source: 'probe', reason: 'r' } }), JSON.stringify({ key, decision: { core: null, source: 'probe', reason: 'r' } })]) {
      writeFileSync(file, bad);
      assert.equal(readCachedDecision(dir, key), undefined, bad);
    }
    writeFileSync(file, '{"key": {');
    const runner = scripted('Prescott', answers);
    const d = decideBlasCore({ addonFile: ADDON, env: {}, cpu: XEON, runner, cacheDir: dir });
    assert.deepEqual([d.core, d.cached], ['SkylakeX', undefined]);
    assert.ok(runner.calls.includes('check:SkylakeX'), 'probed again');
    assert.equal(JSON.parse(readFileSync(file, 'utf8')).decision.core, 'SkylakeX', 'the corrupt file was replaced');
    assert.equal(readCachedDecision(dir, key)?.cached, true);
  });

  test('a cache that cannot be written is no error: the decision stands, and is made again next time', () => {
    const blocked = path.join(newDir(), 'file-not-dir');
    mkdirSync(path.dirname(blocked), { recursive: true });
    writeFileSync(blocked, 'x');
    const dir = path.join(blocked, 'fedkeeper'); // under a file: mkdir fails
    const key = blasCacheKey(XEON, CONFIG('Prescott'), 'Prescott', stat);
    assert.equal(writeCachedDecision(dir, key, { core: 'Haswell', source: 'probe', reason: 'r' }), false);
    const answers = { default: { seconds: 0.04 }, SkylakeX: { seconds: 0.02 }, Haswell: { seconds: 0.01 } };
    for (let i = 0; i < 2; i++) {
      const runner = scripted('Prescott', answers);
      const d = decideBlasCore({ addonFile: ADDON, env: {}, cpu: XEON, runner, cacheDir: dir });
      assert.equal(d.core, 'Haswell');
      assert.equal(d.cached, undefined);
      assert.ok(runner.calls.includes('check:Haswell'));
    }
    if (process.getuid?.() !== 0) {
      // and a read-only cache directory (root writes anyway, so only as another user)
      const ro = newDir();
      mkdirSync(ro);
      chmodSync(ro, 0o500);
      assert.equal(writeCachedDecision(ro, key, { core: 'Haswell', source: 'probe', reason: 'r' }), false);
    }
  });
});

describe('the decision', () => {
  test('the user\'s OPENBLAS_CORETYPE wins: no probe runs', () => {
    const runner = scripted('Prescott', {});
    const d = decideBlasCore({ addonFile: ADDON, env: { OPENBLAS_CORETYPE: 'Nehalem' }, cpu: XEON, runner, cacheDir: newDir() });
    assert.deepEqual([d.core, d.source], ['Nehalem', 'user']);
    assert.deepEqual(runner.calls, []);
  });

  test('FEDKEEPER_BLAS_PROBE=0: OpenBLAS keeps its own pick, no probe runs', () => {
    for (const v of ['0', 'off', 'false']) {
      const runner = scripted('Prescott', {});
      const d = decideBlasCore({ addonFile: ADDON, env: { FEDKEEPER_BLAS_PROBE: v }, cpu: XEON, runner, cacheDir: newDir() });
      assert.deepEqual([d.core, d.source], [null, 'off']);
      assert.deepEqual(runner.calls, []);
    }
  });

  test('a decision the environment carries (a keeper\'s) is taken as it is', () => {
    const runner = scripted('Prescott', {});
    const d = decideBlasCore({ addonFile: ADDON, env: { FEDKEEPER_BLAS_CHOICE: 'probe', FEDKEEPER_OPENBLAS_CORETYPE: 'SkylakeX' }, cpu: XEON, runner, cacheDir: newDir() });
    assert.deepEqual([d.core, d.source], ['SkylakeX', 'probe']);
    assert.deepEqual(runner.calls, []);
  });

  test('nothing to select: unknown CPU, no AVX2/FMA, or OpenBLAS already runs an AVX2 core (only the cheap info probe)', () => {
    const none = scripted('Prescott', {});
    assert.equal(decideBlasCore({ addonFile: ADDON, env: {}, cpu: null, runner: none, cacheDir: newDir() }).core, null);
    assert.equal(decideBlasCore({ addonFile: ADDON, env: {}, cpu: { ...XEON, flags: ['sse2', 'avx'] }, runner: none, cacheDir: newDir() }).core, null);
    assert.deepEqual(none.calls, []);
    const fast = scripted('SkylakeX', {});
    const dir = newDir();
    const d = decideBlasCore({ addonFile: ADDON, env: {}, cpu: XEON, runner: fast, cacheDir: dir });
    assert.deepEqual([d.core, d.source, d.defaultCore], [null, 'default', 'SkylakeX']);
    assert.deepEqual(fast.calls, ['info:default']);
    assert.equal(existsSync(dir), false, 'nothing cached: nothing was probed');
  });

  test('generic default: the fastest correct candidate wins, and the answer is cached (the next decision probes nothing)', () => {
    const dir = newDir();
    const answers = { default: { seconds: 0.05 }, SkylakeX: { seconds: 0.012 }, Haswell: { seconds: 0.015 } };
    const first = scripted('Prescott', answers);
    const d = decideBlasCore({ addonFile: ADDON, env: {}, cpu: XEON, runner: first, cacheDir: dir });
    assert.deepEqual([d.core, d.source, d.defaultCore], ['SkylakeX', 'probe', 'Prescott']);
    assert.deepEqual(first.calls, ['info:default', 'check:default', 'check:SkylakeX', 'check:Haswell']);
    assert.deepEqual(d.probes?.map((p) => [p.core, p.correct]), [[null, true], ['SkylakeX', true], ['Haswell', true]]);
    const second = scripted('Prescott', answers);
    const again = decideBlasCore({ addonFile: ADDON, env: {}, cpu: XEON, runner: second, cacheDir: dir });
    assert.deepEqual([again.core, again.source, again.cached], ['SkylakeX', 'probe', true]);
    assert.deepEqual(second.calls, ['info:default'], 'a cache hit runs only the info probe');
    // a different OpenBLAS build is a different key: probed again
    const rebuilt = scripted('Prescott', answers);
    const other = decideBlasCore({ addonFile: ADDON, env: {}, cpu: { ...XEON, model: 'Another Xeon' }, runner: rebuilt, cacheDir: dir });
    assert.equal(other.cached, undefined);
    assert.ok(rebuilt.calls.includes('check:SkylakeX'));
  });

  test('a wrong, crashed or mismatched candidate is ruled out however fast; the default stays when none passes', () => {
    const runner = scripted('Prescott', {
      default: { seconds: 0.05 },
      Cooperlake: { correct: false, error: 'killed by SIGSEGV' },
      SkylakeX: { correct: false, error: 'wrong result: batchMatMul …' },
      Haswell: { seconds: 0.02 },
    });
    const d = decideBlasCore({ addonFile: ADDON, env: {}, cpu: { ...XEON, flags: [...XEON.flags, 'avx512_bf16'] }, runner, cacheDir: newDir() });
    assert.equal(d.core, 'Haswell');
    assert.deepEqual(d.probes?.map((p) => [p.core, p.correct]), [[null, true], ['Cooperlake', false], ['SkylakeX', false], ['Haswell', true]]);
    const nonePass = scripted('Prescott', { default: { seconds: 0.05 }, SkylakeX: { correct: false, error: 'x' }, Haswell: { correct: false, error: 'y' } });
    const n = decideBlasCore({ addonFile: ADDON, env: {}, cpu: XEON, runner: nonePass, cacheDir: newDir() });
    assert.deepEqual([n.core, n.source], [null, 'default']);
    assert.match(n.reason, /no candidate passed/);
  });

  test('pick: a candidate must beat the default by 10 %; a default that fails its own check loses to a correct candidate', () => {
    const base: ProbeResult = { core: null, correct: true, corename: 'Prescott', seconds: 0.01 };
    assert.equal(pickCore(base, [{ core: 'Haswell', correct: true, seconds: 0.0095 }]).core, null);
    assert.equal(pickCore(base, [{ core: 'Haswell', correct: true, seconds: 0.008 }]).core, 'Haswell');
    assert.equal(pickCore({ core: null, correct: false, error: 'wrong result' }, [{ core: 'Haswell', correct: true, seconds: 0.02 }]).core, 'Haswell');
    assert.equal(pickCore(base, []).core, null);
  });

  test('the time budget: once spent, the remaining candidates are skipped (not probed), and nothing is cached', () => {
    const runner = scripted('Prescott', { default: { seconds: 0.05 }, SkylakeX: { seconds: 0.01 }, Haswell: { seconds: 0.01 } });
    const d = probeCores(['SkylakeX', 'Haswell'], runner, Date.now() - 1);
    assert.deepEqual(runner.calls, ['check:default']);
    assert.deepEqual(d.probes?.map((p) => [p.core, p.correct, p.transient]), [[null, true, undefined], ['SkylakeX', false, true], ['Haswell', false, true]]);
    assert.equal(d.core, null);
    const dir = newDir();
    decideBlasCore({ addonFile: ADDON, env: {}, cpu: XEON, runner: scripted('Prescott', {}), cacheDir: dir, budgetMs: -1 });
    assert.equal(existsSync(dir), false);
  });

  test('a timed-out probe rules its candidate out but the decision is not cached', () => {
    const dir = newDir();
    const runner = scripted('Prescott', { default: { seconds: 0.05 }, SkylakeX: { correct: false, error: 'timed out', transient: true }, Haswell: { seconds: 0.02 } });
    assert.equal(decideBlasCore({ addonFile: ADDON, env: {}, cpu: XEON, runner, cacheDir: dir }).core, 'Haswell');
    assert.equal(existsSync(dir) && readdirSync(dir).length > 0, false);
  });
});

describe('the environment', () => {
  test('a choice → the variables local platforms hand their containers (and carriers through FEDKEEPER_*-only filters)', () => {
    assert.deepEqual(blasChoiceEnv({ core: 'SkylakeX', source: 'probe' }, { OPENBLAS_L2_SIZE: '2097152', OPENBLAS_FOO: 'x' }), {
      FEDKEEPER_BLAS_CHOICE: 'probe',
      OPENBLAS_CORETYPE: 'SkylakeX',
      FEDKEEPER_OPENBLAS_CORETYPE: 'SkylakeX',
      FEDKEEPER_OPENBLAS_L2_SIZE: '2097152',
    });
    assert.deepEqual(blasChoiceEnv({ core: null, source: 'default' }, {}), { FEDKEEPER_BLAS_CHOICE: 'default' });
  });

  test('a container restores OPENBLAS_* from the carriers (its own OPENBLAS_* win) and reads the choice back', () => {
    const carried = { FEDKEEPER_BLAS_CHOICE: 'probe', FEDKEEPER_OPENBLAS_CORETYPE: 'SkylakeX', FEDKEEPER_OPENBLAS_NUM_THREADS: '1' } as NodeJS.ProcessEnv;
    restoreOpenblasEnv(carried);
    assert.equal(carried['OPENBLAS_CORETYPE'], 'SkylakeX');
    assert.equal(carried['OPENBLAS_NUM_THREADS'], '1');
    assert.deepEqual(choiceFromEnv(carried), { core: 'SkylakeX', source: 'probe' });
    const own = { FEDKEEPER_BLAS_CHOICE: 'probe', FEDKEEPER_OPENBLAS_CORETYPE: 'SkylakeX', OPENBLAS_CORETYPE: 'Haswell' } as NodeJS.ProcessEnv;
    restoreOpenblasEnv(own);
    assert.deepEqual(choiceFromEnv(own), { core: 'Haswell', source: 'user' });
    assert.deepEqual(choiceFromEnv({ FEDKEEPER_BLAS_CHOICE: 'default' }), { core: null, source: 'default' });
    assert.deepEqual(choiceFromEnv({ FEDKEEPER_BLAS_CHOICE: 'off' }), { core: null, source: 'off' });
    assert.equal(choiceFromEnv({}), undefined);
  });

  test('prepareBlasCore (before the addon loads): sets OPENBLAS_CORETYPE from what the environment carries, without probing', () => {
    const env = { FEDKEEPER_BLAS_CHOICE: 'probe', FEDKEEPER_OPENBLAS_CORETYPE: 'SkylakeX' } as NodeJS.ProcessEnv;
    const d = prepareBlasCore(path.join(scratch, 'no-such-addon.node'), env);
    assert.deepEqual([d.core, d.source], ['SkylakeX', 'probe']);
    assert.equal(env['OPENBLAS_CORETYPE'], 'SkylakeX');
    const off = { FEDKEEPER_BLAS_PROBE: '0' } as NodeJS.ProcessEnv;
    assert.equal(prepareBlasCore(path.join(scratch, 'no-such-addon.node'), off).source, 'off');
    assert.equal(off['OPENBLAS_CORETYPE'], undefined);
    assert.equal(off['FEDKEEPER_BLAS_CHOICE'], 'off', 'children of this process do not decide again');
  });

  test('the engine line names the core in use and how it was chosen', () => {
    const cfg = CONFIG('SkylakeX');
    assert.equal(describeBlas(cfg, 'SkylakeX', { core: 'SkylakeX', source: 'probe' }), 'OpenBLAS 0.3.21 SkylakeX (chosen by probe)');
    assert.equal(describeBlas(cfg, 'Haswell', { core: 'Haswell', source: 'user' }), 'OpenBLAS 0.3.21 Haswell (OPENBLAS_CORETYPE set by user)');
    assert.equal(describeBlas(cfg, 'Prescott', { core: null, source: 'default' }), 'OpenBLAS 0.3.21 Prescott (OpenBLAS default)');
    assert.equal(describeBlas(cfg, 'Prescott', { core: null, source: 'off' }), 'OpenBLAS 0.3.21 Prescott (OpenBLAS default, FEDKEEPER_BLAS_PROBE=0)');
    assert.equal(describeBlas(cfg, 'Prescott', { core: 'Bogus', source: 'user' }), 'OpenBLAS 0.3.21 Prescott (OPENBLAS_CORETYPE set by user; OpenBLAS did not take Bogus)');
  });

  test('fedkeeperVariables passes the user\'s OpenBLAS variables on with the FEDKEEPER_* ones, and nothing else', () => {
    const env = { FEDKEEPER_NATIVE: '0', OPENBLAS_CORETYPE: 'Haswell', OPENBLAS_NUM_THREADS: '1', OPENBLAS_L2_SIZE: '1048576', OPENBLAS_VERBOSE: '2', OPENBLAS_MAIN_FREE: '1', AWS_SECRET_ACCESS_KEY: 's', PATH: '/bin' };
    assert.deepEqual(fedkeeperVariables(env), { FEDKEEPER_NATIVE: '0', OPENBLAS_CORETYPE: 'Haswell', OPENBLAS_NUM_THREADS: '1', OPENBLAS_L2_SIZE: '1048576', OPENBLAS_VERBOSE: '2' });
  });
});
