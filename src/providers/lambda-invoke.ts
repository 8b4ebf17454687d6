/**
 * What a Lambda Invoke (RequestResponse) answer means for an activation: the function's result, an application
 * error (a result with `error`, or a function error thrown by the handler), a developer error (the runtime failed:
 * `Runtime.*` error types), or a timeout (`Task timed out after …`). And whether the invocation was a cold start:
 * Lambda says so in the REPORT line of the log tail (`Init Duration`), the only place it does.
 */
import type { ActivationStatus } from '../store/types.js';

export interface InvokeAnswer {
  statusCode?: number;
  functionError?: string;
  /** The response payload as text. */
  payload: string;
  /** LogResult: the last 4 KB of the invocation's log, base64. */
  logResult?: string;
}

export interface InvokeOutcome {
  status: Exclude<ActivationStatus, 'running' | 'lost'>;
  result: Record<string, unknown>;
  coldStart: boolean;
  logs: string[];
}

function parse(payload: string): unknown {
  try {
    return payload === '' ? null : JSON.parse(payload);
  } catch {
    return undefined;
  }
}

export function classifyInvoke(a: InvokeAnswer): InvokeOutcome {
  const logs = a.logResult ? Buffer.from(a.logResult, 'base64').toString('utf8').split('\n').filter((l) => l !== '') : [];
  const coldStart = logs.some((l) => l.startsWith('REPORT ') && /Init Duration:/.test(l));
  const body = parse(a.payload);
  if (a.functionError) {
    const e = (body ?? {}) as { errorType?: unknown; errorMessage?: unknown };
    const type = typeof e.errorType === 'string' ? e.errorType : a.functionError;
    const message = typeof e.errorMessage === 'string' ? e.errorMessage : a.payload.slice(0, 500);
    const result = { error: `${type}: ${message}`, errorType: type };
    if (/Task timed out after/i.test(message) || /Timedout|Timeout/i.test(type)) return { status: 'timed out', result, coldStart, logs };
    if (/^Runtime\./.test(type) || /^Sandbox\./.test(type)) return { status: 'developer error', result, coldStart, logs };
    return { status: 'application error', result, coldStart, logs };
  }
  if (body === undefined) return { status: 'developer error', result: { error: `the function's answer is not JSON: ${a.payload.slice(0, 200)}` }, coldStart, logs };
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    return { status: 'developer error', result: { error: `the function's result is not a JSON object: ${a.payload.slice(0, 200)}` }, coldStart, logs };
  }
  const result = body as Record<string, unknown>;
  return { status: 'error' in result ? 'application error' : 'success', result, coldStart, logs };
}
