/**
 * The registry of which keepers use which deployed functions (keeper/holds.ts), on its real SQLite file: a function
 * is free to remove only when no other live keeper holds it; a keeper registering for a function being removed
 * waits until the removal is done; a dead keeper's holds do not count.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DeploymentHolds } from '../../src/keeper/holds.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'fk-holds-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const F = ['local:laptop/fl_client', 'local:laptop/fl_server_init'];

test('free only when no other live keeper holds it; a registration waits for a removal in progress', async () => {
  const a = DeploymentHolds.open(dir);
  const b = DeploymentHolds.open(dir);
  const c = DeploymentHolds.open(dir);
  try {
    await a.hold(F);
    await b.hold([F[0]!]);
    b.setRun('run-b');
    const ra = a.release(F);
    assert.deepEqual(ra.free, [F[1]]);
    assert.deepEqual([...ra.kept.keys()], [F[0]]);
    assert.equal(ra.kept.get(F[0]!)![0]!.runId, 'run-b');
    assert.equal(ra.kept.get(F[0]!)![0]!.pid, process.pid);
    ra.done();

    const rb = b.release([F[0]!]);
    assert.deepEqual(rb.free, [F[0]]);
    let registered = false;
    const waiting = c.hold(F).then(() => (registered = true));
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(registered, false, 'c waits while b removes fl_client');
    rb.done();
    await waiting;
    assert.equal(registered, true);
    assert.deepEqual([...a.users(F).keys()], F, 'c holds both now');
  } finally {
    a.close();
    b.close();
    c.close();
  }
});

test("a killed keeper's holds do not keep functions deployed", async () => {
  const lib = fileURLToPath(new URL('../../src/keeper/holds.js', import.meta.url));
  const child = spawn(process.execPath, ['--input-type=module', '-e', `
    const { DeploymentHolds } = await import(${JSON.stringify(lib)});
    const h = DeploymentHolds.open(${JSON.stringify(dir)});
    await h.hold(${JSON.stringify(F)});
    process.stdout.write('held\\n');
    setInterval(() => {}, 1000);
  `]);
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d) => String(d).includes('held') && resolve());
      child.once('exit', (code) => reject(new Error(`holder exited ${code}`)));
    });
    const me = DeploymentHolds.open(dir);
    try {
      assert.equal(me.users(F).get(F[0]!)?.[0]?.pid, child.pid, 'the live child holds them');
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      assert.equal(me.users(F).size, 0, 'once killed, nobody holds them');
      assert.deepEqual(me.release(F).free, F);
    } finally {
      me.close();
    }
  } finally {
    child.kill('SIGKILL');
  }
});
