/**
 * The local Lambda platform's control plane driven by the real `@aws-sdk/client-lambda`, as FedKeeper's `lambda`
 * provider drives AWS: every call round-trips (waiters included), the answers parse into the SDK's own types with
 * the fields it documents, raw bodies carry only members of the SDK's schemas, errors arrive as the SDK's typed
 * exceptions, and SigV4 is required and checked.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  CodeStorageExceededException,
  CreateFunctionCommand,
  DeleteFunctionCommand,
  DeleteFunctionConcurrencyCommand,
  FunctionConfiguration$,
  GetAccountSettingsCommand,
  GetFunctionCommand,
  GetFunctionConcurrencyCommand,
  GetFunctionConfigurationCommand,
  GetFunctionResponse$,
  InvalidParameterValueException,
  InvokeCommand,
  LambdaServiceException,
  ListFunctionsCommand,
  ListFunctionsResponse$,
  PreconditionFailedException,
  PutFunctionConcurrencyCommand,
  ResourceConflictException,
  ResourceConflictException$,
  ResourceNotFoundException,
  ResourceNotFoundException$,
  TooManyRequestsException,
  TooManyRequestsException$,
  UpdateFunctionCodeCommand,
  UpdateFunctionConfigurationCommand,
  waitUntilFunctionActiveV2,
  waitUntilFunctionUpdatedV2,
  type CreateFunctionCommandInput,
  type LambdaClient,
} from '@aws-sdk/client-lambda';
import { startLambdaServer, type LambdaServer } from '../../src/fabric/lambda-server.js';
import { SignatureV4 } from '@smithy/signature-v4';
import { KEY, PROBE_ZIP, REGION, ROLE, Sha256, V2_ZIP, lambdaClient, signedFetch, zip, zipClaiming } from '../fixtures/lambda-functions.js';

let platform: LambdaServer;
let sdk: LambdaClient;
before(async () => {
  platform = await startLambdaServer({ label: 'api-test', region: REGION, ...KEY, memoryMb: 2048, seed: 1 });
  sdk = lambdaClient(platform.url);
});
after(() => platform?.close());

const create = (name: string, over: Partial<CreateFunctionCommandInput> = {}) =>
  sdk.send(new CreateFunctionCommand({ FunctionName: name, Runtime: 'nodejs20.x', Handler: 'index.handler', Role: ROLE, Code: { ZipFile: PROBE_ZIP }, ...over }));

/** The member names of an SDK schema ([kind, namespace, name, traits, members, types]). */
const members = (schema: unknown): string[] => (schema as [number, string, string, unknown, string[]])[4];

/** Asserts the rejection is the SDK's `cls` (or, for errors Lambda's model has no class for, named `name`). */
async function rejectsWith(p: Promise<unknown>, cls: abstract new (...a: never[]) => Error, status: number, message?: RegExp, name?: string): Promise<any> {
  let caught: any;
  await assert.rejects(p, (e: any) => {
    caught = e;
    return true;
  });
  const err: any = caught;
  assert.ok(caught instanceof cls, `expected ${cls.name}, got ${err?.constructor?.name} ${err?.name}: ${err?.message}`);
  if (name) assert.equal(err.name, name);
  assert.equal(err.$metadata?.httpStatusCode, status, err.message);
  assert.match(err.$metadata?.requestId ?? '', /^[0-9a-f-]{36}$/, 'x-amzn-RequestId');
  if (message) assert.match(err.message, message);
  return err;
}

