/**
 * The routes of the local OpenWhisk API (paths under /api/v1, as apiv1swagger.json): actions (list, get, put,
 * delete, invoke) and activations (list, get, result, logs), plus `GET /api/v1` (API info) and `GET /ping`.
 * Everything under /api/v1/namespaces needs the cluster's key; `_` is the caller's namespace. FedKeeper's own
 * `GET /api/v1/fedkeeper/faults` (the faults the cluster's profile has injected so far) needs it too, and so does
 * FedKeeper's keepers route (when the server has a keepers registry: a fabric's cluster, see main.ts), which keeps
 * the fabric up for the keepers using it — each answers KeepersView `{fabric_pid, keepers, stopping}`:
 *
 *   GET    /api/v1/fedkeeper/keepers        the live registered keepers
 *   PUT    /api/v1/fedkeeper/keepers/PID    keeper PID uses the fabric (one more use); 503 once the fabric is stopping
 *   DELETE /api/v1/fedkeeper/keepers/PID    keeper PID ends one use
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { actionJson, actionMetaJson, type ActionStore } from './action-store.js';
import { activationBriefJson, MAX_LIST_LIMIT, type ActivationStore, type StoredActivation } from './activation-store.js';
import type { ClusterAuth } from './auth.js';
import { WhiskHttpError } from './errors.js';
import { newTransactionId, queryFlag, queryInt, readJsonBody, sendJson, sendText } from './http.js';
import type { Invoker } from './invoker.js';
import type { FabricKeepers } from './main.js';

export interface ApiContext {
  auth: ClusterAuth;
  actions: ActionStore;
  activations: ActivationStore;
  invoker: Invoker;
  maxBodyBytes: number;
  /** Longest a blocking invocation is waited for before answering 202 (OpenWhisk: 60 s). */
  blockingWaitMs: number;
  /** Body of `GET /api/v1`. */
  info: Record<string, unknown>;
  /** Body of `GET /api/v1/fedkeeper/faults`. */
  faults: () => object;
  /** The fabric's keepers registry (`/api/v1/fedkeeper/keepers`); without one that route does not exist. */
  keepers?: FabricKeepers;
}

interface Call {
  ctx: ApiContext;
  req: IncomingMessage;
  res: ServerResponse;
  method: string;
  query: URLSearchParams;
  tid: string;
}

export async function handleRequest(ctx: ApiContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const tid = newTransactionId();
  try {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const call: Call = { ctx, req, res, method: req.method ?? 'GET', query: url.searchParams, tid };
    await route(call, splitPath(url.pathname));
  } catch (e) {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (e instanceof WhiskHttpError) sendJson(res, e.status, { error: e.message, code: tid }, tid);
    else sendJson(res, 500, { error: `internal error: ${e instanceof Error ? e.message : String(e)}`, code: tid }, tid);
  }
}

function splitPath(pathname: string): string[] {
  try {
    return pathname.split('/').filter((s) => s !== '').map((s) => decodeURIComponent(s));
  } catch {
    throw WhiskHttpError.notFound();
  }
}

async function route(c: Call, p: string[]): Promise<void> {
  if (p.length === 1 && p[0] === 'ping') return only(c, 'GET', () => sendText(c.res, 200, 'pong'));
  if (p[0] !== 'api' || p[1] !== 'v1') throw WhiskHttpError.notFound();
  if (p.length === 2) return only(c, 'GET', () => sendJson(c.res, 200, c.ctx.info, c.tid));
  if (p[2] === 'fedkeeper' && p[3] === 'faults' && p.length === 4) {
    c.ctx.auth.check(c.req.headers.authorization);
    return only(c, 'GET', () => sendJson(c.res, 200, c.ctx.faults(), c.tid));
  }
  if (p[2] === 'fedkeeper' && p[3] === 'keepers' && (p.length === 4 || p.length === 5) && c.ctx.keepers) {
    c.ctx.auth.check(c.req.headers.authorization);
    return keeperRoutes(c, c.ctx.keepers, p[4]);
  }
  if (p[2] !== 'namespaces') throw WhiskHttpError.notFound();
  c.ctx.auth.check(c.req.headers.authorization);
  if (p.length === 3) return only(c, 'GET', () => sendJson(c.res, 200, [c.ctx.auth.namespace], c.tid));
  c.ctx.auth.resolveNamespace(p[3]!);
  const [, , , , collection, ...rest] = p;
  if (collection === 'actions') return actionRoutes(c, rest);
  if (collection === 'activations') return activationRoutes(c, rest);
  throw WhiskHttpError.notFound();
}

function only(c: Call, method: string, run: () => void | Promise<void>): void | Promise<void> {
  if (c.method !== method) throw WhiskHttpError.methodNotAllowed();
  return run();
}

// ---- keepers (FedKeeper's own) ------------------------------------------------------------------------------

function keeperRoutes(c: Call, keepers: FabricKeepers, segment: string | undefined): void | Promise<void> {
  if (segment === undefined) return only(c, 'GET', () => sendJson(c.res, 200, keepers.view(), c.tid));
  if (c.method !== 'PUT' && c.method !== 'DELETE') throw WhiskHttpError.methodNotAllowed();
  const pid = keepers.pidOf(segment);
  if (pid === undefined) throw WhiskHttpError.badRequest(`not a keeper's process id: '${segment}'`);
  c.req.resume();
  if (c.method === 'DELETE') keepers.leave(pid);
  else if (!keepers.register(pid)) return sendJson(c.res, 503, { error: 'the fabric is stopping', code: c.tid, ...keepers.view() }, c.tid);
  sendJson(c.res, 200, keepers.view(), c.tid);
}

