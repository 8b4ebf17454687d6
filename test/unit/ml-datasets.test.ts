import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { DatasetError, gather, loadDataset, loadTrainLabels } from '../../src/ml/datasets.js';

function idxImages(n: number, h: number, w: number, fill: (i: number) => number): Buffer {
  const b = Buffer.alloc(16 + n * h * w);
  b.writeUInt32BE(0x803, 0);
  b.writeUInt32BE(n, 4);
  b.writeUInt32BE(h, 8);
  b.writeUInt32BE(w, 12);
  for (let i = 0; i < n * h * w; i++) b[16 + i] = fill(i);
  return b;
}
function idxLabels(labels: number[]): Buffer {
  const b = Buffer.alloc(8 + labels.length);
  b.writeUInt32BE(0x801, 0);
  b.writeUInt32BE(labels.length, 4);
  labels.forEach((l, i) => (b[8 + i] = l));
  return b;
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'fk-idx-'));
let server: http.Server;
let base = '';
before(async () => {
  writeFileSync(path.join(dir, 'train-images.gz'), gzipSync(idxImages(6, 4, 4, (i) => i % 256)));
  writeFileSync(path.join(dir, 'train-labels.gz'), gzipSync(idxLabels([0, 1, 2, 0, 1, 2])));
  writeFileSync(path.join(dir, 'test-images'), idxImages(3, 4, 4, () => 255)); // plain, not gzipped
  writeFileSync(path.join(dir, 'test-labels'), idxLabels([2, 1, 0]));
  writeFileSync(path.join(dir, 'bad-labels'), idxLabels([0, 1]));
  server = http.createServer((req, res) => {
    const name = req.url!.slice(1);
    if (name === 'missing') return void res.writeHead(404).end();
    res.writeHead(200).end(require_(name));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
const require_ = (name: string) => readFileSync(path.join(dir, name));
after(() => {
  server?.close();
  rmSync(dir, { recursive: true, force: true });
});

const local = (over: Record<string, string> = {}) => ({
  dataset: 'idx' as const,
  train_images_url: path.join(dir, 'train-images.gz'),
  train_labels_url: path.join(dir, 'train-labels.gz'),
  test_images_url: path.join(dir, 'test-images'),
  test_labels_url: path.join(dir, 'test-labels'),
  ...over,
});

test('embedded MNIST: 10,000 real digits, fixed 8,000/2,000 split, values in [0,1], every class present', async () => {
  const d = await loadDataset({ dataset: 'mnist', test_fraction: 0.2 });
  assert.equal(d.train.n + d.test.n, 10_000);
  assert.ok(Math.abs(d.test.n - 2000) <= 10);
  assert.equal(d.train.x.length, d.train.n * 784);
  assert.deepEqual(d.shape, [28, 28, 1]);
  const classes = new Set(d.test.y);
  assert.equal(classes.size, 10);
  let max = 0;
  for (const v of d.train.x) max = Math.max(max, v);
  assert.ok(max > 0.9 && max <= 1);
  const again = await loadDataset({ dataset: 'mnist', test_fraction: 0.2 });
  assert.equal(again, d, 'cached per process');
});

test('IDX: gzipped and plain files from local paths', async () => {
  const d = await loadDataset(local());
  assert.equal(d.train.n, 6);
  assert.equal(d.test.n, 3);
  assert.deepEqual(d.shape, [4, 4, 1]);
  assert.equal(d.numClasses, 3);
  assert.equal(d.train.x[17], Math.fround(17 / 255));
  assert.equal(d.test.x[0], 1);
  const g = gather(d.train, [5, 1]);
  assert.deepEqual([...g.y], [2, 1]);
  assert.equal(g.x[0], Math.fround((5 * 16) / 255));
});

test('IDX over http(s): fetched once and parsed', async () => {
  const spec = { dataset: 'idx' as const, train_images_url: `${base}/train-images.gz`, train_labels_url: `${base}/train-labels.gz`, test_images_url: `${base}/test-images`, test_labels_url: `${base}/test-labels` };
  const d = await loadDataset(spec);
  assert.equal(d.train.n, 6);
  assert.deepEqual([...(await loadTrainLabels(spec))], [0, 1, 2, 0, 1, 2]);
});

test('a missing file, an unreachable URL, an HTTP error and a mismatched label file are DatasetErrors naming the source', async () => {
  await assert.rejects(loadDataset(local({ train_images_url: path.join(dir, 'nope.gz') })), (e: Error) => e instanceof DatasetError && /train_images_url: .*nope\.gz: file not found/.test(e.message));
  await assert.rejects(loadTrainLabels(local({ train_labels_url: 'http://127.0.0.1:1/x.gz' })), (e: Error) => e instanceof DatasetError && /cannot reach http:\/\/127\.0\.0\.1:1\/x\.gz/.test(e.message));
  await assert.rejects(loadTrainLabels(local({ train_labels_url: `${base}/missing` })), /HTTP 404/);
  await assert.rejects(loadDataset(local({ train_labels_url: path.join(dir, 'bad-labels') })), /6 images but .* 2 labels/);
  await assert.rejects(loadDataset(local({ test_labels_url: path.join(dir, 'test-images') })), /not an IDX label file/);
});
