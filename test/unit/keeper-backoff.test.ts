import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfig } from '../../src/config/index.js';
import { backoffMs } from '../../src/keeper/backoff.js';

test('backoff doubles per failed attempt up to the cap, with full jitter', () => {
  assert.equal(backoffMs(1, 100, 10_000, () => 0.999999), 99);
  assert.equal(backoffMs(3, 100, 10_000, () => 0.999999), 399);
  assert.equal(backoffMs(20, 100, 1000, () => 0.999999), 999);
  assert.equal(backoffMs(5, 100, 1000, () => 0), 0);
});

test('fault_tolerance: defaults, units, and contradicting limits refused naming both fields', () => {
  const base = 'name: x\nscenarios:\n  federated_learning:\n    clients_info: { total_num_clients: 2, num_clients_per_round: 1 }\n';
  const d = parseConfig(base, 'x.yaml').scenarios.federated_learning.fault_tolerance;
  assert.deepEqual(d, { max_attempts: 3, backoff_initial: 500, backoff_max: 30_000, call_retries: 5, min_fit_fraction: 1 });
  const c = parseConfig(base + '    fault_tolerance: { max_attempts: "5", backoff_initial: 2s, backoff_max: 1m }\n', 'x.yaml').scenarios.federated_learning.fault_tolerance;
  assert.deepEqual(c, { max_attempts: 5, backoff_initial: 2000, backoff_max: 60_000, call_retries: 5, min_fit_fraction: 1 });
  assert.throws(
    () => parseConfig(base + '    fault_tolerance: { backoff_initial: 10s, backoff_max: 1s }\n', 'x.yaml'),
    /fault_tolerance\.backoff_max: expected at least backoff_initial \(10000 ms\), found 1000 ms/,
  );
  assert.throws(
    () => parseConfig(base + '    fault_tolerance: { invocation_timeout: 5m, round_timeout: 60s }\n', 'x.yaml'),
    /fault_tolerance\.round_timeout: expected at least invocation_timeout \(300000 ms\), found 60000 ms/,
  );
});
