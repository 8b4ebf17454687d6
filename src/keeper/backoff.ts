/**
 * Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And Jitter"): the wait before
 * attempt n+1 is uniform in [0, min(max, initial × 2^(n−1))]. Jitter only spreads retries in time; it never changes
 * what a retry computes.
 */
export function backoffMs(failedAttempt: number, initialMs: number, maxMs: number, random: () => number = Math.random): number {
  const cap = Math.min(maxMs, initialMs * 2 ** Math.max(0, failedAttempt - 1));
  return Math.floor(random() * cap);
}
