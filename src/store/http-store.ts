/**
 * FunctionStore over the keeper's store endpoint (store/store-server.ts): what an FL function uses when the store is
 * a file on the keeper's machine. Global fetch only, no dependency: this file is bundled into function packages, so
 * it imports node builtins, fl/ and store/update-stream.ts (which imports nothing) and nothing else. It also
 * defines the wire format, which the server imports.
 *
 * Wire format (all under `${url}/v1`, every request with `Authorization: Bearer <token>`):
 *   GET|PUT /runs/{runId}/global/{round}          body: fl/codec weight blob (application/octet-stream)
 *   GET|PUT /runs/{runId}/partitions/{clientId}   body: the indices as raw uint32 little-endian
 *   GET     /runs/{runId}/partition-sizes?clients=0,3,7   body: JSON {"sizes": [[clientId, count], …]}, ascending
 *           client id, the clients without a partition left out
 *   PUT     /runs/{runId}/rounds/{round}/updates/{clientId}   body: one update record (below)
 *   GET     /runs/{runId}/rounds/{round}/updates[?clients=3,0,7]   body: update records, then u32 0 (end mark)
 *   GET     /runs/{runId}/rounds/{round}/update-stream?clients=0,3,7   body: the same, in ascending client id, each
 *           record written as the server reads it from its store, the next one only once the socket takes more
 *           (back-pressure), so neither side holds the round; a store failure after the first record cuts the
 *           answer short (no end mark), and the client asks again for the clients after the last record it got
 * An update record is `u32 metaLen | meta JSON (UTF-8) | u32 blobLen | fl/codec blob`, all integers little-endian;
 * meta is {runId, round, clientId, numSamples, metrics, activationId?, attempt?} with non-finite metrics written as
 * the strings "NaN", "Infinity", "-Infinity". Writes answer 204. A missing item answers 404 {error, code:
 * 'not_found'} (→ undefined here); other errors answer {error} with 400, 401, 404, 405, 413, 500 or 503.
 */
import { checkWeightsBlob, decodeWeights, encodeWeights } from '../fl/codec.js';
import type { WeightVector } from '../fl/weights.js';
import type { ClientUpdate, FunctionStore } from './types.js';
import { sortedUniqueIds } from './update-stream.js';

export const STORE_API_PREFIX = '/v1';
/** The `code` of a 404 body that means "no such item" (any other 404 is an error: wrong URL, old server …). */
export const NOT_FOUND_CODE = 'not_found';
const MAX_META_BYTES = 16 * 1024 * 1024;

/** What went wrong talking to the store endpoint; `status` is the HTTP status when there was an answer. */
export class StoreEndpointError extends Error {
  override name = 'StoreEndpointError';
  constructor(
    message: string,
    readonly kind: 'http' | 'network' | 'protocol' | 'closed',
    readonly status?: number,
  ) {
    super(message);
  }
}