describe('functions', () => {
  test('CreateFunction → 201 FunctionConfiguration with what the SDK documents; GetFunction, GetFunctionConfiguration, ListFunctions', async () => {
    const c = await create('probe', { MemorySize: 256, Timeout: 30, Description: 'a probe', Environment: { Variables: { MODE: 'test', SEED: '7' } }, Tags: { team: 'fl' } });
    assert.equal(c.$metadata.httpStatusCode, 201);
    const arn = `arn:aws:lambda:${REGION}:000000000000:function:probe`;
    assert.equal(c.FunctionName, 'probe');
    assert.equal(c.FunctionArn, arn);
    assert.equal(c.Runtime, 'nodejs20.x');
    assert.equal(c.Role, ROLE);
    assert.equal(c.Handler, 'index.handler');
    assert.equal(c.CodeSize, PROBE_ZIP.length);
    assert.equal(c.CodeSha256, Buffer.from(await crypto.subtle.digest('SHA-256', PROBE_ZIP)).toString('base64'));
    assert.equal(c.Description, 'a probe');
    assert.equal(c.Timeout, 30);
    assert.equal(c.MemorySize, 256);
    assert.equal(c.Version, '$LATEST');
    assert.match(c.LastModified!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$/);
    assert.deepEqual(c.Environment, { Variables: { MODE: 'test', SEED: '7' } });
    assert.match(c.RevisionId!, /^[0-9a-f-]{36}$/);
    assert.equal(c.State, 'Active');
    assert.equal(c.LastUpdateStatus, 'Successful');
    assert.equal(c.PackageType, 'Zip');
    assert.deepEqual(c.Architectures, ['x86_64']);
    assert.deepEqual(c.EphemeralStorage, { Size: 512 });
    assert.deepEqual(c.TracingConfig, { Mode: 'PassThrough' });
    assert.deepEqual(c.LoggingConfig, { LogFormat: 'Text', LogGroup: '/aws/lambda/probe' });
    assert.match(c.RuntimeVersionConfig?.RuntimeVersionArn ?? '', new RegExp(`^arn:aws:lambda:${REGION}::runtime:[0-9a-f]{64}$`));

    const g = await sdk.send(new GetFunctionCommand({ FunctionName: 'probe' }));
    const { $metadata: _m, ...configuration } = c;
    assert.deepEqual(g.Configuration, configuration);
    assert.equal(g.Code?.RepositoryType, 'S3');
    assert.deepEqual(g.Tags, { team: 'fl' });
    // Code.Location is a download URL (a presigned S3 URL on AWS): no signature needed, the exact package back
    const code = await fetch(g.Code!.Location!);
    assert.equal(code.status, 200);
    assert.deepEqual(new Uint8Array(await code.arrayBuffer()), PROBE_ZIP);
    // by ARN, partial ARN and with the $LATEST qualifier too
    for (const name of [arn, `000000000000:function:probe`, `probe:$LATEST`]) {
      assert.equal((await sdk.send(new GetFunctionConfigurationCommand({ FunctionName: name }))).FunctionArn, arn);
    }
    assert.equal((await sdk.send(new GetFunctionConfigurationCommand({ FunctionName: 'probe', Qualifier: '$LATEST' }))).RevisionId, c.RevisionId);
    const listed = await sdk.send(new ListFunctionsCommand({}));
    const mine = listed.Functions!.find((f) => f.FunctionName === 'probe')!;
    assert.equal(mine.CodeSha256, c.CodeSha256);
    assert.equal(mine.State, undefined, 'ListFunctions leaves out the state fields, as Lambda does');
  });

  test('raw bodies carry only members of the SDK schemas (nothing the SDK would silently drop)', async () => {
    await create('schema-check');
    const get = await signedFetch(platform.url, 'GET', '/2015-03-31/functions/schema-check');
    assert.equal(get.status, 200);
    assert.match(get.headers.get('x-amzn-requestid') ?? '', /^[0-9a-f-]{36}$/);
    const body = get.json();
    const extra = (o: object, schema: unknown) => Object.keys(o).filter((k) => !members(schema).includes(k));
    assert.deepEqual(extra(body, GetFunctionResponse$), []);
    assert.deepEqual(extra(body.Configuration, FunctionConfiguration$), []);
    const list = (await signedFetch(platform.url, 'GET', '/2015-03-31/functions')).json();
    assert.deepEqual(extra(list, ListFunctionsResponse$), []);
    for (const f of list.Functions) assert.deepEqual(extra(f, FunctionConfiguration$), []);
    const missing = await signedFetch(platform.url, 'GET', '/2015-03-31/functions/nothing-here');
    assert.equal(missing.status, 404);
    assert.equal(missing.headers.get('x-amzn-errortype'), 'ResourceNotFoundException');
    assert.deepEqual(extra(missing.json(), ResourceNotFoundException$), []);
    assert.deepEqual(missing.json(), { Type: 'User', Message: `Function not found: arn:aws:lambda:${REGION}:000000000000:function:nothing-here` });
    const twice = await signedFetch(platform.url, 'POST', '/2015-03-31/functions', {
      body: JSON.stringify({ FunctionName: 'schema-check', Runtime: 'nodejs20.x', Handler: 'index.handler', Role: ROLE, Code: { ZipFile: Buffer.from(PROBE_ZIP).toString('base64') } }),
    });
    assert.equal(twice.status, 409);
    assert.deepEqual(extra(twice.json(), ResourceConflictException$), []);
  });

  test('ListFunctions pages with Marker / MaxItems', async () => {
    for (const n of ['page-a', 'page-b', 'page-c']) await create(n);
    const all: string[] = [];
    let marker: string | undefined;
    let pages = 0;
    do {
      const r = await sdk.send(new ListFunctionsCommand({ MaxItems: 2, ...(marker ? { Marker: marker } : {}) }));
      assert.ok(r.Functions!.length <= 2);
      all.push(...r.Functions!.map((f) => f.FunctionName!));
      marker = r.NextMarker;
      pages++;
    } while (marker);
    assert.deepEqual(all, [...all].sort());
    assert.ok(['page-a', 'page-b', 'page-c'].every((n) => all.includes(n)));
    assert.equal(new Set(all).size, all.length);
    assert.ok(pages >= 2);
    await rejectsWith(sdk.send(new ListFunctionsCommand({ MaxItems: 0 })), InvalidParameterValueException, 400, /maxItems/);
  });

  test('UpdateFunctionCode and UpdateFunctionConfiguration: new revision, new code runs; RevisionId checked; DryRun changes nothing', async () => {
    const c = await create('updatable');
    const dry = await sdk.send(new UpdateFunctionCodeCommand({ FunctionName: 'updatable', ZipFile: V2_ZIP, DryRun: true }));
    assert.equal(dry.CodeSize, V2_ZIP.length);
    assert.equal((await sdk.send(new GetFunctionConfigurationCommand({ FunctionName: 'updatable' }))).CodeSha256, c.CodeSha256, 'DryRun changed nothing');
    const u = await sdk.send(new UpdateFunctionCodeCommand({ FunctionName: 'updatable', ZipFile: V2_ZIP, RevisionId: c.RevisionId }));
    assert.notEqual(u.RevisionId, c.RevisionId);
    assert.notEqual(u.CodeSha256, c.CodeSha256);
    await waitUntilFunctionUpdatedV2({ client: sdk, maxWaitTime: 10 }, { FunctionName: 'updatable' });
    const out = await sdk.send(new InvokeCommand({ FunctionName: 'updatable' }));
    assert.equal(JSON.parse(Buffer.from(out.Payload!).toString()).version, 2);
    await rejectsWith(sdk.send(new UpdateFunctionCodeCommand({ FunctionName: 'updatable', ZipFile: PROBE_ZIP, RevisionId: c.RevisionId })), PreconditionFailedException, 412);
    const cfg = await sdk.send(new UpdateFunctionConfigurationCommand({ FunctionName: 'updatable', MemorySize: 512, Timeout: 60, Environment: { Variables: { KEY_ONE: 'v' } }, Description: 'updated' }));
    assert.deepEqual([cfg.MemorySize, cfg.Timeout, cfg.Description, cfg.Environment?.Variables], [512, 60, 'updated', { KEY_ONE: 'v' }]);
    assert.equal(cfg.Handler, 'index.handler', 'what the update does not name is kept');
    assert.equal(cfg.LastUpdateStatus, 'Successful');
  });

  test('DeleteFunction → 204; then every call on it is ResourceNotFoundException', async () => {
    await create('doomed');
    const d = await sdk.send(new DeleteFunctionCommand({ FunctionName: 'doomed' }));
    assert.equal(d.$metadata.httpStatusCode, 204);
    await rejectsWith(sdk.send(new GetFunctionCommand({ FunctionName: 'doomed' })), ResourceNotFoundException, 404, /Function not found: arn:aws:lambda:eu-west-1:000000000000:function:doomed/);
    await rejectsWith(sdk.send(new InvokeCommand({ FunctionName: 'doomed' })), ResourceNotFoundException, 404);
    await rejectsWith(sdk.send(new DeleteFunctionCommand({ FunctionName: 'doomed' })), ResourceNotFoundException, 404);
    await rejectsWith(sdk.send(new GetFunctionCommand({ FunctionName: 'probe', Qualifier: '3' })), ResourceNotFoundException, 404, /function:probe:3$/);
  });

  test('Put/Get/DeleteFunctionConcurrency and GetAccountSettings', async () => {
    await create('reserved');
    assert.equal((await sdk.send(new GetFunctionConcurrencyCommand({ FunctionName: 'reserved' }))).ReservedConcurrentExecutions, undefined);
    const put = await sdk.send(new PutFunctionConcurrencyCommand({ FunctionName: 'reserved', ReservedConcurrentExecutions: 3 }));
    assert.equal(put.ReservedConcurrentExecutions, 3);
    assert.equal((await sdk.send(new GetFunctionConcurrencyCommand({ FunctionName: 'reserved' }))).ReservedConcurrentExecutions, 3);
    assert.deepEqual((await sdk.send(new GetFunctionCommand({ FunctionName: 'reserved' }))).Concurrency, { ReservedConcurrentExecutions: 3 });
    const account = await sdk.send(new GetAccountSettingsCommand({}));
    assert.equal(account.AccountLimit?.ConcurrentExecutions, 1000);
    assert.equal(account.AccountLimit?.UnreservedConcurrentExecutions, 997);
    assert.equal(account.AccountLimit?.CodeSizeZipped, 52_428_800);
    assert.equal(account.AccountLimit?.CodeSizeUnzipped, 262_144_000);
    assert.ok((account.AccountUsage?.FunctionCount ?? 0) >= 1);
    await rejectsWith(sdk.send(new PutFunctionConcurrencyCommand({ FunctionName: 'reserved', ReservedConcurrentExecutions: 1001 })), InvalidParameterValueException, 400, /UnreservedConcurrentExecution/);
    assert.equal((await sdk.send(new DeleteFunctionConcurrencyCommand({ FunctionName: 'reserved' }))).$metadata.httpStatusCode, 204);
    assert.equal((await sdk.send(new GetAccountSettingsCommand({}))).AccountLimit?.UnreservedConcurrentExecutions, 1000);
  });
});

