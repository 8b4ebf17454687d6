/**
 * The OpenBLAS core probe for real (src/ml/blas-select.ts, src/ml/blas-probe.ts): probe processes on the built
 * addon for OpenBLAS's own core and one candidate; candidates ruled out (a core OpenBLAS does not know, and — with
 * the probe's test-only FEDKEEPER_BLAS_PROBE_FAULT — a wrong result, a crash, a hang); a whole decision on a generic
 * default, and its cache; and a process that loads the addon with the core its environment carries, as a package
 * in a container does. Asserts decisions and correctness only, never which core is faster. Runs whether or not
 * FEDKEEPER_NATIVE=0 is set (it probes the addon file directly); skipped only when the addon is not built.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { coreCandidates, decideBlasCore, probeCores, probeScript, readCpuInfo, spawnProbeRunner, type ProbeRunner } from '../../src/ml/blas-select.js';
import { findAddon } from '../../src/ml/native.js';

const addon = findAddon();
const script = probeScript();
const skip = addon && script ? false : 'native addon not built (apt-get install libopenblas-dev, then npm ci): no OpenBLAS to probe';
const cpu = readCpuInfo();
const candidates = cpu ? coreCandidates(cpu) : [];
/** A core this CPU can run other than by OpenBLAS's choice: the safest AVX2 candidate, else the generic Prescott. */
const candidate = candidates.at(-1) ?? 'Prescott';
const x64 = process.arch === 'x64' ? false : 'OpenBLAS core names used here are x86-64 ones';

