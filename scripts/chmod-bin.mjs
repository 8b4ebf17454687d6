#!/usr/bin/env node
/**
 * Makes every `bin` of package.json executable. tsc writes its output without the execute bit, so after
 * `npm run build` the README's `npx fedkeeper …` would answer "Permission denied"; the build script ends with this.
 */
import { chmodSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
const bins = typeof pkg.bin === 'string' ? [pkg.bin] : Object.values(pkg.bin ?? {});
for (const bin of bins) {
  const file = path.join(root, bin);
  chmodSync(file, statSync(file).mode | 0o111); // fails the build if a bin was not built
}
