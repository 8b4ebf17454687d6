/** Cost per platform: billed duration rounded up as each platform bills, GB-seconds, prices with overrides. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { costByPlatform, DEFAULT_PRICES, priceTable, totalUsd, vcpusFor } from '../../src/telemetry/cost.js';

test('Lambda bills per ms, OpenWhisk and Cloud Functions per 100 ms; local is free', () => {
  const prices = priceTable();
  const c = costByPlatform(
    [
      { platform: 'lambda', durationMs: 1001.2, memoryMb: 1024 },
      { platform: 'openwhisk', durationMs: 1001, memoryMb: 512 },
      { platform: 'google', durationMs: 150, memoryMb: 2048 },
      { platform: 'local', durationMs: 5000, memoryMb: 2048 },
    ],
    prices,
  );
  assert.equal(c.lambda!.gb_seconds, 1.002);
  assert.equal(c.lambda!.usd, Math.round((1.002 * 0.0000166667 + 0.2 / 1e6) * 1e8) / 1e8);
  assert.equal(c.openwhisk!.gb_seconds, 0.55, '1001 ms billed as 1100 ms at 0.5 GB');
  assert.equal(c.google!.gb_seconds, 0.4, '150 ms billed as 200 ms at 2 GB');
  assert.equal(c.google!.usd, Math.round((0.4 * 0.0000025 + 1 * 0.2 * 0.000024 + 0.4 / 1e6) * 1e8) / 1e8, 'memory plus the vCPU that comes with 2 GB');
  assert.deepEqual(c.local, { invocations: 1, gb_seconds: 10, usd: 0 });
  assert.equal(totalUsd(c), Math.round((c.lambda!.usd + c.openwhisk!.usd + c.google!.usd) * 1e8) / 1e8);
  assert.equal(vcpusFor('google', 300), 0.333);
  assert.equal(vcpusFor('lambda', 4096), 0);
});

test("the config's prices lay over the defaults; a platform without a price counts invocations only", () => {
  const prices = priceTable({ openwhisk: { gb_second_usd: 0.00001, increment_ms: 1 } });
  assert.equal(prices.openwhisk!.per_million_usd, DEFAULT_PRICES.openwhisk!.per_million_usd);
  const c = costByPlatform([{ platform: 'openwhisk', durationMs: 1001, memoryMb: 1024 }, { platform: 'edge-box', durationMs: 10, memoryMb: 128 }], prices);
  assert.equal(c.openwhisk!.gb_seconds, 1.001);
  assert.equal(c.openwhisk!.usd, 0.00001001);
  assert.deepEqual(c['edge-box'], { invocations: 1, gb_seconds: 0, usd: 0 });
});
