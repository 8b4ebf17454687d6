/**
 * Lambda clusters in the fabric: the spec's `kind: lambda` next to OpenWhisk clusters (whose specs are unchanged),
 * one fabric process hosting both, the foreground runner's lines, and the keeper's launcher starting them and
 * handing back their URLs — each reached over HTTP with its real client.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { CreateFunctionCommand, InvokeCommand, ListFunctionsCommand } from '@aws-sdk/client-lambda';
import openwhisk from 'openwhisk';
import { FabricConfigError, parseFabricSpec, startFabric } from '../../src/fabric/main.js';
import { launchLocalClusters } from '../../src/keeper/fabric-launcher.js';
import { KEY, PROBE_ZIP, REGION, ROLE, lambdaClient } from '../fixtures/lambda-functions.js';

const OW_AUTH = 'aaaaaaaa-0000-4000-8000-000000000001:keyOfClusterA';
const LAMBDA = { kind: 'lambda' as const, name: 'aws', region: REGION, ...KEY };

async function probeEnv(endpoint: string, keys: string[]): Promise<Record<string, string | null>> {
  const sdk = lambdaClient(endpoint);
  await sdk.send(new CreateFunctionCommand({ FunctionName: 'env', Runtime: 'nodejs20.x', Role: ROLE, Handler: 'index.handler', Code: { ZipFile: PROBE_ZIP } }));
  const out = await sdk.send(new InvokeCommand({ FunctionName: 'env', Payload: JSON.stringify({ op: 'env', keys }) }));
  return (JSON.parse(Buffer.from(out.Payload!).toString()) as { env: Record<string, string | null> }).env;
}

test('the spec: kind lambda with its defaults; OpenWhisk specs unchanged; one clear line per mistake', () => {
  assert.deepEqual(parseFabricSpec({ clusters: [{ kind: 'lambda', name: 'l', accessKeyId: 'AKID1', secretAccessKey: 's3cr/t+' }] }), [
    { kind: 'lambda', name: 'l', accessKeyId: 'AKID1', secretAccessKey: 's3cr/t+' },
  ]);
  const mixed = parseFabricSpec([
    { name: 'ow', auth: OW_AUTH, profile: 'edge' },
    { kind: 'openwhisk', name: 'ow2', auth: OW_AUTH },
    { ...LAMBDA, profile: { base: 'edge', errorProbability: 0.2 }, memoryMb: 1024, concurrency: 4, settleMs: 100, seed: 3, port: 0 },
  ]);
  assert.deepEqual(mixed.map((c) => [c.name, c.kind ?? 'openwhisk']), [['ow', 'openwhisk'], ['ow2', 'openwhisk'], ['aws', 'lambda']]);
  const bad: Array<[unknown, RegExp]> = [
    [{ clusters: [{ kind: 'lambda', name: 'l', secretAccessKey: 's' }] }, /^fabric spec: clusters\.0\.accessKeyId: /],
    [{ clusters: [{ ...LAMBDA, region: 'mars-1' }] }, /^fabric spec: clusters\.0\.region: an AWS region such as us-east-1$/],
    [{ clusters: [{ ...LAMBDA, auth: OW_AUTH }] }, /^fabric spec: clusters\.0: .*auth/],
    [[{ kind: 'gcf', name: 'g' }], /^fabric spec: 0\.kind: expected "openwhisk" or "lambda", got "gcf"$/],
    [{ clusters: [{ ...LAMBDA, profile: { failureProbability: 0.7, errorProbability: 0.7 } }] }, /^fabric spec: clusters\.0\.profile: .*must be ≤ 1/],
    [{ clusters: [{ ...LAMBDA }, { ...LAMBDA }] }, /two clusters are named "aws"/],
    [{ clusters: [{ name: 'a b', auth: OW_AUTH }] }, /clusters\.0\.name/],
  ];
  for (const [spec, message] of bad) assert.throws(() => parseFabricSpec(spec), (e: Error) => e instanceof FabricConfigError && message.test(e.message), JSON.stringify(spec));
});

test('one fabric hosts an OpenWhisk cluster and a Lambda platform; FEDKEEPER_* reach the functions, nothing else does', async () => {
  const fabric = await startFabric([{ name: 'ow', auth: OW_AUTH }, { ...LAMBDA, profile: 'edge', memoryMb: 1024 }], { FEDKEEPER_HOME: '/nowhere', FEDKEEPER_KNOB: 'k', NOT_FOR_FUNCTIONS: 'secret' });
  try {
    const [ow, aws] = fabric.clusters;
    assert.equal(ow!.kind, 'openwhisk');
    assert.equal(aws!.kind, 'lambda');
    assert.ok(aws!.kind === 'lambda' && aws!.region === REGION);
    assert.deepEqual(aws!.profile, { coldStartDelayMs: 1500, speedFactor: 2.5, failureProbability: 0, memoryMb: 1024 });
    assert.deepEqual(await openwhisk({ apihost: ow!.url, api_key: OW_AUTH, namespace: '_' }).actions.list(), []);
    const env = await probeEnv(aws!.url, ['FEDKEEPER_HOME', 'FEDKEEPER_KNOB', 'NOT_FOR_FUNCTIONS']);
    assert.deepEqual(env, { FEDKEEPER_HOME: '/nowhere', FEDKEEPER_KNOB: 'k', NOT_FOR_FUNCTIONS: null });
  } finally {
    await fabric.close();
  }
});

test('cli-entry prints a kind line per cluster: {name, kind: "lambda", url, region}', async () => {
  const entry = fileURLToPath(new URL('../../src/fabric/cli-entry.js', import.meta.url));
  const child = spawn(process.execPath, [entry, '-'], { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.end(JSON.stringify({ clusters: [{ name: 'ow', auth: OW_AUTH }, LAMBDA] }));
  const got: Array<Record<string, string>> = [];
  for await (const line of createInterface({ input: child.stdout })) {
    got.push(JSON.parse(line) as Record<string, string>);
    if (got.length === 2) break;
  }
  assert.deepEqual(got.map((c) => Object.keys(c).sort()), [['kind', 'name', 'namespace', 'url'], ['kind', 'name', 'region', 'url']]);
  assert.deepEqual(got.map((c) => [c.name, c.kind]), [['ow', 'openwhisk'], ['aws', 'lambda']]);
  assert.equal(got[1]!.region, REGION);
  assert.deepEqual((await lambdaClient(got[1]!.url).send(new ListFunctionsCommand({}))).Functions, []);
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  assert.equal((await exited)[0], 0);
});

test('launchLocalClusters starts Lambda requests in the fabric process and returns their endpoints in urls', async () => {
  const launched = await launchLocalClusters(
    [
      { name: 'ow', auth: OW_AUTH, profile: 'cloud' },
      { kind: 'lambda', name: 'aws', region: REGION, ...KEY, profile: { base: 'cloud', coldStartDelayMs: 10 }, concurrency: 5 },
    ],
    { ...process.env, FEDKEEPER_LAUNCHED: 'yes' },
  );
  try {
    assert.deepEqual([...launched.urls.keys()].sort(), ['aws', 'ow']);
    const endpoint = launched.urls.get('aws')!;
    assert.match(endpoint, /^http:\/\/127\.0\.0\.1:\d+$/);
    const env = await probeEnv(endpoint, ['FEDKEEPER_LAUNCHED', 'AWS_REGION', 'HOME']);
    assert.deepEqual(env, { FEDKEEPER_LAUNCHED: 'yes', AWS_REGION: REGION, HOME: null });
    // a bad Lambda request is the user's input to fix (exit code 2 → BadInputError), named in one line
    await assert.rejects(
      launchLocalClusters([{ kind: 'lambda', name: 'bad', accessKeyId: 'has space', secretAccessKey: 's' }], process.env),
      (e: Error) => e.name === 'BadInputError' && /^local fabric: fabric spec: clusters\.0\.accessKeyId/.test(e.message),
    );
  } finally {
    await launched.close();
  }
});
