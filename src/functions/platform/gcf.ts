/**
 * The Google Cloud Functions entry wrapper (design §2), bundled into every GCF package: an HTTP function
 * `(req, res)` exported under the deployment's entry point and served by Google's functions-framework. The JSON
 * request body is the params, the handler's result the JSON answer; a thrown error answers 200 with
 * `{error, errorName, errorCode}` (an application error, as on OpenWhisk).
 *
 * GCF tells a function neither its activation id nor its deadline, and the caller not whether a request hit a new
 * instance: the caller sends the first two as headers, the wrapper answers the third as a header.
 */
import type { FunctionHandler } from '../types.js';
import { errorResult } from './errors.js';

/** The exported name the framework (`--target`) and Cloud Functions (`buildConfig.entryPoint`) call. */
export const GCF_ENTRY_POINT = 'fedkeeper_http';
/** Set on every answer: `true` on the first request an instance serves. */
export const COLD_START_HEADER = 'x-fedkeeper-cold-start';
/** Request headers carrying the activation's id and deadline (epoch ms). */
export const ACTIVATION_ID_HEADER = 'x-fedkeeper-activation-id';
export const DEADLINE_HEADER = 'x-fedkeeper-deadline';

/** The parts of the framework's (Express) request and response the wrapper uses. */
interface HttpRequest {
  body?: unknown;
  get(name: string): string | undefined;
  executionId?: string;
}
interface HttpResponse {
  set(name: string, value: string): unknown;
  json(body: unknown): unknown;
}

export function gcfHttp(functionName: string, handler: FunctionHandler): (req: HttpRequest, res: HttpResponse) => Promise<void> {
  let served = 0; // requests this instance has served; the first one is its cold start
  return async (req, res) => {
    res.set(COLD_START_HEADER, served++ === 0 ? 'true' : 'false');
    const body = req.body;
    const params = body !== null && typeof body === 'object' && !Buffer.isBuffer(body) ? (body as Record<string, unknown>) : {};
    const context = {
      activationId: req.get(ACTIVATION_ID_HEADER) || req.executionId || '',
      functionName,
      deadline: Number(req.get(DEADLINE_HEADER)) || Date.now() + 300_000,
    };
    let result: Record<string, unknown>;
    try {
      result = await handler(params, context);
    } catch (e) {
      result = errorResult(e);
    }
    res.json(result);
  };
}
