/**
 * The keeper's store endpoint: serves a FunctionStore over HTTP on this machine, for FL functions that cannot open
 * the store themselves (a SQLite file needs a native addon, and a function package has none). One bearer token per
 * server, required on every request. The wire format is defined in http-store.ts, the client of this server.
 * Nothing is logged here (the token least of all).
 */
import { randomBytes, createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WeightCodecError, decodeWeights, encodeWeights } from '../fl/codec.js';
import {
  ChunkReader,
  END_OF_RECORDS,
  NOT_FOUND_CODE,
  STORE_API_PREFIX,
  encodeUpdateRecord,
  encodeUpdateRecordBlob,
  uint32FromLE,
  uint32ToLE,
} from './http-store.js';
import type { ClientUpdate, EncodedClientUpdate, FunctionStore } from './types.js';

export interface StoreServerOptions {
  /** Default 127.0.0.1: the endpoint is for functions on this machine. */
  host?: string;
  /** Default 0 (any free port). */
  port?: number;
  /** Largest request body accepted (default 256 MiB); a larger one is answered 413. */
  maxBodyBytes?: number;
}

export interface StoreServer {
  /** Base URL, e.g. http://127.0.0.1:41234 (what goes into FunctionStoreSpec.url). */
  url: string;
  /** The bearer token (FunctionStoreSpec.token). */
  token: string;
  /** Stops listening, answers requests that arrive meanwhile with 503, and ends keep-alive sockets. */
  close(): Promise<void>;
}

const DEFAULT_MAX_BODY = 256 * 1024 * 1024;
/** After this long, close() cuts connections still busy. */
const CLOSE_GRACE_MS = 2000;

/** An answer other than success: status + one-line message (+ a code for machine use). */
class HttpFailure extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

