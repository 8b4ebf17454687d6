/**
 * The routes of the local Lambda API: the part of AWS Lambda's REST API that `@aws-sdk/client-lambda` calls for
 * functions and invocations, answered with Lambda's paths, status codes, JSON shapes and headers
 * (`x-amzn-RequestId`, `X-Amzn-ErrorType`, Invoke's `X-Amz-*`). Every request must be signed (SigV4, service
 * `lambda`, the cluster's region and key), FedKeeper's own `GET /fedkeeper/faults` too, and FedKeeper's keepers
 * route when the server has a keepers registry (a fabric's cluster, see main.ts). Only the code download URL that
 * GetFunction hands out (`/fedkeeper/code/TOKEN`, a presigned-URL stand-in) needs no signature.
 *
 *   POST   /2015-03-31/functions                          CreateFunction → 201
 *   GET    /2015-03-31/functions                          ListFunctions (Marker, MaxItems)
 *   GET    /2015-03-31/functions/NAME                     GetFunction
 *   DELETE /2015-03-31/functions/NAME                     DeleteFunction → 204
 *   GET|PUT /2015-03-31/functions/NAME/configuration      GetFunctionConfiguration, UpdateFunctionConfiguration
 *   PUT    /2015-03-31/functions/NAME/code                UpdateFunctionCode
 *   POST   /2015-03-31/functions/NAME/invocations         Invoke (RequestResponse → 200, Event → 202, DryRun → 204)
 *   PUT|DELETE /2017-10-31/functions/NAME/concurrency     PutFunctionConcurrency, DeleteFunctionConcurrency → 204
 *   GET    /2019-09-30/functions/NAME/concurrency         GetFunctionConcurrency
 *   GET    /2016-08-19/account-settings                   GetAccountSettings
 *   GET    /fedkeeper/keepers                             FedKeeper: the live keepers using the fabric
 *   PUT    /fedkeeper/keepers/PID                         FedKeeper: keeper PID uses the fabric; 503 once it is stopping
 *   DELETE /fedkeeper/keepers/PID                         FedKeeper: keeper PID ends one use
 *
 * (the keepers answers are KeepersView `{fabric_pid, keepers, stopping}`, main.ts).
 *
 * Invoke's answer also carries FedKeeper's `X-FedKeeper-Cold-Start: true|false` (and, on a cold start,
 * `X-FedKeeper-Init-Duration-Ms`); Lambda's own sign of a cold start is `Init Duration` in the REPORT line of the
 * log (LogType Tail).
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PAYLOAD_LIMITS } from '../runtime/lambda-contract.js';
import { LambdaError } from './lambda-errors.js';
import { configurationJson, LAMBDA_LIMITS, type FunctionStore } from './lambda-functions.js';
import { logTail, type InvokeRequest, type LambdaInvoker } from './lambda-invoker.js';
import type { FabricKeepers } from './main.js';
import { verifySigV4, type SigV4Key } from './sigv4.js';

export interface LambdaApiContext {
  key: SigV4Key;
  region: string;
  functions: FunctionStore;
  invoker: LambdaInvoker;
  /** Body of `GET /fedkeeper/faults`. */
  faults: () => object;
  /** The platform's URL (for code download locations). */
  url: () => string;
  /** The fabric's keepers registry (`/fedkeeper/keepers`); without one that route does not exist. */
  keepers?: FabricKeepers;
}

interface Call {
  ctx: LambdaApiContext;
  req: IncomingMessage;
  res: ServerResponse;
  query: URLSearchParams;
  body: Buffer;
  requestId: string;
}

interface Route {
  /** The largest body this operation takes, and what Lambda says past it. */
  maxBody: number;
  tooLarge: (size: number) => string;
  run: (c: Call) => void | Promise<void>;
}

const DEFAULT_MAX_BODY = PAYLOAD_LIMITS.request;
const tooLargeFor = (op: string, max: number) => () => `Request must be smaller than ${max} bytes for the ${op} operation`;

