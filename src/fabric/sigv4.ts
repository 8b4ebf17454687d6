/**
 * AWS Signature Version 4 (header form), checked as AWS's front door checks it: the request's canonical form is
 * rebuilt from what came over the wire (the path double-encoded, as for every service but S3; the query sorted; the
 * signed headers, whitespace-collapsed; the SHA-256 of the body actually received), the string to sign is signed
 * with the key derived from the cluster's secret, and the signature must be the one sent. Which error for what:
 *
 *   no Authorization header                      → MissingAuthenticationTokenException
 *   malformed header, no X-Amz-Date              → IncompleteSignatureException
 *   an access key id or session token we do not know → UnrecognizedClientException
 *   wrong scope (date, region, service), host unsigned, clock off by > 5 min, wrong signature
 *                                                → InvalidSignatureException
 *
 * All of them 403, as AWS answers them.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { LambdaError } from './lambda-errors.js';

export interface SigV4Key {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface SignedRequest {
  method: string;
  /** Path and query as received (req.url). */
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface SigV4Scope {
  key: SigV4Key;
  region: string;
  service: string;
  /** Largest clock difference accepted, ms; default 5 min. */
  maxSkewMs?: number;
  now?: number;
}

const ALGORITHM = 'AWS4-HMAC-SHA256';
const SKEW_MS = 5 * 60_000;
const MISMATCH =
  'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.';

/** Throws the LambdaError AWS would answer unless the request is signed with `scope.key` for this region and service. */
export function verifySigV4(req: SignedRequest, scope: SigV4Scope): void {
  const auth = header(req.headers, 'authorization');
  if (auth === undefined || auth.trim() === '') throw LambdaError.missingToken();
  const parsed = parseAuthorization(auth);
  if (parsed.accessKeyId !== scope.key.accessKeyId) throw LambdaError.unrecognizedClient();
  if (header(req.headers, 'x-amz-security-token') !== undefined) throw LambdaError.unrecognizedClient();

  const amzDate = header(req.headers, 'x-amz-date') ?? isoFromHttpDate(header(req.headers, 'date'));
  if (amzDate === undefined || !/^\d{8}T\d{6}Z$/.test(amzDate)) {
    throw LambdaError.incompleteSignature("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.");
  }
  const [date, region, service, terminator] = parsed.scope;
  if (date !== amzDate.slice(0, 8)) {
    throw LambdaError.badSignature(`Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${date}' != '${amzDate.slice(0, 8)}', from '${amzDate}'.`);
  }
  if (region !== scope.region) throw LambdaError.badSignature(`Credential should be scoped to a valid region, not '${region}'. `);
  if (service !== scope.service) throw LambdaError.badSignature(`Credential should be scoped to correct service: '${scope.service}'. `);
  if (terminator !== 'aws4_request') throw LambdaError.badSignature(`Credential should be scoped with a valid terminator: 'aws4_request', not '${terminator}'. `);
  if (!parsed.signedHeaders.includes('host')) throw LambdaError.badSignature("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.");

  const now = scope.now ?? Date.now();
  const signedAt = Date.parse(`${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`);
  const skew = scope.maxSkewMs ?? SKEW_MS;
  if (signedAt < now - skew) {
    throw LambdaError.badSignature(`Signature expired: ${amzDate} is now earlier than ${compact(now - skew)} (${compact(now)} - ${skew / 60_000} min.)`);
  }
  if (signedAt > now + skew) {
    throw LambdaError.badSignature(`Signature not yet current: ${amzDate} is still later than ${compact(now + skew)} (${compact(now)} + ${skew / 60_000} min.)`);
  }

  const canonical = canonicalRequest(req, parsed.signedHeaders);
  const credentialScope = parsed.scope.join('/');
  const stringToSign = `${ALGORITHM}\n${amzDate}\n${credentialScope}\n${sha256Hex(canonical)}`;
  let key: Buffer = hmac(`AWS4${scope.key.secretAccessKey}`, date!);
  for (const part of [region!, service!, 'aws4_request']) key = hmac(key, part);
  const expected = Buffer.from(hmac(key, stringToSign).toString('hex'));
  const given = Buffer.from(parsed.signature);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) throw LambdaError.badSignature(MISMATCH);
}

