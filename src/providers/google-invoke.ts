/**
 * Invoking a Google Cloud Function and keeping its activation record. GCF has no activations: an HTTP function is
 * called synchronously and answers once. FedKeeper's contract is non-blocking invoke + poll by id, so the provider
 * fires the POST in the background and keeps an OpenWhisk-like record (running → success | application error |
 * developer error | internal error | timed out) that `activation(id)` reads. Used by local and cloud mode alike.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { ActivationStatus } from '../store/types.js';
import { ACTIVATION_ID_HEADER, COLD_START_HEADER, DEADLINE_HEADER } from './google-entry.js';
import type { Activation } from './types.js';

/** A GCF activation: the common record plus what Google's answer said about it. */
export interface GoogleActivation extends Activation {
  /** The `function-execution-id` response header (set by Google's front end), when present. */
  executionId?: string;
  /** HTTP status of the function's answer (absent while running, on a timeout or a broken connection). */
  httpStatus?: number;
}

export interface CallOutcome {
  status: Exclude<ActivationStatus, 'running' | 'lost'>;
  result: Record<string, unknown>;
  startTime: number;
  endTime: number;
  coldStart: boolean;
  httpStatus?: number;
  executionId?: string;
}

/** Header the framework sets on a crash (`crash`) or a failed event function (`error`). */
const GOOGLE_STATUS_HEADER = 'x-google-status';
const EXECUTION_ID_HEADER = 'function-execution-id';
/** Cloud Functions v2 answers are at most 32 MiB; refuse more rather than buffer without bound. */
const MAX_RESPONSE_BYTES = 32 * 1024 * 1024;

function header(h: http.IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

function snippet(body: Buffer): string {
  const s = body.toString('utf8').trim();
  return s.length > 500 ? `${s.slice(0, 500)}…` : s;
}

/**
 * What an HTTP answer means. The order matters: Google's own status header decides first (a crash is a developer
 * error whatever the status code), then the status code, then the body.
 */
export function classifyResponse(
  httpStatus: number,
  headers: http.IncomingHttpHeaders,
  body: Buffer,
): Pick<CallOutcome, 'status' | 'result'> {
  const googleStatus = header(headers, GOOGLE_STATUS_HEADER);
  if (googleStatus) {
    return {
      status: 'developer error',
      result: { error: `the function crashed (HTTP ${httpStatus}, X-Google-Status: ${googleStatus}): ${snippet(body)}`, google_status: googleStatus },
    };
  }
  if (httpStatus === 504) {
    // Google's front end gives up at the function's timeout; the function itself is not stopped.
    return { status: 'timed out', result: { error: `HTTP 504: no answer within the function's timeout (Google does not stop the function): ${snippet(body)}` } };
  }
  if (httpStatus >= 500 || httpStatus < 200 || (httpStatus >= 300 && httpStatus < 400)) {
    // Not from the framework (it would have set X-Google-Status): Google's front end or the platform answered.
    return { status: 'internal error', result: { error: `HTTP ${httpStatus} from the platform: ${snippet(body)}` } };
  }
  if (httpStatus >= 400) {
    return { status: 'application error', result: { error: `HTTP ${httpStatus} from the function: ${snippet(body)}` } };
  }
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    return { status: 'developer error', result: { error: `the function answered HTTP ${httpStatus} without a JSON body: ${snippet(body)}` } };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { status: 'developer error', result: { error: `the function's result is not a JSON object: ${snippet(body)}` } };
  }
  const result = value as Record<string, unknown>;
  return { status: 'error' in result ? 'application error' : 'success', result };
}

export interface CallRequest {
  url: URL;
  params: Record<string, unknown>;
  /** Extra request headers (e.g. Authorization). */
  headers?: Record<string, string>;
  /** Client-side deadline: the function's timeout. */
  timeoutMs: number;
}

/**
 * POSTs params as JSON to a function URL and classifies the answer. Never rejects. Keeps connections alive
 * (a warm JSON round trip is ~1 ms locally; a new TCP connection per call would dominate it). TLS certificates are
 * always verified (https' defaults; there is no switch to turn that off).
 */
export class FunctionCaller {
  private readonly httpAgent = new http.Agent({ keepAlive: true });
  private readonly httpsAgent = new https.Agent({ keepAlive: true });

