/**
 * The bundler step: one function's handler, the platform's entry wrapper and everything they import (TensorFlow.js
 * with its wasm backend, the codec, the store client) as ONE CommonJS file, with esbuild. Nothing in it is resolved
 * from outside the package at run time: modules a package must not carry (native addons, the SQLite store, the
 * keeper-side Google client) are replaced by stubs that throw a clear error if ever reached.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { functionCode } from '../functions/catalog.js';
import { TARGETS, type PackageTarget } from './targets.js';
import { PackagingError } from './errors.js';

/** Modules that never go into a package, and why (the stub's error says it). */
const ABSENT: Readonly<Record<string, string>> = {
  'better-sqlite3': 'the SQLite store is a file on the keeper\'s machine: functions reach it through the keeper\'s store endpoint (store type http)',
  'pg-native': 'pg runs on its pure-JavaScript protocol here',
  '@tensorflow/tfjs-node': 'a function package trains on the wasm engine',
  '@google-cloud/functions': 'deploying Cloud Functions is the keeper\'s job, not a function\'s',
  '@google-cloud/functions-framework': 'the functions-framework is the platform\'s runtime, not part of the bundle',
};

/** The directory of the compiled FL functions (dist/src/functions/). */
export function functionsDir(): string {
  return fileURLToPath(new URL('../functions/', import.meta.url));
}

export interface Bundle {
  code: Uint8Array;
  /** Absolute paths of every file that went into the bundle (for the package cache). */
  inputs: string[];
  warnings: string[];
}

/** The generated entry module: the handler wrapped for the target, exported under the target's name. */
function entrySource(functionName: string, target: PackageTarget): string {
  const code = functionCode(functionName);
  if (!code) throw new PackagingError(`no function named ${functionName} in this package`);
  const t = TARGETS[target];
  const dir = functionsDir();
  const s = JSON.stringify;
  return [
    `import { ${code.exportName} as fedkeeperFunction } from ${s(path.join(dir, code.file))};`,
    `import { ${t.wrapper.factory} } from ${s(path.join(dir, t.wrapper.file))};`,
    `export const ${t.exportName} = ${t.wrapper.factory}(${s(functionName)}, fedkeeperFunction);`,
    '',
  ].join('\n');
}

const absentPlugin: esbuild.Plugin = {
  name: 'fedkeeper-absent-modules',
  setup(build) {
    const filter = new RegExp(`^(${Object.keys(ABSENT).map((m) => m.replace(/[/.-]/g, (c) => `\\${c}`)).join('|')})(/.*)?$`);
    build.onResolve({ filter }, (args) => ({ path: args.path, namespace: 'fedkeeper-absent' }));
    build.onLoad({ filter: /.*/, namespace: 'fedkeeper-absent' }, (args) => {
      const name = Object.keys(ABSENT).find((m) => args.path === m || args.path.startsWith(`${m}/`)) ?? args.path;
      const why = ABSENT[name] ?? 'it is not part of this package';
      return { contents: `throw new Error(${JSON.stringify(`${args.path} is not in this FedKeeper function package: ${why}`)});`, loader: 'js' };
    });
  },
};

export async function bundleFunction(functionName: string, target: PackageTarget): Promise<Bundle> {
  let result: esbuild.BuildResult<{ write: false; metafile: true }>;
  try {
    result = await esbuild.build({
      stdin: { contents: entrySource(functionName, target), resolveDir: functionsDir(), sourcefile: `${functionName}.${target}.entry.mjs`, loader: 'js' },
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node20',
      write: false,
      metafile: true,
      outfile: 'index.js',
      minifyWhitespace: true,
      minifySyntax: true,
      legalComments: 'eof',
      logLevel: 'silent',
      // ESM code reads import.meta.url; in the CommonJS bundle it is the bundle file's own URL. The marker tells
      // src/ml that it runs inside a package (wasm files beside the bundle, no native addon unless given one).
      define: { 'import.meta.url': '__fedkeeper_import_meta_url', 'process.env.FEDKEEPER_BUNDLED': '"1"' },
      banner: { js: `'use strict';\nvar __fedkeeper_import_meta_url = require('node:url').pathToFileURL(__filename).href;` },
      plugins: [absentPlugin],
    });
  } catch (e) {
    const errors = (e as { errors?: esbuild.Message[] }).errors;
    const first = errors?.[0];
    const where = first?.location ? ` (${first.location.file}:${first.location.line})` : '';
    throw new PackagingError(`bundling ${functionName} for ${target} failed: ${first?.text ?? (e as Error).message}${where}`);
  }
  const out = result.outputFiles[0];
  if (!out) throw new PackagingError(`bundling ${functionName} for ${target} produced no output`);
  const cwd = process.cwd();
  const inputs = Object.keys(result.metafile.inputs)
    .filter((p) => !p.includes(':')) // stub namespaces
    .map((p) => path.resolve(cwd, p))
    .filter((p) => existsSync(p)); // not the generated entry (stdin)
  const native = inputs.filter((p) => p.endsWith('.node') || /[\\/]better-sqlite3[\\/]/.test(p));
  if (native.length) throw new PackagingError(`the ${functionName} bundle would carry native code (${native.join(', ')}); a function package must be pure JavaScript and wasm`);
  return { code: out.contents, inputs: inputs.sort(), warnings: result.warnings.map((w) => w.text) };
}
