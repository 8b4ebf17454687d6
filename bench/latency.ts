/** Latency figures shared by the platform benchmarks: percentiles, one printed line, and the loopback baseline. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export function pct(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

export const fmt = (xs: number[]): string => `p50 ${pct(xs, 0.5).toFixed(2)} ms  p99 ${pct(xs, 0.99).toFixed(2)} ms  (n=${xs.length})`;

/** `n` bare HTTP POSTs to a trivial node:http server on loopback: the floor any REST call pays on this machine. */
export async function loopbackBaseline(n: number): Promise<number[]> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await (await fetch(url, { method: 'POST', body: '{"n":1}', headers: { 'content-type': 'application/json' } })).json();
    out.push(performance.now() - t);
  }
  server.close();
  return out;
}

/** A trivial node:http server on loopback answering every POST with a small JSON body: the floor of a REST call. */
export async function startLoopback(): Promise<{ url: URL; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
  return {
    url,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/**
 * `n` concurrent raw POSTs (node:http through `agent`, answers read) to a loopback server: ms until all are back.
 * Given an agent like a provider's (keep-alive, the same maxSockets), it is what dispatching `n` invocations costs
 * without the platform.
 */
export async function concurrentPosts(url: URL, n: number, agent: http.Agent): Promise<number> {
  const post = (i: number) =>
    new Promise<void>((resolve, reject) => {
      const body = JSON.stringify({ n: i });
      const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => {
          try {
            JSON.parse(text);
            resolve();
          } catch (e) {
            reject(e as Error);
          }
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  const t = performance.now();
  await Promise.all(Array.from({ length: n }, (_, i) => post(i)));
  return performance.now() - t;
}
