/**
 * A function's artifact for one platform kind: the zip a platform is given (index.js = the bundle, package.json,
 * the wasm backend's binaries), byte-identical for the same inputs (fixed entry order and times), named by its
 * sha256. Artifacts are kept content-addressed under `<cacheDir>/<sha256>.zip`, with a manifest per function and
 * target listing the files that went in and their hashes: a later build whose inputs did not change reuses it.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { zipSync } from 'fflate';
import { bundleFunction } from './bundle.js';
import { TARGETS, type PackageTarget } from './targets.js';

/** The wasm backend's binaries a package carries: SIMD, and the plain build for a runtime without SIMD. */
export const WASM_FILES = ['tfjs-backend-wasm-simd.wasm', 'tfjs-backend-wasm.wasm'] as const;

/** Bumped when the layout of a package changes, so that cached artifacts of an older layout are rebuilt. */
const LAYOUT_VERSION = 1;
const ZIP_TIME = new Date('2020-01-01T00:00:00Z');

export interface Artifact {
  functionName: string;
  target: PackageTarget;
  /** The zip on disk. */
  file: string;
  sha256: string;
  size: number;
  /** Reused from the cache (inputs unchanged) rather than built now. */
  reused: boolean;
}

interface Manifest {
  layout: number;
  version: string;
  sha256: string;
  size: number;
  inputs: Record<string, string>;
}

function fedkeeperVersion(): string {
  const pkg = createRequire(import.meta.url)('../../../package.json') as { version?: string };
  return pkg.version ?? '0.0.0';
}

function wasmDir(): string {
  const require = createRequire(import.meta.url);
  return path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist');
}

function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(file)
      .on('data', (c) => h.update(c))
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });
}

async function hashInputs(files: string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  await Promise.all(files.map(async (f) => (out[f] = await sha256File(f))));
  return out;
}

async function readManifest(file: string): Promise<Manifest | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as Manifest;
  } catch {
    return undefined;
  }
}

/** Does the cached artifact still match its inputs? */
async function stillValid(m: Manifest, zip: string, version: string): Promise<boolean> {
  if (m.layout !== LAYOUT_VERSION || m.version !== version || !existsSync(zip)) return false;
  const files = Object.keys(m.inputs);
  if (files.some((f) => !existsSync(f))) return false;
  const now = await hashInputs(files);
  return files.every((f) => now[f] === m.inputs[f]);
}

async function writeAtomic(file: string, data: string | Uint8Array): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  await writeFile(tmp, data);
  await rename(tmp, file);
}

/** Builds (or reuses) the artifact of `functionName` for `target` in `cacheDir`. */
export async function buildArtifact(functionName: string, target: PackageTarget, cacheDir: string): Promise<Artifact> {
  const version = fedkeeperVersion();
  const manifestFile = path.join(cacheDir, target, `${functionName}.json`);
  const cached = await readManifest(manifestFile);
  if (cached) {
    const zip = path.join(cacheDir, `${cached.sha256}.zip`);
    if (await stillValid(cached, zip, version)) return { functionName, target, file: zip, sha256: cached.sha256, size: cached.size, reused: true };
  }
  const bundle = await bundleFunction(functionName, target);
  const wasm = wasmDir();
  const wasmFiles = WASM_FILES.map((f) => path.join(wasm, f));
  const t = TARGETS[target];
  const entries: Record<string, Uint8Array> = {
    'index.js': bundle.code,
    'package.json': Buffer.from(`${JSON.stringify(t.packageJson(functionName, version), null, 2)}\n`),
  };
  for (const f of wasmFiles) entries[path.basename(f)] = await readFile(f);
  const zip = zipSync(entries, { level: 9, mtime: ZIP_TIME });
  const sha256 = createHash('sha256').update(zip).digest('hex');
  const file = path.join(cacheDir, `${sha256}.zip`);
  if (!existsSync(file)) await writeAtomic(file, zip);
  // The inputs, including this packaging code itself: a change to how packages are made rebuilds them.
  const self = [fileURLToPath(import.meta.url), fileURLToPath(new URL('./bundle.js', import.meta.url)), fileURLToPath(new URL('./targets.js', import.meta.url))];
  const manifest: Manifest = { layout: LAYOUT_VERSION, version, sha256, size: zip.length, inputs: await hashInputs([...new Set([...bundle.inputs, ...wasmFiles, ...self])]) };
  await writeAtomic(manifestFile, JSON.stringify(manifest, null, 2));
  return { functionName, target, file, sha256, size: zip.length, reused: false };
}

/** Copies an artifact to `dir` as `<function>.<target>.zip`; returns the path. */
export async function exportArtifact(a: Artifact, dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const out = path.join(dir, `${a.functionName}.${a.target}.zip`);
  await copyFile(a.file, out);
  return out;
}

export function formatSize(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(2)} MB` : `${(bytes / 1024).toFixed(1)} kB`;
}