describe('validation: InvalidParameterValueException naming the field, ResourceConflictException, size limits', () => {
  test('out-of-range settings', async () => {
    const cases: Array<[Partial<CreateFunctionCommandInput>, RegExp]> = [
      [{ MemorySize: 64 }, /'memorySize'.*greater than or equal to 128/],
      [{ MemorySize: 20_000 }, /'memorySize'.*less than or equal to 10240/],
      [{ MemorySize: 4096 }, /MemorySize 4096 MB is more than the 2048 MB of this local Lambda platform/],
      [{ Timeout: 0 }, /'timeout'.*greater than or equal to 1/],
      [{ Timeout: 901 }, /'timeout'.*less than or equal to 900/],
      [{ Runtime: 'python3.12' }, /runtime parameter of python3\.12 is not supported/],
      [{ Handler: 'index handler' }, /'handler'.*pattern/],
      [{ Role: 'not-a-role' }, /role defined for the function cannot be assumed/],
      [{ Environment: { Variables: { AWS_REGION: 'x' } } }, /reserved keys .* AWS_REGION/],
      [{ Environment: { Variables: { BIG: 'x'.repeat(5000) } } }, /exceeded the 4KB limit/],
      [{ Code: { ZipFile: new TextEncoder().encode('not a zip at all') } }, /Could not unzip uploaded file/],
      [{ Code: { ZipFile: zipClaiming(300_000_000) } }, /Unzipped size must be smaller than 262144000 bytes/],
      [{ Publish: true }, /only \$LATEST/],
    ];
    for (const [over, message] of cases) await rejectsWith(create('invalid', over), InvalidParameterValueException, 400, message);
    await assert.rejects(sdk.send(new GetFunctionCommand({ FunctionName: 'invalid' })), ResourceNotFoundException, 'nothing was created');
  });

  test('creating twice is a ResourceConflictException', async () => {
    await create('twice');
    const e = await rejectsWith(create('twice'), ResourceConflictException, 409, /Function already exist: twice/);
    assert.equal(e.Type, 'User');
  });

  test('a zip over 50 MB is a 413 RequestEntityTooLargeException (Lambda\'s own error code; the SDK has no class for it)', async () => {
    const big = new Uint8Array(53 * 1024 * 1024);
    crypto.getRandomValues(big.subarray(0, 65536));
    const e = await rejectsWith(create('too-big', { Code: { ZipFile: big } }), LambdaServiceException, 413, /Request must be smaller than 69905067 bytes for the CreateFunction operation/, 'RequestEntityTooLargeException');
    assert.equal(e.$fault, 'client');
  });

  test('the account\'s code storage: CodeStorageExceededException', async () => {
    const small = await startLambdaServer({ label: 'tiny-storage', region: REGION, ...KEY, codeStorageBytes: PROBE_ZIP.length + 10 });
    try {
      const c = lambdaClient(small.url);
      const input = { Runtime: 'nodejs20.x' as const, Handler: 'index.handler', Role: ROLE, Code: { ZipFile: PROBE_ZIP } };
      await c.send(new CreateFunctionCommand({ FunctionName: 'first', ...input }));
      await rejectsWith(c.send(new CreateFunctionCommand({ FunctionName: 'second', ...input })), CodeStorageExceededException, 400, /Code storage limit exceeded/);
      // replacing a function's code frees its old code's share
      await c.send(new UpdateFunctionCodeCommand({ FunctionName: 'first', ZipFile: zip({ 'index.js': 'exports.handler = async () => 1;' }) }));
    } finally {
      await small.close();
    }
  });
});

