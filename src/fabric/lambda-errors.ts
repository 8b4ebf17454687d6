/**
 * Errors of the local Lambda platform, answered as AWS Lambda answers them so that `@aws-sdk/client-lambda` turns
 * them into its typed exceptions: HTTP status, `X-Amzn-ErrorType: <Type>` (the SDK's first source for the error's
 * name) and a JSON body `{Type: "User", message}` — `Message` for the exceptions the Lambda model spells so
 * (ResourceNotFoundException, ServiceException …) — plus the exception's own fields (TooManyRequestsException's
 * `Reason`). Authentication errors carry only `{message}`, as AWS's front door writes them.
 */

/** Exceptions whose message member the Lambda model names `Message` (the rest use `message`). */
const CAPITAL_MESSAGE = new Set(['ResourceNotFoundException', 'ServiceException', 'InvalidZipFileException', 'ResourceInUseException']);
/** Errors of AWS's request authentication, not of the Lambda service: no `Type`. */
const AUTH_ERRORS = new Set(['MissingAuthenticationTokenException', 'UnrecognizedClientException', 'InvalidSignatureException', 'IncompleteSignatureException']);

export class LambdaError extends Error {
  override name = 'LambdaError';
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    /** Further members of the exception's body (e.g. Reason). */
    readonly fields: Record<string, unknown> = {},
    /** Further response headers (e.g. Retry-After). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  body(): Record<string, unknown> {
    if (AUTH_ERRORS.has(this.type)) return { message: this.message };
    const key = CAPITAL_MESSAGE.has(this.type) ? 'Message' : 'message';
    return { Type: this.status >= 500 ? 'Service' : 'User', [key]: this.message, ...this.fields };
  }

  static notFound(what: string): LambdaError {
    return new LambdaError(404, 'ResourceNotFoundException', `Function not found: ${what}`);
  }
  static conflict(message: string): LambdaError {
    return new LambdaError(409, 'ResourceConflictException', message);
  }
  static invalid(message: string): LambdaError {
    return new LambdaError(400, 'InvalidParameterValueException', message);
  }
  /** A value out of its range, in AWS's validation words, naming the field. */
  static outOfRange(field: string, value: unknown, constraint: string): LambdaError {
    return LambdaError.invalid(`1 validation error detected: Value '${String(value)}' at '${field}' failed to satisfy constraint: ${constraint}`);
  }
  static badContent(message: string): LambdaError {
    return new LambdaError(400, 'InvalidRequestContentException', message);
  }
  static tooLarge(message: string): LambdaError {
    return new LambdaError(413, 'RequestEntityTooLargeException', message);
  }
  static throttled(reason: 'ReservedFunctionConcurrentInvocationLimitExceeded' | 'ConcurrentInvocationLimitExceeded'): LambdaError {
    return new LambdaError(429, 'TooManyRequestsException', 'Rate Exceeded.', { Reason: reason });
  }
  static preconditionFailed(): LambdaError {
    return new LambdaError(412, 'PreconditionFailedException', 'The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id');
  }
  static unknownOperation(): LambdaError {
    return new LambdaError(404, 'UnknownOperationException', 'Unknown operation');
  }
  static missingToken(): LambdaError {
    return new LambdaError(403, 'MissingAuthenticationTokenException', 'Missing Authentication Token');
  }
  static unrecognizedClient(): LambdaError {
    return new LambdaError(403, 'UnrecognizedClientException', 'The security token included in the request is invalid.');
  }
  static badSignature(message: string): LambdaError {
    return new LambdaError(403, 'InvalidSignatureException', message);
  }
  static incompleteSignature(message: string): LambdaError {
    return new LambdaError(403, 'IncompleteSignatureException', message);
  }
}