export async function handleLambdaRequest(ctx: LambdaApiContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const requestId = randomUUID();
  try {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const segments = splitPath(q >= 0 ? url.slice(0, q) : url);
    const query = new URLSearchParams(q >= 0 ? url.slice(q + 1) : '');
    const method = req.method ?? 'GET';
    if (method === 'GET' && segments.length === 3 && segments[0] === 'fedkeeper' && segments[1] === 'code') {
      req.resume();
      return sendCode(ctx, res, segments[2]!, requestId);
    }
    if (!req.headers.authorization) {
      req.resume();
      throw LambdaError.missingToken();
    }
    const route = routeOf(method, segments, req);
    const body = await readBody(req, route?.maxBody ?? DEFAULT_MAX_BODY);
    if (route && body.size > route.maxBody) throw LambdaError.tooLarge(route.tooLarge(body.size));
    verifySigV4({ method, url, headers: req.headers, body: body.data }, { key: ctx.key, region: ctx.region, service: 'lambda' });
    if (!route) throw LambdaError.unknownOperation();
    await route.run({ ctx, req, res, query, body: body.data, requestId });
  } catch (e) {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const err = e instanceof LambdaError ? e : new LambdaError(500, 'ServiceException', `internal error: ${e instanceof Error ? e.message : String(e)}`);
    send(res, err.status, err.body(), requestId, { 'X-Amzn-ErrorType': err.type, ...err.headers });
  }
}

function routeOf(method: string, p: string[], req: IncomingMessage): Route | undefined {
  const [version, collection, name, sub, ...rest] = p;
  const small = (run: Route['run']): Route => ({ maxBody: DEFAULT_MAX_BODY, tooLarge: tooLargeFor('this', DEFAULT_MAX_BODY), run });
  if (version === 'fedkeeper' && collection === 'faults' && p.length === 2 && method === 'GET') return small((c) => send(c.res, 200, c.ctx.faults(), c.requestId));
  if (version === 'fedkeeper' && collection === 'keepers') return keeperRoute(method, p);
  if (version === '2016-08-19' && collection === 'account-settings' && p.length === 2 && method === 'GET') return small(accountSettings);
  if (collection !== 'functions' || rest.length > 0) return undefined;
  if (version === '2015-03-31') {
    if (name === undefined) {
      if (method === 'GET') return small(listFunctions);
      if (method === 'POST') return { maxBody: LAMBDA_LIMITS.uploadRequestBytes, tooLarge: tooLargeFor('CreateFunction', LAMBDA_LIMITS.uploadRequestBytes), run: createFunction };
      return undefined;
    }
    if (sub === undefined) {
      if (method === 'GET') return small((c) => getFunction(c, name));
      if (method === 'DELETE') return small((c) => deleteFunction(c, name));
      return undefined;
    }
    if (sub === 'configuration' && method === 'GET') return small((c) => send(c.res, 200, configurationJson(c.ctx.functions.find(name, qualifier(c)), c.ctx.region), c.requestId));
    if (sub === 'configuration' && method === 'PUT') return small((c) => send(c.res, 200, configurationJson(c.ctx.functions.updateConfiguration(name, json(c)), c.ctx.region), c.requestId));
    if (sub === 'code' && method === 'PUT') {
      return {
        maxBody: LAMBDA_LIMITS.uploadRequestBytes,
        tooLarge: tooLargeFor('UpdateFunctionCode', LAMBDA_LIMITS.uploadRequestBytes),
        run: (c) => send(c.res, 200, configurationJson(c.ctx.functions.updateCode(name, json(c)), c.ctx.region), c.requestId),
      };
    }
    if (sub === 'invocations' && method === 'POST') {
      const event = invocationType(req) === 'Event';
      const max = event ? PAYLOAD_LIMITS.event : PAYLOAD_LIMITS.request;
      const tooLarge = event ? (size: number) => `${size} byte payload is too large for the Event invocation type (limit ${max} bytes)` : tooLargeFor('InvokeFunction', max);
      return { maxBody: max, tooLarge, run: (c) => invoke(c, name) };
    }
    return undefined;
  }
  if (sub !== 'concurrency' || name === undefined) return undefined;
  if (version === '2017-10-31' && method === 'PUT') {
    return small((c) => {
      const fn = c.ctx.functions.putConcurrency(name, json(c));
      c.ctx.invoker.pump();
      send(c.res, 200, { ReservedConcurrentExecutions: fn.reservedConcurrency }, c.requestId);
    });
  }
  if (version === '2017-10-31' && method === 'DELETE') {
    return small((c) => {
      c.ctx.functions.deleteConcurrency(name);
      c.ctx.invoker.pump();
      send(c.res, 204, undefined, c.requestId);
    });
  }
  if (version === '2019-09-30' && method === 'GET') {
    return small((c) => {
      const n = c.ctx.functions.find(name).reservedConcurrency;
      send(c.res, 200, n === undefined ? {} : { ReservedConcurrentExecutions: n }, c.requestId);
    });
  }
  return undefined;
}

