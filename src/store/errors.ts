/**
 * Typed store errors. Each message is one line that says what the user must fix; the CLI shows it and exits with
 * `exitCode`. A store URL in a message always has its password redacted (see store-url.ts).
 */

/** The store's server does not answer, or answers but refuses us (authentication, missing database …). */
export class StoreUnreachableError extends Error {
  override name = 'StoreUnreachableError';
  /** Bad input (a wrong or unreachable store.url): exit code 2. */
  readonly exitCode = 2;
  /** The store URL with its password redacted. */
  readonly url: string;

  constructor(message: string, redactedUrl: string) {
    super(message);
    this.url = redactedUrl;
  }
}

/** A store URL that cannot be used at all (wrong scheme, unparseable). */
export class StoreUrlError extends Error {
  override name = 'StoreUrlError';
  readonly exitCode = 2;
}
