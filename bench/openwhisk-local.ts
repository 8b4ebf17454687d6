/**
 * The local OpenWhisk platform, driven with the real `openwhisk` client as the keeper drives a cluster:
 *  - cold start: a blocking invoke of a freshly (re)deployed trivial action (new runtime process + /init + /run);
 *  - warm invoke: a blocking invoke of the same action again (p50/p99 round trip through REST + container);
 *  - dispatch: the time for the OpenWhisk provider to get activation ids back for N non-blocking invocations (each
 *    N of --dispatch, median of --reps runs after one warm-up run; between runs every activation is waited for, so
 *    runs do not overlap);
 *  - baseline, same run: a bare HTTP POST to a trivial node:http server on loopback (the floor any REST call pays),
 *    and for dispatch N raw concurrent POSTs to it through an agent like the provider's (keep-alive, 64 sockets),
 *    run by run interleaved with the dispatch runs so that both see the same machine.
 * The original FedKeeper measured ~105 ms per invocation (11 s to invoke 100 clients through the wsk CLI).
 *
 *   node dist/bench/openwhisk-local.js [--cold N] [--warm N] [--dispatch 100,1000] [--reps 5]
 *
 * Its last line is `BENCH_JSON {...}` (bench/table.ts), for bench/run.ts.
 */
import http from 'node:http';
import { parseArgs } from 'node:util';
import openwhisk from 'openwhisk';
import { launchLocalClusters } from '../src/keeper/fabric-launcher.js';
import { OpenWhiskProvider, openWhiskOptions } from '../src/providers/openwhisk.js';
import { concurrentPosts, fmt, loopbackBaseline, pct, startLoopback } from './latency.js';
import { benchJsonLine } from './table.js';

const { values } = parseArgs({
  options: {
    cold: { type: 'string', default: '10' },
    warm: { type: 'string', default: '500' },
    dispatch: { type: 'string', default: '100,1000' },
    reps: { type: 'string', default: '5' },
  },
});
const dispatchCounts = values.dispatch!.split(',').map(Number);
const reps = Number(values.reps);
const KEY = 'bbbbbbbb-0000-0000-0000-000000000000:bench-key';
const CODE = 'function main(p) { return { ok: true, n: p.n }; }';

const fabric = await launchLocalClusters([{ name: 'bench', auth: KEY, profile: 'cloud' }], process.env);
const apihost = fabric.urls.get('bench')!;
const agent = new http.Agent({ keepAlive: true });
const ow = openwhisk({ apihost, api_key: KEY, agent });
try {
  const base = await loopbackBaseline(Number(values.warm));
  const cold: number[] = [];
  const init: number[] = [];
  for (let i = 0; i < Number(values.cold); i++) {
    await ow.actions.create({ name: 'trivial', action: CODE, kind: 'nodejs:20', overwrite: true } as never);
    const t = performance.now();
    const a = (await ow.actions.invoke({ name: 'trivial', blocking: true, params: { n: i } })) as openwhisk.Activation<Record<string, unknown>>;
    cold.push(performance.now() - t);
    init.push(Number((a.annotations as { key: string; value: unknown }[]).find((x) => x.key === 'initTime')?.value ?? NaN));
  }
  const warm: number[] = [];
  for (let i = 0; i < Number(values.warm); i++) {
    const t = performance.now();
    await ow.actions.invoke({ name: 'trivial', blocking: true, params: { n: i } });
    warm.push(performance.now() - t);
  }
  const provider = new OpenWhiskProvider(openWhiskOptions('bench', { api_host: apihost, auth: { ow_auth: KEY } }));
  await provider.deploy({ name: 'trivial', timeoutMs: 60_000, memoryMb: 128, settings: {} }).catch(() => undefined);
  await ow.actions.create({ name: 'trivial', action: CODE, kind: 'nodejs:20', overwrite: true } as never);
  const loop = await startLoopback();
  const rawAgent = new http.Agent({ keepAlive: true, maxSockets: 64 }); // as the provider's
  /** ms until all n activation ids are back; then waits (not timed in it) until every activation has ended. */
  const dispatchOnce = async (n: number): Promise<{ ids: number; ended: number }> => {
    const t = performance.now();
    const ids = await Promise.all(Array.from({ length: n }, (_, i) => provider.invoke('trivial', { n: i })));
    const tIds = performance.now() - t;
    for (const id of ids) {
      for (;;) {
        const a = await provider.activation(id);
        if (a && a.status !== 'running') break;
        await new Promise((r) => setTimeout(r, 5));
      }
    }
    return { ids: tIds, ended: performance.now() - t };
  };
  const dispatches: { n: number; ms: number[]; endedMs: number[]; baselineMs: number[] }[] = [];
  try {
    for (const n of dispatchCounts) {
      // one warm-up run of each, not counted: the platform's containers up and both agents' sockets open
      await dispatchOnce(n);
      await concurrentPosts(loop.url, n, rawAgent);
      const d = { n, ms: [] as number[], endedMs: [] as number[], baselineMs: [] as number[] };
      for (let rep = 0; rep < reps; rep++) {
        // interleaved, the order alternating, so that a busy moment of the machine falls on both alike
        if (rep % 2) d.baselineMs.push(await concurrentPosts(loop.url, n, rawAgent));
        const r = await dispatchOnce(n);
        d.ms.push(r.ids);
        d.endedMs.push(r.ended);
        if (!(rep % 2)) d.baselineMs.push(await concurrentPosts(loop.url, n, rawAgent));
        await new Promise((r) => setTimeout(r, 200));
      }
      dispatches.push(d);
    }
  } finally {
    rawAgent.destroy();
    await loop.close();
    await provider.close();
  }
  console.log('local OpenWhisk platform (real openwhisk client, blocking invokes of a trivial nodejs:20 action)');
  console.log(`  baseline: bare loopback HTTP POST      ${fmt(base)}`);
  console.log(`  cold start (deploy → result)           ${fmt(cold)}   initTime ${fmt(init)}`);
  console.log(`  warm invoke                            ${fmt(warm)}`);
  for (const d of dispatches) {
    console.log(`  dispatch ${String(d.n).padEnd(5)} non-blocking invokes  ${fmt(d.ms)}   all ended: ${fmt(d.endedMs)}${d.n === 100 ? '   (seed: ~11,000 ms, ~105 ms per invocation)' : ''}`);
    console.log(`    baseline: ${String(d.n).padEnd(5)} concurrent raw POSTs ${fmt(d.baselineMs)}`);
  }
  const p50 = (xs: number[]) => (xs.length ? pct(xs, 0.5) : null);
  console.log(
    benchJsonLine('openwhisk-local', {
      loopbackP50Ms: p50(base),
      coldP50Ms: p50(cold),
      warmP50Ms: p50(warm),
      reps,
      dispatch: dispatches.map((d) => ({ n: d.n, ms: p50(d.ms), endedMs: p50(d.endedMs), baselineMs: p50(d.baselineMs), runsMs: d.ms, baselineRunsMs: d.baselineMs })),
    }),
  );
} finally {
  agent.destroy();
  await fabric.close();
}