// ---- keepers (FedKeeper's own) ----------------------------------------------------------------------------------

function keeperRoute(method: string, p: string[]): Route | undefined {
  const small = (run: Route['run']): Route => ({ maxBody: DEFAULT_MAX_BODY, tooLarge: tooLargeFor('this', DEFAULT_MAX_BODY), run });
  const segment = p[2];
  if (p.length === 2 && method === 'GET') return small((c) => send(c.res, 200, keepersOf(c).view(), c.requestId));
  if (p.length !== 3 || segment === undefined || (method !== 'PUT' && method !== 'DELETE')) return undefined;
  return small((c) => {
    const keepers = keepersOf(c);
    const pid = keepers.pidOf(segment);
    if (pid === undefined) throw LambdaError.invalid(`not a keeper's process id: '${segment}'`);
    if (method === 'DELETE') keepers.leave(pid);
    else if (!keepers.register(pid)) throw new LambdaError(503, 'ServiceException', 'the fabric is stopping', { ...keepers.view() });
    send(c.res, 200, keepers.view(), c.requestId);
  });
}

function keepersOf(c: Call): FabricKeepers {
  if (!c.ctx.keepers) throw LambdaError.unknownOperation();
  return c.ctx.keepers;
}

// ---- functions -------------------------------------------------------------------------------------------------

function createFunction(c: Call): void {
  const fn = c.ctx.functions.create(json(c));
  send(c.res, 201, configurationJson(fn, c.ctx.region), c.requestId);
}

function listFunctions(c: Call): void {
  const maxRaw = c.query.get('MaxItems');
  let max: number | undefined;
  if (maxRaw !== null && maxRaw !== '') {
    max = Number(maxRaw);
    if (!/^\d+$/.test(maxRaw)) throw LambdaError.outOfRange('maxItems', maxRaw, 'Member must be an integer between 1 and 10000');
  }
  const page = c.ctx.functions.list(c.query.get('Marker') ?? undefined, max);
  const body: Record<string, unknown> = { Functions: page.functions.map((f) => configurationJson(f, c.ctx.region, true)) };
  if (page.nextMarker !== undefined) body.NextMarker = page.nextMarker;
  send(c.res, 200, body, c.requestId);
}

function getFunction(c: Call, name: string): void {
  const fn = c.ctx.functions.find(name, qualifier(c));
  const body: Record<string, unknown> = {
    Configuration: configurationJson(fn, c.ctx.region),
    Code: { RepositoryType: 'S3', Location: `${c.ctx.url()}/fedkeeper/code/${fn.codeToken}` },
  };
  if (Object.keys(fn.tags).length > 0) body.Tags = { ...fn.tags };
  if (fn.reservedConcurrency !== undefined) body.Concurrency = { ReservedConcurrentExecutions: fn.reservedConcurrency };
  send(c.res, 200, body, c.requestId);
}

function deleteFunction(c: Call, name: string): void {
  c.ctx.functions.delete(name, qualifier(c));
  c.ctx.invoker.pump(); // its queued Event invocations are dropped
  send(c.res, 204, undefined, c.requestId);
}

function accountSettings(c: Call): void {
  const f = c.ctx.functions;
  send(
    c.res,
    200,
    {
      AccountLimit: {
        TotalCodeSize: LAMBDA_LIMITS.codeStorageBytes,
        CodeSizeUnzipped: LAMBDA_LIMITS.unzippedBytes,
        CodeSizeZipped: LAMBDA_LIMITS.zippedBytes,
        ConcurrentExecutions: f.accountConcurrency,
        UnreservedConcurrentExecutions: f.accountConcurrency - f.reservedTotal,
      },
      AccountUsage: { TotalCodeSize: f.totalCodeSize, FunctionCount: f.count },
    },
    c.requestId,
  );
}

function sendCode(ctx: LambdaApiContext, res: ServerResponse, token: string, requestId: string): void {
  const fn = ctx.functions.codeByToken(token);
  if (!fn) return send(res, 404, { message: 'The specified key does not exist.' }, requestId, { 'X-Amzn-ErrorType': 'NoSuchKey' });
  res.writeHead(200, { 'Content-Type': 'application/zip', 'Content-Length': fn.zip.length, 'x-amzn-RequestId': requestId });
  res.end(fn.zip);
}

// ---- invocations -----------------------------------------------------------------------------------------------

type InvocationType = 'RequestResponse' | 'Event' | 'DryRun';

