/**
 * A minimal client of Prometheus's HTTP API: instant queries (`GET /api/v1/query?query=…&time=…`), with a short
 * timeout, answered as `{status: "success", data: {resultType: "vector", result: [{metric, value: [t, "v"]}]}}`.
 * Everything that is not such an answer — a refused connection, a timeout, an HTTP error, `status: "error"`, a body
 * that is not that JSON — is a PrometheusQueryError with one line saying what happened.
 */

export class PrometheusQueryError extends Error {
  override name = 'PrometheusQueryError';
}

/** One sample of an instant vector: its labels (with `__name__` when the query keeps it) and its value. */
export interface Sample {
  metric: Record<string, string>;
  value: number;
}

export interface PrometheusApiOptions {
  /** Per request, ms; default 3,000. */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

export class PrometheusApi {
  private readonly timeoutMs: number;
  private readonly fetchFn: typeof fetch;

  /** `base`: http(s)://host:port of the Prometheus server. */
  constructor(
    readonly base: string,
    opts: PrometheusApiOptions = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? 3_000;
    this.fetchFn = opts.fetch ?? fetch;
  }

  /** The instant vector of `query` evaluated at `timeMs` (epoch ms; default: the server's now). */
  async query(query: string, timeMs?: number): Promise<Sample[]> {
    const params = new URLSearchParams({ query });
    if (timeMs !== undefined) params.set('time', (timeMs / 1000).toFixed(3));
    const url = `${this.base}/api/v1/query?${params}`;
    let res: Response;
    try {
      res = await this.fetchFn(url, { signal: AbortSignal.timeout(this.timeoutMs), headers: { accept: 'application/json' } });
    } catch (e) {
      const err = e as Error & { cause?: { code?: string; message?: string } };
      const why = err.name === 'TimeoutError' || err.name === 'AbortError' ? `no answer within ${this.timeoutMs} ms` : (err.cause?.code ?? err.cause?.message ?? err.message);
      throw new PrometheusQueryError(`Prometheus at ${this.base}: ${why}`);
    }
    let body: unknown;
    const text = await res.text().catch(() => '');
    try {
      body = JSON.parse(text);
    } catch {
      throw new PrometheusQueryError(`Prometheus at ${this.base}: HTTP ${res.status}, not a Prometheus API answer (${JSON.stringify(text.slice(0, 80))})`);
    }
    const b = body as { status?: unknown; error?: unknown; errorType?: unknown; data?: { resultType?: unknown; result?: unknown } };
    if (b.status !== 'success') {
      throw new PrometheusQueryError(`Prometheus at ${this.base}: HTTP ${res.status}, ${String(b.errorType ?? 'error')}: ${String(b.error ?? 'no status "success"')}`);
    }
    if (b.data?.resultType === 'scalar' && Array.isArray(b.data.result)) return [{ metric: {}, value: Number((b.data.result as unknown[])[1]) }];
    if (b.data?.resultType !== 'vector' || !Array.isArray(b.data.result)) {
      throw new PrometheusQueryError(`Prometheus at ${this.base}: expected a vector for ${query}, found ${String(b.data?.resultType)}`);
    }
    return (b.data.result as { metric?: Record<string, string>; value?: [number, string] }[]).map((r) => ({ metric: r.metric ?? {}, value: Number(r.value?.[1]) }));
  }
}
