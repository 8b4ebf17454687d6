/**
 * How a handler's thrown error becomes an answer on every platform: `{error, errorName, errorCode}`, which the
 * platforms classify as an application error. errorCode 'bad_input' tells the keeper not to retry (the user's input
 * is wrong: a retry would fail the same way).
 */
export function errorResult(e: unknown): Record<string, unknown> {
  const err = e instanceof Error ? e : new Error(String(e));
  const own = err as Error & { code?: unknown; exitCode?: unknown };
  const code = own.code !== undefined ? own.code : own.exitCode === 2 ? 'bad_input' : undefined;
  return { error: err.message, errorName: err.name, ...(code !== undefined ? { errorCode: code } : {}) };
}
