/**
 * A platform's refusal to take a call now because of its throttles (HTTP 429: OpenWhisk's per-namespace
 * invocations per minute and concurrent invocations, …). The keeper paces itself (keeper/tracker.ts): it waits and
 * repeats the call until the platform takes it, and counts it apart from failures and from retried calls.
 */
import { ProviderError } from './types.js';

export class ThrottledError extends ProviderError {
  override name = 'ThrottledError';
  constructor(
    message: string,
    /** How long the platform asked to wait (a `Retry-After` it sent), ms; undefined when it did not say. */
    readonly retryAfterMs?: number,
  ) {
    super(message, 1, true);
  }
}
