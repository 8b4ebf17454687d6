/** Console progress: a live per-platform line on a terminal, plain lines elsewhere. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { consoleProgress } from '../../src/telemetry/progress.js';

function stream(tty: boolean): NodeJS.WriteStream & { text: string } {
  const s = { isTTY: tty, text: '', write(chunk: string) {
    s.text += chunk;
    return true;
  } };
  return s as unknown as NodeJS.WriteStream & { text: string };
}

const round = (p: ReturnType<typeof consoleProgress>) => {
  p({ kind: 'run_started', runId: 'r', runDir: '/x', maxRounds: 2, clientsPerRound: 3 });
  p({ kind: 'round_started', round: 1, maxRounds: 2, selected: 3, clusters: { 'local:a': 2, 'openwhisk:b': 1 } });
  p({ kind: 'client_done', round: 1, done: 1, selected: 3, failed: 0, where: 'local:a', retries: 1 });
  p({ kind: 'client_done', round: 1, done: 2, selected: 3, failed: 0, where: 'openwhisk:b', retries: 1 });
  p({ kind: 'round_done', round: 1, maxRounds: 2, accuracy: 0.5, loss: 1.25, best: 0.5, totalSeconds: 4.2 });
};

test('on a terminal: clients done per platform:cluster, re-invocations and seconds, redrawn in place; the round ends on its own line', () => {
  const out = stream(true);
  let t = 1000;
  const p = consoleProgress(out, () => (t += 1500));
  round(p);
  assert.match(out.text, /\r\x1b\[2Kround 1\/2  clients 1\/3 \(local:a 1\/2, openwhisk:b 0\/1\)  1 re-invoked  \d+ s  acc —/);
  assert.match(out.text, /clients 2\/3 \(local:a 1\/2, openwhisk:b 1\/1\)/);
  assert.match(out.text, /\r\x1b\[2Kround 1\/2  accuracy 0\.5000  loss 1\.2500  best 0\.5000  4\.2 s\n$/);
});

test('not a terminal (CI, pipes): no live line, one plain line per round', () => {
  const out = stream(false);
  round(consoleProgress(out));
  assert.doesNotMatch(out.text, /\r|\x1b/);
  assert.deepEqual(out.text.trim().split('\n'), ['run r: up to 2 rounds, 3 clients per round', 'round 1/2  accuracy 0.5000  loss 1.2500  best 0.5000  4.2 s']);
});
