/**
 * Lambda's Runtime API for one execution environment (see lambda-contract.ts for the routes), served on 127.0.0.1
 * to the environment's runtime process (AWS_LAMBDA_RUNTIME_API). It hands out one invocation at a time, when the
 * runtime asks `next`, and settles it with the runtime's `response` or `error`. The first `next` means the function
 * is loaded; an `init/error` before it means it could not be.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ERROR_TYPE_HEADER, PAYLOAD_LIMITS, RUNTIME_API, type ErrorDocument } from './lambda-contract.js';

/** An invocation on its way to the runtime. */
export interface Delivery {
  requestId: string;
  /** The event, JSON text. */
  payload: string;
  deadlineMs: number;
  invokedFunctionArn: string;
  traceId: string;
  /** Client context, JSON text. */
  clientContext?: string;
  fault?: 'error' | 'timeout';
  /** Called once the event is written to the runtime. */
  onSent?: () => void;
}

/** How the runtime settled an invocation. */
export type Settlement =
  | { kind: 'response'; payload: string }
  | { kind: 'error'; document: ErrorDocument; payload: string }
  | { kind: 'too large'; size: number };

interface Current {
  delivery: Delivery;
  resolve: (s: Settlement) => void;
  reject: (e: Error) => void;
  sent: boolean;
}

export interface RuntimeApiEvents {
  /** The runtime asked for its first invocation: its init is done. */
  initialised(): void;
  /** The runtime posted an init error. */
  initFailed(document: ErrorDocument, payload: string): void;
}

const OK = JSON.stringify({ status: 'OK' });

export class RuntimeApi {
  private readonly server: http.Server;
  private waiting: http.ServerResponse | undefined;
  private current: Current | undefined;
  private initialised = false;
  private closed = false;
  /** Waiting for the runtime's next poll (see polling()). */
  private pollWaiters: Array<() => void> = [];
  readonly listening: Promise<number>;