describe('states and waiters', () => {
  test('with settleMs, a new function is Pending (invoking it is a conflict) and an update InProgress; the SDK waiters wait them out', async () => {
    const slow = await startLambdaServer({ label: 'settling', region: REGION, ...KEY, settleMs: 400 });
    try {
      const c = lambdaClient(slow.url);
      const t0 = Date.now();
      const created = await c.send(new CreateFunctionCommand({ FunctionName: 'settling', Runtime: 'nodejs20.x', Handler: 'index.handler', Role: ROLE, Code: { ZipFile: PROBE_ZIP } }));
      assert.equal(created.State, 'Pending');
      assert.equal(created.StateReasonCode, 'Creating');
      await rejectsWith(c.send(new InvokeCommand({ FunctionName: 'settling' })), ResourceConflictException, 409, /currently in the following state: Pending/);
      const active = await waitUntilFunctionActiveV2({ client: c, maxWaitTime: 10, minDelay: 0.2, maxDelay: 0.5 }, { FunctionName: 'settling' });
      assert.equal(active.state, 'SUCCESS');
      assert.ok(Date.now() - t0 >= 400);
      assert.equal((await c.send(new GetFunctionCommand({ FunctionName: 'settling' }))).Configuration?.State, 'Active');
      const u = await c.send(new UpdateFunctionConfigurationCommand({ FunctionName: 'settling', Timeout: 10 }));
      assert.equal(u.LastUpdateStatus, 'InProgress');
      await rejectsWith(c.send(new UpdateFunctionCodeCommand({ FunctionName: 'settling', ZipFile: V2_ZIP })), ResourceConflictException, 409, /An update is in progress/);
      const updated = await waitUntilFunctionUpdatedV2({ client: c, maxWaitTime: 10, minDelay: 0.2, maxDelay: 0.5 }, { FunctionName: 'settling' });
      assert.equal(updated.state, 'SUCCESS');
      assert.equal((await c.send(new InvokeCommand({ FunctionName: 'settling' }))).StatusCode, 200);
    } finally {
      await slow.close();
    }
  });
});

