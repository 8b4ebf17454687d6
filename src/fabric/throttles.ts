/**
 * The namespace throttles of an OpenWhisk controller (core/controller/…/entitlement: RateThrottler,
 * ActivationThrottler, checked by EntitlementProvider.checkThrottles before an action is activated):
 *
 *  - invocations per minute: every activation request is counted, admitted or not, in one-minute windows of the
 *    clock (epoch ms / 60,000); once a window's count exceeds the limit the request is refused with 429
 *    "Too many requests in the last minute (count: N, allowed: M)." until the next window begins;
 *  - concurrent invocations: a request is refused with 429 "Too many concurrent requests in flight (count: N,
 *    allowed: M)." while N activations of the namespace are in flight (submitted, not ended) and N ≥ M.
 *
 * The rate is checked first (so a request refused for concurrency still counts against the minute), as the
 * controller does. Either limit may be absent: then it does not throttle.
 */
import { WhiskMessages } from './errors.js';

export interface ThrottleLimits {
  invocationsPerMinute?: number;
  concurrentInvocations?: number;
}

export class NamespaceThrottles {
  private minute = -1;
  private count = 0;
  /** Requests refused with 429 so far. */
  throttled = 0;

  constructor(
    readonly limits: ThrottleLimits,
    /** Activations of the namespace in flight now. */
    private readonly inFlight: () => number,
    private readonly now: () => number = Date.now,
    /** Told of each refusal: `timed` (invocations per minute) or `concurrent`. */
    private readonly onRefused: (kind: 'timed' | 'concurrent') => void = () => {},
  ) {}

  /** True when the cluster throttles at all. */
  get active(): boolean {
    return this.limits.invocationsPerMinute !== undefined || this.limits.concurrentInvocations !== undefined;
  }

  /** Charges one activation request; the controller's 429 message if it is refused, else undefined. */
  check(): string | undefined {
    const { invocationsPerMinute: perMinute, concurrentInvocations: concurrent } = this.limits;
    if (perMinute !== undefined) {
      const minute = Math.floor(this.now() / 60_000);
      if (minute !== this.minute) {
        this.minute = minute;
        this.count = 0;
      }
      this.count++;
      if (this.count > perMinute) return this.refuse(WhiskMessages.tooManyRequests(this.count, perMinute), 'timed');
    }
    if (concurrent !== undefined) {
      const n = this.inFlight();
      if (n >= concurrent) return this.refuse(WhiskMessages.tooManyConcurrentRequests(n, concurrent), 'concurrent');
    }
    return undefined;
  }

  private refuse(message: string, kind: 'timed' | 'concurrent'): string {
    this.throttled++;
    this.onRefused(kind);
    return message;
  }
}
