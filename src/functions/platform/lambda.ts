/**
 * The AWS Lambda entry wrapper (design §2), bundled into every Lambda package: `exports.handler = async (event,
 * context) => result` (Handler `index.handler`, runtime nodejs20.x). The event is the params; the activation id is
 * the request id, the deadline what Lambda says is left. A thrown error answers `{error, errorName, errorCode}` as a
 * normal result (an application error, as on OpenWhisk and GCF), so that `errorCode: bad_input` reaches the keeper;
 * a crash or a timeout is still Lambda's own function error.
 */
import type { FunctionHandler } from '../types.js';
import { errorResult } from './errors.js';

/** The parts of Lambda's Node.js `context` the wrapper uses. */
interface LambdaContext {
  awsRequestId?: string;
  getRemainingTimeInMillis?: () => number;
  callbackWaitsForEmptyEventLoop?: boolean;
}

export type LambdaHandler = (event: unknown, context?: LambdaContext) => Promise<Record<string, unknown>>;

export function lambdaHandler(functionName: string, handler: FunctionHandler): LambdaHandler {
  return async (event, context) => {
    // Pooled store connections and keep-alive sockets stay open between warm invocations: do not wait for them.
    if (context) context.callbackWaitsForEmptyEventLoop = false;
    const left = context?.getRemainingTimeInMillis?.();
    const ctx = { activationId: context?.awsRequestId ?? '', functionName, deadline: Date.now() + (typeof left === 'number' ? left : 300_000) };
    const params = event !== null && typeof event === 'object' && !Array.isArray(event) ? (event as Record<string, unknown>) : {};
    try {
      return await handler(params, ctx);
    } catch (e) {
      return errorResult(e);
    }
  };
}