// ---- actions -------------------------------------------------------------------------------------------------

async function actionRoutes(c: Call, rest: string[]): Promise<void> {
  if (rest.length === 0) return only(c, 'GET', () => listActions(c));
  // `PKG/NAME`: this cluster has no packages, so such an action (and its package) does not exist.
  if (rest.length > 1) {
    if (!['GET', 'PUT', 'DELETE', 'POST'].includes(c.method)) throw WhiskHttpError.methodNotAllowed();
    throw WhiskHttpError.notFound();
  }
  const name = rest[0]!;
  switch (c.method) {
    case 'GET':
      return sendJson(c.res, 200, actionJson(found(c.ctx.actions.get(name)), queryFlag(c.query, 'code', true)), c.tid);
    case 'PUT': {
      const body = await readJsonBody(c.req, c.ctx.maxBodyBytes);
      const action = c.ctx.actions.put(name, body, queryFlag(c.query, 'overwrite'));
      return sendJson(c.res, 200, actionJson(action, false), c.tid);
    }
    case 'DELETE':
      return sendJson(c.res, 200, actionJson(c.ctx.actions.delete(name), false), c.tid);
    case 'POST':
      return invoke(c, name);
    default:
      throw WhiskHttpError.methodNotAllowed();
  }
}

function listActions(c: Call): void {
  const all = c.ctx.actions.list();
  if (queryFlag(c.query, 'count')) return sendJson(c.res, 200, { actions: all.length }, c.tid);
  const { limit, skip } = paging(c.query);
  sendJson(c.res, 200, all.slice(skip, skip + limit).map(actionMetaJson), c.tid);
}

async function invoke(c: Call, name: string): Promise<void> {
  const body = await readJsonBody(c.req, c.ctx.maxBodyBytes);
  const action = found(c.ctx.actions.get(name));
  if (body !== undefined && (typeof body !== 'object' || body === null || Array.isArray(body))) {
    throw WhiskHttpError.badRequest('the invocation payload must be a JSON object');
  }
  const { activationId, done } = c.ctx.invoker.start(action, (body ?? {}) as Record<string, unknown>, c.tid);
  if (!queryFlag(c.query, 'blocking')) return sendJson(c.res, 202, { activationId }, c.tid);

  const waitMs = Math.min(queryInt(c.query, 'timeout') ?? c.ctx.blockingWaitMs, c.ctx.blockingWaitMs);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<undefined>((resolve) => (timer = setTimeout(resolve, waitMs, undefined)));
  const rec = await Promise.race([done, timedOut]);
  clearTimeout(timer);
  if (!rec) return sendJson(c.res, 202, { activationId }, c.tid);
  const status = rec.statusCode === 0 ? 200 : rec.statusCode === 3 ? 500 : 502;
  sendJson(c.res, status, queryFlag(c.query, 'result') ? rec.response.result : rec, c.tid);
}

// ---- activations ---------------------------------------------------------------------------------------------

function activationRoutes(c: Call, rest: string[]): void {
  if (c.method !== 'GET') throw WhiskHttpError.methodNotAllowed();
  if (rest.length === 0) return listActivations(c);
  if (rest.length > 2) throw WhiskHttpError.notFound();
  const rec = found(c.ctx.activations.get(rest[0]!));
  const part = rest[1];
  if (part === undefined) return sendJson(c.res, 200, rec, c.tid);
  if (part === 'result') return sendJson(c.res, 200, rec.response, c.tid);
  if (part === 'logs') return sendJson(c.res, 200, { logs: rec.logs }, c.tid);
  throw WhiskHttpError.notFound();
}

function listActivations(c: Call): void {
  const q = c.query;
  const name = q.get('name') ?? undefined;
  const since = queryInt(q, 'since');
  const upto = queryInt(q, 'upto');
  const filter = { name: name === '' ? undefined : name, since, upto };
  if (queryFlag(q, 'count')) return sendJson(c.res, 200, { activations: c.ctx.activations.count(filter) }, c.tid);
  const { limit, skip } = paging(q);
  const recs = c.ctx.activations.list({ ...filter, limit, skip });
  const docs = queryFlag(q, 'docs');
  sendJson(c.res, 200, recs.map((r: StoredActivation) => (docs ? r : activationBriefJson(r))), c.tid);
}

// ---- helpers -------------------------------------------------------------------------------------------------

/** `limit` 0 … 200 (0 = the maximum, default 30) and `skip` ≥ 0, as OpenWhisk's collections take them. */
function paging(q: URLSearchParams): { limit: number; skip: number } {
  const limit = queryInt(q, 'limit') ?? 30;
  if (limit > MAX_LIST_LIMIT) throw WhiskHttpError.badRequest(`The value '${limit}' is not in the range of 0 to ${MAX_LIST_LIMIT} for 'limit'.`);
  return { limit: limit === 0 ? MAX_LIST_LIMIT : limit, skip: queryInt(q, 'skip') ?? 0 };
}

function found<T>(v: T | undefined): T {
  if (v === undefined) throw WhiskHttpError.notFound();
  return v;
}