/** The canonical request of SigV4 for a service other than S3. */
export function canonicalRequest(req: SignedRequest, signedHeaders: string[]): string {
  const q = req.url.indexOf('?');
  const rawPath = q >= 0 ? req.url.slice(0, q) : req.url;
  const rawQuery = q >= 0 ? req.url.slice(q + 1) : '';
  const headers = signedHeaders.map((name) => `${name}:${(header(req.headers, name) ?? '').replace(/[\r\n]/g, ' ').replace(/[ \t]+/g, ' ').trim()}`);
  const unsigned = header(req.headers, 'x-amz-content-sha256') === 'UNSIGNED-PAYLOAD';
  return [req.method.toUpperCase(), canonicalPath(rawPath), canonicalQuery(rawQuery), ...headers, '', signedHeaders.join(';'), unsigned ? 'UNSIGNED-PAYLOAD' : sha256Hex(req.body)].join('\n');
}

/** RFC 3986 escaping, as AWS's signers apply it. */
function escapeUri(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function canonicalPath(raw: string): string {
  const segments: string[] = [];
  for (const seg of raw.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') segments.pop();
    else segments.push(seg);
  }
  const normalised = `/${segments.join('/')}${segments.length > 0 && raw.endsWith('/') ? '/' : ''}`;
  return escapeUri(normalised).replace(/%2F/g, '/');
}

function canonicalQuery(raw: string): string {
  if (raw === '') return '';
  const pairs = raw
    .split('&')
    .filter((p) => p !== '')
    .map((p) => {
      const i = p.indexOf('=');
      const k = safeDecode(i >= 0 ? p.slice(0, i) : p);
      const v = i >= 0 ? safeDecode(p.slice(i + 1)) : '';
      return [escapeUri(k), escapeUri(v)] as const;
    })
    .filter(([k]) => k.toLowerCase() !== 'x-amz-signature');
  pairs.sort(([ka, va], [kb, vb]) => (ka < kb ? -1 : ka > kb ? 1 : va < vb ? -1 : va > vb ? 1 : 0));
  return pairs.map(([k, v]) => `${k}=${v}`).join('&');
}

function parseAuthorization(auth: string): { accessKeyId: string; scope: string[]; signedHeaders: string[]; signature: string } {
  const space = auth.indexOf(' ');
  const algorithm = space >= 0 ? auth.slice(0, space) : auth;
  if (algorithm !== ALGORITHM) throw LambdaError.incompleteSignature(`Unsupported AWS 'algorithm': '${algorithm}'`);
  const params = new Map<string, string>();
  for (const part of auth.slice(space + 1).split(',')) {
    const i = part.indexOf('=');
    if (i > 0) params.set(part.slice(0, i).trim(), part.slice(i + 1).trim());
  }
  const missing = ['Credential', 'SignedHeaders', 'Signature'].filter((k) => !params.get(k));
  if (missing.length > 0) {
    throw LambdaError.incompleteSignature(`${missing.map((k) => `Authorization header requires '${k}' parameter.`).join(' ')} Authorization=${auth.slice(0, 64)}`);
  }
  const credential = params.get('Credential')!.split('/');
  if (credential.length !== 5 || credential.some((c) => c === '')) {
    throw LambdaError.incompleteSignature(`Authorization header requires a Credential of the form 'ACCESS_KEY_ID/DATE/REGION/SERVICE/aws4_request'.`);
  }
  return {
    accessKeyId: credential[0]!,
    scope: credential.slice(1),
    signedHeaders: params.get('SignedHeaders')!.split(';').map((h) => h.trim().toLowerCase()),
    signature: params.get('Signature')!,
  };
}

function header(h: IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(',') : v;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function isoFromHttpDate(d: string | undefined): string | undefined {
  if (d === undefined) return undefined;
  const t = Date.parse(d);
  return Number.isFinite(t) ? compact(t) : undefined;
}

/** 20261130T031500Z */
function compact(t: number): string {
  return new Date(t).toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');
}

function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}
