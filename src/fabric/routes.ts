/**
 * The routes of the local OpenWhisk API, answering as Apache OpenWhisk's controller does (paths under /api/v1, as
 * apiv1swagger.json; statuses, bodies and error texts as core/controller/…/{Actions,Activations,…}.scala and the
 * Pekko HTTP server under them give them):
 *
 *   GET  /, /api/v1, /ping                      the controller's info, the API's info, "pong" (no key needed)
 *   GET  /metrics                               the cluster's Prometheus metrics (user-events names; no key needed)
 *   GET  /api/v1/namespaces                     the key's namespaces
 *   …/namespaces/NS/actions[/NAME]              list (limit, skip, count); PUT (overwrite), GET (code), DELETE, POST
 *                                               (blocking, result, timeout); NS is `_` or the key's namespace (403
 *                                               else); names as the controller's entity-name rule (400 else)
 *   …/namespaces/NS/activations[/ID[/result|/logs]]  list (name, since, upto, limit, skip, docs, count), get
 *   …/namespaces/NS/limits                      the namespace's limits (UserLimits)
 *
 * What this platform leaves out answers as a controller that has none of it, or does not allow it, answers:
 * packages, triggers and rules are listed empty and are 404 by name; creating one is 403 (as for a key without
 * the right to); an action in a package is 404 (no package exists); web actions (`/api/v1/web/…`) are 404.
 *
 * Before an action is invoked the namespace's throttles are charged (throttles.ts): 429 with the controller's text.
 *
 * FedKeeper's own, with the cluster's key: `GET /api/v1/fedkeeper/faults` (the faults the cluster's profile has
 * injected so far, and the requests it throttled), and — when the server has a keepers registry (a fabric's
 * cluster, see main.ts) — the keepers route, which keeps the fabric up for the keepers using it; each answers
 * KeepersView `{fabric_pid, keepers, stopping}`:
 *
 *   GET    /api/v1/fedkeeper/keepers        the live registered keepers
 *   PUT    /api/v1/fedkeeper/keepers/PID    keeper PID uses the fabric (one more use); 503 once the fabric is stopping
 *   DELETE /api/v1/fedkeeper/keepers/PID    keeper PID ends one use
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { actionJson, actionMetaJson, checkEntityName, type ActionStore } from './action-store.js';
import { activationBriefJson, activationJson, activationResultJson, MAX_LIST_LIMIT, type ActivationStore, type StoredActivation } from './activation-store.js';
import type { ClusterAuth } from './auth.js';
import { WhiskHttpError, WhiskMessages } from './errors.js';
import { newTransactionId, queryFlag, queryValue, readJsonBody, sendJson, sendText, toInt } from './http.js';
import type { Invoker } from './invoker.js';
import type { FabricKeepers } from './main.js';
import type { OpenWhiskMetrics } from './openwhisk-metrics.js';
import type { NamespaceThrottles } from './throttles.js';

export interface ApiContext {
  auth: ClusterAuth;
  actions: ActionStore;
  activations: ActivationStore;
  invoker: Invoker;
  /** The namespace's invocation throttles (inactive when the profile sets none). */
  throttles: NamespaceThrottles;
  maxBodyBytes: number;
  /** The largest invocation payload (and action result), bytes: the profile's payloadMaxMb, stock 1 MB. */
  payloadMaxBytes: number;
  /** Longest a blocking invocation is waited for before answering 202 (OpenWhisk: 60 s). */
  blockingWaitMs: number;
  /** Body of `GET /` (the controller's info). */
  controllerInfo: Record<string, unknown>;
  /** Body of `GET /api/v1`. */
  info: Record<string, unknown>;
  /** Body of `GET /api/v1/namespaces/NS/limits`. */
  namespaceLimits: Record<string, unknown>;
  /** Body of `GET /api/v1/fedkeeper/faults`. */
  faults: () => object;
  /** The fabric's keepers registry (`/api/v1/fedkeeper/keepers`); without one that route does not exist. */
  keepers?: FabricKeepers;
  /** The cluster's Prometheus metrics (`GET /metrics`); without them that route does not exist. */
  metrics?: OpenWhiskMetrics;
}

interface Call {
  ctx: ApiContext;
  req: IncomingMessage;
  res: ServerResponse;
  method: string;
  query: URLSearchParams;
  tid: string;
}

