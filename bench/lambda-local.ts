/**
 * The local Lambda platform beside the local OpenWhisk platform, in one run, each driven with its real client as the
 * keeper drives a cluster (the AWS SDK; the `openwhisk` client):
 *  - cold start: a RequestResponse (Lambda) / blocking (OpenWhisk) invoke of a freshly updated trivial function;
 *  - warm invoke: the same again (p50/p99 round trip through the API and a warm environment);
 *  - dispatch: how long the provider takes to hand back activation ids for 100 invocations, and until all 100 ended;
 *  - baseline: a bare loopback HTTP POST (the floor any API call pays).
 *
 *   node dist/bench/lambda-local.js [--cold N] [--warm N]
 */
import http from 'node:http';
import { parseArgs } from 'node:util';
import { InvokeCommand, LambdaClient, UpdateFunctionCodeCommand, waitUntilFunctionUpdatedV2 } from '@aws-sdk/client-lambda';
import { strToU8, zipSync } from 'fflate';
import openwhisk from 'openwhisk';
import { launchLocalClusters } from '../src/keeper/fabric-launcher.js';
import { LambdaProvider } from '../src/providers/lambda.js';
import { OpenWhiskProvider, openWhiskOptions } from '../src/providers/openwhisk.js';
import type { Provider } from '../src/providers/types.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fmt, loopbackBaseline } from './latency.js';

// The pinned SDK supports Node.js 20; its notice about later releases is noise here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const { values } = parseArgs({ options: { cold: { type: 'string', default: '10' }, warm: { type: 'string', default: '300' } } });
const OW_KEY = 'bbbbbbbb-0000-0000-0000-000000000000:bench-key';
const AWS = { accessKeyId: 'AKIABENCH0000000000', secretAccessKey: 'bench-secret' };
const OW_CODE = 'function main(p) { return { ok: true, n: p.n }; }';
const lambdaZip = (v: number) => zipSync({ 'index.js': strToU8(`exports.handler = async (e) => ({ ok: true, n: e.n, v: ${v} });`) });

/** 100 invocations through a provider: ms until all ids are back, and until all have ended. */
async function dispatch(p: Provider, name: string): Promise<{ ids: number; done: number }> {
  const t = performance.now();
  const ids = await Promise.all(Array.from({ length: 100 }, (_, n) => p.invoke(name, { n })));
  const tIds = performance.now() - t;
  for (const id of ids) {
    for (;;) {
      const a = await p.activation(id);
      if (a && a.status !== 'running') break;
      await new Promise((r) => setTimeout(r, 5));
    }
  }
  return { ids: tIds, done: performance.now() - t };
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'fk-bench-lambda-'));
const fabric = await launchLocalClusters(
  [
    { name: 'ow', auth: OW_KEY, profile: 'cloud' },
    { kind: 'lambda', name: 'aws', region: 'us-east-1', accessKeyId: AWS.accessKeyId, secretAccessKey: AWS.secretAccessKey, profile: 'cloud' },
  ],
  process.env,
);
const agent = new http.Agent({ keepAlive: true });
const ow = openwhisk({ apihost: fabric.urls.get('ow')!, api_key: OW_KEY, agent });
const endpoint = fabric.urls.get('aws')!;
const lambda = new LambdaClient({ region: 'us-east-1', endpoint, credentials: AWS });
try {
  const base = await loopbackBaseline(Number(values.warm));

  // OpenWhisk
  const owCold: number[] = [];
  for (let i = 0; i < Number(values.cold); i++) {
    await ow.actions.create({ name: 'trivial', action: OW_CODE, kind: 'nodejs:20', overwrite: true } as never);
    const t = performance.now();
    await ow.actions.invoke({ name: 'trivial', blocking: true, params: { n: i } });
    owCold.push(performance.now() - t);
  }
  const owWarm: number[] = [];
  for (let i = 0; i < Number(values.warm); i++) {
    const t = performance.now();
    await ow.actions.invoke({ name: 'trivial', blocking: true, params: { n: i } });
    owWarm.push(performance.now() - t);
  }
  const owp = new OpenWhiskProvider(openWhiskOptions('ow', { api_host: fabric.urls.get('ow'), auth: { ow_auth: OW_KEY } }));
  const owDispatch = await dispatch(owp, 'trivial');
  await owp.close();

  // Lambda
  const lp = new LambdaProvider({ cluster: 'aws', settings: { endpoint, region: 'us-east-1', credentials: { access_key_id: AWS.accessKeyId, secret_access_key: AWS.secretAccessKey } } });
  const zipFile = path.join(dir, 'trivial.zip');
  writeFileSync(zipFile, lambdaZip(0));
  await lp.deploy({ name: 'trivial', timeoutMs: 60_000, memoryMb: 128, settings: { func_path: zipFile } });
  const lCold: number[] = [];
  for (let i = 0; i < Number(values.cold); i++) {
    await lambda.send(new UpdateFunctionCodeCommand({ FunctionName: 'trivial', ZipFile: lambdaZip(i + 1) }));
    await waitUntilFunctionUpdatedV2({ client: lambda, maxWaitTime: 60 }, { FunctionName: 'trivial' });
    const t = performance.now();
    await lambda.send(new InvokeCommand({ FunctionName: 'trivial', Payload: Buffer.from(JSON.stringify({ n: i })) }));
    lCold.push(performance.now() - t);
  }
  const lWarm: number[] = [];
  for (let i = 0; i < Number(values.warm); i++) {
    const t = performance.now();
    await lambda.send(new InvokeCommand({ FunctionName: 'trivial', Payload: Buffer.from(JSON.stringify({ n: i })) }));
    lWarm.push(performance.now() - t);
  }
  const lDispatch = await dispatch(lp, 'trivial');
  await lp.remove('trivial');
  await lp.close();

  console.log('local platforms, trivial Node.js function, driven with the real clients (openwhisk; @aws-sdk/client-lambda)');
  console.log(`  baseline: bare loopback HTTP POST        ${fmt(base)}`);
  console.log(`  OpenWhisk cold start (update → result)   ${fmt(owCold)}`);
  console.log(`  Lambda    cold start (update → result)   ${fmt(lCold)}`);
  console.log(`  OpenWhisk warm invoke                    ${fmt(owWarm)}`);
  console.log(`  Lambda    warm invoke                    ${fmt(lWarm)}`);
  console.log(`  OpenWhisk 100 invocations: ids back in ${owDispatch.ids.toFixed(0)} ms, all ended in ${owDispatch.done.toFixed(0)} ms`);
  console.log(`  Lambda    100 invocations: ids back in ${lDispatch.ids.toFixed(0)} ms, all ended in ${lDispatch.done.toFixed(0)} ms   (seed: ~11,000 ms to invoke 100)`);
} finally {
  lambda.destroy();
  agent.destroy();
  await fabric.close();
  rmSync(dir, { recursive: true, force: true });
}
