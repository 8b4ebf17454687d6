/**
 * The fabric entry point: several clusters with their profiles, FEDKEEPER_* handed to the containers, bad
 * descriptions refused with one line, and the foreground runner (cli-entry) started and stopped as the CLI will.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import openwhisk from 'openwhisk';
import { FabricConfigError, parseFabricSpec, startFabric } from '../../src/fabric/main.js';
import { resolveProfile } from '../../src/fabric/profiles.js';

const AUTH_A = 'aaaaaaaa-0000-4000-8000-000000000001:keyOfClusterA';
const AUTH_B = 'bbbbbbbb-0000-4000-8000-000000000002:keyOfClusterB';
const ENV_ACTION = `function main() { return { home: process.env.FEDKEEPER_HOME || null, other: process.env.NOT_FOR_ACTIONS || null }; }`;

test('two clusters with their own keys and profiles; FEDKEEPER_* reaches the actions, nothing else does', async () => {
  const home = join(tmpdir(), 'fedkeeper-fabric-test-home');
  const fabric = await startFabric(
    [
      { name: 'dc', profile: 'cloud', auth: AUTH_A, seed: 1, maxActive: 2 },
      { name: 'edge', profile: { base: 'edge', coldStartDelayMs: 100 }, auth: AUTH_B, memoryMb: 1024 },
    ],
    { FEDKEEPER_HOME: home, NOT_FOR_ACTIONS: 'secret', UNSET: undefined },
  );
  try {
    assert.deepEqual(fabric.clusters.map((c) => c.name), ['dc', 'edge']);
    const [dc, edge] = fabric.clusters;
    assert.notEqual(dc!.url, edge!.url);
    assert.match(dc!.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.deepEqual(edge!.profile, { coldStartDelayMs: 100, speedFactor: 2.5, failureProbability: 0, memoryMb: 1024 });
    const owA = openwhisk({ apihost: dc!.url, api_key: AUTH_A, namespace: '_' });
    const wrongKey = openwhisk({ apihost: edge!.url, api_key: AUTH_A, namespace: '_' });
    await assert.rejects(wrongKey.actions.list(), (e: { statusCode?: number }) => e.statusCode === 401);
    await owA.actions.create({ name: 'env', action: ENV_ACTION, kind: 'nodejs:20' } as never);
    const r = await owA.actions.invoke({ name: 'env', blocking: true, result: true });
    assert.deepEqual(r, { home, other: null });
  } finally {
    await fabric.close();
    await fabric.close(); // idempotent
  }
});

test('bad descriptions are FabricConfigErrors with one clear line', async () => {
  await assert.rejects(startFabric([]), FabricConfigError);
  await assert.rejects(
    startFabric([{ name: 'x', auth: AUTH_A }, { name: 'x', auth: AUTH_B }]),
    (e: Error) => e instanceof FabricConfigError && /two clusters are named "x"/.test(e.message),
  );
  await assert.rejects(startFabric([{ name: 'x', auth: 'no-colon' }]), (e: Error) => e instanceof FabricConfigError && /^cluster x: auth must look like "uuid:key"/.test(e.message));
  await assert.rejects(startFabric([{ name: 'x', auth: AUTH_A, profile: 'moon' as never }]), /unknown cluster profile "moon"/);
  assert.throws(() => resolveProfile({ base: 'edge', speedFactor: 0.5 }), /speedFactor must be ≥ 1/);
  assert.throws(() => parseFabricSpec({ clusters: [{ name: 'a b', auth: AUTH_A }] }), /clusters\.0\.name/);
  assert.throws(() => parseFabricSpec({ clusters: [{ name: 'a', auth: AUTH_A, colour: 'red' }] }), FabricConfigError);
  assert.deepEqual(parseFabricSpec([{ name: 'a', auth: AUTH_A, profile: 'edge' }]), [{ name: 'a', auth: AUTH_A, profile: 'edge' }]);

  const first = await startFabric([{ name: 'a', auth: AUTH_A }]);
  try {
    const port = Number(new URL(first.clusters[0]!.url).port);
    // the second cluster cannot bind: the first one of the same call is closed again, the error says which port
    await assert.rejects(
      startFabric([{ name: 'ok', auth: AUTH_B }, { name: 'clash', auth: AUTH_B, port }]),
      (e: Error) => e instanceof FabricConfigError && new RegExp(`cluster clash: cannot listen on 127\\.0\\.0\\.1:${port} \\(EADDRINUSE\\)`).test(e.message),
    );
  } finally {
    await first.close();
  }
});

test('cli-entry prints one JSON line per cluster, serves, and exits 0 on SIGTERM; a bad spec exits 2', async () => {
  const entry = fileURLToPath(new URL('../../src/fabric/cli-entry.js', import.meta.url));
  const spec = JSON.stringify({ clusters: [{ name: 'one', auth: AUTH_A }, { name: 'two', profile: 'edge', auth: AUTH_B }] });
  const child = spawn(process.execPath, [entry, '-'], { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.end(spec);
  const lines = createInterface({ input: child.stdout });
  const got: Array<{ name: string; url: string; namespace: string }> = [];
  for await (const line of lines) {
    got.push(JSON.parse(line) as { name: string; url: string; namespace: string });
    if (got.length === 2) break;
  }
  assert.deepEqual(got.map((c) => [c.name, c.namespace]), [['one', 'guest'], ['two', 'guest']]);
  const ow = openwhisk({ apihost: got[1]!.url, api_key: AUTH_B, namespace: '_' });
  assert.deepEqual(await ow.actions.list(), []);
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const [code] = await exited;
  assert.equal(code, 0);

  const bad = spawn(process.execPath, [entry, '{"clusters": []}'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  bad.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const [badCode] = await once(bad, 'exit');
  assert.equal(badCode, 2);
  assert.match(err, /^fedkeeper fabric: fabric spec: /);
});
