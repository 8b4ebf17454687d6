/**
 * The runtime of a Lambda execution environment: FedKeeper's own runtime interface client for Node.js functions,
 * written to Lambda's Runtime API and to the Node.js runtime's contract as AWS's `aws-lambda-ric` implements it
 * (that package needs a native build — curl and aws-lambda-cpp from source, autoreconf — and does not install on
 * these machines).
 *
 * Started by lambda-environment.ts in the function's task root (cwd = LAMBDA_TASK_ROOT), with Lambda's environment.
 *
 *  - Init: `_HANDLER` is `file.export` (or `dir/file.nested.export`), the file relative to LAMBDA_TASK_ROOT; a file
 *    without extension, `.js` (CommonJS, or an ES module under `"type": "module"`), `.mjs` or `.cjs`, else a module
 *    resolved from the task root. A failure is posted to `/init/error` (Runtime.ImportModuleError,
 *    Runtime.HandlerNotFound, Runtime.MalformedHandlerName, Runtime.UserCodeSyntaxError, or the thrown error) and the
 *    process exits.
 *  - Loop: `GET /invocation/next`, then the handler `(event, context, callback)`: an async handler's value or
 *    rejection, or the callback (with callbackWaitsForEmptyEventLoop: the answer once the event loop is empty), or —
 *    a handler that does neither — `null` once the event loop is empty. The response goes to `/response`, an error
 *    to `/error` as `{errorType, errorMessage, trace}`. An uncaught exception or unhandled rejection during an
 *    invocation is posted as its error and ends the process (exit 129 / 128), as Lambda's runtime does.
 *  - console.* print `TIMESTAMP\tREQUEST_ID\tLEVEL\tmessage` lines on stdout, as Lambda's Node.js runtime does.
 *  - After each invocation ACTIVATION_SENTINEL is printed on stdout and stderr, so that the platform cuts the logs
 *    per invocation (lambda-environment.ts).
 *
 * argv[2]: the environment's id (process title). FAULT_INJECTION_FLAG among the later arguments makes it honour the
 * fault header of `next` (see lambda-contract.ts): 'error' answers a function error without calling the handler,
 * 'timeout' holds the invocation without calling it and never answers.
 */
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import util from 'node:util';
import {
  ACTIVATION_SENTINEL,
  ERROR_TYPE_HEADER,
  FAULT_INJECTION_FLAG,
  INJECTED_ERROR,
  INVOKE_HEADERS,
  RUNTIME_API,
  type ErrorDocument,
} from './lambda-contract.js';

type Handler = (event: unknown, context: Record<string, unknown>, callback: Callback) => unknown;
type Callback = (err?: unknown, result?: unknown) => void;

if (process.argv[2]) process.title = `fedkeeper-lambda ${process.argv[2]}`;
const faultInjection = process.argv.slice(3).includes(FAULT_INJECTION_FLAG);
const [apiHost, apiPort] = (process.env.AWS_LAMBDA_RUNTIME_API ?? '').split(':');
const taskRoot = process.env.LAMBDA_TASK_ROOT ?? process.cwd();
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const stdoutWrite = process.stdout.write.bind(process.stdout);
const stderrWrite = process.stderr.write.bind(process.stderr);

// ---- errors, as Lambda's Node.js runtime names them ------------------------------------------------------------

class RuntimeError extends Error {
  constructor(type: string, message: string) {
    super(message);
    this.name = `Runtime.${type}`;
  }
}

function isErrorLike(e: unknown): e is Error {
  if (util.types.isNativeError(e)) return true;
  const o = e as { name?: unknown; message?: unknown; stack?: unknown } | null;
  return !!o && typeof o.name === 'string' && typeof o.message === 'string' && typeof o.stack === 'string';
}

/** `{errorType, errorMessage, trace}` of an error, or of anything thrown or passed to a callback. */
function errorDocument(e: unknown): ErrorDocument {
  try {
    if (isErrorLike(e)) return { errorType: e.name, errorMessage: e.message, trace: String(e.stack ?? '').split('\n') };
    return { errorType: typeof e, errorMessage: String(e), trace: [] };
  } catch {
    return { errorType: 'handled', errorMessage: 'callback called with Error argument, but there was a problem while retrieving one or more of its message, name, and stack' };
  }
}

// ---- logs ------------------------------------------------------------------------------------------------------

let requestId: string | undefined;

function patchConsole(): void {
  const line = (level: string) => (message?: unknown, ...params: unknown[]) => {
    const text = `${new Date().toISOString()}\t${requestId}\t${level}\t${util.format(message, ...params)}`.replace(/\n/g, '\r');
    stdoutWrite(`${text}\n`);
  };
  console.trace = line('TRACE');
  console.debug = line('DEBUG');
  console.info = line('INFO');
  console.log = console.info;
  console.warn = line('WARN');
  console.error = line('ERROR');
}