const ACTIVATION_HEADER = 'x-openwhisk-activation-id';
/** The methods of an entity of each collection (the controller's `entityOps`). */
const ENTITY_OPS: Readonly<Record<string, readonly string[]>> = {
  actions: ['PUT', 'GET', 'DELETE', 'POST'],
  packages: ['PUT', 'GET', 'DELETE'],
  triggers: ['PUT', 'GET', 'DELETE', 'POST'],
  rules: ['PUT', 'GET', 'DELETE', 'POST'],
  activations: ['GET'],
};

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
    req.resume();
    if (e instanceof WhiskHttpError) sendJson(res, e.status, { error: e.message, code: tid }, tid, e.headers);
    else sendJson(res, 500, { error: WhiskMessages.internal, code: tid }, tid);
  }
}

function splitPath(pathname: string): string[] {
  try {
    return pathname.split('/').filter((s) => s !== '').map((s) => decodeURIComponent(s));
  } catch {
    throw WhiskHttpError.noRoute();
  }
}

async function route(c: Call, p: string[]): Promise<void> {
  if (p.length === 0) return only(c, ['GET'], () => sendJson(c.res, 200, c.ctx.controllerInfo, c.tid));
  if (p.length === 1 && p[0] === 'ping') return only(c, ['GET'], () => sendText(c.res, 200, 'pong'));
  if (p.length === 1 && p[0] === 'metrics' && c.ctx.metrics) return only(c, ['GET'], () => sendMetrics(c, c.ctx.metrics!));
  if (p[0] !== 'api' || p[1] !== 'v1') throw WhiskHttpError.noRoute();
  if (p.length === 2) return only(c, ['GET'], () => sendJson(c.res, 200, c.ctx.info, c.tid));
  // Web actions: none is web-exported here (no such action, as the controller says of one that is not).
  if (p[2] === 'web') throw WhiskHttpError.notFound();
  c.ctx.auth.check(c.req.headers.authorization);
  if (p[2] === 'fedkeeper' && p[3] === 'faults' && p.length === 4) {
    return only(c, ['GET'], () => sendJson(c.res, 200, c.ctx.faults(), c.tid));
  }
  if (p[2] === 'fedkeeper' && p[3] === 'keepers' && (p.length === 4 || p.length === 5) && c.ctx.keepers) {
    return keeperRoutes(c, c.ctx.keepers, p[4]);
  }
  if (p[2] !== 'namespaces') throw WhiskHttpError.noRoute();
  if (p.length === 3) return only(c, ['GET'], () => sendJson(c.res, 200, [c.ctx.auth.namespace], c.tid));
  const [, , , ns, collection, ...rest] = p;
  if (collection === 'actions') return actionRoutes(c, ns!, rest);
  if (collection === 'activations') return activationRoutes(c, ns!, rest);
  if (collection === 'limits' && rest.length === 0) {
    c.ctx.auth.resolveNamespace(ns!);
    return only(c, ['GET'], () => sendJson(c.res, 200, c.ctx.namespaceLimits, c.tid));
  }
  if (collection === 'packages' || collection === 'triggers' || collection === 'rules') return absentCollection(c, ns!, collection, rest);
  throw WhiskHttpError.noRoute();
}

function only(c: Call, methods: readonly string[], run: () => void | Promise<void>): void | Promise<void> {
  if (!methods.includes(c.method)) throw WhiskHttpError.methodNotAllowed(methods);
  return run();
}

async function sendMetrics(c: Call, metrics: OpenWhiskMetrics): Promise<void> {
  const { contentType, text } = await metrics.scrape();
  c.res.writeHead(200, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(text) });
  c.res.end(text);
}

// ---- keepers (FedKeeper's own) ------------------------------------------------------------------------------

function keeperRoutes(c: Call, keepers: FabricKeepers, segment: string | undefined): void | Promise<void> {
  if (segment === undefined) return only(c, ['GET'], () => sendJson(c.res, 200, keepers.view(), c.tid));
  if (c.method !== 'PUT' && c.method !== 'DELETE') throw WhiskHttpError.methodNotAllowed(['PUT', 'DELETE']);
  const pid = keepers.pidOf(segment);
  if (pid === undefined) throw WhiskHttpError.badRequest(`not a keeper's process id: '${segment}'`);
  c.req.resume();
  if (c.method === 'DELETE') keepers.leave(pid);
  else if (!keepers.register(pid)) return sendJson(c.res, 503, { error: 'the fabric is stopping', code: c.tid, ...keepers.view() }, c.tid);
  sendJson(c.res, 200, keepers.view(), c.tid);
}