describe('SigV4', () => {
  test('a wrong secret is InvalidSignatureException; an unknown key UnrecognizedClientException; another region InvalidSignatureException', async () => {
    const wrongSecret = lambdaClient(platform.url, { ...KEY, secretAccessKey: 'not-the-secret' });
    await rejectsWith(wrongSecret.send(new ListFunctionsCommand({})), LambdaServiceException, 403, /signature we calculated does not match/, 'InvalidSignatureException');
    const stranger = lambdaClient(platform.url, { accessKeyId: 'AKIASOMEONEELSE00001', secretAccessKey: KEY.secretAccessKey });
    await rejectsWith(stranger.send(new ListFunctionsCommand({})), LambdaServiceException, 403, /security token included in the request is invalid/, 'UnrecognizedClientException');
    const elsewhere = lambdaClient(platform.url, KEY, 'us-west-2');
    await rejectsWith(elsewhere.send(new ListFunctionsCommand({})), LambdaServiceException, 403, /scoped to a valid region, not 'us-west-2'/, 'InvalidSignatureException');
    const withToken = new (sdk.constructor as typeof import('@aws-sdk/client-lambda').LambdaClient)({ endpoint: platform.url, region: REGION, credentials: { ...KEY, sessionToken: 'tok' }, maxAttempts: 1 });
    await rejectsWith(withToken.send(new ListFunctionsCommand({})), LambdaServiceException, 403, undefined, 'UnrecognizedClientException');
  });

  test('no Authorization header: 403 MissingAuthenticationTokenException; a tampered body or a stale date: InvalidSignatureException', async () => {
    const bare = await fetch(`${platform.url}/2015-03-31/functions`);
    assert.equal(bare.status, 403);
    assert.equal(bare.headers.get('x-amzn-errortype'), 'MissingAuthenticationTokenException');
    assert.deepEqual(await bare.json(), { message: 'Missing Authentication Token' });
    const faultsUnsigned = await fetch(`${platform.url}/fedkeeper/faults`);
    assert.equal(faultsUnsigned.status, 403);

    const stale = await signedFetch(platform.url, 'GET', '/2015-03-31/functions', { signingDate: new Date(Date.now() - 10 * 60_000) });
    assert.equal(stale.status, 403);
    assert.equal(stale.headers.get('x-amzn-errortype'), 'InvalidSignatureException');
    assert.match(stale.json().message, /^Signature expired: \d{8}T\d{6}Z is now earlier than/);

    // sign one body, send another: the body's hash is part of the signature
    const ok = await signedFetch(platform.url, 'GET', '/2015-03-31/functions', { query: { MaxItems: '1' } });
    assert.equal(ok.status, 200, ok.text);
    const u = new URL(platform.url);
    const signer = new SignatureV4({ service: 'lambda', region: REGION, credentials: KEY, sha256: Sha256 });
    const req = await signer.sign({ method: 'PUT', protocol: 'http:', hostname: u.hostname, port: Number(u.port), path: '/2017-10-31/functions/probe/concurrency', headers: { host: u.host, 'content-type': 'application/json' }, body: '{"ReservedConcurrentExecutions":1}' });
    const tampered = await fetch(`${platform.url}/2017-10-31/functions/probe/concurrency`, { method: 'PUT', headers: req.headers as Record<string, string>, body: '{"ReservedConcurrentExecutions":5}' });
    assert.equal(tampered.status, 403);
    assert.equal(tampered.headers.get('x-amzn-errortype'), 'InvalidSignatureException');
  });

  test('the faults endpoint answers signed requests; unknown operations are UnknownOperationException', async () => {
    const f = await signedFetch(platform.url, 'GET', '/fedkeeper/faults');
    assert.equal(f.status, 200);
    assert.deepEqual(Object.keys(f.json()).sort(), ['activations', 'crash', 'error', 'outage_cut_connections', 'outages', 'timeout']);
    const unknown = await signedFetch(platform.url, 'GET', '/2015-03-31/layers');
    assert.equal(unknown.status, 404);
    assert.equal(unknown.headers.get('x-amzn-errortype'), 'UnknownOperationException');
  });
});

describe('throttling (the typed exception; the invoke tests cover the semantics)', () => {
  test('reserved concurrency 0: TooManyRequestsException with Reason ReservedFunctionConcurrentInvocationLimitExceeded', async () => {
    await create('throttled');
    await sdk.send(new PutFunctionConcurrencyCommand({ FunctionName: 'throttled', ReservedConcurrentExecutions: 0 }));
    const e = await rejectsWith(sdk.send(new InvokeCommand({ FunctionName: 'throttled' })), TooManyRequestsException, 429, /Rate Exceeded/);
    assert.equal(e.Reason, 'ReservedFunctionConcurrentInvocationLimitExceeded');
    assert.equal(e.Type, 'User');
    const raw = await signedFetch(platform.url, 'POST', '/2015-03-31/functions/throttled/invocations', { body: '{}' });
    assert.deepEqual(Object.keys(raw.json()).filter((k) => !members(TooManyRequestsException$).includes(k)), []);
  });
});