const scratch = mkdtempSync(path.join(os.tmpdir(), 'fk-blas-probe-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** The probe runner with extra environment (the test-only fault, say). */
function runner(extra: Record<string, string> = {}, timeoutMs?: number): ProbeRunner {
  return spawnProbeRunner(addon!, { env: { ...process.env, ...extra }, ...(timeoutMs ? { timeoutMs } : {}) });
}

describe('probe processes', { skip: skip || x64 }, () => {
  test('OpenBLAS\'s own core and one candidate: both run, report their core and pass the kernel checks', () => {
    const d = probeCores([candidate], runner());
    assert.equal(d.probes?.length, 2);
    const [base, cand] = d.probes!;
    assert.equal(base!.core, null);
    assert.equal(base!.correct, true, base!.error);
    assert.match(base!.corename ?? '', /^\w+$/);
    assert.match(base!.config ?? '', /^OpenBLAS \d/);
    assert.equal(cand!.core, candidate);
    assert.equal(cand!.correct, true, cand!.error);
    assert.equal(cand!.corename?.toLowerCase(), candidate.toLowerCase());
    assert.ok(d.core === null || d.core === candidate, String(d.core));
    assert.equal(d.source, d.core ? 'probe' : 'default');
    assert.equal(d.defaultCore, base!.corename);
  });

  test('a core OpenBLAS does not know is ruled out (OpenBLAS would run another one)', () => {
    const d = probeCores(['Bogus'], runner());
    assert.deepEqual([d.core, d.source], [null, 'default']);
    assert.equal(d.probes![1]!.correct, false);
    assert.match(d.probes![1]!.error ?? '', /OpenBLAS runs \w+, not Bogus/);
  });

  test('a wrong result, a crash or a hang rules the candidate out, and the default stays', () => {
    const cases: [string, RegExp, number | undefined][] = [
      ['wrong', /^wrong result: batchMatMul/, undefined],
      ['crash', /^killed by SIGABRT/, undefined],
      ['hang', /^timed out after 1500 ms/, 1500],
    ];
    for (const [fault, error, timeout] of cases) {
      const d = probeCores([candidate], runner({ FEDKEEPER_BLAS_PROBE_FAULT: `${candidate}=${fault}` }, timeout));
      assert.equal(d.probes![0]!.correct, true, `${fault}: the default is unaffected`);
      assert.equal(d.probes![1]!.correct, false, fault);
      assert.match(d.probes![1]!.error ?? '', error);
      assert.equal(d.probes![1]!.transient, fault === 'hang' ? true : undefined);
      assert.deepEqual([d.core, d.source], [null, 'default'], fault);
    }
  });
});

describe('a whole decision', { skip: skip || x64 || (candidates.length ? false : 'this CPU has neither AVX2+FMA nor AVX-512: nothing to select') }, () => {
  test('on a generic default (played: FEDKEEPER_BLAS_PROBE_BASELINE=Prescott) every candidate is probed; the answer is cached', () => {
    const cacheDir = path.join(scratch, 'cache');
    const env: NodeJS.ProcessEnv = { ...process.env, FEDKEEPER_BLAS_PROBE_BASELINE: 'Prescott' };
    delete env['OPENBLAS_CORETYPE'];
    delete env['FEDKEEPER_BLAS_CHOICE'];
    delete env['FEDKEEPER_OPENBLAS_CORETYPE'];
    delete env['FEDKEEPER_BLAS_PROBE'];
    const counted = () => {
      const real = spawnProbeRunner(addon!, { env, baseline: 'Prescott' });
      const calls: string[] = [];
      const r: ProbeRunner = (core, mode, timeoutMs) => {
        calls.push(`${mode}:${core ?? 'default'}`);
        return real(core, mode, timeoutMs);
      };
      return { r, calls };
    };
    const first = counted();
    const d = decideBlasCore({ addonFile: addon!, env, runner: first.r, cacheDir });
    assert.deepEqual(first.calls, ['info:default', 'check:default', ...candidates.map((c) => `check:${c}`)]);
    assert.equal(d.defaultCore, 'Prescott');
    assert.deepEqual(d.probes?.map((p) => p.core), [null, ...candidates]);
    if (d.core) {
      assert.equal(d.source, 'probe');
      assert.equal(d.probes!.find((p) => p.core === d.core)?.correct, true, 'the chosen core passed');
    } else {
      assert.equal(d.source, 'default');
    }
    assert.equal(readdirSync(cacheDir).filter((f) => f.endsWith('.json')).length, 1);
    const second = counted();
    const again = decideBlasCore({ addonFile: addon!, env, runner: second.r, cacheDir });
    assert.deepEqual([again.core, again.source, again.cached], [d.core, d.source, true]);
    assert.deepEqual(second.calls, ['info:default'], 'from the cache: no kernel probes');
  });
});

describe('a process loading the addon', { skip: skip || x64 }, () => {
  const NATIVE = pathToFileURL(fileURLToPath(new URL('../../src/ml/native.js', import.meta.url))).href;
  const child = path.join(scratch, 'load.mjs');
  writeFileSync(
    child,
    `const { loadNative } = await import(${JSON.stringify(NATIVE)});\nconst n = loadNative();\n` +
      `console.log(JSON.stringify(n.ok ? { blas: n.blas, corename: n.addon.info().corename, reason: n.blasChoice.reason, env: process.env.OPENBLAS_CORETYPE ?? null } : { error: n.reason }));\n`,
  );
  /** Runs the child as a package in a container does (FEDKEEPER_BUNDLED=1: never probes), with `extra` only. */
  const load = (extra: Record<string, string>) => {
    const env = { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? os.tmpdir(), FEDKEEPER_BUNDLED: '1', FEDKEEPER_NATIVE_ADDON: addon!, ...extra };
    const r = spawnSync(process.execPath, [child], { env, encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as { blas?: string; corename?: string; reason?: string; env?: string | null; error?: string };
  };

  test('the core the keeper chose arrives through FEDKEEPER_* carriers only (as the fabric passes them) and is run', () => {
    const r = load({ FEDKEEPER_BLAS_CHOICE: 'probe', FEDKEEPER_OPENBLAS_CORETYPE: candidate });
    assert.equal(r.error, undefined);
    assert.equal(r.env, candidate, 'OPENBLAS_CORETYPE set before OpenBLAS loaded');
    assert.equal(r.corename?.toLowerCase(), candidate.toLowerCase());
    assert.match(r.blas ?? '', new RegExp(`^OpenBLAS [\\d.]+ ${candidate} \\(chosen by probe\\)$`, 'i'));
  });

  test('OPENBLAS_CORETYPE set for the process wins over the carried choice; a package with no choice does not probe', () => {
    const user = load({ FEDKEEPER_BLAS_CHOICE: 'probe', FEDKEEPER_OPENBLAS_CORETYPE: 'Bogus', OPENBLAS_CORETYPE: candidate });
    assert.equal(user.corename?.toLowerCase(), candidate.toLowerCase());
    assert.match(user.blas ?? '', /\(OPENBLAS_CORETYPE set by user\)$/);
    const none = load({});
    assert.equal(none.env, null);
    assert.match(none.blas ?? '', /\(OpenBLAS default\)$/);
    assert.match(none.reason ?? '', /no probing/);
  });
});
