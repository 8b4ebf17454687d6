/** The OpenWhisk-style entry of the FL functions, run in a real container as every local platform runs it. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { FUNCTION_CATALOG } from '../../src/functions/catalog.js';
import { actionSource, packageRoot, UnknownFunctionError } from '../../src/functions/entries.js';
import { ContainerPool } from '../../src/runtime/container-pool.js';
import type { ContainerAction } from '../../src/runtime/container-types.js';

const pool = new ContainerPool({ memoryMb: 4096, label: 'entries test' });
after(() => pool.close());

const action = (fn: string, env: Record<string, string>): ContainerAction => ({
  name: `t/${fn}`,
  version: JSON.stringify(env),
  exec: { kind: 'nodejs:20', code: actionSource(fn) },
  limits: { timeoutMs: 60_000, memoryMb: 1024, concurrency: 1 },
  env,
});
const meta = (id: string) => ({ activationId: id, namespace: 'local', actionName: 'x' });

test('packageRoot() is the directory of fedkeeper’s package.json', () => {
  const pkg = JSON.parse(readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as { name: string };
  assert.equal(pkg.name, 'fedkeeper');
});

test('every catalogued function has an entry; an unknown name is refused', () => {
  for (const fn of Object.keys(FUNCTION_CATALOG)) assert.match(actionSource(fn), /exports\.main = async function main/);
  assert.throws(() => actionSource('fl_nothing'), UnknownFunctionError);
});

test('the entry runs the handler from FEDKEEPER_HOME; its thrown error comes back as an application error with its name', async () => {
  const r = await pool.run(action('fl_server_init', { FEDKEEPER_HOME: packageRoot() }), { runId: 'r' }, meta('e1'));
  assert.equal(r.status, 'application error', JSON.stringify(r.result));
  assert.match(String(r.result.error), /fl_server_init: missing parameter\(s\) store, dataset/);
  assert.equal(r.result.errorName, 'FunctionParamsError');
});

test('without FEDKEEPER_HOME the entry says what to set', async () => {
  const r = await pool.run(action('fl_client', {}), {}, meta('e2'));
  assert.equal(r.status, 'application error');
  assert.match(String(r.result.error), /fl_client: FEDKEEPER_HOME is not set/);
});