function invocationType(req: IncomingMessage): InvocationType | string {
  const v = req.headers['x-amz-invocation-type'];
  return (Array.isArray(v) ? v[0] : v) ?? 'RequestResponse';
}

async function invoke(c: Call, name: string): Promise<void> {
  const type = invocationType(c.req);
  if (type !== 'RequestResponse' && type !== 'Event' && type !== 'DryRun') {
    throw LambdaError.outOfRange('invocationType', type, 'Member must satisfy enum value set: [Event, RequestResponse, DryRun]');
  }
  const logType = c.req.headers['x-amz-log-type'] ?? 'None';
  if (logType !== 'None' && logType !== 'Tail') throw LambdaError.outOfRange('logType', logType, 'Member must satisfy enum value set: [None, Tail]');
  const q = qualifier(c);
  const fn = c.ctx.functions.find(name, q);
  const given = c.ctx.functions.parseName(name);
  const qual = q ?? given.qualifier;
  const request: InvokeRequest = { fn, invokedArn: qual !== undefined ? `${fn.arn}:${qual}` : fn.arn, payload: eventPayload(c.body) };
  const context = clientContext(c.req.headers['x-amz-client-context']);
  if (context !== undefined) request.clientContext = context;
  if (type === 'DryRun') return send(c.res, 204, undefined, c.requestId);
  if (type === 'Event') {
    const requestId = c.ctx.invoker.enqueue(request);
    return send(c.res, 202, undefined, requestId);
  }
  const a = await c.ctx.invoker.invoke(request, c.requestId);
  const headers: Record<string, string | number> = {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(a.payload),
    'x-amzn-RequestId': a.requestId,
    'X-Amz-Executed-Version': '$LATEST',
    'X-Amzn-Trace-Id': a.traceId,
    'x-amzn-Remapped-Content-Length': '0',
    'X-FedKeeper-Cold-Start': String(a.coldStart),
  };
  if (a.coldStart) headers['X-FedKeeper-Init-Duration-Ms'] = String(Math.round(a.initDurationMs));
  if (a.functionError) headers['X-Amz-Function-Error'] = a.functionError;
  if (logType === 'Tail') headers['X-Amz-Log-Result'] = logTail(a.log);
  c.res.writeHead(200, headers);
  c.res.end(a.payload);
}

/** The event as the caller sent it; no payload is `{}`; a payload that is not JSON is refused as Lambda does. */
function eventPayload(body: Buffer): string {
  const text = body.toString('utf8');
  if (text.trim() === '') return '{}';
  try {
    JSON.parse(text);
  } catch (e) {
    throw LambdaError.badContent(`Could not parse request body into json: Could not parse payload into json: ${(e as Error).message}`);
  }
  return text;
}

/** X-Amz-Client-Context: base64 of a JSON object, at most 3,583 bytes; the JSON text for the runtime. */
function clientContext(header: string | string[] | undefined): string | undefined {
  const v = Array.isArray(header) ? header[0] : header;
  if (v === undefined || v === '') return undefined;
  if (v.length > 3583) throw LambdaError.invalid('Client context must be smaller than 3583 bytes.');
  const text = Buffer.from(v, 'base64').toString('utf8');
  try {
    const o = JSON.parse(text) as unknown;
    if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new Error('not an object');
  } catch {
    throw LambdaError.badContent('Client context must be a valid Base64-encoded JSON object.');
  }
  return text;
}

// ---- helpers ---------------------------------------------------------------------------------------------------

function qualifier(c: Call): string | undefined {
  const q = c.query.get('Qualifier');
  return q === null || q === '' ? undefined : q;
}

function json(c: Call): unknown {
  const text = c.body.toString('utf8');
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw LambdaError.badContent(`Could not parse request body into json: ${(e as Error).message}`);
  }
}

function splitPath(raw: string): string[] {
  try {
    return raw
      .split('/')
      .filter((s) => s !== '')
      .map((s) => decodeURIComponent(s));
  } catch {
    throw LambdaError.unknownOperation();
  }
}

/** The body, or (past max) only its size: what is over the limit is read and dropped. */
async function readBody(req: IncomingMessage, max: number): Promise<{ data: Buffer; size: number }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size <= max) chunks.push(chunk);
  }
  return { data: size <= max ? Buffer.concat(chunks) : Buffer.alloc(0), size };
}

function send(res: ServerResponse, status: number, body: unknown, requestId: string, headers: Record<string, string> = {}): void {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
    'Content-Length': Buffer.byteLength(text),
    'x-amzn-RequestId': requestId,
    ...headers,
  });
  res.end(text);
}

