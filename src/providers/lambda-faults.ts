/**
 * The fault counters of a local FedKeeper Lambda platform (`GET /fedkeeper/faults`, outside the Lambda API, signed
 * with SigV4 like every request to it). Real Lambda has no such thing: for it nothing is asked. SigV4 is written out
 * here (AWS's documented algorithm) because the SDK has no command for a path of our own; `signedHeaders` also signs
 * the keeper's body-less PUT/DELETE of the platform's keepers route (keeper/fabric-launcher.ts).
 */
import { createHash, createHmac } from 'node:crypto';
import type { LambdaClusterSettings } from './lambda-config.js';

const hash = (s: string) => createHash('sha256').update(s).digest('hex');
const hmac = (key: string | Buffer, s: string) => createHmac('sha256', key).update(s).digest();

type SigningKey = { accessKeyId: string; secretAccessKey: string; sessionToken?: string };

/** Headers signing a body-less GET of `url` for service `lambda` (AWS Signature Version 4). */
export function signedGetHeaders(url: URL, region: string, key: SigningKey, now = new Date()): Record<string, string> {
  return signedHeaders('GET', url, region, key, now);
}

/** Headers signing a body-less request (`method` on `url`) for service `lambda` (AWS Signature Version 4). */
export function signedHeaders(method: string, url: URL, region: string, key: SigningKey, now = new Date()): Record<string, string> {
  const amzDate = now.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  const day = amzDate.slice(0, 8);
  const payloadHash = hash('');
  const headers: Record<string, string> = { host: url.host, 'x-amz-content-sha256': payloadHash, 'x-amz-date': amzDate };
  if (key.sessionToken) headers['x-amz-security-token'] = key.sessionToken;
  const names = Object.keys(headers).sort();
  const canonicalQuery = [...url.searchParams.entries()]
    .map(([k, v]) => [encodeURIComponent(k), encodeURIComponent(v)])
    .sort(([a], [b]) => (a! < b! ? -1 : a! > b! ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const canonical = [method, url.pathname || '/', canonicalQuery, ...names.map((n) => `${n}:${headers[n]!.trim()}`), '', names.join(';'), payloadHash].join('\n');
  const scope = `${day}/${region}/lambda/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, hash(canonical)].join('\n');
  const signingKey = hmac(hmac(hmac(hmac(`AWS4${key.secretAccessKey}`, day), region), 'lambda'), 'aws4_request');
  const signature = createHmac('sha256', signingKey).update(toSign).digest('hex');
  const { host: _host, ...rest } = headers;
  return { ...rest, authorization: `AWS4-HMAC-SHA256 Credential=${key.accessKeyId}/${scope}, SignedHeaders=${names.join(';')}, Signature=${signature}` };
}

/** The platform's injected-fault counters, or undefined (real Lambda, or a platform that does not answer). */
export async function localLambdaFaults(s: LambdaClusterSettings): Promise<Record<string, number> | undefined> {
  if (!s.endpoint || !s.credentials) return undefined;
  const url = new URL(`${s.endpoint}/fedkeeper/faults`);
  try {
    const res = await fetch(url, { headers: signedGetHeaders(url, s.region, s.credentials), signal: AbortSignal.timeout(5000) });
    return res.ok ? ((await res.json()) as Record<string, number>) : undefined;
  } catch {
    return undefined;
  }
}
