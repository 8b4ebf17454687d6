/**
 * Prometheus metrics of a run (`fedkeeper run|start --metrics [PORT]`), through prom-client, served as text on
 * http://127.0.0.1:PORT/metrics while the keeper lives: invocations by platform, cluster, function and status,
 * activation durations (histogram), the last round's durations and their split, accuracy, loss, re-invocations,
 * throttled calls, and the keeper's own process metrics (memory, CPU). Binds 127.0.0.1 only.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export class RunMetrics {
  readonly registry = new Registry();
  private readonly invocations: Counter<'platform' | 'cluster' | 'function' | 'status'>;
  private readonly durations: Histogram<'platform' | 'cluster' | 'function'>;
  private readonly roundSeconds: Gauge<'part'>;
  private readonly round: Gauge;
  private readonly accuracy: Gauge;
  private readonly loss: Gauge;
  private readonly retries: Counter;
  private readonly throttled: Counter;

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'fedkeeper_keeper_' });
    this.invocations = new Counter({ name: 'fedkeeper_invocations_total', help: 'Ended invocations by platform, cluster, function and status', labelNames: ['platform', 'cluster', 'function', 'status'], registers });
    this.durations = new Histogram({
      name: 'fedkeeper_activation_duration_seconds',
      help: 'Activation durations (start to end, as the platform reports them)',
      labelNames: ['platform', 'cluster', 'function'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers,
    });
    this.roundSeconds = new Gauge({ name: 'fedkeeper_round_seconds', help: "The last round's duration and its split (invoke, train, agg, total)", labelNames: ['part'], registers });
    this.round = new Gauge({ name: 'fedkeeper_round', help: 'The last completed round', registers });
    this.accuracy = new Gauge({ name: 'fedkeeper_accuracy', help: 'Test accuracy of the global model after the last round', registers });
    this.loss = new Gauge({ name: 'fedkeeper_loss', help: 'Test loss of the global model after the last round', registers });
    this.retries = new Counter({ name: 'fedkeeper_reinvocations_total', help: 'Clients re-invoked after a failed attempt', registers });
    this.throttled = new Counter({ name: 'fedkeeper_throttled_total', help: 'Platform calls throttled (HTTP 429) and repeated', registers });
  }

  activation(a: { platform: string; cluster: string; functionName: string; status: string; durationS: number }): void {
    this.invocations.inc({ platform: a.platform, cluster: a.cluster, function: a.functionName, status: a.status });
    this.durations.observe({ platform: a.platform, cluster: a.cluster, function: a.functionName }, Math.max(0, a.durationS));
  }

  roundDone(r: { round: number; accuracy: number; loss: number; invoke_s: number; train_s: number; agg_s: number; total_s: number; retries: number }): void {
    this.round.set(r.round);
    this.accuracy.set(r.accuracy);
    this.loss.set(r.loss);
    for (const part of ['invoke', 'train', 'agg', 'total'] as const) this.roundSeconds.set({ part }, r[`${part}_s`]);
    if (r.retries > 0) this.retries.inc(r.retries);
  }

  throttledCall(): void {
    this.throttled.inc();
  }
}

export interface MetricsServer {
  url: string;
  close(): Promise<void>;
}

/** Serves `metrics` on 127.0.0.1:port (0: a free port) at /metrics. */
export async function serveMetrics(metrics: RunMetrics, port = 0): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /metrics\n');
      return;
    }
    metrics.registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      (e: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${(e as Error).message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const { port: bound } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${bound}/metrics`,
    close: () => new Promise((r) => server.close(() => r())),
  };
}
