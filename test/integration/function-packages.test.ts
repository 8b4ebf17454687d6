/**
 * FedKeeper's function packages run as the platforms run them (OpenWhisk, GCF, Lambda): each zip unpacked into an empty directory outside
 * this repository, with nothing of it around — in our OpenWhisk action runtime (/init + /run, as Apache's nodejs:20
 * does) and under Google's functions-framework over the unpacked GCF source. Real params: init and aggregator over
 * the keeper's store endpoint, fl_client trained on a relayed partition and from the store. A package that needs the
 * repository fails there, as it would on a real platform.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { strToU8, unzipSync, zipSync } from 'fflate';
import { decodeWeights, encodeWeights } from '../../src/fl/codec.js';
import { sameShapes } from '../../src/fl/weights.js';
import { FUNCTION_CATALOG } from '../../src/functions/catalog.js';
import { encodeIdxFloatImages, encodeIdxLabels } from '../../src/ml/datasets.js';
import { initialWeights } from '../../src/ml/index.js';
import { WASM_FILES, type PackageTarget } from '../../src/packaging/index.js';
import { launchLocalClusters, type LaunchedFabric } from '../../src/keeper/fabric-launcher.js';
import { createGoogleProvider } from '../../src/providers/google.js';
import { LambdaProvider } from '../../src/providers/lambda.js';
import type { Provider } from '../../src/providers/types.js';
import { ContainerPool } from '../../src/runtime/container-pool.js';
import type { ContainerAction } from '../../src/runtime/container-types.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { startStoreServer } from '../../src/store/store-server.js';
import { packaged, testArtifact } from '../fixtures/packages.js';

const MODEL = { model: 'mnistnn' as const, inputShape: [28, 28, 1] as [number, number, number], hiddenSize: 16, numClasses: 10 };
const TRAIN = { optimizer: 'adam' as const, lr: 1e-3, localEpochs: 1, batchSize: 10, seed: 7 };

let dir = '';
let pool: ContainerPool;
let dataset: { dataset: 'idx'; train_images_url: string; train_labels_url: string; test_images_url: string; test_labels_url: string };

/** A small learnable dataset (class c has bright pixels in row c) as gzipped IDX files. */
function writeDataset(): void {
  const make = (n: number, seed: number) => {
    const x = new Float32Array(n * 784);
    const y = new Uint8Array(n);
    let s = seed;
    for (let i = 0; i < n; i++) {
      y[i] = i % 10;
      for (let p = 0; p < 784; p++) {
        s = (s * 1103515245 + 12345) >>> 0;
        x[i * 784 + p] = (Math.floor(p / 28) === y[i]! * 2 ? 0.9 : 0) + (s / 2 ** 32) * 0.1;
      }
    }
    return { x, y, n };
  };
  const train = make(200, 1);
  const test = make(50, 2);
  const f = (name: string, data: Uint8Array) => {
    const file = path.join(dir, name);
    writeFileSync(file, gzipSync(data));
    return file;
  };
  dataset = {
    dataset: 'idx',
    train_images_url: f('train-images.gz', encodeIdxFloatImages(train, 28, 28)),
    train_labels_url: f('train-labels.gz', encodeIdxLabels(train.y)),
    test_images_url: f('test-images.gz', encodeIdxFloatImages(test, 28, 28)),
    test_labels_url: f('test-labels.gz', encodeIdxLabels(test.y)),
  };
}

const action = async (fn: string): Promise<ContainerAction> => {
  const a = await testArtifact(fn, 'openwhisk');
  return {
    name: `pkg/${fn}`,
    version: a.sha256,
    exec: { kind: 'nodejs:20', code: readFileSync(a.file).toString('base64'), binary: true, main: 'main' },
    limits: { timeoutMs: 120_000, memoryMb: 1024, concurrency: 1 },
    env: {},
  };
};
let seq = 0;
const meta = () => ({ activationId: `pkg${++seq}`, namespace: 'test', actionName: 'pkg' });

