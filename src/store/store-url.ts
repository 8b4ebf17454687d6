/**
 * Store URLs carry a password (postgres://user:password@host:5432/db, or ?password=…): `redactUrlPassword` gives
 * the form that may appear in messages, logs and written configs. Pure string code, no dependencies, so that both
 * the store (bundled into function packages) and the config loader use it.
 */

export const REDACTED_PASSWORD = '***';

const SCHEME = /^([a-z][a-z0-9+.-]*:\/\/)([\s\S]*)$/i;
/** `password=…` as a query parameter (postgres://h/db?password=…) or a libpq keyword (`host=h password=…`). */
const PASSWORD_PARAM = /(\bpassword\s*=\s*)('[^']*'|[^&#\s]*)/gi;

/**
 * The URL with every password replaced by "***", the user kept: postgres://fk:***@db:5432/fl. Errs on the side of
 * hiding: everything up to the LAST '@' counts as user info (a password may hold an unencoded '@' or '/'), so
 * nothing a connection library could read as the password survives, even in a malformed URL.
 */
export function redactUrlPassword(url: string): string {
  let out = url;
  const m = SCHEME.exec(url);
  if (m) {
    const [, scheme, rest] = m as unknown as [string, string, string];
    const at = rest.lastIndexOf('@');
    if (at >= 0) {
      const userinfo = rest.slice(0, at);
      const colon = userinfo.indexOf(':');
      const shown = colon >= 0 ? `${userinfo.slice(0, colon)}:${REDACTED_PASSWORD}` : userinfo;
      out = `${scheme}${shown}${rest.slice(at)}`;
    }
  }
  return out.replace(PASSWORD_PARAM, `$1${REDACTED_PASSWORD}`);
}

/** The password a URL carries (user info or ?password=), or undefined; used to scrub third-party messages. */
export function urlPassword(url: string): string | undefined {
  try {
    const u = new URL(url);
    const p = u.password !== '' ? decodeURIComponent(u.password) : u.searchParams.get('password');
    return p === null || p === '' ? undefined : p;
  } catch {
    return undefined;
  }
}

/** Is `url` a URL a PostgreSQL client can use: postgres:// or postgresql://, parseable? */
export function isPostgresUrl(url: string): boolean {
  if (!/^postgres(ql)?:\/\//i.test(url)) return false;
  try {
    new URL(url);
    return true;
  } catch {
    return false;
  }
}