// ---- actions -------------------------------------------------------------------------------------------------

async function actionRoutes(c: Call, ns: string, rest: string[]): Promise<void> {
  if (rest.length === 0) {
    return only(c, ['GET'], () => {
      c.ctx.auth.resolveNamespace(ns);
      listActions(c);
    });
  }
  if (rest.length > 2) throw WhiskHttpError.noRoute();
  if (!ENTITY_OPS.actions!.includes(c.method)) throw WhiskHttpError.methodNotAllowed(ENTITY_OPS.actions!);
  for (const segment of rest) checkEntityName(segment);
  c.ctx.auth.resolveNamespace(ns, rest.join('/'));
  if (c.method === 'POST') throttle(c);
  // `PKG/NAME`: this cluster has no packages, so the package (and the action in it) does not exist.
  if (rest.length === 2) throw WhiskHttpError.notFound();
  const name = rest[0]!;
  switch (c.method) {
    case 'GET':
      return sendJson(c.res, 200, actionJson(found(c.ctx.actions.get(name)), queryFlag(c.query, 'code', true)), c.tid);
    case 'PUT': {
      const overwrite = queryFlag(c.query, 'overwrite');
      const body = await readJsonBody(c.req, c.ctx.maxBodyBytes);
      return sendJson(c.res, 200, actionJson(c.ctx.actions.put(name, body, overwrite), true), c.tid);
    }
    case 'DELETE':
      return sendJson(c.res, 200, actionJson(c.ctx.actions.delete(name), true), c.tid);
    default:
      return invoke(c, name);
  }
}

function listActions(c: Call): void {
  const { limit, skip } = paging(c.query, 'actions');
  const all = c.ctx.actions.list();
  if (queryFlag(c.query, 'count')) return sendJson(c.res, 200, { actions: Math.max(0, all.length - skip) }, c.tid);
  sendJson(c.res, 200, all.slice(skip, skip + limit).map(actionMetaJson), c.tid);
}

/** The namespace's throttles, charged for an activation request before anything else is looked at. */
function throttle(c: Call): void {
  const refused = c.ctx.throttles.check();
  if (refused !== undefined) throw WhiskHttpError.throttled(refused);
}

async function invoke(c: Call, name: string): Promise<void> {
  const blocking = queryFlag(c.query, 'blocking');
  const resultOnly = queryFlag(c.query, 'result');
  const max = c.ctx.blockingWaitMs;
  const waitMs =
    queryValue(c.query, 'timeout', (v) => {
      const ms = toInt(v);
      if (!(ms > 0 && ms <= max)) throw new Error(WhiskMessages.invalidTimeout(max));
      return ms;
    }) ?? max;
  const body = await readJsonBody(c.req, c.ctx.payloadMaxBytes);
  if (body !== undefined && body !== null && (typeof body !== 'object' || Array.isArray(body))) throw WhiskHttpError.malformed('JSON object expected');
  const action = found(c.ctx.actions.get(name));
  const { activationId, done } = c.ctx.invoker.start(action, (body ?? {}) as Record<string, unknown>, c.tid);
  const header = { [ACTIVATION_HEADER]: activationId };
  if (!blocking) return sendJson(c.res, 202, { activationId }, c.tid, header);

  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<undefined>((resolve) => (timer = setTimeout(resolve, waitMs, undefined)));
  const rec = await Promise.race([done, timedOut]);
  clearTimeout(timer);
  // Not done within the wait: as a blocking invocation the controller stopped waiting for, the id alone.
  if (!rec) return sendJson(c.res, 202, { activationId }, c.tid, header);
  // success 200; application error and action developer error 502; whisk internal error 500.
  const status = rec.statusCode === 0 ? 200 : rec.statusCode === 3 ? 500 : 502;
  sendJson(c.res, status, resultOnly ? rec.response.result : activationJson(rec), c.tid, header);
}

// ---- activations ---------------------------------------------------------------------------------------------

