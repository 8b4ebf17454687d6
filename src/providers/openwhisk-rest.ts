/**
 * The two calls the keeper makes per client of a round — a non-blocking invocation and the read of an activation —
 * sent over node:http with the provider's keep-alive agent, on the wire exactly as the `openwhisk` client sends them
 * (same paths, query, headers and JSON body; see §4 of the design): `POST …/actions/NAME?blocking=false` → 202
 * `{activationId}`, `GET …/activations/ID`. Everything else (actions: create, get, delete, list) stays with the
 * official client. Why: the client runs every call through `needle`, which builds two stream pipelines, a parser
 * stream and an AbortController per response; for a thousand invocations that per-call work, not the platform,
 * was most of the time to get the activation ids back.
 *
 * Failures are shaped as the client's (OpenWhiskError): `statusCode` and the platform's `{error, code}` body in
 * `error`, so the provider maps them to its errors in one place for both paths.
 */
import http from 'node:http';
import https from 'node:https';

/** What the provider's error mapping reads of a failed call (the `openwhisk` client's OpenWhiskError has the same). */
export class OpenWhiskCallError extends Error {
  constructor(
    message: string,
    readonly statusCode?: number,
    readonly error?: { error?: string; code?: string },
  ) {
    super(message);
  }
}

export interface OpenWhiskRestOptions {
  /** e.g. http://127.0.0.1:3233 (no trailing slash) */
  apiHost: string;
  /** "uuid:key" */
  apiKey: string;
  namespace: string;
  agent: http.Agent;
}

export class OpenWhiskRest {
  private readonly base: URL;
  private readonly headers: Record<string, string>;
  private readonly request: typeof http.request;

  constructor(private readonly opts: OpenWhiskRestOptions) {
    this.base = new URL(`${opts.apiHost}/api/v1/`);
    this.request = this.base.protocol === 'https:' ? https.request : http.request;
    // As the client's: its user agent, Basic auth, the namespace it targets, JSON both ways.
    this.headers = {
      'User-Agent': process.env.__OW_USER_AGENT || 'openwhisk-client-js',
      Authorization: `Basic ${Buffer.from(opts.apiKey).toString('base64')}`,
      'x-namespace-id': opts.namespace,
      accept: 'application/json',
    };
  }

  private path(rest: string): string {
    return new URL(`namespaces/${encodeURIComponent(this.opts.namespace)}/${rest}`, this.base).pathname;
  }

  /** `POST …/actions/NAME?blocking=false` with the parameters as the body: the activation id. */
  async invoke(name: string, params: Record<string, unknown>): Promise<string> {
    const body = await this.call('POST', `${this.path(`actions/${name}`)}?blocking=false`, JSON.stringify(params));
    const id = (body as { activationId?: unknown } | undefined)?.activationId;
    if (typeof id !== 'string') throw new OpenWhiskCallError(`POST actions/${name}: the platform answered without an activation id`, 502, { error: 'no activationId in the answer' });
    return id;
  }

  /** `GET …/activations/ID`: the activation record. */
  async activation(activationId: string): Promise<Record<string, unknown>> {
    return (await this.call('GET', this.path(`activations/${activationId}`))) as Record<string, unknown>;
  }

  private call(method: string, path: string, body?: string): Promise<unknown> {
    const headers: Record<string, string | number> = { ...this.headers };
    if (body !== undefined) {
      headers['content-type'] = 'application/json; charset=utf-8';
      headers['content-length'] = Buffer.byteLength(body);
    }
    return new Promise((resolve, reject) => {
      const req = this.request(
        { protocol: this.base.protocol, hostname: this.base.hostname, port: this.base.port, method, path, agent: this.opts.agent, headers },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (e) => reject(new OpenWhiskCallError(e.message)));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown = text;
            try {
              parsed = text === '' ? undefined : JSON.parse(text);
            } catch {
              // not JSON: kept as text
            }
            const status = res.statusCode ?? 0;
            if (status < 400) return resolve(parsed);
            const error = parsed !== null && typeof parsed === 'object' ? (parsed as { error?: string; code?: string }) : { error: text || res.statusMessage || `HTTP ${status}` };
            reject(new OpenWhiskCallError(`${method} ${this.base.origin}${path} Returned HTTP ${status} (${http.STATUS_CODES[status] ?? ''}) --> "${error.error ?? ''}"`, status, error));
          });
        },
      );
      req.on('error', (e) => reject(new OpenWhiskCallError(e.message, undefined, { error: e.message })));
      req.end(body);
    });
  }
}
