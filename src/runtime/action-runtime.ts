/**
 * One runtime process ("container"): serves the OpenWhisk action-runtime contract for Node.js actions over HTTP on
 * 127.0.0.1, on a port it picks, and tells its parent the port over IPC (`{type: 'listening', port}`).
 *
 *   POST /init {value: {name, main, code, binary, env}}  once: load the action (JS source or base64 zip)
 *   POST /run  {value, namespace, action_name, activation_id, transaction_id, deadline, api_key?}  per activation
 *
 * Answers: /run → 200 with the action's result object (also when it has an `error` field, and `{error: message}`
 * when main throws: both are application errors for the platform); 502 `{error}` when the result is not a
 * dictionary or the code cannot be loaded; 403 on a second /init or a /run before a successful /init. An uncaught
 * exception outside main's promise crashes the process, which the pool reports as a developer error.
 *
 * After every activation it prints ACTIVATION_SENTINEL on stdout and stderr so that the pool can cut the logs.
 *
 * The __OW_* variables are set in process.env for each run. process.env is process-global: with intra-container
 * concurrency > 1 an activation that reads them after an await may see another activation's values (as in
 * OpenWhisk's own nodejs runtime); read them at the start of main.
 *
 * argv[2], when given, is the (pool-owned) directory to unpack the action into; otherwise a temp directory is used.
 * argv[3], when given, is the container's id: it goes into the process title, so `ps` tells containers apart.
 * FAULT_INJECTION_FLAG among the later arguments makes it honour RunBody.fedkeeper_fault (a pool whose cluster
 * profile injects faults starts its containers so): 'error' answers `{error: "injected fault"}` through the ordinary
 * /run path without calling main; 'timeout' holds the activation, without calling main, and never answers.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { unzipSync } from 'fflate';
import { ACTIVATION_SENTINEL, FAULT_INJECTION_FLAG, INJECTED_ERROR, RUNTIME_ERRORS, type InitBody, type ListeningMessage, type RunBody } from './action-contract.js';

type ActionMain = (params: Record<string, unknown>) => unknown;

/** The action's code cannot be used: answered 502. */
class InitError extends Error {
  override name = 'InitError';
}

if (process.argv[3]) process.title = `fedkeeper-container ${process.argv[3]}`;
const workDir = process.argv[2] ?? mkdtempSync(path.join(os.tmpdir(), 'fk-action-'));
// On a normal exit (e.g. the pool's process died: 'disconnect'); after a SIGKILL the pool removes the directory.
process.on('exit', () => rmSync(workDir, { recursive: true, force: true }));

const faultInjection = process.argv.slice(4).includes(FAULT_INJECTION_FLAG);

let state: 'new' | 'initializing' | 'ready' | 'failed' = 'new';
let actionMain: ActionMain | undefined;

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/** OpenWhisk-style plain source declares `function main(…)` without exporting it: export it for them. */
function exportDeclaredMain(source: string, main: string): string {
  if (!IDENTIFIER.test(main)) return source;
  return `${source}
;if (typeof module.exports === 'object' && module.exports !== null && typeof module.exports[${JSON.stringify(main)}] !== 'function' && typeof ${main} === 'function') module.exports[${JSON.stringify(main)}] = ${main};
`;
}

function pickMain(exported: unknown, main: string): ActionMain | undefined {
  if (typeof exported === 'function') {
    const named = (exported as unknown as Record<string, unknown>)[main];
    return (typeof named === 'function' ? named : exported) as ActionMain; // module.exports = fn
  }
  if (exported === null || typeof exported !== 'object') return undefined;
  const o = exported as Record<string, unknown>;
  if (typeof o[main] === 'function') return o[main] as ActionMain;
  const d = o.default; // an ES module namespace, or transpiled CommonJS
  if (d && typeof d === 'object' && typeof (d as Record<string, unknown>)[main] === 'function') return (d as Record<string, ActionMain>)[main];
  if (typeof d === 'function') return d as ActionMain;
  return undefined;
}

/** Loads a module file: CommonJS through require, ES modules (require refuses them on Node 20) through import(). */
async function loadModule(file: string): Promise<unknown> {
  try {
    return createRequire(file)(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ERR_REQUIRE_ESM') throw e;
    return import(pathToFileURL(file).href);
  }
}

const looksLikeEsm = (e: unknown) =>
  e instanceof SyntaxError && /Cannot use import statement|Unexpected token 'export'|import\.meta/.test(e.message);

/** Unpacks a zipped Node.js package; its entry is package.json "main", else index.js. */
function unpack(base64: string, dir: string): string {
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(Buffer.from(base64, 'base64'));
  } catch (e) {
    throw new InitError(`the action's code is not a valid zip: ${(e as Error).message}`);
  }
  for (const [name, data] of Object.entries(files)) {
    const target = path.resolve(dir, name);
    if (target !== dir && !target.startsWith(dir + path.sep)) throw new InitError(`zip entry ${name} points outside the action's directory`);
    if (name.endsWith('/')) {
      mkdirSync(target, { recursive: true });
      continue;
    }
    mkdirSync(path.dirname(target), { recursive: true });
    writeFileSync(target, data);
  }
  let entry = 'index.js';
  const pkgFile = path.join(dir, 'package.json');
  if (existsSync(pkgFile)) {
    let pkg: { main?: unknown };
    try {
      pkg = JSON.parse(readFileSync(pkgFile, 'utf8')) as { main?: unknown };
    } catch (e) {
      throw new InitError(`the zip's package.json is not valid JSON: ${(e as Error).message}`);
    }
    if (typeof pkg.main === 'string' && pkg.main) entry = pkg.main;
  }
  const file = path.resolve(dir, entry);
  if (!existsSync(file)) {
    throw new InitError(`zipped actions must contain either package.json with a "main" field or index.js at the top level (${entry} not found)`);
  }
  return file;
}