const formatted = (doc: ErrorDocument): string => `\t${JSON.stringify({ errorType: doc.errorType, errorMessage: doc.errorMessage, stack: doc.trace ?? [] })}`;

function endOfInvocation(): void {
  stdoutWrite(`${ACTIVATION_SENTINEL}\n`);
  stderrWrite(`${ACTIVATION_SENTINEL}\n`);
}

// ---- the Runtime API -------------------------------------------------------------------------------------------

function request(method: 'GET' | 'POST', route: string, body?: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(body, 'utf8');
    const req = http.request(
      {
        host: apiHost,
        port: Number(apiPort),
        method,
        path: `${RUNTIME_API}${route}`,
        agent,
        headers: data ? { 'content-type': 'application/json', 'content-length': data.length, ...headers } : headers,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

/** A broken Runtime API (the environment is being torn down): nothing more to do. */
function lost(e: unknown): never {
  stderrWrite(`[fedkeeper-lambda] the Runtime API is gone: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
}

function postError(id: string, doc: ErrorDocument): Promise<void> {
  const path = id === '' ? '/init/error' : `/invocation/${encodeURIComponent(id)}/error`;
  return request('POST', path, JSON.stringify(doc), { [ERROR_TYPE_HEADER]: doc.errorType }).then(() => undefined, lost);
}

/** Posts the result; a result that is not JSON becomes the invocation's error, as in Lambda's runtime. */
function postResponse(id: string, result: unknown): Promise<void> {
  let text: string;
  try {
    text = JSON.stringify(result === undefined ? null : result);
  } catch {
    return postError(id, errorDocument(new Error('Unable to stringify response body')));
  }
  return request('POST', `/invocation/${encodeURIComponent(id)}/response`, text).then((r) => {
    if (r.status === 413) console.error(`Response payload rejected by Lambda: ${r.text}`);
  }, lost);
}

// ---- loading the handler ---------------------------------------------------------------------------------------

/** The nearest package.json between dir and the task root says "type": "module". */
function typeModule(dir: string): boolean {
  for (let d = dir; ; d = path.dirname(d)) {
    const pj = path.join(d, 'package.json');
    if (existsSync(pj)) {
      try {
        return (JSON.parse(readFileSync(pj, 'utf8')) as { type?: unknown }).type === 'module';
      } catch {
        return false;
      }
    }
    if (d === taskRoot || path.dirname(d) === d || !d.startsWith(taskRoot)) return false;
  }
}

async function loadModule(moduleRoot: string, moduleName: string): Promise<unknown> {
  const requireHere = createRequire(path.join(taskRoot, path.sep));
  const base = path.resolve(taskRoot, moduleRoot, moduleName);
  const esm = (file: string) => import(pathToFileURL(file).href) as Promise<unknown>;
  if (existsSync(base) && !existsSync(`${base}.js`)) return requireHere(base);
  if (existsSync(`${base}.js`)) return typeModule(path.dirname(base)) ? esm(`${base}.js`) : requireHere(`${base}.js`);
  if (existsSync(`${base}.mjs`)) return esm(`${base}.mjs`);
  if (existsSync(`${base}.cjs`)) return requireHere(`${base}.cjs`);
  return requireHere(requireHere.resolve(moduleName, { paths: [taskRoot, path.resolve(taskRoot, moduleRoot)] }));
}

async function loadHandler(spec: string): Promise<Handler> {
  if (spec.includes('..')) throw new RuntimeError('MalformedHandlerName', `'${spec}' is not a valid handler name. Use absolute paths when specifying root directories in handler names.`);
  const file = path.basename(spec);
  const moduleRoot = spec.slice(0, spec.length - file.length);
  const m = /^([^.]*)\.(.*)$/.exec(file);
  if (!m) throw new RuntimeError('MalformedHandlerName', 'Bad handler');
  let exported: unknown;
  try {
    exported = await loadModule(moduleRoot, m[1]!);
  } catch (e) {
    if (e instanceof SyntaxError) throw new RuntimeError('UserCodeSyntaxError', String(e));
    const code = (e as NodeJS.ErrnoException)?.code;
    if (code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND') throw new RuntimeError('ImportModuleError', String(e));
    throw e;
  }
  const fn = m[2]!.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], exported);
  if (fn === undefined || fn === null) throw new RuntimeError('HandlerNotFound', `${spec} is undefined or not exported`);
  if (typeof fn !== 'function') throw new RuntimeError('HandlerNotFound', `${spec} is not a function`);
  return fn as Handler;
}

// ---- invocations -----------------------------------------------------------------------------------------------

/** What runs when the event loop empties: set per invocation (Lambda's BeforeExitListener). */
let onEmptyLoop: () => void = () => {};
process.on('beforeExit', () => onEmptyLoop());

/** Uncaught failures: before the first invocation an init error, during one that invocation's error. */
let failure: (doc: ErrorDocument, exitCode: number) => void = (doc, exitCode) => void postError('', doc).then(() => process.exit(exitCode));
process.on('uncaughtException', (e) => {
  console.error('Uncaught Exception', formatted(errorDocument(e)));
  failure(errorDocument(e), 129);
});
process.on('unhandledRejection', (reason) => {
  const e = new RuntimeError('UnhandledPromiseRejection', String(isErrorLike(reason) ? `${reason.name}: ${reason.message}` : reason));
  console.error('Unhandled Promise Rejection', formatted(errorDocument(e)));
  failure(errorDocument(e), 128);
});

function scheduleNext(handler: Handler): void {
  setImmediate(() => void invokeOnce(handler).catch(lost));
}

function header(h: http.IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

function parseJsonHeader(h: http.IncomingHttpHeaders, name: string): unknown {
  const v = header(h, name);
  return v === undefined ? undefined : JSON.parse(v);
}

async function invokeOnce(handler: Handler): Promise<void> {
  const next = await request('GET', '/invocation/next');
  const id = header(next.headers, INVOKE_HEADERS.requestId) ?? '';
  requestId = id;
  const trace = header(next.headers, INVOKE_HEADERS.traceId);
  if (trace) process.env._X_AMZN_TRACE_ID = trace;
  else delete process.env._X_AMZN_TRACE_ID;

  let finished = false;
  const finish = (post: () => Promise<void>) => {
    if (finished) return;
    finished = true;
    onEmptyLoop = () => {};
    endOfInvocation();
    void post().then(() => scheduleNext(handler));
  };
  const fail = (err: unknown) => {
    const doc = errorDocument(err);
    console.error('Invoke Error', formatted(doc));
    finish(() => postError(id, doc));
  };
  failure = (doc, exitCode) => {
    finished = true;
    endOfInvocation();
    void postError(id, doc).then(() => process.exit(exitCode));
  };

  const fault = faultInjection ? header(next.headers, INVOKE_HEADERS.fault) : undefined;
  if (fault === 'error') {
    console.error('[fedkeeper] fault injected by the cluster profile: this invocation answers a function error');
    return finish(() => postError(id, INJECTED_ERROR));
  }
  if (fault === 'timeout') {
    // The invocation really outlives its deadline: no answer ever comes; the platform kills this process.
    console.error('[fedkeeper] fault injected by the cluster profile: this invocation is held past its timeout');
    setInterval(() => {}, 1 << 30);
    return;
  }

  let waitsForEmptyLoop = true;
  const succeed = (result: unknown) => finish(() => postResponse(id, result));
  const done = (err?: unknown, result?: unknown) => (err !== undefined && err !== null ? fail(err) : succeed(result));
  const deadline = Number(header(next.headers, INVOKE_HEADERS.deadlineMs));
  let context: Record<string, unknown>;
  let event: unknown;
  try {
    event = JSON.parse(next.text);
    context = {
      get callbackWaitsForEmptyEventLoop() {
        return waitsForEmptyLoop;
      },
      set callbackWaitsForEmptyEventLoop(v: boolean) {
        waitsForEmptyLoop = v;
      },
      succeed,
      fail: (err: unknown) => done(err ?? 'handled'),
      done,
      functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
      functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
      memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
      logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
      logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
      clientContext: parseJsonHeader(next.headers, INVOKE_HEADERS.clientContext),
      identity: parseJsonHeader(next.headers, INVOKE_HEADERS.cognitoIdentity),
      invokedFunctionArn: header(next.headers, INVOKE_HEADERS.functionArn),
      awsRequestId: id,
      getRemainingTimeInMillis: () => deadline - Date.now(),
    };
  } catch (e) {
    return fail(e);
  }
  const callback: Callback = (err, result) => {
    if (err !== undefined && err !== null) return fail(err);
    if (!waitsForEmptyLoop) return succeed(result);
    onEmptyLoop = () => setImmediate(() => succeed(result));
  };
  // A handler that neither returns a promise nor calls back answers null once the event loop is empty.
  onEmptyLoop = () => succeed(null);
  try {
    const out = handler(event, context, callback);
    if (out !== null && typeof out === 'object' && typeof (out as { then?: unknown }).then === 'function') {
      (out as Promise<unknown>).then(succeed, (e: unknown) => fail(e ?? 'handled'));
    }
  } catch (e) {
    fail(e);
  }
}

async function main(): Promise<void> {
  patchConsole();
  let handler: Handler;
  try {
    handler = await loadHandler(process.env._HANDLER ?? '');
  } catch (e) {
    const doc = errorDocument(e);
    console.error('Uncaught Exception', formatted(doc));
    endOfInvocation();
    await postError('', doc);
    process.exit(129);
  }
  scheduleNext(handler);
}

void main();
