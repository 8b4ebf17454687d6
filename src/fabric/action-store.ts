/**
 * The actions of one namespace: validates `PUT …/actions/NAME` bodies the way an OpenWhisk controller does (kinds,
 * limits, name), merges updates into the existing action, bumps the version on every write, and renders the JSON
 * records the API answers with.
 *
 * Limits: timeout 100 ms … 3,600,000 ms (OpenWhisk's default range is 100 … 300,000 ms; the upper bound is raised
 * to one hour so that long federated-learning rounds fit), memory 128 MB … the cluster's memory, concurrency
 * 1 … 500, logs 0 … 10 MB. Defaults as OpenWhisk's: 60,000 ms, 256 MB, concurrency 1, logs 10 MB.
 */
import { WhiskHttpError } from './errors.js';
import { ActionPutSchema, describeIssues, type ActionPut } from './schemas.js';

export interface KeyValue {
  key: string;
  value: unknown;
}

export interface StoredLimits {
  timeout: number;
  memory: number;
  logs: number;
  concurrency: number;
}

export interface StoredExec {
  /** Normalised: `nodejs:default` is stored as `nodejs:20`. */
  kind: string;
  code?: string;
  binary: boolean;
  main?: string;
  image?: string;
}

export interface StoredAction {
  namespace: string;
  name: string;
  /** Semantic version, bumped (patch) on every update, as OpenWhisk does. */
  version: string;
  /** Unique across the server's life (a deleted and re-created action restarts at 0.0.1): keys the containers. */
  revision: string;
  publish: boolean;
  exec: StoredExec;
  parameters: KeyValue[];
  annotations: KeyValue[];
  limits: StoredLimits;
  updated: number;
}

export const LIMIT_RANGES = {
  timeout: { min: 100, max: 3_600_000, unit: 'milliseconds' },
  concurrency: { min: 1, max: 500, unit: '' },
  logs: { min: 0, max: 10, unit: 'MB' },
} as const;
export const MIN_MEMORY_MB = 128;
export const DEFAULT_LIMITS: StoredLimits = { timeout: 60_000, memory: 256, logs: 10, concurrency: 1 };

/** Kinds this cluster runs; `nodejs:default` means `nodejs:20`. */
const KIND_ALIASES: Readonly<Record<string, string>> = { 'nodejs:20': 'nodejs:20', 'nodejs:default': 'nodejs:20', blackbox: 'blackbox' };
/** OpenWhisk's entity-name rule. */
const NAME_PATTERN = /^(?:[\w]|[\w][\w@ .-]*[\w@.-]+)$/;
const ZIP_MAGIC = 'PK\x03\x04';

export class ActionStore {
  private readonly actions = new Map<string, StoredAction>();
  private revisions = 0;

  constructor(
    readonly namespace: string,
    /** The cluster's memory: the largest memory limit an action may ask for. */
    private readonly maxMemoryMb: number,
  ) {}

  get(name: string): StoredAction | undefined {
    return this.actions.get(name);
  }

  /** Newest update first, as `GET …/actions` lists them. */
  list(): StoredAction[] {
    return [...this.actions.values()].sort((a, b) => b.updated - a.updated || a.name.localeCompare(b.name));
  }

  delete(name: string): StoredAction {
    const a = this.actions.get(name);
    if (!a) throw WhiskHttpError.notFound();
    this.actions.delete(name);
    return a;
  }

  /** Create, or update when `overwrite` is set: 409 if it exists without overwrite, 400 on a bad body. */
  put(name: string, body: unknown, overwrite: boolean): StoredAction {
    if (!NAME_PATTERN.test(name) || name.length > 256) {
      throw WhiskHttpError.badRequest(`name '${name}' is not a valid OpenWhisk entity name`);
    }
    const existing = this.actions.get(name);
    if (existing && !overwrite) throw WhiskHttpError.conflict();
    const put = parsePut(body ?? {});
    const exec = put.exec !== undefined ? normaliseExec(put.exec) : existing?.exec;
    if (!exec) throw WhiskHttpError.badRequest("exec undefined: a new action needs 'exec' with 'kind' and 'code' (or 'image')");
    const limits = this.mergeLimits(existing?.limits ?? DEFAULT_LIMITS, put.limits);
    const prior = existing?.annotations ?? [];
    const deleted = new Set(put.delAnnotations ?? []);
    const annotations = withKeyValue(
      (put.annotations ?? prior).filter((a) => !deleted.has(a.key)),
      'exec',
      exec.kind,
    );
    const action: StoredAction = {
      namespace: this.namespace,
      name,
      version: existing ? bumpPatch(existing.version) : '0.0.1',
      revision: String(++this.revisions),
      publish: put.publish ?? existing?.publish ?? false,
      exec,
      parameters: (put.parameters ?? existing?.parameters ?? []).map((p) => ({ key: p.key, value: p.value })),
      annotations,
      limits,
      updated: Date.now(),
    };
    this.actions.set(name, action);
    return action;
  }

