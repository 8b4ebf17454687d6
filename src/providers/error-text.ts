/**
 * The text of an error as a platform hands it back, whatever its shape: a string; Apache's nodejs runtime gives a
 * rejected `main`'s Error as an object `{name, message, stack}`; Lambda gives `{errorType, errorMessage}`; others
 * nest it (`{error: {message}}`). Never "[object Object]". Pure: bundled into function packages too.
 */
export function errorText(e: unknown): string {
  if (e === undefined || e === null) return '';
  if (typeof e === 'string') return e;
  if (typeof e !== 'object') return String(e);
  const o = e as Record<string, unknown>;
  const message = o['message'] ?? o['errorMessage'];
  const name = o['name'] ?? o['errorType'];
  if (typeof message === 'string') return typeof name === 'string' && name !== 'Error' && !message.startsWith(name) ? `${name}: ${message}` : message;
  if ('error' in o) return errorText(o['error']);
  try {
    return JSON.stringify(e);
  } catch {
    return String(e);
  }
}