before(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'fk-packages-test-'));
  writeDataset();
  pool = new ContainerPool({ memoryMb: 8192, maxActive: 2, label: 'package test' });
});
after(async () => {
  await pool.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the artifacts', () => {
  for (const target of ['openwhisk', 'gcf', 'lambda'] as PackageTarget[]) {
    test(`${target}: one per function, self-contained (bundle, package.json, wasm files), well under the size limit, reproducible`, async () => {
      for (const fn of Object.keys(FUNCTION_CATALOG)) {
        const a = await testArtifact(fn, target);
        assert.ok(a.size < 10 * 1024 * 1024, `${fn} (${target}) is ${a.size} bytes; aim is under 10 MB`);
        const files = unzipSync(readFileSync(a.file));
        assert.deepEqual(Object.keys(files).sort(), ['index.js', 'package.json', ...WASM_FILES].sort(), `${fn} (${target}) zip entries`);
        const pkg = JSON.parse(Buffer.from(files['package.json']!).toString('utf8')) as { main: string; dependencies?: Record<string, string> };
        assert.equal(pkg.main, 'index.js');
        if (target === 'gcf') assert.deepEqual(Object.keys(pkg.dependencies ?? {}), ['@google-cloud/functions-framework']);
        else assert.equal(pkg.dependencies, undefined);
        const code = Buffer.from(files['index.js']!).toString('utf8');
        assert.doesNotMatch(code, /require\("(better-sqlite3|mnist|@tensorflow\/tfjs[^"]*|pg|fflate)"\)/, `${fn} (${target}) resolves a package at run time`);
        const again = await testArtifact(fn, target);
        assert.equal(again.sha256, a.sha256, 'the same inputs give the same artifact');
      }
    });
  }
});

