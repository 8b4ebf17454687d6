/** The pure parts of the Lambda platform: a cluster block, a function's limits, what an Invoke answer means, payload sizes. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkRelayedPayloads, relayedPayload } from '../../src/keeper/payloads.js';
import { placeClients } from '../../src/keeper/placement.js';
import { checkLambdaFunction, parseLambdaCluster } from '../../src/providers/lambda-config.js';
import { classifyInvoke } from '../../src/providers/lambda-invoke.js';
import { ProviderError } from '../../src/providers/types.js';

const ROLE = 'arn:aws:iam::123456789012:role/fedkeeper-functions';
const refused = (f: () => unknown, pattern: RegExp) => assert.throws(f, (e: unknown) => e instanceof ProviderError && e.exitCode === 2 && pattern.test(e.message) && !e.message.includes('\n'));

test('a cluster block: region checked, credentials in pairs or the standard chain, a role required for real Lambda', () => {
  const s = parseLambdaCluster('aws', { region: 'eu-west-1', role: ROLE, credentials: { access_key_id: 'AKIA1', secret_access_key: 'sek' } });
  assert.deepEqual(s, { region: 'eu-west-1', role: ROLE, credentials: { accessKeyId: 'AKIA1', secretAccessKey: 'sek' }, insecure: false });
  assert.equal(parseLambdaCluster('aws', { region: 'us-gov-west-1', role: ROLE }).credentials, undefined, 'no keys: the SDK chain');
  refused(() => parseLambdaCluster('aws', { region: 'mars-north-1', role: ROLE }), /^lambda cluster aws: unknown region mars-north-1; use an AWS region/);
  refused(() => parseLambdaCluster('aws', { region: 'eu-west-1' }), /^lambda cluster aws: role is required/);
  refused(() => parseLambdaCluster('aws', { region: 'eu-west-1', role: 'admin' }), /role must be an IAM role ARN/);
  refused(() => parseLambdaCluster('aws', { role: ROLE, credentials: { access_key_id: 'AKIA1' } }), /need both access_key_id and secret_access_key/);
  refused(() => parseLambdaCluster('aws', { role: ROLE, regoin: 'x' }), /unknown key regoin/);
  assert.equal(parseLambdaCluster('here', { endpoint: 'http://127.0.0.1:9000/' }).endpoint, 'http://127.0.0.1:9000', 'a local platform needs no role');
});

test("a function's memory and timeout within Lambda's limits", () => {
  checkLambdaFunction('aws', 'fl_client', 128, 900_000);
  checkLambdaFunction('aws', 'fl_client', 10_240, 1000);
  refused(() => checkLambdaFunction('aws', 'fl_client', 64, 1000), /function fl_client: memory 64 MB is outside Lambda's 128–10,240 MB/);
  refused(() => checkLambdaFunction('aws', 'fl_client', 20_000, 1000), /memory 20000 MB/);
  refused(() => checkLambdaFunction('aws', 'fl_client', 1024, 901_000), /timeout 901 s is over Lambda's 900 s/);
});

const tail = (text: string) => Buffer.from(text).toString('base64');

test('an Invoke answer: result, application error, runtime failure, timeout, cold start from the REPORT line', () => {
  const ok = classifyInvoke({ statusCode: 200, payload: '{"loss":0.5}', logResult: tail('START RequestId: 1\nEND RequestId: 1\nREPORT RequestId: 1\tDuration: 5 ms\tInit Duration: 120.5 ms\n') });
  assert.deepEqual([ok.status, ok.result, ok.coldStart], ['success', { loss: 0.5 }, true]);
  assert.equal(classifyInvoke({ statusCode: 200, payload: '{}', logResult: tail('REPORT RequestId: 2\tDuration: 5 ms\n') }).coldStart, false);
  assert.equal(classifyInvoke({ statusCode: 200, payload: '{"error":"bad","errorCode":"bad_input"}' }).status, 'application error');
  const thrown = classifyInvoke({ statusCode: 200, functionError: 'Unhandled', payload: '{"errorType":"Error","errorMessage":"boom"}' });
  assert.deepEqual([thrown.status, thrown.result.error], ['application error', 'Error: boom']);
  assert.equal(classifyInvoke({ statusCode: 200, functionError: 'Unhandled', payload: '{"errorType":"Runtime.ImportModuleError","errorMessage":"Cannot find module"}' }).status, 'developer error');
  assert.equal(classifyInvoke({ statusCode: 200, functionError: 'Unhandled', payload: '{"errorType":"Runtime.ExitError","errorMessage":"exit status 3"}' }).status, 'developer error');
  assert.equal(classifyInvoke({ statusCode: 200, functionError: 'Unhandled', payload: '{"errorMessage":"2026-01-01T00:00:00.000Z 1 Task timed out after 3.00 seconds"}' }).status, 'timed out');
  assert.equal(classifyInvoke({ statusCode: 200, payload: '42' }).status, 'developer error');
  assert.equal(classifyInvoke({ statusCode: 200, payload: 'not json' }).status, 'developer error');
});

const CNN = { model: 'cnn' as const, inputShape: [28, 28, 1] as [number, number, number], hiddenSize: 500, numClasses: 10 };
const MLP = { model: 'mnistnn' as const, inputShape: [28, 28, 1] as [number, number, number], hiddenSize: 32, numClasses: 10 };
const LOCAL = { dataset: 'mnist' as const, test_fraction: 0.2 };
const URLS = { dataset: 'idx' as const, train_images_url: 'https://d/ti', train_labels_url: 'https://d/tl', test_images_url: 'https://d/si', test_labels_url: 'https://d/sl' };

test("relayed payloads against Lambda's 6 MB: the CNN with its samples is refused, with indices it fits", () => {
  const cnnLocal = relayedPayload(CNN, LOCAL, 800);
  assert.ok(cnnLocal.request > 6 * 2 ** 20, `${cnnLocal.request}`);
  assert.ok(relayedPayload(CNN, URLS, 800).request < 6 * 2 ** 20);
  assert.throws(
    () => checkRelayedPayloads([{ name: 'aws', platform: 'lambda', functionName: 'fl_client' }], CNN, LOCAL, 800),
    (e: Error & { exitCode?: number }) => e.exitCode === 2 && /^lambda cluster aws: function fl_client: through the relay each invocation would carry [\d.]+ MB .*over Lambda's 6 MB RequestResponse payload limit/.test(e.message),
  );
  checkRelayedPayloads([{ name: 'aws', platform: 'lambda', functionName: 'fl_client' }], CNN, URLS, 800);
  checkRelayedPayloads([{ name: 'aws', platform: 'lambda', functionName: 'fl_client' }], MLP, LOCAL, 800);
  checkRelayedPayloads([{ name: 'gcf', platform: 'google', functionName: 'fl_client' }], CNN, LOCAL, 800); // under GCF's 32 MB
});

test("relayed payloads against OpenWhisk's 1 MB: the CNN's weights alone are refused, a small MLP fits, an operator's max_payload_mb counts", () => {
  assert.throws(
    () => checkRelayedPayloads([{ name: 'stock', platform: 'openwhisk', functionName: 'fl_client' }], CNN, URLS, 800),
    (e: Error & { exitCode?: number }) => e.exitCode === 2 && /^openwhisk cluster stock: function fl_client: through the relay each invocation would carry 3\.\d MB .*over OpenWhisk's 1 MB limit on an activation's payload and result .*set max_payload_mb/.test(e.message),
  );
  const tiny = { ...MLP, hiddenSize: 8 };
  assert.ok(relayedPayload(tiny, URLS, 80).request < 2 ** 20);
  checkRelayedPayloads([{ name: 'stock', platform: 'openwhisk', functionName: 'fl_client' }], tiny, URLS, 80);
  checkRelayedPayloads([{ name: 'raised', platform: 'openwhisk', functionName: 'fl_client', maxPayloadMb: 8 }], CNN, URLS, 800);
  assert.throws(
    () => checkRelayedPayloads([{ name: 'gcf', platform: 'google', functionName: 'fl_client', maxPayloadMb: 2 }], CNN, URLS, 800),
    /google cluster gcf: function fl_client: through the relay each invocation would carry [\d.]+ MB .*over the cluster's max_payload_mb \(2 MB\)/,
  );
});

test('lambda_clients_count places clients on the Lambda clusters', () => {
  const p = placeClients(6, [{ name: 'ow', group: 'ow' }, { name: 'aws', group: 'lambda' }], { ow: 4, lambda: 2 });
  assert.deepEqual(p, ['ow', 'ow', 'ow', 'ow', 'aws', 'aws']);
  assert.throws(() => placeClients(2, [{ name: 'ow', group: 'ow' }], { ow: 0, lambda: 2 }), /lambda_clients_count: 2 client\(s\) but no AWS Lambda \(non-edge\) cluster/);
});

test('OpenWhisk action limits: stock ranges, a profile then action_limits laid over them, refuse or clamp', async () => {
  const { actionLimits, fitLimits, STOCK_ACTION_LIMITS } = await import('../../src/providers/openwhisk-limits.js');
  assert.deepEqual(actionLimits('x'), STOCK_ACTION_LIMITS);
  const l = actionLimits('p.action_limits', { memory: { max: 1024 }, logs: { max: 20 } }, { memory: { max: 2048 }, concurrency: { max: 10 } });
  assert.deepEqual(l, { memory: { min: 128, max: 2048 }, timeout: { min: 100, max: 300_000 }, concurrency: { min: 1, max: 10 } });
  assert.throws(() => actionLimits('p.action_limits', { memory: { max: 64 } }), /p\.action_limits\.memory: min \(128\) is above max \(64\)/);
  assert.throws(() => actionLimits('p.action_limits', { cpu: { max: 2 } }), /p\.action_limits\.cpu: not an action limit/);
  assert.throws(() => actionLimits('p.action_limits', { memory: { max: '1G' } }), /memory\.max: expected a whole number > 0 \(MB\), found "1G"/);
  const want = { memoryMb: 2048, timeoutMs: 600_000, concurrency: 1 };
  assert.throws(() => fitLimits('c', 'fl_client', want, STOCK_ACTION_LIMITS, 'refuse'), /function fl_client asks for memory 2048 MB, outside the cluster's range 128–512 MB/);
  const { fitted, warnings } = fitLimits('c', 'fl_client', want, STOCK_ACTION_LIMITS, 'clamp');
  assert.deepEqual(fitted, { memoryMb: 512, timeoutMs: 300_000, concurrency: 1 });
  assert.equal(warnings.length, 2);
  assert.deepEqual(fitLimits('c', 'f', { memoryMb: 256, timeoutMs: 60_000, concurrency: 1 }, STOCK_ACTION_LIMITS, 'refuse').warnings, []);
});
