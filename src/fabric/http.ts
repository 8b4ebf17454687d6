/**
 * HTTP plumbing of the local OpenWhisk API: bounded JSON bodies, JSON replies carrying the transaction id, query
 * values parsed as the API documents them.
 */
import { randomFillSync } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { WhiskHttpError } from './errors.js';

/** Random bytes drawn ahead, 16 at a time for ids: one draw per 256 ids instead of one per id (a hot path). */
const idPool = Buffer.alloc(4096);
let idPoolAt = idPool.length;

/** 32 lowercase hex characters from the pool (transaction and activation ids). */
export function randomHexId(): string {
  if (idPoolAt + 16 > idPool.length) {
    randomFillSync(idPool);
    idPoolAt = 0;
  }
  const id = idPool.toString('hex', idPoolAt, idPoolAt + 16);
  idPoolAt += 16;
  return id;
}

/** A transaction id as OpenWhisk writes it in `code` and `X-Request-ID`: 32 alphanumerics. */
export function newTransactionId(): string {
  return randomHexId();
}

/** The parsed JSON body, or undefined when there is none. 413 past `maxBytes`, 400 when it is not JSON. */
export async function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > maxBytes) {
    req.resume();
    throw WhiskHttpError.tooLarge(declared, maxBytes);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) {
      req.resume();
      throw WhiskHttpError.tooLarge(size, maxBytes);
    }
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw WhiskHttpError.malformed(e instanceof Error ? e.message : 'body is not JSON');
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, transactionId: string, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
    'X-Request-ID': transactionId,
  });
  res.end(text);
}

export function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * A boolean query parameter as the controller's HTTP server reads one (true/yes/on/1, false/no/off/0, any case);
 * absent is `fallback`, anything else a 400.
 */
export function queryFlag(q: URLSearchParams, name: string, fallback = false): boolean {
  const v = q.get(name);
  if (v === null) return fallback;
  const t = v.toLowerCase();
  if (['true', 'yes', 'on', '1'].includes(t)) return true;
  if (['false', 'no', 'off', '0'].includes(t)) return false;
  throw WhiskHttpError.malformedQuery(name, `'${v}' is not a valid Boolean value`);
}

/** An integer query value read by `read` (which throws the controller's message); undefined when absent. */
export function queryValue<T>(q: URLSearchParams, name: string, read: (v: string) => T): T | undefined {
  const v = q.get(name);
  if (v === null) return undefined;
  try {
    return read(v);
  } catch (e) {
    throw WhiskHttpError.malformedQuery(name, (e as Error).message);
  }
}

/** Java's `String.toInt`: an optional sign and decimal digits within 32 bits; else NaN. */
export function toInt(v: string): number {
  if (!/^[+-]?\d+$/.test(v)) return NaN;
  const n = Number(v);
  return n >= -(2 ** 31) && n < 2 ** 31 ? n : NaN;
}