describe('OpenWhisk nodejs:20: the zip in an empty directory, through /init and /run', () => {
  test('nodeinfo answers with the engine the platform gave it: wasm (no native code in a package)', async () => {
    const r = await pool.run(await action('nodeinfo'), {}, meta());
    assert.equal(r.status, 'success', JSON.stringify(r.result));
    assert.equal(r.result.engine, 'wasm');
    assert.equal(typeof r.result.simd, 'boolean');
    assert.equal(typeof r.result.cores, 'number');
  });

  test('init → client (store endpoint) → client (relayed partition) → aggregator, with real params', async () => {
    const sqlite = new SqliteStore(path.join(dir, 'store.sqlite'));
    const server = await startStoreServer(sqlite);
    try {
      const store = { type: 'http' as const, url: server.url, token: server.token };
      const common = { runId: 'pkg-run', store, dataset, model: MODEL };
      const init = await pool.run(await action('fl_server_init'), { ...common, numClients: 4, partition: { kind: 'iid' }, seed: 3 }, meta());
      assert.equal(init.status, 'success', JSON.stringify(init.result));
      assert.equal(init.result.clients, 4);
      assert.equal(init.result.engine, 'wasm');

      const client = await pool.run(await action('fl_client'), { ...common, round: 1, clientId: 0, attempt: 1, train: TRAIN }, meta());
      assert.equal(client.status, 'success', JSON.stringify(client.result));
      assert.equal(client.result.numSamples, 50);
      const stored = await sqlite.getClientUpdate('pkg-run', 1, 0);
      assert.ok(stored, 'the direct client wrote its update through the store endpoint');

      // The relay's way: weights and the partition's samples in the body, the update back in the answer.
      const global = (await sqlite.getGlobalWeights('pkg-run', 0))!;
      const idx = (await sqlite.getPartition('pkg-run', 1))!;
      const x = new Float32Array(idx.length * 784);
      const y = new Uint8Array(idx.length);
      const all = decodeIdx();
      idx.forEach((j, i) => {
        x.set(all.x.subarray(j * 784, (j + 1) * 784), i * 784);
        y[i] = all.y[j]!;
      });
      const { store: _s, ...noStore } = common;
      const relayed = await pool.run(
        await action('fl_client'),
        { ...noStore, round: 1, clientId: 1, attempt: 1, train: TRAIN, relay: { globalWeights: Buffer.from(encodeWeights(global)).toString('base64'), samples: { x: Buffer.from(x.buffer).toString('base64'), y: Buffer.from(y).toString('base64') } } },
        meta(),
      );
      assert.equal(relayed.status, 'success', JSON.stringify(relayed.result).slice(0, 300));
      const update = decodeWeights(Buffer.from(String(relayed.result.update), 'base64'));
      assert.ok(sameShapes(update.shapes, global.shapes));
      assert.ok(update.data.every(Number.isFinite));
      assert.notDeepEqual(update.data, global.data, 'the relayed client trained');
      await sqlite.putClientUpdate({ runId: 'pkg-run', round: 1, clientId: 1, weights: update, numSamples: Number(relayed.result.numSamples), metrics: {}, attempt: 1 });

      const agg = await pool.run(await action('fl_server_aggregator'), { ...common, round: 1, clientIds: [0, 1] }, meta());
      assert.equal(agg.status, 'success', JSON.stringify(agg.result));
      assert.equal(agg.result.clients, 2);
      assert.ok(Number(agg.result.accuracy) >= 0 && Number(agg.result.accuracy) <= 1);
      assert.ok(await sqlite.getGlobalWeights('pkg-run', 1), 'the aggregator wrote round 1');

      const relay = await pool.run(await action('fl_invoker_weights_update'), { runId: 'pkg-run' }, meta());
      assert.equal(relay.status, 'application error', 'the relay package loads and checks its params');
      assert.match(String(relay.result.error), /fl_invoker_weights_update: missing parameter/);
    } finally {
      await server.close();
      await sqlite.close();
    }
  });

  test('fl_client keeps the global weights by sha256 in its warm container and takes its partition from the params', async () => {
    const sqlite = new SqliteStore(path.join(dir, 'store-cache.sqlite'));
    const server = await startStoreServer(sqlite);
    const counts = new Map<string, number>();
    const proxy = await countingProxy(server.url, counts);
    // One container only: every activation below runs warm in the same process.
    const one = new ContainerPool({ memoryMb: 2048, maxActive: 1, label: 'package cache test' });
    try {
      const store = { type: 'http' as const, url: proxy.url, token: server.token };
      const common = { runId: 'cache-run', store, dataset, model: MODEL };
      const init = await one.run(await action('fl_server_init'), { ...common, numClients: 4, partition: { kind: 'iid' }, seed: 3 }, meta());
      assert.equal(init.status, 'success', JSON.stringify(init.result));
      const global = (await sqlite.getGlobalWeights('cache-run', 0))!;
      const sha = createHash('sha256').update(encodeWeights(global)).digest('hex');
      const gets = (what: string) => counts.get(`GET ${what}`) ?? 0;
      const client = async (clientId: number, extra: Record<string, unknown>) => {
        const r = await one.run(await action('fl_client'), { ...common, round: 1, clientId, attempt: 1, train: TRAIN, ...extra }, meta());
        assert.equal(r.status, 'success', JSON.stringify(r.result));
        return r;
      };

      await client(0, { globalSha256: sha });
      assert.equal(gets('global'), 1, 'first activation: fetched');
      await client(1, { globalSha256: sha });
      assert.equal(gets('global'), 1, 'second activation, same digest: no fetch');
      const hit = (await sqlite.getClientUpdate('cache-run', 1, 1))!;
      await client(1, { globalSha256: 'a'.repeat(64) });
      assert.equal(gets('global'), 2, 'a digest it does not hold: fetched again');
      await client(1, {});
      assert.equal(gets('global'), 3, 'no digest: fetched');
      const fresh = (await sqlite.getClientUpdate('cache-run', 1, 1))!;
      assert.deepEqual(Array.from(hit.weights.data), Array.from(fresh.weights.data), 'training on kept weights = training on fetched ones (nothing wrote into them)');

      // The partition in the params: no store read, and it is what the client trains on.
      const stored = (await sqlite.getPartition('cache-run', 2))!;
      const partitionsBefore = gets('partitions');
      const sent = await client(2, { globalSha256: sha, partition: Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength).toString('base64') });
      assert.equal(gets('partitions'), partitionsBefore, 'no partition read');
      assert.equal(sent.result.numSamples, stored.length);
      const viaParams = (await sqlite.getClientUpdate('cache-run', 1, 2))!;
      await client(2, { globalSha256: sha });
      assert.equal(gets('partitions'), partitionsBefore + 1, 'without it the store is read');
      const viaStore = (await sqlite.getClientUpdate('cache-run', 1, 2))!;
      assert.deepEqual(Array.from(viaParams.weights.data), Array.from(viaStore.weights.data), 'the partition in the params trains as the stored one');
      const sub = new Uint32Array([stored[0]!, stored[1]!, stored[2]!]);
      const three = await client(3, { partition: Buffer.from(sub.buffer).toString('base64') });
      assert.equal(three.result.numSamples, 3, 'the params\' partition is the one used');
    } finally {
      await one.close();
      await proxy.close();
      await server.close();
      await sqlite.close();
    }
  });

  test('a package that needs the repository fails as on a real platform (nothing resolves outside the zip)', async () => {
    const zip = zipSync({ 'index.js': strToU8(`const { zipSync } = require('fflate'); exports.main = () => ({ ok: typeof zipSync });`), 'package.json': strToU8('{"main":"index.js"}') });
    const r = await pool.run(
      { name: 'pkg/needs-repo', version: '1', exec: { kind: 'nodejs:20', code: Buffer.from(zip).toString('base64'), binary: true, main: 'main' }, limits: { timeoutMs: 10_000, memoryMb: 256, concurrency: 1 }, env: {} },
      {},
      meta(),
    );
    assert.equal(r.status, 'developer error');
    assert.match(String(r.result.error), /Cannot find module 'fflate'/);
  });
});