function activationRoutes(c: Call, ns: string, rest: string[]): void {
  if (rest.length === 0) {
    return void only(c, ['GET'], () => {
      c.ctx.auth.resolveNamespace(ns);
      listActivations(c);
    });
  }
  if (rest.length > 2) throw WhiskHttpError.noRoute();
  if (c.method !== 'GET') throw WhiskHttpError.methodNotAllowed(ENTITY_OPS.activations!);
  const id = rest[0]!;
  if (id.length !== 32) throw WhiskHttpError.badRequest(WhiskMessages.activationIdLength(id.length));
  if (!/^[0-9a-fA-F]{32}$/.test(id)) throw WhiskHttpError.badRequest(WhiskMessages.activationIdIllegal);
  c.ctx.auth.resolveNamespace(ns, id);
  const part = rest[1];
  if (part !== undefined && part !== 'result' && part !== 'logs') throw WhiskHttpError.noRoute();
  const rec = found(c.ctx.activations.get(id));
  if (part === undefined) return sendJson(c.res, 200, activationJson(rec), c.tid);
  if (part === 'result') return sendJson(c.res, 200, activationResultJson(rec), c.tid);
  sendJson(c.res, 200, { logs: rec.logs }, c.tid);
}

function listActivations(c: Call): void {
  const q = c.query;
  const { limit, skip } = paging(q, 'activations');
  const count = queryFlag(q, 'count');
  const docs = queryFlag(q, 'docs');
  const name = queryValue(q, 'name', (v) => {
    if (v !== '' && !/^[\w@.&-][\w@ .&-]*(\/[\w@.&-][\w@ .&-]*)?$/.test(v)) throw new Error(WhiskMessages.badNameFilter(v));
    return v === '' ? undefined : v;
  });
  const epoch = (v: string) => {
    if (!/^-?\d+$/.test(v)) throw new Error(WhiskMessages.badEpoch(v));
    return Number(v);
  };
  const filter = { name, since: queryValue(q, 'since', epoch), upto: queryValue(q, 'upto', epoch) };
  if (count && docs) throw WhiskHttpError.badRequest(WhiskMessages.docsNotAllowedWithCount);
  if (count) return sendJson(c.res, 200, { activations: Math.max(0, c.ctx.activations.count(filter) - skip) }, c.tid);
  const recs = c.ctx.activations.list({ ...filter, limit, skip });
  sendJson(c.res, 200, recs.map((r: StoredActivation) => (docs ? activationJson(r) : activationBriefJson(r))), c.tid);
}

// ---- what this platform leaves out ---------------------------------------------------------------------------

/** Packages, triggers, rules: a namespace that has none, and a key that may not create any. */
function absentCollection(c: Call, ns: string, collection: 'packages' | 'triggers' | 'rules', rest: string[]): void {
  if (rest.length === 0) {
    return void only(c, ['GET'], () => {
      c.ctx.auth.resolveNamespace(ns);
      paging(c.query, collection);
      sendJson(c.res, 200, queryFlag(c.query, 'count') ? { [collection]: 0 } : [], c.tid);
    });
  }
  if (rest.length > 1) throw WhiskHttpError.noRoute();
  const ops = ENTITY_OPS[collection]!;
  if (!ops.includes(c.method)) throw WhiskHttpError.methodNotAllowed(ops);
  checkEntityName(rest[0]!);
  const resource = `${c.ctx.auth.resolveNamespace(ns, rest[0])}/${rest[0]}`;
  if (c.method === 'PUT') throw WhiskHttpError.forbidden(resource);
  throw WhiskHttpError.notFound();
}

// ---- helpers -------------------------------------------------------------------------------------------------

/** `limit` 0 … 200 (0 = the maximum, default 30) and `skip` ≥ 0, as the controller's collections read them. */
function paging(q: URLSearchParams, collection: string): { limit: number; skip: number } {
  const skip = queryValue(q, 'skip', (v) => {
    const n = toInt(v);
    if (Number.isNaN(n)) throw new Error(WhiskMessages.argumentNotInteger(collection, v));
    if (n < 0) throw new Error(WhiskMessages.listSkipOutOfRange(collection, n));
    return n;
  });
  const limit = queryValue(q, 'limit', (v) => {
    const n = toInt(v);
    if (Number.isNaN(n)) throw new Error(WhiskMessages.argumentNotInteger(collection, v));
    if (n < 0 || n > MAX_LIST_LIMIT) throw new Error(WhiskMessages.listLimitOutOfRange(collection, n, MAX_LIST_LIMIT));
    return n === 0 ? MAX_LIST_LIMIT : n;
  });
  return { limit: limit ?? 30, skip: skip ?? 0 };
}

function found<T>(v: T | undefined): T {
  if (v === undefined) throw WhiskHttpError.notFound();
  return v;
}