export async function startStoreServer(store: FunctionStore, opts: StoreServerOptions = {}): Promise<StoreServer> {
  const host = opts.host ?? '127.0.0.1';
  const maxBodyBytes = opts.maxBodyBytes ?? DEFAULT_MAX_BODY;
  const token = randomBytes(32).toString('base64url');
  const tokenDigest = sha256(`Bearer ${token}`);
  const expectedHeader = Buffer.from(`Bearer ${token}`, 'latin1');
  /**
   * Encoded global weights last served, by run and round (oldest first). Global weights change only through this
   * endpoint's PUT (the functions write them here), which drops the entry.
   */
  const globalCache = new Map<string, Uint8Array>();
  let closing = false;

  const server = http.createServer({ maxHeaderSize: 256 * 1024 }, (req, res) => {
    if (closing) res.setHeader('connection', 'close');
    handle(req, res).catch((e: unknown) => fail(req, res, e));
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (closing) throw new HttpFailure(503, 'the store endpoint is shutting down');
    const given = req.headers.authorization ?? '';
    // The right header is compared as it is (one per request, thousands a round); anything else through its digest.
    const right = given.length === expectedHeader.length ? timingSafeEqual(Buffer.from(given, 'latin1'), expectedHeader) : timingSafeEqual(sha256(given), tokenDigest);
    if (!right) {
      res.setHeader('WWW-Authenticate', 'Bearer');
      throw new HttpFailure(401, 'missing or invalid bearer token');
    }
    const url = new URL(req.url ?? '/', 'http://store');
    const parts = url.pathname.startsWith(`${STORE_API_PREFIX}/`) ? url.pathname.slice(STORE_API_PREFIX.length + 1).split('/') : [];
    const method = req.method ?? 'GET';

    // runs/{runId}/global/{round}
    if (parts.length === 4 && parts[0] === 'runs' && parts[2] === 'global') {
      const runId = runIdParam(parts[1]!);
      const round = indexParam('round', parts[3]!);
      const key = `${runId}\u0000${round}`;
      if (method === 'GET') {
        // Every client of a round asks for the same weights: encoded once, served from memory after.
        let bytes = globalCache.get(key);
        if (!bytes) {
          const w = await storeCall(() => store.getGlobalWeights(runId, round));
          if (!w) throw new HttpFailure(404, `no global weights for run ${runId} round ${round}`, NOT_FOUND_CODE);
          bytes = encodeWeights(w);
          globalCache.set(key, bytes);
          if (globalCache.size > GLOBAL_CACHE_ENTRIES) globalCache.delete(globalCache.keys().next().value!);
        }
        return sendBinary(res, [bytes]);
      }
      if (method === 'PUT') {
        const w = decodeOr400(await readBody(req, maxBodyBytes));
        globalCache.delete(key);
        await storeCall(() => store.putGlobalWeights(runId, round, w));
        globalCache.delete(key);
        return sendNoContent(res);
      }
      throw methodNotAllowed(res, 'GET, PUT');
    }

    // runs/{runId}/partitions/{clientId}
    if (parts.length === 4 && parts[0] === 'runs' && parts[2] === 'partitions') {
      const runId = runIdParam(parts[1]!);
      const clientId = indexParam('clientId', parts[3]!);
      if (method === 'GET') {
        const p = await storeCall(() => store.getPartition(runId, clientId));
        if (!p) throw new HttpFailure(404, `no partition for run ${runId} client ${clientId}`, NOT_FOUND_CODE);
        return sendBinary(res, [uint32ToLE(p)]);
      }
      if (method === 'PUT') {
        const body = await readBody(req, maxBodyBytes);
        if (body.length % 4 !== 0) throw new HttpFailure(400, `partition body has ${body.length} bytes, not a multiple of 4`);
        const indices = uint32FromLE(body);
        await storeCall(() => store.putPartition(runId, clientId, indices));
        return sendNoContent(res);
      }
      throw methodNotAllowed(res, 'GET, PUT');
    }

    // runs/{runId}/partition-sizes?clients=…
    if (parts.length === 3 && parts[0] === 'runs' && parts[2] === 'partition-sizes') {
      const runId = runIdParam(parts[1]!);
      if (method !== 'GET') throw methodNotAllowed(res, 'GET');
      const ids = clientsParam(url, true)!;
      const sizes = await storeCall(() => store.partitionSizes(runId, ids));
      const body = JSON.stringify({ sizes: [...sizes].sort((a, b) => a[0] - b[0]) });
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }

    // runs/{runId}/rounds/{round}/update-stream?clients=…
    if (parts.length === 5 && parts[0] === 'runs' && parts[2] === 'rounds' && parts[4] === 'update-stream') {
      const runId = runIdParam(parts[1]!);
      const round = indexParam('round', parts[3]!);
      if (method !== 'GET') throw methodNotAllowed(res, 'GET');
      const ids = clientsParam(url, true)!;
      return streamUpdates(res, store.streamEncodedClientUpdates ? store.streamEncodedClientUpdates(runId, round, ids) : encodedAsGiven(store.streamClientUpdates(runId, round, ids)));
    }

    // runs/{runId}/rounds/{round}/updates[/{clientId}]
    if ((parts.length === 5 || parts.length === 6) && parts[0] === 'runs' && parts[2] === 'rounds' && parts[4] === 'updates') {
      const runId = runIdParam(parts[1]!);
      const round = indexParam('round', parts[3]!);
      if (parts.length === 6) {
        const clientId = indexParam('clientId', parts[5]!);
        if (method !== 'PUT') throw methodNotAllowed(res, 'PUT');
        const update = await readUpdateBody(await readBody(req, maxBodyBytes));
        if (update.runId !== runId || update.round !== round || update.clientId !== clientId) {
          throw new HttpFailure(400, 'update record names another run, round or client than the path');
        }
        // A store that keeps blobs takes the checked blob as it came; any other gets the weights decoded.
        if (store.putEncodedClientUpdate) await storeCall(() => store.putEncodedClientUpdate!(update));
        else {
          const { blob, ...info } = update;
          const weights = decodeOr400(blob);
          await storeCall(() => store.putClientUpdate({ ...info, weights }));
        }
        return sendNoContent(res);
      }
      if (method !== 'GET') throw methodNotAllowed(res, 'GET');
      const ids = clientsParam(url, false);
      const updates = await storeCall(() => store.getClientUpdates(runId, round, ids));
      return sendUpdates(res, updates);
    }

    throw new HttpFailure(404, `no route ${method} ${url.pathname.slice(0, 200)}`, 'no_route');
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const urlHost = host.includes(':') ? `[${host}]` : host;

  let closed: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${port}`,
    token,
    close() {
      closed ??= new Promise<void>((resolve) => {
        closing = true;
        const cut = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS);
        cut.unref();
        server.close(() => {
          clearTimeout(cut);
          resolve();
        });
        server.closeIdleConnections();
      });
      return closed;
    },
  };
}

/** Global weights kept encoded in memory: the current round's and the previous one's, a few runs' worth. */
const GLOBAL_CACHE_ENTRIES = 4;

function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

function runIdParam(raw: string): string {
  let v: string;
  try {
    v = decodeURIComponent(raw);
  } catch {
    throw new HttpFailure(400, 'runId is not valid percent-encoding');
  }
  if (v.length === 0 || v.length > 256) throw new HttpFailure(400, 'runId must have 1 to 256 characters');
  return v;
}

function indexParam(name: string, raw: string): number {
  const v = /^\d{1,15}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(v)) throw new HttpFailure(400, `${name} must be an integer >= 0, got ${JSON.stringify(raw.slice(0, 40))}`);
  return v;
}

/** `?clients=3,0,7` as ids ('' is none); undefined when absent and not required (absent and required: 400). */
function clientsParam(url: URL, required: boolean): number[] | undefined {
  const clients = url.searchParams.get('clients');
  if (clients === null) {
    if (required) throw new HttpFailure(400, 'the clients query parameter is required (clients=0,3,7)');
    return undefined;
  }
  return clients === '' ? [] : clients.split(',').map((s) => indexParam('clients', s));
}

function decodeOr400(body: Uint8Array) {
  try {
    return decodeWeights(body);
  } catch (e) {
    if (e instanceof WeightCodecError) throw new HttpFailure(400, e.message);
    throw e;
  }
}

async function readUpdateBody(body: Uint8Array): Promise<EncodedClientUpdate> {
  let done = false;
  const reader = new ChunkReader(async () => {
    if (done) return undefined;
    done = true;
    return body;
  });
  try {
    const u = await reader.readEncodedUpdate();
    if (!(await reader.atEnd())) throw new Error('bytes after the update record');
    return u;
  } catch (e) {
    throw new HttpFailure(400, `bad update record: ${oneLine(e)}`);
  }
}

/** Runs a store call; its failure becomes a 500 with the store's one-line message (no stack). */
async function storeCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw new HttpFailure(500, `store error: ${oneLine(e)}`);
  }
}

/** The whole body, or 413 once it passes `max` (the rest is drained first, so the client sees the answer). */
function readBody(req: http.IncomingMessage, max: number): Promise<Uint8Array> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > max) return Promise.reject(tooLarge(declared, max));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) {
        over = true;
        chunks.length = 0;
      } else chunks.push(c);
    });
    req.on('end', () => (over ? reject(tooLarge(size, max)) : resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size))));
    req.on('error', reject);
  });
}

function tooLarge(got: number, max: number): HttpFailure {
  return new HttpFailure(413, `request body of ${got} bytes is over the limit of ${max} bytes`);
}

function methodNotAllowed(res: http.ServerResponse, allow: string): HttpFailure {
  res.setHeader('Allow', allow);
  return new HttpFailure(405, `method not allowed; use ${allow}`);
}

function sendNoContent(res: http.ServerResponse): void {
  res.writeHead(204).end();
}

function sendBinary(res: http.ServerResponse, parts: Uint8Array[]): void {
  let n = 0;
  for (const p of parts) n += p.length;
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n });
  for (const p of parts) res.write(p);
  res.end();
}

/** Streams update records one at a time, honouring back-pressure, then the end mark. */
async function sendUpdates(res: http.ServerResponse, updates: ClientUpdate[]): Promise<void> {
  res.writeHead(200, { 'content-type': 'application/octet-stream' });
  try {
    for (const u of updates) {
      if (res.destroyed) return;
      const [head, blob] = encodeUpdateRecord(u);
      res.write(head);
      if (!res.write(blob)) await drained(res);
    }
    res.end(END_OF_RECORDS);
  } catch {
    res.destroy(); // headers are out: cutting the stream short is how the client learns (no end mark)
  }
}

/**
 * Streams update records as the store hands them out: the next update is asked of the store only once the socket
 * took the previous one (a write that returns false waits for 'drain'), so a slow reader holds the server at a
 * socket's worth of buffers plus the store's read-ahead. The first update is read before the status goes out, so a
 * store that fails at once answers 500 {error}; a failure after that cuts the answer short (no end mark). When the
 * client goes away the store's stream is ended (return()), which stops its reads.
 */
async function streamUpdates(res: http.ServerResponse, updates: AsyncIterable<EncodedClientUpdate>): Promise<void> {
  const it = updates[Symbol.asyncIterator]();
  let next = await storeCall(() => it.next());
  let gone = false;
  res.once('close', () => (gone = true));
  res.writeHead(200, { 'content-type': 'application/octet-stream' });
  try {
    while (!next.done) {
      const { blob: stored, ...info } = next.value;
      const [head, blob] = encodeUpdateRecordBlob(info, stored);
      res.write(head);
      if (!res.write(blob)) await drained(res);
      if (gone || res.destroyed) return;
      next = await it.next();
    }
    res.end(END_OF_RECORDS);
  } catch {
    res.destroy(); // headers are out: cutting the stream short is how the client learns (no end mark)
  } finally {
    if (!next.done) await it.return?.().catch(() => undefined);
  }
}

/** Updates with decoded weights, each encoded as it is handed out (a store without streamEncodedClientUpdates). */
async function* encodedAsGiven(updates: AsyncIterable<ClientUpdate>): AsyncGenerator<EncodedClientUpdate> {
  for await (const { weights, ...info } of updates) yield { ...info, blob: encodeWeights(weights) };
}

function drained(res: http.ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/** Answers a failure as JSON {error[, code]}, after draining any unread request body so the client sees it. */
function fail(req: http.IncomingMessage, res: http.ServerResponse, e: unknown): void {
  const f = e instanceof HttpFailure ? e : new HttpFailure(500, `internal error: ${oneLine(e)}`);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(f.code ? { error: f.message, code: f.code } : { error: f.message });
  const send = () => {
    if (res.headersSent || res.destroyed) return;
    res.writeHead(f.status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
  if (req.complete || req.destroyed) send();
  else {
    req.on('end', send);
    req.on('error', () => res.destroy());
    req.resume();
  }
}

function oneLine(e: unknown): string {
  const s = e instanceof Error ? e.message || e.name : String(e);
  return s.replace(/\s+/g, ' ').trim().slice(0, 500);
}