function decodeIdx(): { x: Float32Array; y: Uint8Array } {
  const img = new Uint8Array(gunzip(dataset.train_images_url));
  const lab = new Uint8Array(gunzip(dataset.train_labels_url));
  const v = new DataView(img.buffer, img.byteOffset, img.byteLength);
  const n = v.getUint32(4);
  const x = new Float32Array(n * 784);
  for (let i = 0; i < x.length; i++) x[i] = v.getFloat32(16 + 4 * i, false);
  return { x, y: lab.slice(8) };
}

function gunzip(file: string): Buffer {
  return gunzipSync(readFileSync(file));
}

/** fl_client as the relay invokes it (weights and 30 samples in the body) answers with a valid update of the model. */
async function relayedClientTrains(p: Provider, settled: (id: string) => Promise<{ status: string; result?: Record<string, unknown> }>): Promise<void> {
  const global = await initialWeights(MODEL, 5);
  const all = decodeIdx();
  const n = 30;
  const samples = { x: Buffer.from(all.x.buffer, 0, n * 784 * 4).toString('base64'), y: Buffer.from(all.y.subarray(0, n)).toString('base64') };
  const r = await settled(
    await p.invoke('fl_client', { runId: 'relayed', dataset, model: MODEL, round: 1, clientId: 3, attempt: 1, train: TRAIN, relay: { globalWeights: Buffer.from(encodeWeights(global)).toString('base64'), samples } }),
  );
  assert.equal(r.status, 'success', `${p.platform}: ${JSON.stringify(r.result).slice(0, 300)}`);
  assert.equal(r.result?.numSamples, n);
  const update = decodeWeights(Buffer.from(String(r.result?.update), 'base64'));
  assert.ok(sameShapes(update.shapes, global.shapes));
  assert.ok(update.data.every(Number.isFinite));
  assert.notDeepEqual(update.data, global.data, 'it trained');
}

