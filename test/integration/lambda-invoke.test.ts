/**
 * Invoking functions on the local Lambda platform with the real `@aws-sdk/client-lambda`: async and callback-style
 * handlers, function errors (thrown, init failures, crashes, timeouts) as Lambda reports them, warm reuse and how a
 * caller sees cold starts, the payload limits, Event invocations, and execution environments that see nothing of
 * this repository nor of the parent's environment.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CreateFunctionCommand, InvokeCommand, LambdaServiceException, UpdateFunctionCodeCommand, type InvokeCommandOutput, type LambdaClient } from '@aws-sdk/client-lambda';
import { startLambdaServer, type LambdaServer } from '../../src/fabric/lambda-server.js';
import {
  ESM_ZIP,
  INIT_THROWS_ZIP,
  KEY,
  NEEDS_REPO_ZIP,
  PROBE_ZIP,
  REGION,
  ROLE,
  SYNTAX_ERROR_ZIP,
  V2_ZIP,
  captureHeaders,
  lambdaClient,
  signedFetch,
} from '../fixtures/lambda-functions.js';

let platform: LambdaServer;
let sdk: LambdaClient;
let headers: Array<Record<string, string>>;
const scratch = mkdtempSync(path.join(os.tmpdir(), 'fk-lambda-invoke-test-'));

before(async () => {
  process.env.FK_PARENT_SECRET = 'must-not-leak';
  platform = await startLambdaServer({ label: 'invoke-test', region: REGION, ...KEY, memoryMb: 2048, env: { FEDKEEPER_TEST_KNOB: 'on' } });
  sdk = lambdaClient(platform.url);
  headers = captureHeaders(sdk);
  const fns: Array<[string, Uint8Array, string, number?]> = [
    ['probe', PROBE_ZIP, 'index.handler'],
    ['callback', PROBE_ZIP, 'index.callback'],
    ['callback-nowait', PROBE_ZIP, 'index.callbackNoWait'],
    ['callback-error', PROBE_ZIP, 'index.callbackError'],
    ['callback-string', PROBE_ZIP, 'index.callbackString'],
    ['never-answers', PROBE_ZIP, 'index.neverAnswers'],
    ['nested', PROBE_ZIP, 'index.nested.deeper.handler'],
    ['not-a-function', PROBE_ZIP, 'index.notAFunction'],
    ['no-such-export', PROBE_ZIP, 'index.missing'],
    ['no-such-file', PROBE_ZIP, 'lib/absent.handler'],
    ['esm', ESM_ZIP, 'app/main.handler'],
    ['needs-repo', NEEDS_REPO_ZIP, 'index.handler'],
    ['syntax-error', SYNTAX_ERROR_ZIP, 'index.handler'],
    ['init-throws', INIT_THROWS_ZIP, 'index.handler'],
    ['short', PROBE_ZIP, 'index.handler', 1],
  ];
  await Promise.all(
    fns.map(([name, zip, handler, timeout]) =>
      sdk.send(new CreateFunctionCommand({ FunctionName: name, Runtime: 'nodejs20.x', Role: ROLE, Handler: handler, Code: { ZipFile: zip }, MemorySize: 256, Timeout: timeout ?? 10, Environment: { Variables: { OWN_SETTING: name } } })),
    ),
  );
});
after(async () => {
  delete process.env.FK_PARENT_SECRET;
  await platform?.close();
  rmSync(scratch, { recursive: true, force: true });
});

async function invoke(name: string, event?: unknown, extra: Partial<ConstructorParameters<typeof InvokeCommand>[0]> = {}): Promise<InvokeCommandOutput & { body: any; log: string; cold: string | undefined }> {
  const out = await sdk.send(new InvokeCommand({ FunctionName: name, LogType: 'Tail', ...(event !== undefined ? { Payload: JSON.stringify(event) } : {}), ...extra }));
  const text = Buffer.from(out.Payload ?? new Uint8Array()).toString('utf8');
  return { ...out, body: text === '' ? undefined : JSON.parse(text), log: Buffer.from(out.LogResult ?? '', 'base64').toString('utf8'), cold: headers.at(-1)?.['x-fedkeeper-cold-start'] };
}

describe('handlers', () => {
  test('an async handler: 200, its value; the second invocation is warm (same process, module state kept, no Init Duration)', async () => {
    const a = await invoke('probe', { hello: 'world' });
    assert.equal(a.StatusCode, 200);
    assert.equal(a.FunctionError, undefined);
    assert.equal(a.ExecutedVersion, '$LATEST');
    assert.deepEqual(a.body.event, { hello: 'world' });
    assert.equal(a.body.invocations, 1);
    assert.equal(a.cold, 'true');
    assert.match(headers.at(-1)!['x-fedkeeper-init-duration-ms']!, /^\d+$/);
    const requestId = a.$metadata.requestId!;
    assert.match(a.log, new RegExp(`^START RequestId: ${requestId} Version: \\$LATEST\\n`));
    assert.match(a.log, new RegExp(`END RequestId: ${requestId}\\nREPORT RequestId: ${requestId}\\tDuration: [\\d.]+ ms\\tBilled Duration: \\d+ ms\\tMemory Size: 256 MB\\tMax Memory Used: \\d+ MB\\tInit Duration: [\\d.]+ ms\\t\\n$`));
    const b = await invoke('probe', { hello: 'again' });
    assert.equal(b.body.invocations, 2, 'the same module instance: a warm environment');
    assert.equal(b.body.pid, a.body.pid);
    assert.equal(b.cold, 'false');
    assert.doesNotMatch(b.log, /Init Duration/);
    assert.match(b.log, /^REPORT RequestId: .*Max Memory Used: [1-9]\d* MB\t$/m);
  });

  test('console output is in the log as Lambda prints it: TIMESTAMP, request id, level', async () => {
    const r = await invoke('probe', { op: 'log' });
    assert.equal(r.body, 'logged');
    const id = r.$metadata.requestId!;
    assert.match(r.log, new RegExp(`\\n\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z\\t${id}\\tINFO\\tline one { n: 1 }\\n`));
    assert.match(r.log, new RegExp(`\\t${id}\\tERROR\\tline two\\n`));
    assert.equal((await invoke('probe', { op: 'undefined' })).body, null, 'undefined is answered as null');
  });

  test('the context: awsRequestId is the Invoke request id; names, memory, ARN as invoked, log names, remaining time, client context', async () => {
    const clientContext = Buffer.from(JSON.stringify({ custom: { round: 3 } })).toString('base64');
    const r = await invoke('probe', { op: 'context' }, { ClientContext: clientContext });
    const c = r.body;
    assert.equal(c.awsRequestId, r.$metadata.requestId);
    assert.equal(c.functionName, 'probe');
    assert.equal(c.functionVersion, '$LATEST');
    assert.equal(c.memoryLimitInMB, '256');
    assert.equal(c.invokedFunctionArn, `arn:aws:lambda:${REGION}:000000000000:function:probe`);
    assert.equal(c.logGroupName, '/aws/lambda/probe');
    assert.match(c.logStreamName, /^\d{4}\/\d\d\/\d\d\/\[\$LATEST\][0-9a-f]{32}$/);
    assert.ok(c.remaining > 8000 && c.remaining <= 10_000, `remaining ${c.remaining} ms of 10 s`);
    assert.equal(c.waits, true);
    assert.deepEqual(c.clientContext, { custom: { round: 3 } });
    assert.match(c.trace, /^Root=1-[0-9a-f]{8}-[0-9a-f]{24};/);
    assert.equal(r.$metadata.requestId, c.awsRequestId);
    const qualified = await invoke('probe:$LATEST', { op: 'context' });
    assert.equal(qualified.body.invokedFunctionArn, `arn:aws:lambda:${REGION}:000000000000:function:probe:$LATEST`);
  });

  test('callback-style handlers: the callback waits for the empty event loop unless told not to; errors and non-Error values', async () => {
    const t0 = Date.now();
    const a = await invoke('callback', { n: 1 });
    assert.deepEqual(a.body, { via: 'callback', event: { n: 1 } });
    assert.ok(Date.now() - t0 >= 150, 'answered once the 150 ms timer had fired');
    assert.match(a.log, /\tINFO\ttimer fired\n/);
    const t1 = Date.now();
    const b = await invoke('callback-nowait', {});
    assert.deepEqual(b.body, { via: 'callback', waited: false });
    assert.ok(Date.now() - t1 < 2500, 'callbackWaitsForEmptyEventLoop = false answers at once');
    const c = await invoke('callback-error', {});
    assert.equal(c.FunctionError, 'Unhandled');
    assert.equal(c.body.errorType, 'RangeError');
    assert.equal(c.body.errorMessage, 'callback failure');
    const d = await invoke('callback-string', {});
    assert.deepEqual(d.body, { errorType: 'string', errorMessage: 'plain string failure', trace: [] });
    const e = await invoke('never-answers', {});
    assert.equal(e.StatusCode, 200);
    assert.equal(e.body, null, 'a handler that neither returns nor calls back answers null once the loop is empty');
  });

  test('handler paths: nested exports, a directory, ES modules', async () => {
    assert.equal((await invoke('nested', {})).body, 'nested');
    assert.deepEqual((await invoke('esm', { x: 1 })).body, { esm: true, event: { x: 1 } });
  });
});

describe('function errors, as Lambda reports them', () => {
  test('a thrown error: 200 with X-Amz-Function-Error Unhandled and {errorType, errorMessage, trace}; the environment stays', async () => {
    const warm = await invoke('probe', {});
    const r = await invoke('probe', { op: 'throw', x: 42 });
    assert.equal(r.StatusCode, 200);
    assert.equal(r.FunctionError, 'Unhandled');
    assert.equal(r.body.errorType, 'TypeError');
    assert.equal(r.body.errorMessage, 'bad input: 42');
    assert.ok(Array.isArray(r.body.trace) && r.body.trace[0] === 'TypeError: bad input: 42', JSON.stringify(r.body.trace));
    assert.match(r.log, /\tERROR\tInvoke Error \t\{"errorType":"TypeError","errorMessage":"bad input: 42"/);
    const after = await invoke('probe', {});
    assert.equal(after.body.pid, warm.body.pid);
  });

  test('init failures are function errors on every invocation: ImportModuleError, HandlerNotFound, UserCodeSyntaxError, the thrown error', async () => {
    const cases: Array<[string, string, RegExp]> = [
      ['no-such-export', 'Runtime.HandlerNotFound', /^index\.missing is undefined or not exported$/],
      ['not-a-function', 'Runtime.HandlerNotFound', /^index\.notAFunction is not a function$/],
      ['no-such-file', 'Runtime.ImportModuleError', /^Error: Cannot find module 'absent'/],
      ['syntax-error', 'Runtime.UserCodeSyntaxError', /^SyntaxError: Unexpected end of input/],
      ['init-throws', 'Error', /^init failed on purpose$/],
    ];
    for (const [name, type, message] of cases) {
      for (let i = 0; i < 2; i++) {
        const r = await invoke(name, {});
        assert.equal(r.FunctionError, 'Unhandled', name);
        assert.equal(r.body.errorType, type, `${name}: ${JSON.stringify(r.body)}`);
        assert.match(r.body.errorMessage, message, name);
        assert.equal(r.cold, 'true', `${name}: every invocation starts a new environment`);
      }
    }
    const logged = await invoke('init-throws', {});
    assert.match(logged.log, /\tundefined\tINFO\tinitialising\n/, 'init output is in the first invocation\'s log, with no request id, as on Lambda');
  });

  test('a crash: Runtime.ExitError with the exit status; the next invocation gets a new environment', async () => {
    const before = await invoke('probe', {});
    const r = await invoke('probe', { op: 'exit' });
    assert.equal(r.FunctionError, 'Unhandled');
    assert.deepEqual(r.body, { errorType: 'Runtime.ExitError', errorMessage: `RequestId: ${r.$metadata.requestId} Error: Runtime exited with error: exit status 3` });
    assert.match(r.log, /\tINFO\tabout to exit\n/);
    assert.match(r.log, /Status: error\tError Type: Runtime.ExitError/);
    const next = await invoke('probe', {});
    assert.equal(next.cold, 'true');
    assert.notEqual(next.body.pid, before.body.pid);
    assert.equal(next.body.invocations, 1);
  });

  test('an uncaught exception is the invocation\'s error and ends the runtime; the very next invocation gets a new environment', async () => {
    const before = await invoke('probe', {});
    const r = await invoke('probe', { op: 'uncaught' });
    assert.equal(r.FunctionError, 'Unhandled');
    assert.equal(r.body.errorType, 'Error');
    assert.equal(r.body.errorMessage, 'thrown from a timer');
    for (let i = 0; i < 3; i++) {
      const next = await invoke('probe', {});
      assert.equal(next.FunctionError, undefined, JSON.stringify(next.body));
      assert.notEqual(next.body.pid, before.body.pid);
      assert.equal(next.cold, i === 0 ? 'true' : 'false');
    }
  });

  test('past its timeout: Sandbox.Timedout "Task timed out after 1.00 seconds", the environment killed', async () => {
    const warm = await invoke('short', {});
    const t0 = Date.now();
    const r = await invoke('short', { op: 'sleep', ms: 5000 });
    const took = Date.now() - t0;
    assert.ok(took >= 1000 && took < 3000, `took ${took} ms`);
    assert.equal(r.FunctionError, 'Unhandled');
    assert.deepEqual(r.body, { errorType: 'Sandbox.Timedout', errorMessage: `RequestId: ${r.$metadata.requestId} Error: Task timed out after 1.00 seconds` });
    assert.match(r.log, /Task timed out after 1\.00 seconds\nEND RequestId/);
    assert.match(r.log, /Status: timeout$/m);
    const next = await invoke('short', {});
    assert.equal(next.cold, 'true');
    assert.notEqual(next.body.pid, warm.body.pid);
  });
});

describe('payloads', () => {
  test('no payload is {}; a payload that is not JSON is InvalidRequestContentException', async () => {
    assert.deepEqual((await invoke('probe')).body.event, {});
    const raw = await signedFetch(platform.url, 'POST', '/2015-03-31/functions/probe/invocations', { body: '{"op": nope}' });
    assert.equal(raw.status, 400);
    assert.equal(raw.headers.get('x-amzn-errortype'), 'InvalidRequestContentException');
    assert.match(raw.json().message, /^Could not parse request body into json: Could not parse payload into json: /);
    // any JSON value is an event
    assert.deepEqual((await sdk.send(new InvokeCommand({ FunctionName: 'probe', Payload: '[1,2]' }))).StatusCode, 200);
  });

  test('over 6 MB each way: the request is a 413 RequestEntityTooLargeException, the response a function error', async () => {
    const big = JSON.stringify({ blob: 'x'.repeat(6_291_456) });
    let caught: any;
    await assert.rejects(sdk.send(new InvokeCommand({ FunctionName: 'probe', Payload: big })), (e) => ((caught = e), true));
    assert.ok(caught instanceof LambdaServiceException);
    assert.equal(caught.name, 'RequestEntityTooLargeException');
    assert.equal(caught.$metadata.httpStatusCode, 413);
    assert.match(caught.message, /Request must be smaller than 6291456 bytes for the InvokeFunction operation/);
    const justUnder = await invoke('probe', { op: 'big', bytes: 6_291_556 - 2 });
    assert.equal(justUnder.FunctionError, undefined, 'the largest response fits (6,291,556 bytes with its quotes)');
    const over = await invoke('probe', { op: 'big', bytes: 6_291_556 });
    assert.equal(over.FunctionError, 'Unhandled');
    assert.deepEqual(over.body, { errorType: 'Function.ResponseSizeTooLarge', errorMessage: 'Response payload size (6291558 bytes) exceeded maximum allowed payload size (6291556 bytes).' });
  });

  test('Event: 202 and only a request id; the function runs (in order); over 256 KB is a 413', async () => {
    const files = [1, 2, 3].map((n) => path.join(scratch, `event-${n}.json`));
    const outs = [];
    for (const [i, file] of files.entries()) outs.push(await sdk.send(new InvokeCommand({ FunctionName: 'probe', InvocationType: 'Event', Payload: JSON.stringify({ op: 'touch', file, n: i + 1 }) })));
    for (const o of outs) {
      assert.equal(o.StatusCode, 202);
      assert.equal(o.Payload?.length ?? 0, 0);
      assert.match(o.$metadata.requestId!, /^[0-9a-f-]{36}$/);
    }
    const t0 = Date.now();
    while (!files.every((f) => existsSync(f))) {
      assert.ok(Date.now() - t0 < 5000, 'the Event invocations ran');
      await new Promise((r) => setTimeout(r, 20));
    }
    const seen = files.map((f) => JSON.parse(readFileSync(f, 'utf8')) as { requestId: string; n: number });
    assert.deepEqual(seen.map((s) => s.requestId), outs.map((o) => o.$metadata.requestId), 'the function saw the request ids the caller got');
    let caught: any;
    await assert.rejects(sdk.send(new InvokeCommand({ FunctionName: 'probe', InvocationType: 'Event', Payload: JSON.stringify({ blob: 'x'.repeat(262_144) }) })), (e) => ((caught = e), true));
    assert.equal(caught.name, 'RequestEntityTooLargeException');
    assert.equal(caught.$metadata.httpStatusCode, 413);
    assert.match(caught.message, /^\d+ byte payload is too large for the Event invocation type \(limit 262144 bytes\)$/);
    const dry = await sdk.send(new InvokeCommand({ FunctionName: 'probe', InvocationType: 'DryRun' }));
    assert.equal(dry.StatusCode, 204);
  });
});

describe('the environment: a fresh, empty directory; nothing of this repository or of the parent', () => {
  test('a package needing this repository\'s node_modules fails with Runtime.ImportModuleError', async () => {
    const r = await invoke('needs-repo', {});
    assert.equal(r.FunctionError, 'Unhandled');
    assert.equal(r.body.errorType, 'Runtime.ImportModuleError');
    assert.match(r.body.errorMessage, /^Error: Cannot find module 'fflate'/);
  });

  test('variables: the function\'s, Lambda\'s and FEDKEEPER_*; no HOME, NODE_PATH, FEDKEEPER_HOME or parent secrets; task root under the temp dir', async () => {
    const keys = [
      'OWN_SETTING', 'FEDKEEPER_TEST_KNOB', 'FK_PARENT_SECRET', 'HOME', 'NODE_PATH', 'FEDKEEPER_HOME', 'NODE_OPTIONS',
      'AWS_LAMBDA_FUNCTION_NAME', 'AWS_LAMBDA_FUNCTION_MEMORY_SIZE', 'AWS_LAMBDA_FUNCTION_VERSION', 'AWS_REGION', 'AWS_DEFAULT_REGION',
      'AWS_EXECUTION_ENV', 'LAMBDA_TASK_ROOT', '_HANDLER', 'AWS_LAMBDA_RUNTIME_API', 'TZ', 'AWS_ACCESS_KEY_ID', 'AWS_ENDPOINT_URL_LAMBDA', 'TMPDIR',
    ];
    const r = await invoke('probe', { op: 'env', keys });
    const env = r.body.env as Record<string, string | null>;
    assert.equal(env.OWN_SETTING, 'probe');
    assert.equal(env.FEDKEEPER_TEST_KNOB, 'on');
    for (const k of ['FK_PARENT_SECRET', 'HOME', 'NODE_PATH', 'FEDKEEPER_HOME', 'NODE_OPTIONS']) assert.equal(env[k], null, k);
    assert.equal(env.AWS_LAMBDA_FUNCTION_NAME, 'probe');
    assert.equal(env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE, '256');
    assert.equal(env.AWS_LAMBDA_FUNCTION_VERSION, '$LATEST');
    assert.equal(env.AWS_REGION, REGION);
    assert.equal(env.AWS_DEFAULT_REGION, REGION);
    assert.equal(env.AWS_EXECUTION_ENV, 'AWS_Lambda_nodejs20.x');
    assert.equal(env._HANDLER, 'index.handler');
    assert.equal(env.TZ, ':UTC');
    assert.match(env.AWS_LAMBDA_RUNTIME_API!, /^127\.0\.0\.1:\d+$/);
    assert.equal(env.AWS_ACCESS_KEY_ID, KEY.accessKeyId);
    assert.equal(env.AWS_ENDPOINT_URL_LAMBDA, platform.url);
    assert.equal(r.body.cwd, env.LAMBDA_TASK_ROOT);
    const root = env.LAMBDA_TASK_ROOT!;
    assert.ok(root.startsWith(os.tmpdir() + path.sep), root);
    assert.ok(!root.startsWith(process.cwd()), 'not inside the repository');
    assert.ok(env.TMPDIR!.startsWith(path.dirname(root)), 'its own /tmp');
    assert.ok((r.body.paths as string[]).every((p) => !p.startsWith(process.cwd())), `module paths: ${r.body.paths}`);
    assert.equal(existsSync(root), true);
  });

  test('UpdateFunctionCode: the next invocation runs the new code in a new environment; the old one\'s directory is gone once it is', async () => {
    await sdk.send(new CreateFunctionCommand({ FunctionName: 'swap', Runtime: 'nodejs20.x', Role: ROLE, Handler: 'index.handler', Code: { ZipFile: PROBE_ZIP } }));
    const first = await invoke('swap', { op: 'env', keys: ['LAMBDA_TASK_ROOT'] });
    await sdk.send(new UpdateFunctionCodeCommand({ FunctionName: 'swap', ZipFile: V2_ZIP }));
    const second = await invoke('swap', {});
    assert.equal(second.body.version, 2);
    assert.equal(second.cold, 'true');
    const oldRoot = first.body.env.LAMBDA_TASK_ROOT as string;
    await platform.close();
    assert.equal(existsSync(oldRoot), false, 'closing the platform removed every environment directory');
  });
});
