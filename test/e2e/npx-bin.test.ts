/**
 * The README's spelling of every command is `npx fedkeeper …`. `npm test` builds first (`rm -rf dist && tsc`, which
 * writes the bin without its execute bit), so this runs after a build: the bin is executable and `npx fedkeeper
 * --version` answers. scripts/chmod-bin.mjs, which ends the build script, is checked on a package of its own.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string; bin: Record<string, string>; scripts: Record<string, string> };
const work = mkdtempSync(path.join(os.tmpdir(), 'fk-bin-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** npx next to this node (as npm installs them), else the one on PATH. */
const NPX = existsSync(path.join(path.dirname(process.execPath), 'npx')) ? path.join(path.dirname(process.execPath), 'npx') : 'npx';

test('the build leaves the bin executable', () => {
  assert.match(pkg.scripts.build, /tsc -p tsconfig\.json && node scripts\/chmod-bin\.mjs$/, 'the build script ends by making the bin executable');
  const bin = path.join(ROOT, pkg.bin.fedkeeper!);
  assert.equal(statSync(bin).mode & 0o111, 0o111, `${pkg.bin.fedkeeper} is not executable after the build`);
  assert.match(readFileSync(bin, 'utf8'), /^#!\/usr\/bin\/env node\n/);
});

test('npx fedkeeper --version, as the README spells it', () => {
  // offline: npx must find the project's own bin, never fetch a package of that name
  const r = spawnSync(NPX, ['fedkeeper', '--version'], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, npm_config_offline: 'true', npm_config_update_notifier: 'false' } });
  assert.equal(r.status, 0, `exit ${r.status}: ${r.stderr}`);
  assert.equal(r.stdout.trim(), pkg.version);
});

test('scripts/chmod-bin.mjs makes every bin of package.json executable, and fails on a bin that was not built', () => {
  mkdirSync(path.join(work, 'scripts'));
  copyFileSync(path.join(ROOT, 'scripts', 'chmod-bin.mjs'), path.join(work, 'scripts', 'chmod-bin.mjs'));
  writeFileSync(path.join(work, 'package.json'), JSON.stringify({ name: 'x', type: 'module', bin: { a: 'out/a.js', b: 'out/b.js' } }));
  mkdirSync(path.join(work, 'out'));
  for (const f of ['a.js', 'b.js']) {
    writeFileSync(path.join(work, 'out', f), '#!/usr/bin/env node\n');
    chmodSync(path.join(work, 'out', f), 0o644); // as tsc writes it
  }
  const run = () => spawnSync(process.execPath, [path.join(work, 'scripts', 'chmod-bin.mjs')], { encoding: 'utf8' });
  assert.equal(run().status, 0);
  for (const f of ['a.js', 'b.js']) assert.equal(statSync(path.join(work, 'out', f)).mode & 0o777, 0o755);
  rmSync(path.join(work, 'out', 'b.js'));
  const missing = run();
  assert.notEqual(missing.status, 0);
  assert.match(missing.stderr, /ENOENT.*b\.js/);
});
