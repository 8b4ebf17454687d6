/** Errors the keeper raises. exitCode 2: the user's input is wrong (config, data, arguments); 1: anything else. */
export class BadInputError extends Error {
  override name = 'BadInputError';
  readonly exitCode = 2;
}

export class RunFailedError extends Error {
  override name = 'RunFailedError';
  readonly exitCode = 1;
}

export function exitCodeOf(e: unknown): 1 | 2 {
  return (e as { exitCode?: number })?.exitCode === 2 ? 2 : 1;
}
