/**
 * Errors of the local OpenWhisk platform. `WhiskHttpError` is what a route throws to answer with an OpenWhisk error
 * body (`{error, code}`, `code` being the request's transaction id); `FabricConfigError` is a bad cluster definition
 * (exit code 2: the user must fix the fabric file).
 *
 * The texts are the controller's own (Apache OpenWhisk `http/ErrorResponse.scala` Messages, and the default rejection
 * texts of the Pekko HTTP server it runs on), so clients and people see what a real cluster would tell them.
 */

/** The messages a real OpenWhisk controller uses. */
export const WhiskMessages = {
  /** Pekko: AuthenticationFailedRejection(CredentialsMissing) — no Basic credentials at all. */
  authenticationMissing: 'The resource requires authentication, which was not supplied with the request',
  /** Pekko: AuthenticationFailedRejection(CredentialsRejected) — Basic credentials that are not a key of this cluster. */
  unauthenticated: 'The supplied authentication is invalid',
  notFound: 'The requested resource does not exist.',
  /** Pekko's answer for a path no route matches. */
  noRoute: 'The requested resource could not be found.',
  conflict: 'resource already exists',
  malformed: 'The request content was malformed:',
  entityExpected: 'Request entity expected but not supplied',
  methodNotAllowed: (supported: readonly string[]) => `HTTP method not allowed, supported methods: ${supported.join(', ')}`,
  malformedQuery: (name: string, detail: string) => `The query parameter '${name}' was malformed:\n${detail}`,
  forbidden: (resource: string) => `The supplied authentication is not authorized to access '${resource}'.`,
  forbiddenKind: (kind: string) => `The supplied authentication is not authorized to access actions of kind '${kind}'.`,
  entityNameIllegal: 'The name of the entity contains illegal characters.',
  entityNameTooLong: (length: number, max: number) => `Name segement longer than allowed: ${length} > ${max}.`,
  activationIdLength: (length: number) => `Activation id length is ${length} but must be 32.`,
  activationIdIllegal: 'The activation id is not valid.',
  tooLarge: (got: number, max: number) => `Request larger than allowed: ${got} > ${max} bytes.`,
  truncatedResponse: (trunk: string, length: number, max: number) =>
    `The action produced a response that exceeded the allowed length: ${length} > ${max} bytes. The truncated response was: ${trunk}`,
  /** The controller's text for an activation that ran past its time limit (`timedoutActivation`, run phase). */
  timeLimit: (ms: number) => `The action exceeded its time limits of ${ms} milliseconds.`,
  invalidRuntime: (kind: string, runtimes: readonly string[]) =>
    `The specified runtime '${kind}' is not supported by this platform. Valid values are: ${runtimes.map((r) => `'${r}'`).join(', ')}.`,
  execUndefined: 'exec undefined',
  invalidTimeout: (maxMs: number) => `Timeout must be number of milliseconds up to ${maxMs}.`,
  listLimitOutOfRange: (collection: string, value: number, max: number) => `The value '${value}' is not in the range of 0 to ${max} for ${collection}.`,
  listSkipOutOfRange: (collection: string, value: number) => `The value '${value}' is not greater than or equal to 0 for ${collection}.`,
  argumentNotInteger: (collection: string, value: string) => `The value '${value}' is not an integer for ${collection}.`,
  badEpoch: (value: string) => `Parameter is not a valid value for epoch seconds: ${value}`,
  badNameFilter: (value: string) => `Parameter may be a 'simple' name or 'package-name/simple' name: ${value}`,
  docsNotAllowedWithCount: "The parameter 'docs' is not permitted with 'count'.",
  tooManyRequests: (count: number, allowed: number) => `Too many requests in the last minute (count: ${count}, allowed: ${allowed}).`,
  tooManyConcurrentRequests: (count: number, allowed: number) => `Too many concurrent requests in flight (count: ${count}, allowed: ${allowed}).`,
  instancesExceedNamespace: (limit: number) => `Max action instance concurrency must not exceed your namespace concurrency of ${limit}.`,
  internal: 'There was an internal server error.',
} as const;

export type WhiskHttpStatus = 400 | 401 | 403 | 404 | 405 | 409 | 413 | 429 | 500;

export class WhiskHttpError extends Error {
  override name = 'WhiskHttpError';
  constructor(
    readonly status: WhiskHttpStatus,
    message: string,
    /** Extra response headers (`WWW-Authenticate` on a 401, `Allow` on a 405). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  /** 400 for a body that cannot be read as the entity: "The request content was malformed:\n…". */
  static malformed(detail: string): WhiskHttpError {
    return new WhiskHttpError(400, `${WhiskMessages.malformed}\n${detail}`);
  }
  /** 400 with the controller's message as it is (a rejected request, not an unreadable one). */
  static badRequest(message: string): WhiskHttpError {
    return new WhiskHttpError(400, message);
  }
  static malformedQuery(name: string, detail: string): WhiskHttpError {
    return new WhiskHttpError(400, WhiskMessages.malformedQuery(name, detail));
  }
  /** 401; `missing`: no Basic credentials were sent at all. */
  static unauthenticated(missing = false): WhiskHttpError {
    return new WhiskHttpError(401, missing ? WhiskMessages.authenticationMissing : WhiskMessages.unauthenticated, {
      'WWW-Authenticate': 'Basic realm="OpenWhisk secure realm"',
    });
  }
  static forbidden(resource: string): WhiskHttpError {
    return new WhiskHttpError(403, WhiskMessages.forbidden(resource));
  }
  static notFound(): WhiskHttpError {
    return new WhiskHttpError(404, WhiskMessages.notFound);
  }
  static noRoute(): WhiskHttpError {
    return new WhiskHttpError(404, WhiskMessages.noRoute);
  }
  static methodNotAllowed(supported: readonly string[]): WhiskHttpError {
    return new WhiskHttpError(405, WhiskMessages.methodNotAllowed(supported), { Allow: supported.join(', ') });
  }
  static conflict(): WhiskHttpError {
    return new WhiskHttpError(409, WhiskMessages.conflict);
  }
  static tooLarge(got: number, max: number): WhiskHttpError {
    return new WhiskHttpError(413, WhiskMessages.tooLarge(got, max));
  }
  static throttled(message: string): WhiskHttpError {
    return new WhiskHttpError(429, message);
  }
}

/** A cluster definition the fabric cannot start: unknown profile, bad auth, duplicate name, port in use … */
export class FabricConfigError extends Error {
  override name = 'FabricConfigError';
  readonly exitCode = 2;
}
