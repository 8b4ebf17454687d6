/** deleteClientUpdates on both stores: by round (≤ r) and all of a run's, other runs and the global weights untouched. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { openPostgresStore } from '../../src/store/postgres-store.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import type { ParameterStore } from '../../src/store/types.js';
import { startTestPostgres } from '../fixtures/postgres.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'fk-delete-updates-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const weights = { shapes: [[3]], data: new Float32Array([1, 2, 3]) };

async function exercise(store: ParameterStore): Promise<void> {
  for (const runId of ['a', 'b']) {
    await store.putGlobalWeights(runId, 0, weights);
    for (let round = 1; round <= 3; round++) {
      for (let clientId = 0; clientId < 2; clientId++) await store.putClientUpdate({ runId, round, clientId, weights, numSamples: 5, metrics: {}, attempt: 1 });
    }
  }
  const left = async (runId: string) => (await Promise.all([1, 2, 3].map((r) => store.listClientUpdates(runId, r)))).map((x) => x.length);
  assert.equal(await store.deleteClientUpdates('a', 2), 4);
  assert.deepEqual(await left('a'), [0, 0, 2]);
  assert.equal(await store.deleteClientUpdates('a'), 2);
  assert.deepEqual(await left('a'), [0, 0, 0]);
  assert.deepEqual(await left('b'), [2, 2, 2], 'another run keeps its updates');
  assert.ok(await store.getGlobalWeights('a', 0), 'global weights stay');
  assert.equal(await store.deleteClientUpdates('a'), 0);
}

test('SQLite', async () => {
  const s = new SqliteStore(path.join(dir, 'store.sqlite'));
  try {
    await exercise(s);
  } finally {
    await s.close();
  }
});

test('PostgreSQL', async () => {
  const pg = await startTestPostgres();
  const s = await openPostgresStore(pg.url, pg.storeOptions);
  try {
    await exercise(s);
  } finally {
    await s.close();
    await pg.close();
  }
});
