/**
 * The OpenBLAS core reaches the containers of the `local` provider: the keeper's decision (the variables
 * localPlatformEnv() adds), the user's own OPENBLAS_* variables (passed on like FEDKEEPER_* ones), and — with the
 * native addon built — FedKeeper's real nodeinfo package reporting the core it runs.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { strToU8, zipSync } from 'fflate';
import { localPlatformEnv } from '../../src/keeper/plan.js';
import { blasChoiceEnv } from '../../src/ml/blas-env.js';
import { coreCandidates, readCpuInfo } from '../../src/ml/blas-select.js';
import { findAddon, localNativeAddon } from '../../src/ml/native.js';
import { LocalProvider } from '../../src/providers/local.js';
import type { Activation, FunctionSpec } from '../../src/providers/types.js';
import { packaged } from '../fixtures/packages.js';

const scratch = mkdtempSync(path.join(os.tmpdir(), 'fk-blas-local-'));
const providers: LocalProvider[] = [];
after(async () => {
  await Promise.all(providers.map((p) => p.close()));
  rmSync(scratch, { recursive: true, force: true });
});

/** A function package that answers with the OpenBLAS-related variables its container sees. */
const ENV_ZIP = (() => {
  const code = `exports.main = () => { const out = {}; for (const [k, v] of Object.entries(process.env)) if (/OPENBLAS|BLAS_CHOICE|AWS_/.test(k)) out[k] = v; return out; };`;
  const bytes = Buffer.from(zipSync({ 'index.js': strToU8(code) }));
  const file = path.join(scratch, 'env.zip');
  writeFileSync(file, bytes);
  return { file, sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length, target: 'openwhisk' };
})();

let clusters = 0;
function provider(env: Record<string, string>): LocalProvider {
  const p = new LocalProvider({ cluster: `blas${++clusters}`, poolSize: 1, stateDir: path.join(scratch, 'state'), env });
  providers.push(p);
  return p;
}

async function settled(p: LocalProvider, id: string): Promise<Activation> {
  for (;;) {
    const a = await p.activation(id);
    if (a && a.status !== 'running') return a;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Runs the env-echo function on a fresh local cluster (its pool reads the keeper's variables on first use). */
async function containerEnv(env: Record<string, string>): Promise<Record<string, unknown>> {
  const p = provider(env);
  await p.deploy({ name: 'env', timeoutMs: 20_000, memoryMb: 256, settings: {}, artifact: ENV_ZIP });
  const a = await settled(p, await p.invoke('env', {}));
  assert.equal(a.status, 'success', JSON.stringify(a.result));
  return a.result!;
}

/** Sets process variables for the duration of fn. */
async function withEnv<T>(vars: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const put = (v: Record<string, string | undefined>) => {
    for (const [k, x] of Object.entries(v)) if (x === undefined) delete process.env[k];
    else process.env[k] = x;
  };
  put(vars);
  try {
    return await fn();
  } finally {
    put(saved);
  }
}

test('local provider: the keeper\'s chosen core reaches the containers as OPENBLAS_CORETYPE (with how it was chosen)', async () => {
  const seen = await withEnv({ OPENBLAS_CORETYPE: undefined, FEDKEEPER_BLAS_CHOICE: undefined, FEDKEEPER_OPENBLAS_CORETYPE: undefined }, () =>
    containerEnv(blasChoiceEnv({ core: 'SkylakeX', source: 'probe' })),
  );
  assert.equal(seen['OPENBLAS_CORETYPE'], 'SkylakeX');
  assert.equal(seen['FEDKEEPER_OPENBLAS_CORETYPE'], 'SkylakeX');
  assert.equal(seen['FEDKEEPER_BLAS_CHOICE'], 'probe');
});

test('local provider: the user\'s OPENBLAS_* variables pass through like FEDKEEPER_* ones; other variables do not', async () => {
  const seen = await withEnv(
    { OPENBLAS_CORETYPE: 'Haswell', OPENBLAS_L2_SIZE: '1048576', OPENBLAS_VERBOSE: '0', OPENBLAS_MAIN_FREE: '1', AWS_SECRET_ACCESS_KEY: 'not-for-containers', FEDKEEPER_BLAS_CHOICE: undefined },
    async () => {
      const env = localPlatformEnv();
      if (localNativeAddon()) {
        // the keeper decided nothing itself: the user's core wins, and says so
        assert.equal(env['OPENBLAS_CORETYPE'], 'Haswell');
        assert.equal(env['FEDKEEPER_BLAS_CHOICE'], 'user');
        assert.equal(env['FEDKEEPER_OPENBLAS_L2_SIZE'], '1048576', 'carried for the fabric too');
      } else {
        assert.equal(env['FEDKEEPER_BLAS_CHOICE'], undefined, 'no native kernels: no core to choose');
      }
      return containerEnv(env);
    },
  );
  assert.equal(seen['OPENBLAS_CORETYPE'], 'Haswell');
  assert.equal(seen['OPENBLAS_L2_SIZE'], '1048576');
  assert.equal(seen['OPENBLAS_VERBOSE'], '0');
  assert.equal(seen['OPENBLAS_MAIN_FREE'], undefined);
  assert.equal(seen['AWS_SECRET_ACCESS_KEY'], undefined);
});

const addon = findAddon();
const cpu = readCpuInfo();
const core = (cpu ? coreCandidates(cpu) : []).at(-1) ?? 'Prescott';
const skipPackage = !addon
  ? 'native addon not built (apt-get install libopenblas-dev, then npm ci): packages run wasm only'
  : process.arch !== 'x64'
    ? 'OpenBLAS core names used here are x86-64 ones'
    : false;

test('local provider: FedKeeper\'s nodeinfo package runs the core it is handed and reports it', { skip: skipPackage }, async () => {
  const spec: FunctionSpec = await packaged({ name: 'nodeinfo', timeoutMs: 120_000, memoryMb: 1024, settings: {} }, 'openwhisk');
  for (const env of [
    blasChoiceEnv({ core, source: 'probe' }),
    // as the local fabric passes it on (FEDKEEPER_* only): the package restores OPENBLAS_CORETYPE itself
    { FEDKEEPER_BLAS_CHOICE: 'probe', FEDKEEPER_OPENBLAS_CORETYPE: core },
  ]) {
    const p = provider({ FEDKEEPER_NATIVE: '1', FEDKEEPER_NATIVE_ADDON: addon!, ...env });
    await p.deploy(spec);
    const a = await withEnv({ OPENBLAS_CORETYPE: undefined }, async () => settled(p, await p.invoke('nodeinfo', {})));
    assert.equal(a.status, 'success', JSON.stringify(a.result));
    assert.equal(a.result!['engine'], 'wasm+native', JSON.stringify(a.result));
    assert.match(String(a.result!['engineBlas']), new RegExp(`^OpenBLAS [\\d.]+ ${core} \\(chosen by probe\\)$`, 'i'));
  }
});
