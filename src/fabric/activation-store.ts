/**
 * The finished activations of one cluster, kept in memory and bounded (the oldest are forgotten first), with the
 * filters of `GET …/activations`. As in OpenWhisk, an activation is stored only when it has ended: until then
 * `GET …/activations/ID` answers 404.
 */
import type { KeyValue } from './action-store.js';

export type ActivationStatus = 'success' | 'application error' | 'action developer error' | 'whisk internal error';

export const STATUS_CODES: Readonly<Record<ActivationStatus, 0 | 1 | 2 | 3>> = {
  success: 0,
  'application error': 1,
  'action developer error': 2,
  'whisk internal error': 3,
};

export interface ActivationResponse {
  status: ActivationStatus;
  statusCode: 0 | 1 | 2 | 3;
  success: boolean;
  result: Record<string, unknown>;
  size: number;
}

/** An activation as this platform keeps it; the API answers it through the *Json functions below. */
export interface StoredActivation {
  namespace: string;
  name: string;
  version: string;
  subject: string;
  activationId: string;
  start: number;
  end: number;
  duration: number;
  statusCode: 0 | 1 | 2 | 3;
  response: ActivationResponse;
  logs: string[];
  annotations: KeyValue[];
  publish: false;
}

export interface ActivationQuery {
  name?: string;
  /** 1 … 200; 0 means the maximum (200). Default 30. */
  limit?: number;
  skip?: number;
  /** Epoch ms bounds on `start`, both inclusive. */
  since?: number;
  upto?: number;
}

export const DEFAULT_LIST_LIMIT = 30;
export const MAX_LIST_LIMIT = 200;

export class ActivationStore {
  /** Insertion order = order of ending; the first entry is evicted first. */
  private readonly records = new Map<string, StoredActivation>();

  constructor(readonly capacity = 10_000) {
    if (!(Number.isInteger(capacity) && capacity >= 1)) throw new RangeError(`activation capacity must be ≥ 1, got ${capacity}`);
  }

  get size(): number {
    return this.records.size;
  }

  add(a: StoredActivation): void {
    this.records.set(a.activationId, a);
    while (this.records.size > this.capacity) {
      const oldest = this.records.keys().next().value as string;
      this.records.delete(oldest);
    }
  }

  get(activationId: string): StoredActivation | undefined {
    return this.records.get(activationId);
  }

  /** Matching activations, newest start first, after `skip`, at most `limit`. */
  list(q: ActivationQuery): StoredActivation[] {
    const limit = q.limit === undefined ? DEFAULT_LIST_LIMIT : q.limit === 0 ? MAX_LIST_LIMIT : Math.min(q.limit, MAX_LIST_LIMIT);
    const skip = q.skip ?? 0;
    return this.matching(q)
      .sort((a, b) => b.start - a.start)
      .slice(skip, skip + limit);
  }

  count(q: ActivationQuery): number {
    return this.matching(q).length;
  }

  private matching(q: ActivationQuery): StoredActivation[] {
    const out: StoredActivation[] = [];
    for (const a of this.records.values()) {
      if (q.name !== undefined && a.name !== q.name) continue;
      if (q.since !== undefined && a.start < q.since) continue;
      if (q.upto !== undefined && a.start > q.upto) continue;
      out.push(a);
    }
    return out;
  }
}

/**
 * An activation as the controller answers it (WhiskActivation.toExtendedJson): `GET …/activations/ID`, a blocking
 * invocation, `docs=true` lists. The response has `status` and `success`, not the stored `statusCode`.
 */
export function activationJson(a: StoredActivation): Record<string, unknown> {
  return {
    namespace: a.namespace,
    name: a.name,
    subject: a.subject,
    activationId: a.activationId,
    start: a.start,
    end: a.end,
    response: activationResultJson(a),
    logs: a.logs,
    version: a.version,
    publish: a.publish,
    annotations: a.annotations,
    duration: a.duration,
  };
}

/** `GET …/activations/ID/result` (ActivationResponse.toExtendedJson). */
export function activationResultJson(a: StoredActivation): Record<string, unknown> {
  const r = a.response;
  return { result: r.result, size: r.size, success: r.success, status: r.status };
}

/** An element of `GET …/activations` without `docs=true` (the controller's summary: statusCode, no response, no logs). */
export function activationBriefJson(a: StoredActivation): Record<string, unknown> {
  return {
    namespace: a.namespace,
    name: a.name,
    version: a.version,
    publish: a.publish,
    annotations: a.annotations,
    activationId: a.activationId,
    start: a.start,
    end: a.end,
    duration: a.duration,
    statusCode: a.statusCode,
  };
}