async function loadAction(v: InitBody['value']): Promise<ActionMain> {
  if (typeof v?.code !== 'string' || v.code.length === 0) throw new InitError('the action has no code');
  const main = typeof v.main === 'string' && v.main ? v.main : 'main';
  const dir = path.join(workDir, 'action');
  mkdirSync(dir, { recursive: true });
  let exported: unknown;
  if (v.binary) {
    exported = await loadModule(unpack(v.code, dir));
  } else {
    const cjs = path.join(dir, 'index.cjs');
    writeFileSync(cjs, exportDeclaredMain(v.code, main));
    try {
      exported = await loadModule(cjs);
    } catch (e) {
      if (!looksLikeEsm(e)) throw e;
      const mjs = path.join(dir, 'index.mjs'); // `export function main` source
      writeFileSync(mjs, v.code);
      exported = await import(pathToFileURL(mjs).href);
    }
  }
  const fn = pickMain(exported, main);
  if (!fn) throw new InitError(`the action's code exports no function "${main}"`);
  return fn;
}

function reply(res: http.ServerResponse, status: number, body: unknown): void {
  let text: string;
  try {
    text = JSON.stringify(body);
  } catch (e) {
    status = 502;
    text = JSON.stringify({ error: `The action's result cannot be serialised as JSON: ${(e as Error).message}` });
  }
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function endOfActivation(): void {
  process.stdout.write(`${ACTIVATION_SENTINEL}\n`);
  process.stderr.write(`${ACTIVATION_SENTINEL}\n`);
}

async function init(body: InitBody): Promise<[number, unknown]> {
  if (state !== 'new') return [403, { error: RUNTIME_ERRORS.initTwice }];
  state = 'initializing';
  try {
    for (const [k, val] of Object.entries(body?.value?.env ?? {})) {
      process.env[k] = typeof val === 'string' ? val : JSON.stringify(val);
    }
    actionMain = await loadAction(body?.value);
    state = 'ready';
    return [200, { ok: true }];
  } catch (e) {
    state = 'failed';
    const err = e as Error;
    const what = err instanceof InitError ? err.message : `${err?.name ?? 'Error'}: ${err?.message ?? String(e)}`;
    return [502, { error: `Initialization has failed due to: ${what}` }];
  }
}

async function run(body: RunBody): Promise<[number, unknown]> {
  if (state !== 'ready' || !actionMain) {
    return [403, { error: state === 'failed' ? RUNTIME_ERRORS.initFailed : RUNTIME_ERRORS.notInitialized }];
  }
  const env: Record<string, unknown> = {
    __OW_ACTIVATION_ID: body.activation_id,
    __OW_DEADLINE: body.deadline,
    __OW_NAMESPACE: body.namespace,
    __OW_ACTION_NAME: body.action_name,
    __OW_TRANSACTION_ID: body.transaction_id,
    __OW_API_KEY: body.api_key,
  };
  for (const [k, val] of Object.entries(env)) {
    if (val === undefined || val === null) delete process.env[k];
    else process.env[k] = String(val);
  }
  const fault = faultInjection ? body.fedkeeper_fault : undefined;
  if (fault === 'error') {
    console.error(`[fedkeeper] fault injected by the cluster profile: this activation answers an application error`);
    endOfActivation();
    return [200, { error: INJECTED_ERROR }];
  }
  if (fault === 'timeout') {
    // The activation really outlives its deadline: no answer ever comes, the pool's time limit kills this process.
    console.error(`[fedkeeper] fault injected by the cluster profile: this activation is held past its time limit`);
    return new Promise<never>(() => {});
  }
  let out: unknown;
  try {
    out = await actionMain(body.value ?? {});
  } catch (e) {
    // A thrown error (or rejected promise) is the action's own failure: an application error.
    return [200, { error: e instanceof Error ? e.message : (e ?? 'undefined') }];
  } finally {
    endOfActivation();
  }
  if (out === null || typeof out !== 'object' || Array.isArray(out)) return [502, { error: RUNTIME_ERRORS.notDictionary }];
  return [200, out];
}

const server = http.createServer({ requestTimeout: 0 }, (req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    void (async () => {
      if (req.method !== 'POST' || (req.url !== '/init' && req.url !== '/run')) return reply(res, 404, { error: `no route ${req.method} ${req.url}` });
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch (e) {
        return reply(res, 400, { error: `the request body is not JSON: ${(e as Error).message}` });
      }
      const [status, out] = req.url === '/init' ? await init(body as InitBody) : await run(body as RunBody);
      reply(res, status, out);
    })();
  });
});
// Idle keep-alive connections from the pool stay open for the life of the container: a server-side idle timeout
// would race the pool reusing the socket and fail a run with a spurious connection reset.
server.keepAliveTimeout = 0;
server.listen(0, '127.0.0.1', () => {
  const port = (server.address() as { port: number }).port;
  const msg: ListeningMessage = { type: 'listening', port };
  if (process.send) process.send(msg);
  else process.stdout.write(`listening on 127.0.0.1:${port}\n`);
});
// Forked by a pool: die with it rather than linger as an orphan.
if (process.send) process.on('disconnect', () => process.exit(0));