  private mergeLimits(base: StoredLimits, given: ActionPut['limits']): StoredLimits {
    const l: StoredLimits = {
      timeout: given?.timeout ?? base.timeout,
      memory: given?.memory ?? base.memory,
      logs: given?.logs ?? base.logs,
      concurrency: given?.concurrency ?? base.concurrency,
    };
    const problems: string[] = [];
    for (const key of ['timeout', 'concurrency', 'logs'] as const) {
      const r = LIMIT_RANGES[key];
      problems.push(...checkRange(key, l[key], r.min, r.max, r.unit));
    }
    problems.push(...checkRange('memory', l.memory, MIN_MEMORY_MB, this.maxMemoryMb, 'MB'));
    if (problems.length > 0) throw WhiskHttpError.badRequest(problems.join('\n'));
    return l;
  }
}

/** The JSON of an action, as `PUT`/`GET`/`DELETE …/actions/NAME` answer (code only when asked). */
export function actionJson(a: StoredAction, withCode: boolean): Record<string, unknown> {
  const exec: Record<string, unknown> = { kind: a.exec.kind, binary: a.exec.binary };
  if (a.exec.main !== undefined) exec.main = a.exec.main;
  if (a.exec.image !== undefined) exec.image = a.exec.image;
  if (withCode && a.exec.code !== undefined) exec.code = a.exec.code;
  return {
    namespace: a.namespace,
    name: a.name,
    version: a.version,
    exec,
    parameters: a.parameters,
    annotations: a.annotations,
    limits: a.limits,
    publish: a.publish,
    updated: a.updated,
  };
}

/** An element of `GET …/actions` (the swagger's ActionMeta: exec carries only `binary`). */
export function actionMetaJson(a: StoredAction): Record<string, unknown> {
  return {
    namespace: a.namespace,
    name: a.name,
    version: a.version,
    exec: { binary: a.exec.binary },
    annotations: a.annotations,
    limits: a.limits,
    publish: a.publish,
    updated: a.updated,
  };
}

function parsePut(body: unknown): ActionPut {
  // Check the kind first, so an unknown kind gets one clear line instead of the swagger's list of 25.
  const kind = (body as { exec?: { kind?: unknown } } | null)?.exec?.kind;
  if (kind !== undefined && !(typeof kind === 'string' && kind in KIND_ALIASES)) {
    throw WhiskHttpError.badRequest(
      `kind '${String(kind)}' is not supported by this cluster (supported: ${Object.keys(KIND_ALIASES).join(', ')})`,
    );
  }
  const parsed = ActionPutSchema.safeParse(body);
  if (!parsed.success) throw WhiskHttpError.badRequest(describeIssues(parsed.error));
  return parsed.data;
}

function normaliseExec(e: NonNullable<ActionPut['exec']>): StoredExec {
  const kind = KIND_ALIASES[e.kind ?? 'nodejs:default']!;
  if (kind === 'blackbox') {
    if (!e.image) throw WhiskHttpError.badRequest("exec.image undefined: a 'blackbox' action needs an image");
  } else if (e.code === undefined || e.code.trim() === '') {
    throw WhiskHttpError.badRequest(`exec.code undefined: a '${e.kind ?? 'nodejs:default'}' action needs code`);
  }
  const exec: StoredExec = { kind, binary: e.code !== undefined && isBase64Zip(e.code) };
  if (e.code !== undefined) exec.code = e.code;
  if (e.main !== undefined && e.main !== '') exec.main = e.main;
  if (e.image !== undefined) exec.image = e.image;
  return exec;
}

/** OpenWhisk ignores `exec.binary` on writes and decides itself: a base64 zip archive is binary. */
export function isBase64Zip(code: string): boolean {
  const head = code.slice(0, 64).replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(head)) return false;
  return Buffer.from(head, 'base64').toString('latin1').startsWith(ZIP_MAGIC);
}

function checkRange(name: string, v: number, min: number, max: number, unit: string): string[] {
  const u = unit ? ` ${unit}` : '';
  if (v < min) return [`${name} ${v}${u} below allowed threshold of ${min}${u}`];
  if (v > max) return [`${name} ${v}${u} exceeds allowed threshold of ${max}${u}`];
  return [];
}

function withKeyValue(list: KeyValue[], key: string, value: unknown): KeyValue[] {
  return [...list.filter((kv) => kv.key !== key).map((kv) => ({ key: kv.key, value: kv.value })), { key, value }];
}

function bumpPatch(v: string): string {
  const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(v);
  return m ? `${m[1]}.${m[2]}.${Number(m[3]) + 1}` : '0.0.1';
}
