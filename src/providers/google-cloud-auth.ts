/**
 * Credentials of a Google cloud cluster. Two different tokens are involved: an OAuth access token for the Cloud
 * Functions API (deploy, list, remove), and an identity token whose audience is the function's URL for invoking it
 * (2nd gen functions sit behind Cloud Run's IAM, which refuses access tokens).
 */
import { ProviderError } from './types.js';

/** Options of a fetch as google-gax's REST transport issues it (gaxios-style extras are ignored). */
interface GaxFetchInit {
  method?: string;
  headers?: ConstructorParameters<typeof Headers>[0];
  body?: string | Uint8Array;
  signal?: AbortSignal;
}

/**
 * An auth client holding a fixed access token (config `access_token`, e.g. from `gcloud auth print-access-token`).
 * It implements what google-gax's REST transport asks of an AuthClient: `getRequestHeaders` and `fetch`, where
 * 401/403 must reject with the response attached (that is how gaxios reports them and how gax turns them into
 * UNAUTHENTICATED / PERMISSION_DENIED errors).
 */
export class StaticTokenAuthClient {
  readonly universeDomain = 'googleapis.com';

  constructor(private readonly token: string) {}

  async getRequestHeaders(): Promise<Headers> {
    return new Headers({ authorization: `Bearer ${this.token}` });
  }

  async getAccessToken(): Promise<{ token: string }> {
    return { token: this.token };
  }

  async fetch(url: string | URL, init: GaxFetchInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    headers.set('authorization', `Bearer ${this.token}`);
    const req: RequestInit = { method: init.method ?? 'GET', headers };
    if (init.body !== undefined) req.body = init.body;
    if (init.signal) req.signal = init.signal;
    const res = await fetch(url, req);
    if (res.status === 401 || res.status === 403) {
      const text = await res.text();
      let data: unknown = text;
      try {
        data = JSON.parse(text);
      } catch {
        /* keep the text */
      }
      throw Object.assign(new Error(`Request failed with status code ${res.status}`), { status: res.status, response: { status: res.status, data } });
    }
    return res;
  }
}

/** Gives the identity token for invoking the function at `audience` (its URL). */
export type IdentityTokenSource = (audience: string) => Promise<string>;

/** The parts of google-auth-library's GoogleAuth / IdTokenProvider used here, described structurally. */
interface IdTokenCapable {
  getIdTokenClient?(audience: string): Promise<{ getRequestHeaders(url?: string): Promise<Headers | Record<string, string>> }>;
  fetchIdToken?(audience: string): Promise<string>;
}

function bearerOf(h: Headers | Record<string, string>): string | undefined {
  const v = h instanceof Headers ? h.get('authorization') : (h.Authorization ?? h.authorization);
  return v?.replace(/^Bearer\s+/i, '');
}

/**
 * Where identity tokens come from, in order: an injected source, the configured `identity_token`, or the API
 * client's own auth (a service-account key can mint them; user credentials cannot, hence the error's advice).
 */
export function identityTokenSource(
  cluster: string,
  injected: IdentityTokenSource | undefined,
  configured: string | undefined,
  clientAuth: () => Promise<unknown>,
): IdentityTokenSource {
  if (injected) return injected;
  if (configured) return async () => configured;
  const clients = new Map<string, ReturnType<NonNullable<IdTokenCapable['getIdTokenClient']>>>();
  return async (audience) => {
    const auth = (await clientAuth()) as IdTokenCapable;
    try {
      if (typeof auth.getIdTokenClient === 'function') {
        // IdTokenClient caches its token and refreshes it before expiry: keep one per audience.
        let c = clients.get(audience);
        if (!c) {
          c = auth.getIdTokenClient(audience);
          clients.set(audience, c);
          c.catch(() => clients.delete(audience));
        }
        const token = bearerOf(await (await c).getRequestHeaders(audience));
        if (token) return token;
      } else if (typeof auth.fetchIdToken === 'function') {
        return await auth.fetchIdToken(audience);
      }
    } catch (e) {
      throw new ProviderError(
        `google cluster ${cluster}: cannot get an identity token to invoke functions (${oneLine((e as Error).message)}); use a service-account key as credentials or set identity_token`,
        2,
      );
    }
    throw new ProviderError(`google cluster ${cluster}: no identity token to invoke functions; use a service-account key as credentials or set identity_token`, 2);
  };
}

export function oneLine(s: string): string {
  const line = s.replace(/\s+/g, ' ').trim();
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}

/** Plain http only to this machine: a token must never cross a network unencrypted. */
export function checkedUrl(cluster: string, what: string, value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ProviderError(`google cluster ${cluster}: ${what} ${value} is not a URL`);
  }
  const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
  if (url.protocol === 'https:' || (url.protocol === 'http:' && loopback)) return url;
  throw new ProviderError(`google cluster ${cluster}: refusing ${what} ${value}: only https (or http to this machine) is used`);
}
