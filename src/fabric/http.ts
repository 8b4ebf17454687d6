/**
 * HTTP plumbing of the local OpenWhisk API: bounded JSON bodies, JSON replies carrying the transaction id, query
 * values parsed as the API documents them.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { WhiskHttpError } from './errors.js';

/** A transaction id as OpenWhisk writes it in `code` and `X-Request-ID`: 32 alphanumerics. */
export function newTransactionId(): string {
  return randomBytes(16).toString('hex');
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
    throw WhiskHttpError.badRequest(e instanceof Error ? e.message : 'body is not JSON');
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, transactionId: string): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
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

/** `true`/`false` query flags; anything else (or absent) is `fallback`. */
export function queryFlag(q: URLSearchParams, name: string, fallback = false): boolean {
  const v = q.get(name);
  if (v === 'true') return true;
  if (v === 'false') return false;
  return fallback;
}

/** A non-negative integer query value; 400 when present and not one. */
export function queryInt(q: URLSearchParams, name: string): number | undefined {
  const v = q.get(name);
  if (v === null || v === '') return undefined;
  if (!/^\d+$/.test(v)) throw WhiskHttpError.badRequest(`query parameter '${name}' must be a non-negative integer, got '${v}'`);
  return Number(v);
}
