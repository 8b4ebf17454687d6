/**
 * The local OpenWhisk platform, driven with the real `openwhisk` client as the keeper drives a cluster:
 *  - cold start: a blocking invoke of a freshly (re)deployed trivial action (new runtime process + /init + /run);
 *  - warm invoke: a blocking invoke of the same action again (p50/p99 round trip through REST + container);
 *  - dispatch: the time for the OpenWhisk provider to get activation ids back for 100 non-blocking invocations;
 *  - baseline, same run: a bare HTTP POST to a trivial node:http server on loopback (the floor any REST call pays).
 * The original FedKeeper measured ~105 ms per invocation (11 s to invoke 100 clients through the wsk CLI).
 *
 *   node dist/bench/openwhisk-local.js [--cold N] [--warm N]
 */
import http from 'node:http';
import { parseArgs } from 'node:util';
import openwhisk from 'openwhisk';
import { launchLocalClusters } from '../src/keeper/fabric-launcher.js';
import { OpenWhiskProvider, openWhiskOptions } from '../src/providers/openwhisk.js';
import { fmt, loopbackBaseline } from './latency.js';

const { values } = parseArgs({ options: { cold: { type: 'string', default: '10' }, warm: { type: 'string', default: '500' } } });
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
  const dispatch: number[] = [];
  for (let rep = 0; rep < 5; rep++) {
    const t = performance.now();
    await Promise.all(Array.from({ length: 100 }, (_, n) => provider.invoke('trivial', { n })));
    dispatch.push(performance.now() - t);
    await new Promise((r) => setTimeout(r, 500));
  }
  await provider.close();
  console.log('local OpenWhisk platform (real openwhisk client, blocking invokes of a trivial nodejs:20 action)');
  console.log(`  baseline: bare loopback HTTP POST      ${fmt(base)}`);
  console.log(`  cold start (deploy → result)           ${fmt(cold)}   initTime ${fmt(init)}`);
  console.log(`  warm invoke                            ${fmt(warm)}`);
  console.log(`  dispatch 100 non-blocking invokes      ${fmt(dispatch)}   (seed: ~11,000 ms, ~105 ms per invocation)`);
} finally {
  agent.destroy();
  await fabric.close();
}
