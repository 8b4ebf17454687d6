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