  call(req: CallRequest): Promise<CallOutcome> {
    const body = Buffer.from(JSON.stringify(req.params));
    const startTime = Date.now();
    const isHttps = req.url.protocol === 'https:';
    return new Promise<CallOutcome>((resolve) => {
      let settled = false;
      const finish = (o: Omit<CallOutcome, 'startTime' | 'endTime'>): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({ ...o, startTime, endTime: Date.now() });
      };
      const request = (isHttps ? https : http).request(req.url, {
        method: 'POST',
        agent: isHttps ? this.httpsAgent : this.httpAgent,
        headers: {
          // Without a Content-Type the framework's body parsers skip the body and main() would get {}.
          'content-type': 'application/json',
          'content-length': String(body.length),
          ...req.headers,
        },
      });
      // The deadline is the caller's: GCF answers 504 at the timeout but does not stop the function, and the
      // framework's --timeout does not either, so the request is abandoned and the function may run on.
      const timer = setTimeout(() => {
        finish({
          status: 'timed out',
          coldStart: false,
          result: {
            error: `no answer within ${req.timeoutMs} ms (the function's timeout); the request was abandoned, but Google Cloud Functions does not stop a running function, so it may still be running`,
          },
        });
        request.destroy();
      }, req.timeoutMs);
      request.on('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_RESPONSE_BYTES) {
            finish({ status: 'developer error', coldStart: false, httpStatus: res.statusCode, result: { error: `the answer exceeds ${MAX_RESPONSE_BYTES} bytes` } });
            request.destroy();
            return;
          }
          chunks.push(c);
        });
        res.on('end', () => {
          const httpStatus = res.statusCode ?? 0;
          const outcome: Omit<CallOutcome, 'startTime' | 'endTime'> = {
            ...classifyResponse(httpStatus, res.headers, Buffer.concat(chunks)),
            coldStart: header(res.headers, COLD_START_HEADER) === 'true',
            httpStatus,
          };
          const executionId = header(res.headers, EXECUTION_ID_HEADER);
          if (executionId) outcome.executionId = executionId;
          finish(outcome);
        });
        res.on('error', (e) => finish(connectionFailure(e)));
      });
      request.on('error', (e) => finish(connectionFailure(e)));
      request.end(body);
    });
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}

/** A reset or refused connection: the instance died under the request (or was never there). */
function connectionFailure(e: Error): Omit<CallOutcome, 'startTime' | 'endTime'> {
  const code = (e as NodeJS.ErrnoException).code;
  return { status: 'developer error', coldStart: false, result: { error: `the connection to the function failed: ${code ?? ''} ${e.message}`.replace(/\s+/g, ' ').trim() } };
}

/** The headers telling the entry wrapper which activation this is and when its time is up. */
export function activationHeaders(activationId: string, timeoutMs: number): Record<string, string> {
  return { [ACTIVATION_ID_HEADER]: activationId, [DEADLINE_HEADER]: String(Date.now() + timeoutMs) };
}

/** The activation records of one provider object, by id. */
export class ActivationBook {
  private readonly records = new Map<string, GoogleActivation>();

  /** A new running record with an OpenWhisk-style id (32 hex digits). */
  open(functionName: string): GoogleActivation {
    const activationId = randomBytes(16).toString('hex');
    const record: GoogleActivation = { activationId, functionName, status: 'running', startTime: Date.now(), endTime: null, coldStart: false };
    this.records.set(activationId, record);
    return record;
  }

  settle(record: GoogleActivation, o: CallOutcome): void {
    record.status = o.status;
    record.startTime = o.startTime;
    record.endTime = o.endTime;
    record.result = o.result;
    record.coldStart = o.coldStart;
    if (o.httpStatus !== undefined) record.httpStatus = o.httpStatus;
    if (o.executionId !== undefined) record.executionId = o.executionId;
  }

  /**
   * A record that failed before any request was sent (e.g. the server could not be started), with the HTTP status
   * the platform would have answered, if any (local GCF's 429 when no instance is available).
   */
  fail(record: GoogleActivation, status: CallOutcome['status'], error: string, httpStatus?: number): void {
    record.status = status;
    record.endTime = Date.now();
    record.result = { error };
    if (httpStatus !== undefined) record.httpStatus = httpStatus;
  }

  get(activationId: string): GoogleActivation | undefined {
    const a = this.records.get(activationId);
    return a ? { ...a } : undefined;
  }
}
