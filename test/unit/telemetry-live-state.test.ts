/** The live dashboard's state of the round in progress, folded from the keeper's progress events (pure). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LiveState } from '../../src/telemetry/live-state.js';

test('a round: clients selected, ended and in flight per platform:cluster, failures and re-invocations', () => {
  const s = new LiveState();
  assert.equal(s.snapshot().status, 'starting');
  assert.equal(s.apply({ kind: 'run_started', runId: 'r1', runDir: '/x/r1', maxRounds: 5, clientsPerRound: 4 }, 0), true);
  assert.equal(s.snapshot().status, 'initialising');
  s.apply({ kind: 'init_done', seconds: 1, engine: 'wasm' }, 100);
  assert.equal(s.snapshot().status, 'running');
  s.apply({ kind: 'round_started', round: 1, maxRounds: 5, selected: 4, clusters: { 'openwhisk:b': 3, 'google:a': 1 } }, 1000);
  let snap = s.snapshot();
  assert.deepEqual(
    snap.clusters.map((c) => [c.where, c.selected, c.ended, c.in_flight]),
    [
      ['google:a', 1, 0, 1],
      ['openwhisk:b', 3, 0, 3],
    ],
    'sorted by name, all in flight',
  );
  assert.deepEqual(snap.series, { t: [0], in_flight: { 'google:a': [1], 'openwhisk:b': [3] } });
  s.apply({ kind: 'client_done', round: 1, done: 1, selected: 4, failed: 1, where: 'openwhisk:b', retries: 2 }, 2500);
  assert.equal(s.sample(3000), true);
  snap = s.snapshot();
  assert.equal(snap.done, 1);
  assert.equal(snap.failed, 1);
  assert.equal(snap.retries, 2);
  assert.equal(snap.elapsed_s, 2);
  assert.deepEqual(snap.clusters.find((c) => c.where === 'openwhisk:b'), { where: 'openwhisk:b', selected: 3, ended: 1, in_flight: 2 });
  assert.deepEqual(snap.series, { t: [0, 2], in_flight: { 'google:a': [1, 1], 'openwhisk:b': [3, 2] } });
  // an event of another round (a late one) changes nothing
  assert.equal(s.apply({ kind: 'client_done', round: 0, done: 9, selected: 9, failed: 0, where: 'google:a', retries: 0 }, 3100), false);
  assert.equal(s.snapshot().done, 1);
  s.apply({ kind: 'round_done', round: 1, maxRounds: 5, accuracy: 0.8, loss: 0.5, best: 0.8, totalSeconds: 4.2 }, 5200);
  snap = s.snapshot();
  assert.equal(snap.in_round, false);
  assert.equal(snap.rounds_done, 1);
  assert.equal(snap.accuracy, 0.8);
  assert.equal(snap.elapsed_s, 4.2);
  assert.deepEqual(snap.clusters.map((c) => c.in_flight), [0, 0]);
  assert.deepEqual(snap.series.t, [0, 2, 4.2], 'the last point closes the round');
  assert.equal(s.sample(6000), false, 'no sampling between rounds');
  // the next round starts a fresh series
  s.apply({ kind: 'round_started', round: 2, maxRounds: 5, selected: 2, clusters: { 'google:a': 2 } }, 7000);
  assert.deepEqual(s.snapshot().series, { t: [0], in_flight: { 'google:a': [2] } });
  s.finish('completed', { report: '/x/r1/report.html' });
  assert.equal(s.snapshot().status, 'completed');
  assert.equal(s.snapshot().report, '/x/r1/report.html');
});

test('a client ending on a cluster the round did not list still counts; warnings are kept, the last 20', () => {
  const s = new LiveState();
  s.apply({ kind: 'round_started', round: 1, maxRounds: 1, selected: 1, clusters: { 'local:a': 1 } }, 0);
  s.sample(1000);
  s.apply({ kind: 'client_done', round: 1, done: 1, selected: 1, failed: 0, where: 'lambda:z', retries: 0 }, 1500);
  const z = s.snapshot().clusters.find((c) => c.where === 'lambda:z')!;
  assert.deepEqual(z, { where: 'lambda:z', selected: 0, ended: 1, in_flight: 0 });
  assert.deepEqual(s.snapshot().series.in_flight['lambda:z'], [0, 0], 'padded to the series so far');
  for (let i = 0; i < 25; i++) s.apply({ kind: 'warning', message: `w${i}` }, 2000);
  assert.equal(s.snapshot().warnings.length, 20);
  assert.equal(s.snapshot().warnings[19], 'w24');
});

test('a very long round keeps a bounded series: thinned to every other point, the newest kept', () => {
  const s = new LiveState();
  s.apply({ kind: 'round_started', round: 1, maxRounds: 1, selected: 1, clusters: { 'local:a': 1 } }, 0);
  for (let i = 1; i <= 5000; i++) s.sample(i * 1000);
  const { t, in_flight } = s.snapshot().series;
  assert.ok(t.length <= 601, `${t.length} points`);
  assert.ok(t.length >= 300, `${t.length} points`);
  assert.equal(t[0], 0);
  assert.ok(t[t.length - 1]! >= 4990, `the newest point is recent: ${t[t.length - 1]}`);
  assert.equal(in_flight['local:a']!.length, t.length);
  for (let i = 1; i < t.length; i++) assert.ok(t[i]! > t[i - 1]!, 'increasing');
});
