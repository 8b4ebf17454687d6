/**
 * Lambda's Runtime API as the environment serves it and the runtime client speaks it (lambda-environment.ts,
 * lambda-runtime-client.ts): paths, headers, limits and the error documents. Constants only (and those of
 * action-contract.ts): the runtime client loads it, and nothing else of FedKeeper, next to the function's code.
 *
 *   GET  /2018-06-01/runtime/invocation/next            → 200, the event; Lambda-Runtime-* headers
 *   POST /2018-06-01/runtime/invocation/{id}/response   → 202 {"status":"OK"} (413 past RESPONSE_LIMIT)
 *   POST /2018-06-01/runtime/invocation/{id}/error      → 202; body {errorType, errorMessage, trace}
 *   POST /2018-06-01/runtime/init/error                 → 202; the function could not be loaded
 */
export { ACTIVATION_SENTINEL, FAULT_INJECTION_FLAG } from './action-contract.js';

export const RUNTIME_API = '/2018-06-01/runtime';

/** Headers of `GET …/invocation/next` (lower case, as Node's http module gives them). */
export const INVOKE_HEADERS = {
  requestId: 'lambda-runtime-aws-request-id',
  deadlineMs: 'lambda-runtime-deadline-ms',
  functionArn: 'lambda-runtime-invoked-function-arn',
  traceId: 'lambda-runtime-trace-id',
  clientContext: 'lambda-runtime-client-context',
  cognitoIdentity: 'lambda-runtime-cognito-identity',
  /**
   * FedKeeper's, not Lambda's: an injected fault the runtime acts out ('error' | 'timeout'), honoured only by a
   * runtime started with FAULT_INJECTION_FLAG. A function never sees the headers of `next`; its caller cannot set it.
   */
  fault: 'lambda-runtime-fedkeeper-fault',
} as const;

/** Header of `…/error` and `…/init/error` posts: the error's type. */
export const ERROR_TYPE_HEADER = 'lambda-runtime-function-error-type';

/** Lambda's limits, bytes: a RequestResponse invocation's request, its response, and an Event invocation's payload. */
export const PAYLOAD_LIMITS = { request: 6_291_456, response: 6_291_556, event: 262_144 } as const;

/** The document of a function error, as Lambda answers it (Invoke's payload with X-Amz-Function-Error). */
export interface ErrorDocument {
  errorType: string;
  errorMessage: string;
  trace?: string[];
}

/** The type and message of an injected function error (errorProbability). */
export const INJECTED_ERROR: ErrorDocument = { errorType: 'FedKeeper.InjectedFault', errorMessage: 'injected fault', trace: [] };