export interface HttpStoreOptions {
  /** Retries after the first attempt, on network errors, timeouts and 503 (default 3). */
  retries?: number;
  /** First backoff delay; doubles per retry (default 100 ms). */
  backoffMs?: number;
  /** Limit for one attempt, from request to the last byte of the answer (default 120 s). */
  timeoutMs?: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Wire format helpers (shared with store-server.ts)

export type UpdateMeta = Omit<ClientUpdate, 'weights'>;

/** One update record: u32 metaLen | meta JSON | u32 blobLen | codec blob. */
export function encodeUpdateRecord(u: ClientUpdate): Uint8Array[] {
  const { weights, ...info } = u;
  return encodeUpdateRecordBlob(info, encodeWeights(weights));
}

/** The same record from an update whose weights are an fl/codec blob already (sent as it is, no copy). */
export function encodeUpdateRecordBlob(u: Omit<ClientUpdate, 'weights'>, blob: Uint8Array): Uint8Array[] {
  const meta: Record<string, unknown> = {
    runId: u.runId,
    round: u.round,
    clientId: u.clientId,
    numSamples: u.numSamples,
    metrics: Object.fromEntries(Object.entries(u.metrics).map(([k, v]) => [k, wireNumber(v)])),
  };
  if (u.activationId !== undefined) meta['activationId'] = u.activationId;
  if (u.attempt !== undefined) meta['attempt'] = u.attempt;
  const json = new TextEncoder().encode(JSON.stringify(meta));
  const head = new Uint8Array(4 + json.length + 4);
  const view = new DataView(head.buffer);
  view.setUint32(0, json.length, true);
  head.set(json, 4);
  view.setUint32(4 + json.length, blob.length, true);
  return [head, blob];
}

export const END_OF_RECORDS = new Uint8Array(4);

/** Validates a record's meta (throws a one-line Error on a bad one); non-finite metrics come back as numbers. */
export function parseUpdateMeta(bytes: Uint8Array): UpdateMeta {
  let m: Record<string, unknown>;
  try {
    m = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as Record<string, unknown>;
  } catch {
    throw new Error('update meta is not valid JSON');
  }
  if (typeof m !== 'object' || m === null || Array.isArray(m)) throw new Error('update meta is not an object');
  const { runId, round, clientId, numSamples, metrics, activationId, attempt } = m;
  if (typeof runId !== 'string') throw new Error('update meta: runId must be a string');
  if (!isIndex(round)) throw new Error('update meta: round must be an integer >= 0');
  if (!isIndex(clientId)) throw new Error('update meta: clientId must be an integer >= 0');
  if (typeof numSamples !== 'number' || !(numSamples >= 0)) throw new Error('update meta: numSamples must be a number >= 0');
  if (typeof metrics !== 'object' || metrics === null || Array.isArray(metrics)) throw new Error('update meta: metrics must be an object');
  const parsedMetrics: Record<string, number> = Object.fromEntries(
    Object.entries(metrics).map(([k, v]) => {
      const n = fromWireNumber(v);
      if (n === undefined) throw new Error(`update meta: metric ${JSON.stringify(k).slice(0, 80)} is not a number`);
      return [k, n];
    }),
  );
  const meta: UpdateMeta = { runId, round, clientId, numSamples, metrics: parsedMetrics };
  if (activationId !== undefined && activationId !== null) {
    if (typeof activationId !== 'string') throw new Error('update meta: activationId must be a string');
    meta.activationId = activationId;
  }
  if (attempt !== undefined && attempt !== null) {
    if (!isIndex(attempt)) throw new Error('update meta: attempt must be an integer >= 0');
    meta.attempt = attempt;
  }
  return meta;
}

function isIndex(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function wireNumber(v: unknown): unknown {
  // "NaN", "Infinity", "-Infinity": JSON has no such numbers. Anything else (a null a store made of NaN) goes as is.
  return typeof v === 'number' && !Number.isFinite(v) ? String(v) : v;
}

function fromWireNumber(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (v === null || v === 'NaN') return NaN; // null: what JSON.stringify makes of NaN
  if (v === 'Infinity') return Infinity;
  if (v === '-Infinity') return -Infinity;
  return undefined;
}

/** Uint32Array → little-endian bytes (a view, no copy, on little-endian hosts). */
export function uint32ToLE(a: Uint32Array): Uint8Array {
  if (littleEndian) return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const out = new Uint8Array(a.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < a.length; i++) view.setUint32(i * 4, a[i]!, true);
  return out;
}

/** Little-endian bytes → a fresh, aligned Uint32Array (throws when the length is not a multiple of 4). */
export function uint32FromLE(b: Uint8Array): Uint32Array {
  if (b.length % 4 !== 0) throw new Error(`partition has ${b.length} bytes, not a multiple of 4`);
  const out = new Uint32Array(b.length / 4);
  if (littleEndian) new Uint8Array(out.buffer).set(b);
  else {
    const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
    for (let i = 0; i < out.length; i++) out[i] = view.getUint32(i * 4, true);
  }
  return out;
}

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Reads exact byte counts from a stream of chunks, copying only when a read spans chunks. */
export class ChunkReader {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private done = false;
  constructor(private readonly next: () => Promise<Uint8Array | undefined>) {}

  /** True when the stream ended and nothing is left. */
  async atEnd(): Promise<boolean> {
    await this.fill(1);
    return this.buffered === 0;
  }

  async read(n: number): Promise<Uint8Array> {
    await this.fill(n);
    if (this.buffered < n) throw new Error(`stream ended ${n - this.buffered} bytes early`);
    this.buffered -= n;
    const first = this.chunks[0]!;
    if (first.length >= n) {
      this.chunks[0] = first.subarray(n);
      if (this.chunks[0].length === 0) this.chunks.shift();
      return first.subarray(0, n);
    }
    const out = new Uint8Array(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0]!;
      const take = Math.min(c.length, n - off);
      out.set(c.subarray(0, take), off);
      off += take;
      if (take === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(take);
    }
    return out;
  }

  async readUint32(): Promise<number> {
    const b = await this.read(4);
    return new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true);
  }

  /** One update record (meta validated, weights decoded). */
  async readUpdate(metaLen?: number): Promise<ClientUpdate> {
    const { blob, ...meta } = await this.readEncodedUpdate(metaLen);
    return { ...meta, weights: decodeWeights(blob) };
  }

  /** One update record, its weights left as the blob (checked, not copied unless it spans chunks). */
  async readEncodedUpdate(metaLen?: number): Promise<UpdateMeta & { blob: Uint8Array }> {
    const len = metaLen ?? (await this.readUint32());
    if (len === 0 || len > MAX_META_BYTES) throw new Error(`bad update record (meta length ${len})`);
    const meta = parseUpdateMeta(await this.read(len));
    const blobLen = await this.readUint32();
    const blob = await this.read(blobLen);
    checkWeightsBlob(blob);
    return { ...meta, blob };
  }

  private async fill(n: number): Promise<void> {
    while (this.buffered < n && !this.done) {
      const c = await this.next();
      if (c === undefined) this.done = true;
      else if (c.length > 0) {
        this.chunks.push(c);
        this.buffered += c.length;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The client

const RETRYABLE_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN',
  'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CLOSED',
]);

class AttemptTimeout extends Error {}

/** An error worth another attempt; `detail` is a short reason for the final message. */
class Retryable extends Error {
  constructor(readonly detail: string, readonly status?: number) {
    super(detail);
  }
}

export class HttpStore implements FunctionStore {
  readonly kind = 'http';
  readonly url: string;
  private readonly token: string;
  private readonly retries: number;
  private readonly backoffMs: number;
  private readonly timeoutMs: number;
  private closed = false;

  constructor(spec: { url: string; token: string }, options: HttpStoreOptions = {}) {
    let u: URL;
    try {
      u = new URL(spec.url);
    } catch {
      throw new StoreEndpointError(`store endpoint URL ${JSON.stringify(String(spec.url).slice(0, 200))} is not a URL`, 'protocol');
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      throw new StoreEndpointError(`store endpoint URL ${u.origin} must be http(s)`, 'protocol');
    }
    if (typeof spec.token !== 'string' || spec.token.length === 0) {
      throw new StoreEndpointError(`store endpoint ${u.origin}: no token given`, 'protocol');
    }
    this.url = spec.url.replace(/\/+$/, '');
    this.token = spec.token;
    this.retries = options.retries ?? 3;
    this.backoffMs = options.backoffMs ?? 100;
    this.timeoutMs = options.timeoutMs ?? 120_000;
  }

  async putGlobalWeights(runId: string, round: number, weights: WeightVector): Promise<void> {
    await this.call('PUT', `/runs/${seg(runId)}/global/${round}`, [encodeWeights(weights)], async () => undefined);
  }

  getGlobalWeights(runId: string, round: number): Promise<WeightVector | undefined> {
    return this.call('GET', `/runs/${seg(runId)}/global/${round}`, undefined, async (res) =>
      decodeWeights(new Uint8Array(await res.arrayBuffer())),
    );
  }

  async putClientUpdate(update: ClientUpdate): Promise<void> {
    const { runId, round, clientId } = update;
    await this.call('PUT', `/runs/${seg(runId)}/rounds/${round}/updates/${clientId}`, encodeUpdateRecord(update), async () => undefined);
  }

  async getClientUpdates(runId: string, round: number, clientIds?: readonly number[]): Promise<ClientUpdate[]> {
    const query = clientIds === undefined ? '' : `?clients=${clientIds.join(',')}`;
    const got = await this.call('GET', `/runs/${seg(runId)}/rounds/${round}/updates${query}`, undefined, readUpdates);
    return got ?? [];
  }

  /**
   * One request for the whole stream (update-stream route), read one record at a time as the caller asks for the
   * next update, so the caller's pace is the server's pace. The attempt timeout applies to each wait for bytes, not
   * to the caller's time between updates. An answer cut short is asked again for the clients after the last update
   * handed out (up to `retries` times per stream), so no update is handed out twice.
   */
  streamClientUpdates(runId: string, round: number, clientIds: readonly number[]): AsyncIterable<ClientUpdate> {
    return this.updateStream(runId, round, sortedUniqueIds(clientIds));
  }

  async putPartition(runId: string, clientId: number, indices: Uint32Array): Promise<void> {
    await this.call('PUT', `/runs/${seg(runId)}/partitions/${clientId}`, [uint32ToLE(indices)], async () => undefined);
  }

  getPartition(runId: string, clientId: number): Promise<Uint32Array | undefined> {
    return this.call('GET', `/runs/${seg(runId)}/partitions/${clientId}`, undefined, async (res) =>
      uint32FromLE(new Uint8Array(await res.arrayBuffer())),
    );
  }

  async partitionSizes(runId: string, clientIds: readonly number[]): Promise<Map<number, number>> {
    const ids = sortedUniqueIds(clientIds);
    if (ids.length === 0) return new Map();
    const path = `/runs/${seg(runId)}/partition-sizes?clients=${ids.join(',')}`;
    const got = await this.call('GET', path, undefined, async (res) => parsePartitionSizes(await res.text()));
    if (!got) throw new StoreEndpointError(`store endpoint: GET ${this.url}${STORE_API_PREFIX}${path.split('?')[0]}: answered "not found"`, 'protocol', 404);
    return got;
  }

  /** Cheap: there is no connection of our own to close (fetch's pool unrefs idle sockets). */
  async close(): Promise<void> {
    this.closed = true;
  }

  /**
   * One call with retries. Resolves to `read(res)` on 2xx, undefined on a "no such item" 404, and rejects with a
   * one-line StoreEndpointError otherwise. Every route is idempotent, so a retry after a lost answer is harmless.
   */
  private async call<T>(
    method: 'GET' | 'PUT',
    path: string,
    body: Uint8Array[] | undefined,
    read: (res: Response) => Promise<T>,
  ): Promise<T | undefined> {
    const where = `${method} ${this.url}${STORE_API_PREFIX}${path}`;
    if (this.closed) throw new StoreEndpointError(`store endpoint: ${where}: the HttpStore is closed`, 'closed');
    const payload = body === undefined ? undefined : body.length === 1 ? body[0]! : concat(body);
    let last = '';
    for (let attempt = 0; attempt <= this.retries; attempt++) {
      if (attempt > 0) await sleep(this.backoffMs * 2 ** (attempt - 1) * (0.75 + Math.random() * 0.5));
      try {
        return await this.attempt(method, `${this.url}${STORE_API_PREFIX}${path}`, payload, read);
      } catch (e) {
        if (!(e instanceof Retryable)) {
          if (e instanceof StoreEndpointError) throw new StoreEndpointError(this.redact(`store endpoint: ${where}: ${e.message}`), e.kind, e.status);
          throw new StoreEndpointError(this.redact(`store endpoint: ${where}: ${oneLine(e)}`), 'protocol');
        }
        last = e.detail;
        if (attempt === this.retries) {
          const kind = e.status === undefined ? 'network' : 'http';
          throw new StoreEndpointError(
            this.redact(`store endpoint ${this.url} unreachable after ${attempt + 1} attempts: ${where}: ${last}`),
            kind,
            e.status,
          );
        }
      }
    }
    throw new StoreEndpointError(`store endpoint: ${where}: ${last}`, 'network'); // not reached
  }

  private async attempt<T>(
    method: string,
    url: string,
    payload: Uint8Array | undefined,
    read: (res: Response) => Promise<T>,
  ): Promise<T | undefined> {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(new AttemptTimeout()), this.timeoutMs);
    try {
      const headers: Record<string, string> = { authorization: `Bearer ${this.token}` };
      if (payload !== undefined) headers['content-type'] = 'application/octet-stream';
      const res = await fetch(url, { method, headers, body: payload as RequestInit['body'], signal: ctl.signal });
      if (res.ok) {
        try {
          return await read(res);
        } catch (e) {
          if (isRetryable(e) || ctl.signal.aborted) throw new Retryable(`answer cut short (${networkDetail(e, ctl.signal)})`);
          throw new StoreEndpointError(`bad answer: ${oneLine(e)}`, 'protocol', res.status);
        }
      }
      const text = await res.text().catch(() => '');
      let info: { error?: unknown; code?: unknown } = {};
      try {
        info = JSON.parse(text) as typeof info;
      } catch {
        /* not JSON: use the status alone */
      }
      if (res.status === 404 && info.code === NOT_FOUND_CODE) return undefined;
      const why = typeof info.error === 'string' ? info.error : res.statusText;
      const detail = `HTTP ${res.status}${why ? ` (${oneLine(why).slice(0, 300)})` : ''}`;
      if (res.status === 503) throw new Retryable(detail, 503);
      throw new StoreEndpointError(detail, 'http', res.status);
    } catch (e) {
      if (e instanceof Retryable || e instanceof StoreEndpointError) throw e;
      if (ctl.signal.aborted || isRetryable(e)) throw new Retryable(networkDetail(e, ctl.signal));
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  private async *updateStream(runId: string, round: number, ids: number[]): AsyncGenerator<ClientUpdate> {
    let rest = ids; // the clients not answered yet: all above the last update handed out
    for (let resumed = 0; rest.length > 0; resumed++) {
      const path = `/runs/${seg(runId)}/rounds/${round}/update-stream?clients=${rest.join(',')}`;
      const where = `GET ${this.url}${STORE_API_PREFIX}${path.split('?')[0]}`;
      // Retried as any call until the answer's status is in; the body is read below.
      const res = await this.call('GET', path, undefined, async (r) => r);
      if (!res?.body) throw new StoreEndpointError(`store endpoint: ${where}: answered without a body`, 'protocol', res?.status);
      const stream = res.body.getReader();
      const reader = new ChunkReader(() => this.readChunk(stream));
      let next = 0; // index into rest of the first client not answered yet
      let finished = false;
      try {
        for (;;) {
          const metaLen = await reader.readUint32();
          if (metaLen === 0) break;
          const u = await reader.readUpdate(metaLen);
          while (next < rest.length && rest[next]! < u.clientId) next++;
          if (u.runId !== runId || u.round !== round || rest[next] !== u.clientId) {
            throw new Error(`update of run ${u.runId} round ${u.round} client ${u.clientId} was not asked for or out of order`);
          }
          next++;
          yield u;
        }
        if (!(await reader.atEnd())) throw new Error('bytes after the end mark');
        finished = true;
        return;
      } catch (e) {
        if (!isRetryable(e)) {
          throw new StoreEndpointError(this.redact(`store endpoint: ${where}: bad answer: ${oneLine(e)}`), 'protocol', res.status);
        }
        if (resumed === this.retries) {
          const detail = `answer cut short (${networkDetail(e)})`;
          throw new StoreEndpointError(this.redact(`store endpoint ${this.url} unreachable after ${resumed + 1} attempts: ${where}: ${detail}`), 'network');
        }
        rest = rest.slice(next);
        await sleep(this.backoffMs * 2 ** resumed * (0.75 + Math.random() * 0.5));
      } finally {
        // Also when the caller stops early: the server sees the connection close and stops reading its store.
        if (!finished) await stream.cancel().catch(() => undefined);
      }
    }
  }

  /** The next chunk of a streamed answer; an AttemptTimeout when none comes within the attempt timeout. */
  private async readChunk(stream: ReadableStreamDefaultReader<Uint8Array>): Promise<Uint8Array | undefined> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new AttemptTimeout()), this.timeoutMs);
    });
    try {
      const { value, done } = await Promise.race([stream.read(), timeout]);
      return done ? undefined : value;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Belt and braces: no message leaves this class with the token in it. */
  private redact(msg: string): string {
    return msg.split(this.token).join('[token]');
  }
}

async function readUpdates(res: Response): Promise<ClientUpdate[]> {
  if (!res.body) throw new Error('no body');
  const stream = res.body.getReader();
  const reader = new ChunkReader(async () => {
    const { value, done } = await stream.read();
    return done ? undefined : value;
  });
  const out: ClientUpdate[] = [];
  try {
    for (;;) {
      const metaLen = await reader.readUint32();
      if (metaLen === 0) break;
      out.push(await reader.readUpdate(metaLen));
    }
    if (!(await reader.atEnd())) throw new Error('bytes after the end mark');
  } catch (e) {
    await stream.cancel().catch(() => undefined);
    throw e;
  }
  return out;
}

/** The partition-sizes answer: {"sizes": [[clientId, count], …]}, every number an integer ≥ 0. */
export function parsePartitionSizes(text: string): Map<number, number> {
  let body: { sizes?: unknown };
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    throw new Error('partition sizes are not valid JSON');
  }
  if (typeof body !== 'object' || body === null || !Array.isArray(body.sizes)) throw new Error('partition sizes: no "sizes" list');
  const out = new Map<number, number>();
  for (const pair of body.sizes as unknown[]) {
    if (!Array.isArray(pair) || pair.length !== 2 || !isIndex(pair[0]) || !isIndex(pair[1])) {
      throw new Error('partition sizes: each entry must be [clientId, count] of integers >= 0');
    }
    out.set(pair[0], pair[1]);
  }
  return out;
}

