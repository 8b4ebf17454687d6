/**
 * Errors of the local OpenWhisk platform. `WhiskHttpError` is what a route throws to answer with an OpenWhisk error
 * body (`{error, code}`, `code` being the request's transaction id); `FabricConfigError` is a bad cluster definition
 * (exit code 2: the user must fix the fabric file).
 */

/** The messages a real OpenWhisk controller uses, so clients and people see the same text. */
export const WhiskMessages = {
  unauthenticated: 'The supplied authentication is invalid',
  notFound: 'The requested resource does not exist.',
  conflict: 'resource already exists',
  malformed: 'The request content was malformed:',
  methodNotAllowed: 'The requested method is not allowed for this resource.',
  internal: 'Response Missing Error Message.',
  forbidden: (ns: string) => `The supplied authentication is not authorized to access '${ns}'.`,
  tooLarge: (got: number, max: number) => `The request content exceeds the maximum allowed size (${got} > ${max} bytes).`,
  timeLimit: (ms: number) => `The action exceeded its time limit of ${ms} milliseconds.`,
} as const;

export type WhiskHttpStatus = 400 | 401 | 403 | 404 | 405 | 409 | 413 | 500;

export class WhiskHttpError extends Error {
  override name = 'WhiskHttpError';
  constructor(
    readonly status: WhiskHttpStatus,
    message: string,
  ) {
    super(message);
  }

  static badRequest(detail: string): WhiskHttpError {
    return new WhiskHttpError(400, `${WhiskMessages.malformed}\n${detail}`);
  }
  static unauthenticated(): WhiskHttpError {
    return new WhiskHttpError(401, WhiskMessages.unauthenticated);
  }
  static forbidden(ns: string): WhiskHttpError {
    return new WhiskHttpError(403, WhiskMessages.forbidden(ns));
  }
  static notFound(): WhiskHttpError {
    return new WhiskHttpError(404, WhiskMessages.notFound);
  }
  static methodNotAllowed(): WhiskHttpError {
    return new WhiskHttpError(405, WhiskMessages.methodNotAllowed);
  }
  static conflict(): WhiskHttpError {
    return new WhiskHttpError(409, WhiskMessages.conflict);
  }
  static tooLarge(got: number, max: number): WhiskHttpError {
    return new WhiskHttpError(413, WhiskMessages.tooLarge(got, max));
  }
}

/** A cluster definition the fabric cannot start: unknown profile, bad auth, duplicate name, port in use … */
export class FabricConfigError extends Error {
  override name = 'FabricConfigError';
  readonly exitCode = 2;
}
