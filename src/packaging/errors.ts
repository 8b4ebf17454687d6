/** A package cannot be built, or cannot go where it is meant to: the user's config or the platform's limits. */
export class PackagingError extends Error {
  override name = 'PackagingError';
  readonly exitCode: 1 | 2;
  constructor(message: string, exitCode: 1 | 2 = 1) {
    super(message);
    this.exitCode = exitCode;
  }
}