function seg(runId: string): string {
  return encodeURIComponent(runId);
}

function concat(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function isRetryable(e: unknown): boolean {
  return errorCode(e) !== undefined;
}

/** The first retryable error code in e's cause chain (AggregateError members included). */
function errorCode(e: unknown, depth = 0): string | undefined {
  if (typeof e !== 'object' || e === null || depth > 5) return undefined;
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string' && RETRYABLE_CODES.has(code)) return code;
  if (e instanceof AttemptTimeout) return 'timeout';
  const errors = (e as { errors?: unknown }).errors;
  if (Array.isArray(errors)) for (const x of errors) {
    const c = errorCode(x, depth + 1);
    if (c) return c;
  }
  return errorCode((e as { cause?: unknown }).cause, depth + 1);
}

function networkDetail(e: unknown, signal?: AbortSignal): string {
  if ((signal?.aborted && signal.reason instanceof AttemptTimeout) || e instanceof AttemptTimeout) return 'timed out';
  const code = errorCode(e);
  let inner: unknown = e;
  while (typeof inner === 'object' && inner !== null && (inner as { cause?: unknown }).cause) inner = (inner as { cause: unknown }).cause;
  const msg = oneLine(inner).slice(0, 200);
  return code && !msg.includes(code) ? `${code}: ${msg}` : msg;
}

function oneLine(e: unknown): string {
  const s = e instanceof Error ? e.message || e.name : String(e);
  return s.replace(/\s+/g, ' ').trim();
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