describe('Google Cloud Functions: the source zip unpacked and served by the real functions-framework', () => {
  let stateDir = '';
  let gcf: Provider;
  before(() => {
    stateDir = mkdtempSync(path.join(os.tmpdir(), 'fk-packages-gcf-'));
    gcf = createGoogleProvider({ cluster: 'gcfpkg', settings: {}, stateDir });
  });
  after(async () => {
    for (const f of await gcf.list()) await gcf.remove(f);
    await gcf.close();
    rmSync(stateDir, { recursive: true, force: true });
  });

  const settled = async (id: string) => {
    for (;;) {
      const a = await gcf.activation(id);
      if (a && a.status !== 'running') return a;
      await new Promise((r) => setTimeout(r, 25));
    }
  };

  test('nodeinfo and fl_client (relayed partition) answer; the instance sees no repository', async () => {
    await gcf.deploy(await packaged({ name: 'nodeinfo', timeoutMs: 60_000, memoryMb: 512, settings: {} }, 'gcf'));
    const info = await settled(await gcf.invoke('nodeinfo', {}));
    assert.equal(info.status, 'success', JSON.stringify(info.result));
    assert.equal(info.result?.engine, 'wasm');

    await gcf.deploy(await packaged({ name: 'fl_client', timeoutMs: 120_000, memoryMb: 1024, settings: {} }, 'gcf'));
    await relayedClientTrains(gcf, settled);
  });

  test('the server functions and the relay load from their GCF packages and check their params', async () => {
    for (const fn of ['fl_server_init', 'fl_server_aggregator', 'fl_invoker_weights_update']) {
      await gcf.deploy(await packaged({ name: fn, timeoutMs: 60_000, memoryMb: 512, settings: {} }, 'gcf'));
      const a = await settled(await gcf.invoke(fn, { runId: 'g' }));
      assert.equal(a.status, 'application error', `${fn}: ${JSON.stringify(a.result)}`);
      assert.match(String(a.result?.error), new RegExp(`^${fn}: missing parameter`));
      assert.equal(a.result?.errorName, 'FunctionParamsError');
    }
  });

  test('a package that needs the repository does not start under the framework', async () => {
    const zip = zipSync({ 'index.js': strToU8(`require('fflate'); exports.fedkeeper_http = (req, res) => res.json({});`), 'package.json': strToU8('{"main":"index.js"}') });
    const file = path.join(stateDir, 'needs-repo.zip');
    writeFileSync(file, zip);
    await assert.rejects(
      gcf.deploy({ name: 'needs_repo', timeoutMs: 10_000, memoryMb: 256, settings: {}, artifact: { file, sha256: 'x', size: zip.length, target: 'gcf' } }),
      /did not start: .*Cannot find module 'fflate'/,
    );
  });
});

describe('AWS Lambda: the zip unpacked in an empty directory, run through the Runtime API by the local Lambda platform', () => {
  const KEY = { access_key_id: 'AKIAPACKAGETEST00001', secret_access_key: 'package-test-secret' };
  let fabric: LaunchedFabric;
  let lambda: LambdaProvider;
  before(async () => {
    fabric = await launchLocalClusters([{ kind: 'lambda', name: 'pkg', accessKeyId: KEY.access_key_id, secretAccessKey: KEY.secret_access_key, profile: 'cloud' }], {});
    lambda = new LambdaProvider({ cluster: 'pkg', settings: { endpoint: fabric.urls.get('pkg'), credentials: KEY } });
  });
  after(async () => {
    await lambda?.close();
    await fabric?.close();
  });
  const settled = async (id: string) => {
    for (;;) {
      const a = await lambda.activation(id);
      if (a && a.status !== 'running') return a;
      await new Promise((r) => setTimeout(r, 25));
    }
  };

  test('nodeinfo answers on the wasm engine; fl_client trains on a relayed partition; the other functions load and check their params', async () => {
    for (const fn of Object.keys(FUNCTION_CATALOG)) await lambda.deploy(await packaged({ name: fn, timeoutMs: 120_000, memoryMb: 1024, settings: {} }, 'lambda'));
    const info = await settled(await lambda.invoke('nodeinfo', {}));
    assert.equal(info.status, 'success', JSON.stringify(info.result));
    assert.equal(info.result?.engine, 'wasm', 'no native addon reaches a package unless the platform hands one over');

    await relayedClientTrains(lambda, settled);

    for (const fn of ['fl_server_init', 'fl_server_aggregator', 'fl_invoker_weights_update']) {
      const a = await settled(await lambda.invoke(fn, { runId: 'l' }));
      assert.equal(a.status, 'application error', `${fn}: ${JSON.stringify(a.result)}`);
      assert.match(String(a.result?.error), new RegExp(`^${fn}: missing parameter`));
    }
  });
});

/** An HTTP proxy in front of the store endpoint that counts requests as "METHOD route" (global, partitions, rounds …). */
async function countingProxy(target: string, counts: Map<string, number>): Promise<{ url: string; close(): Promise<void> }> {
  const to = new URL(target);
  const server = http.createServer((req, res) => {
    const route = (req.url ?? '').split('?')[0]!.split('/')[4] ?? '';
    const key = `${req.method} ${route}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
    const up = http.request({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}
