/**
 * The Prometheus metrics a local OpenWhisk cluster serves on `GET /metrics` (text format, no key needed, as a
 * Prometheus scrapes them): the names, labels and types of Apache OpenWhisk's user-events service
 * (core/monitoring/user-events, PrometheusRecorder), recorded from each activation as it is stored:
 *
 *   openwhisk_action_activations_total{namespace,initiator,action,kind,memory}   counter
 *   openwhisk_action_coldStarts_total{namespace,initiator,action}                counter (an activation with an initTime)
 *   openwhisk_action_status{namespace,initiator,action,status}                   counter (success, application_error,
 *                                                                                developer_error, internal_error)
 *   openwhisk_action_waitTime_seconds / _initTime_seconds / _duration_seconds    histograms {namespace,initiator,action}
 *   openwhisk_action_memory{namespace,initiator,action}                          gauge (the action's memory limit, MB)
 *   openwhisk_action_limit_concurrent_total{namespace}, …_limit_timed_total      counters of throttled requests (429)
 *
 * `namespace` is the action's namespace, `initiator` the invoking key's namespace (the same here: one key per
 * cluster), `action` the action's name. Initialisation is counted only for cold starts, as user-events does. One
 * registry per cluster: several clusters (and several fabrics, in tests) share a process.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { StoredActivation } from './activation-store.js';

/** user-events' names for an activation's status (its statusCode 0…3). */
const STATUS_NAMES = ['success', 'application_error', 'developer_error', 'internal_error'] as const;

/** The Java Prometheus client's default histogram buckets (seconds), which user-events' histograms use. */
const JAVA_DEFAULT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

type ActionLabels = 'namespace' | 'initiator' | 'action';

export class OpenWhiskMetrics {
  readonly registry = new Registry();
  private readonly activations: Counter<ActionLabels | 'kind' | 'memory'>;
  private readonly coldStarts: Counter<ActionLabels>;
  private readonly status: Counter<ActionLabels | 'status'>;
  private readonly waitTime: Histogram<ActionLabels>;
  private readonly initTime: Histogram<ActionLabels>;
  private readonly duration: Histogram<ActionLabels>;
  private readonly memory: Gauge<ActionLabels>;
  private readonly concurrentLimit: Counter<'namespace'>;
  private readonly timedLimit: Counter<'namespace'>;

  constructor(private readonly initiator: string) {
    const registers = [this.registry];
    const labelNames: ActionLabels[] = ['namespace', 'initiator', 'action'];
    this.activations = new Counter({ name: 'openwhisk_action_activations_total', help: 'Activation Count', labelNames: [...labelNames, 'kind', 'memory'], registers });
    this.coldStarts = new Counter({ name: 'openwhisk_action_coldStarts_total', help: 'Cold start counts', labelNames, registers });
    this.status = new Counter({ name: 'openwhisk_action_status', help: 'Activation failure status type', labelNames: [...labelNames, 'status'], registers });
    this.waitTime = new Histogram({ name: 'openwhisk_action_waitTime_seconds', help: 'Internal system hold time', labelNames, buckets: JAVA_DEFAULT_BUCKETS, registers });
    this.initTime = new Histogram({ name: 'openwhisk_action_initTime_seconds', help: 'Time it took to initialize an action, e.g. docker init', labelNames, buckets: JAVA_DEFAULT_BUCKETS, registers });
    this.duration = new Histogram({ name: 'openwhisk_action_duration_seconds', help: 'Actual time the action code was running', labelNames, buckets: JAVA_DEFAULT_BUCKETS, registers });
    this.memory = new Gauge({ name: 'openwhisk_action_memory', help: 'Memory consumption of the action containers', labelNames, registers });
    this.concurrentLimit = new Counter({ name: 'openwhisk_action_limit_concurrent_total', help: 'a user has exceeded its limit for concurrent invocations', labelNames: ['namespace'], registers });
    this.timedLimit = new Counter({ name: 'openwhisk_action_limit_timed_total', help: 'the user has reached its per minute limit for the number of invocations', labelNames: ['namespace'], registers });
  }

  /** One ended activation, as it is stored (its annotations carry kind, limits, waitTime and initTime). */
  activation(a: StoredActivation): void {
    const note = (key: string): unknown => a.annotations.find((x) => x.key === key)?.value;
    const labels = { namespace: a.namespace, initiator: this.initiator, action: a.name };
    const memoryMb = Number((note('limits') as { memory?: unknown } | undefined)?.memory ?? 0);
    this.activations.inc({ ...labels, kind: String(note('kind') ?? ''), memory: String(memoryMb) });
    const initMs = Number(note('initTime') ?? 0);
    if (initMs > 0) {
      this.coldStarts.inc(labels);
      this.initTime.observe(labels, initMs / 1000);
    }
    this.waitTime.observe(labels, Number(note('waitTime') ?? 0) / 1000);
    this.duration.observe(labels, a.duration / 1000);
    this.status.inc({ ...labels, status: STATUS_NAMES[a.statusCode] });
    this.memory.set(labels, memoryMb);
  }

  /** A request refused by the namespace's throttles: `concurrent` or `timed` (per minute). */
  throttled(kind: 'concurrent' | 'timed', namespace: string): void {
    (kind === 'concurrent' ? this.concurrentLimit : this.timedLimit).inc({ namespace });
  }

  /** The text a scrape gets, and its content type. */
  async scrape(): Promise<{ contentType: string; text: string }> {
    return { contentType: this.registry.contentType, text: await this.registry.metrics() };
  }
}