  constructor(private readonly events: RuntimeApiEvents) {
    // A long poll on `next` may wait for minutes: no request timeout, and idle keep-alive sockets stay open.
    this.server = http.createServer({ requestTimeout: 0 }, (req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 0;
    this.listening = new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => resolve((this.server.address() as AddressInfo).port));
    });
    this.listening.catch(() => {});
  }

  /** Hands the invocation to the runtime (now, or when it next asks); settles when the runtime answers it. */
  deliver(delivery: Delivery): Promise<Settlement> {
    if (this.closed) return Promise.reject(new Error('the Runtime API is closed'));
    if (this.current) return Promise.reject(new Error(`the environment is busy with invocation ${this.current.delivery.requestId}`));
    return new Promise((resolve, reject) => {
      this.current = { delivery, resolve, reject, sent: false };
      if (this.waiting) {
        const res = this.waiting;
        this.waiting = undefined;
        this.send(res);
      }
    });
  }

  /**
   * Resolves once the runtime polls `next` with nothing under way — it is ready for another invocation, which is
   * when Lambda gives it one — or the API is closed (the runtime died).
   */
  polling(): Promise<void> {
    if (this.closed || (this.waiting && !this.current)) return Promise.resolve();
    return new Promise((resolve) => this.pollWaiters.push(resolve));
  }

  /** Fails the invocation under way (the runtime died) and stops serving. */
  close(reason: string): Promise<void> {
    this.closed = true;
    this.wakePollers();
    const c = this.current;
    this.current = undefined;
    c?.reject(new Error(reason));
    const done = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    return done;
  }

  private send(res: http.ServerResponse): void {
    const c = this.current!;
    const d = c.delivery;
    const headers: Record<string, string | number> = {
      'Content-Type': 'application/json',
      'Content-Length': Buffer.byteLength(d.payload),
      'Lambda-Runtime-Aws-Request-Id': d.requestId,
      'Lambda-Runtime-Deadline-Ms': String(d.deadlineMs),
      'Lambda-Runtime-Invoked-Function-Arn': d.invokedFunctionArn,
      'Lambda-Runtime-Trace-Id': d.traceId,
    };
    if (d.clientContext !== undefined) headers['Lambda-Runtime-Client-Context'] = d.clientContext;
    if (d.fault) headers['Lambda-Runtime-Fedkeeper-Fault'] = d.fault;
    c.sent = true;
    res.writeHead(200, headers);
    if (d.onSent) res.once('finish', d.onSent);
    res.end(d.payload);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = req.url ?? '';
    if (req.method === 'GET' && url === `${RUNTIME_API}/invocation/next`) return this.next(res);
    if (req.method === 'POST' && url === `${RUNTIME_API}/init/error`) return this.initError(req, res);
    const m = /^\/2018-06-01\/runtime\/invocation\/([^/]+)\/(response|error)$/.exec(url);
    if (req.method !== 'POST' || !m) {
      req.resume();
      return reply(res, 404, { errorMessage: `no route ${req.method} ${url}`, errorType: 'NotFound' });
    }
    const c = this.current;
    if (!c || !c.sent || c.delivery.requestId !== decodeURIComponent(m[1]!)) {
      req.resume();
      return reply(res, 400, { errorMessage: 'Invalid request ID', errorType: 'InvalidRequestID' });
    }
    const body = await readBody(req, PAYLOAD_LIMITS.response);
    if (this.current !== c) return reply(res, 403, { errorMessage: 'Invalid state transition', errorType: 'InvalidStateTransition' });
    this.current = undefined;
    if (body.tooLarge) {
      reply(res, 413, { errorMessage: `Exceeded maximum allowed payload size (${PAYLOAD_LIMITS.response} bytes).`, errorType: 'RequestEntityTooLarge' });
      return c.resolve({ kind: 'too large', size: body.size });
    }
    reply(res, 202, undefined);
    if (m[2] === 'response') return c.resolve({ kind: 'response', payload: body.text });
    const document = errorDocument(body.text, req.headers[ERROR_TYPE_HEADER]);
    c.resolve({ kind: 'error', document, payload: documentText(body.text, document) });
  }

  private next(res: http.ServerResponse): void {
    if (!this.initialised) {
      this.initialised = true;
      this.events.initialised();
    }
    if (this.current && !this.current.sent) return this.send(res);
    this.waiting?.destroy(); // one runtime, one poll: a newer one replaces it
    this.waiting = res;
    if (!this.current) this.wakePollers();
  }

  private wakePollers(): void {
    const w = this.pollWaiters;
    this.pollWaiters = [];
    for (const f of w) f();
  }

  private async initError(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const body = await readBody(req, PAYLOAD_LIMITS.response);
    if (this.initialised) return reply(res, 403, { errorMessage: 'Invalid state transition', errorType: 'InvalidStateTransition' });
    reply(res, 202, undefined);
    const document = errorDocument(body.text, req.headers[ERROR_TYPE_HEADER]);
    this.events.initFailed(document, documentText(body.text, document));
  }
}

function reply(res: http.ServerResponse, status: number, body: unknown): void {
  const text = body === undefined ? OK : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

async function readBody(req: http.IncomingMessage, max: number): Promise<{ text: string; size: number; tooLarge: boolean }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size <= max) chunks.push(chunk);
  }
  return { text: size <= max ? Buffer.concat(chunks).toString('utf8') : '', size, tooLarge: size > max };
}

/** The runtime's error document, or one built from what it sent (Lambda's words for an unreadable one). */
function errorDocument(text: string, typeHeader: string | string[] | undefined): ErrorDocument {
  const type = (Array.isArray(typeHeader) ? typeHeader[0] : typeHeader) || undefined;
  try {
    const o = JSON.parse(text) as Partial<ErrorDocument> | null;
    if (o && typeof o === 'object' && typeof o.errorMessage === 'string') {
      const doc: ErrorDocument = { errorType: typeof o.errorType === 'string' ? o.errorType : (type ?? 'Runtime.Unknown'), errorMessage: o.errorMessage };
      if (Array.isArray(o.trace)) doc.trace = o.trace.map(String);
      return doc;
    }
  } catch {
    // not JSON: below
  }
  return { errorType: type ?? 'Runtime.Unknown', errorMessage: 'Unknown application error occurred' };
}

/** The runtime's own text when it was a document, else the built one's. */
function documentText(text: string, doc: ErrorDocument): string {
  try {
    const o = JSON.parse(text) as { errorMessage?: unknown } | null;
    if (o && typeof o === 'object' && typeof o.errorMessage === 'string') return text;
  } catch {
    // fall through
  }
  return JSON.stringify(doc);
}
