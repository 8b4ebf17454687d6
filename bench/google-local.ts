/**
 * Google Cloud Functions in local mode, under the real functions-framework: how long an instance takes to start
 * (deploy → listening on 127.0.0.1), how long its first (cold) request takes, and warm invoke latency p50/p99 of a
 * trivial function, plus a ~2 MiB JSON payload. Latencies are the provider's activation records (request sent →
 * answer read), so the poll loop does not inflate them.
 *
 *   node dist/bench/google-local.js [--starts N] [--warm N] [--big N]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createGoogleProvider, type GoogleActivation } from '../src/providers/google.js';
import type { Provider } from '../src/providers/types.js';
import { fmt } from './latency.js';

const { values } = parseArgs({
  options: { starts: { type: 'string', default: '5' }, warm: { type: 'string', default: '1000' }, big: { type: 'string', default: '50' } },
});
const SOURCES: Record<string, string> = {
  trivial: `exports.main = async (params) => ({ ok: true, n: params.n });`,
  digest: `exports.main = async (params) => ({ length: params.blob.length });`,
};

async function done(p: Provider, id: string): Promise<GoogleActivation> {
  for (;;) {
    const a = (await p.activation(id)) as GoogleActivation;
    if (a.status !== 'running') {
      if (a.status !== 'success') throw new Error(`activation ${id}: ${a.status} ${JSON.stringify(a.result)}`);
      return a;
    }
    await new Promise((r) => setImmediate(r));
  }
}

const stateDir = await mkdtemp(path.join(os.tmpdir(), 'fedkeeper-bench-gcf-'));
const gcf = createGoogleProvider({ cluster: 'bench', settings: {}, stateDir, source: (n) => SOURCES[n.replace(/_\d+$/, '')]! });
try {
  const spec = (name: string) => ({ name, timeoutMs: 60_000, memoryMb: 256, settings: {} });
  const starts: number[] = [];
  const colds: number[] = [];
  for (let i = 0; i < Number(values.starts); i++) {
    const t0 = performance.now();
    await gcf.deploy(spec(`trivial_${i}`)); // writes the source, spawns the framework, waits until it listens
    starts.push(performance.now() - t0);
    const a = await done(gcf, await gcf.invoke(`trivial_${i}`, { n: 0 }));
    if (!a.coldStart) throw new Error('first request not reported cold');
    colds.push(a.endTime! - a.startTime);
    if (i > 0) await gcf.remove(`trivial_${i}`);
  }
  const warm: number[] = [];
  const wall: number[] = []; // sub-ms view: invoke() called → record seen settled (includes the poll loop)
  for (let i = 0; i < Number(values.warm); i++) {
    const t0 = performance.now();
    const a = await done(gcf, await gcf.invoke('trivial_0', { n: i }));
    wall.push(performance.now() - t0);
    warm.push(a.endTime! - a.startTime);
  }
  await gcf.deploy(spec('digest_0'));
  const blob = Buffer.alloc(1_572_864, 7).toString('base64'); // 2 MiB of base64
  await done(gcf, await gcf.invoke('digest_0', { blob }));
  const big: number[] = [];
  for (let i = 0; i < Number(values.big); i++) {
    const a = await done(gcf, await gcf.invoke('digest_0', { blob }));
    big.push(a.endTime! - a.startTime);
  }
  console.log(`google local (functions-framework 5, Node ${process.version}, ${os.availableParallelism()} cores)`);
  console.log(`  instance start (deploy → listening)  ${fmt(starts)}`);
  console.log(`  cold first request                   ${fmt(colds)}`);
  console.log(`  warm invoke, trivial JSON            ${fmt(warm)}  (activation record, ms resolution)`);
  console.log(`  warm invoke → seen done, wall clock  ${fmt(wall)}`);
  console.log(`  warm invoke, 2 MiB base64 params     ${fmt(big)}`);
} finally {
  for (const name of await gcf.list()) await gcf.remove(name);
  await gcf.close();
  await rm(stateDir, { recursive: true, force: true });
}
