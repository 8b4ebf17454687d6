/**
 * The OpenWhisk provider, through the official `openwhisk` client: actions are created and updated as Node.js code
 * (`nodejs:20`) or as a docker image (`blackbox`), with limits and optional web export. The two calls made per
 * client of a round — invocations, non-blocking (→ activation id), and activations read back by id — go out as the
 * client sends them but without its per-call overhead (openwhisk-rest.ts). A real cluster and the local platform of
 * fabric/ are reached the same way.
 */
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import openwhisk from 'openwhisk';
import type { ActivationStatus } from '../store/types.js';
import { actionLimits, fitLimits, STOCK_ACTION_LIMITS, type ActionLimits } from './openwhisk-limits.js';
import { OpenWhiskRest } from './openwhisk-rest.js';
import { ThrottledError } from './throttled.js';
import type { Activation, FunctionSpec, Provider } from './types.js';
import { ProviderError } from './types.js';

export interface OpenWhiskClusterOptions {
  cluster: string;
  /** e.g. https://10.0.0.5:31001 or http://127.0.0.1:3233 */
  apiHost: string;
  /** "uuid:key" */
  apiKey: string;
  namespace: string;
  /** Skip TLS verification (self-signed clusters); off unless the config says `insecure: true`. */
  insecure: boolean;
  /** The ranges the cluster's controller allows for action limits (openwhisk-limits.ts); stock when absent. */
  limits?: ActionLimits;
  /** A function outside them: refused before deploying (default), or clamped with a warning. */
  onLimit?: 'refuse' | 'clamp';
}

/** Reads a cluster block of the config (the seed's `base_url` / `auth.ow_auth` / `auth.ow_api_host`, or `api_host`). */
export function openWhiskOptions(cluster: string, c: Record<string, unknown>): OpenWhiskClusterOptions {
  const auth = (c.auth ?? {}) as Record<string, unknown>;
  const baseUrl = typeof c.base_url === 'string' ? c.base_url : undefined;
  let apiHost = (c.api_host ?? auth.ow_api_host) as string | undefined;
  let namespace = typeof c.namespace === 'string' ? c.namespace : undefined;
  if (baseUrl) {
    let u: URL;
    try {
      u = new URL(baseUrl);
    } catch {
      throw new ProviderError(`providers.openwhisk.${cluster}.base_url: not a URL: ${baseUrl}`, 2);
    }
    apiHost ??= `${u.protocol}//${u.host}`;
    namespace ??= /\/namespaces\/([^/]+)/.exec(u.pathname)?.[1];
  }
  const apiKey = (auth.ow_auth ?? c.api_key) as string | undefined;
  if (!apiHost) throw new ProviderError(`providers.openwhisk.${cluster}: no API host; set api_host (or auth.ow_api_host / base_url)`, 2);
  if (!apiKey || !/^[^:]+:.+$/.test(apiKey)) throw new ProviderError(`providers.openwhisk.${cluster}.auth.ow_auth: expected an API key "uuid:key"`, 2);
  if (!/^https?:\/\//.test(apiHost)) apiHost = `https://${apiHost}`;
  const onLimit = c.on_limit ?? 'refuse';
  if (onLimit !== 'refuse' && onLimit !== 'clamp') throw new ProviderError(`providers.openwhisk.${cluster}.on_limit: expected refuse or clamp, found ${JSON.stringify(onLimit)}`, 2);
  // A local cluster's profile states its controller's ranges; a remote one's operator's are stated in action_limits.
  const local = c.local as { profile?: unknown } | undefined;
  const profileLimits = local && typeof local.profile === 'object' && local.profile !== null ? (local.profile as { limits?: unknown }).limits : undefined;
  const limits = actionLimits(`providers.openwhisk.${cluster}.action_limits`, profileLimits, c.action_limits);
  return { cluster, apiHost: apiHost.replace(/\/+$/, ''), apiKey, namespace: namespace ?? '_', insecure: c.insecure === true, limits, onLimit };
}

/** The annotation naming the package (sha256, size) an action was deployed from. */
export const PACKAGE_ANNOTATION = 'fedkeeper-package';

const STATUS: Record<string, ActivationStatus> = {
  success: 'success',
  'application error': 'application error',
  'action developer error': 'developer error',
  'whisk internal error': 'internal error',
};

interface OwError extends Error {
  statusCode?: number;
  error?: { error?: string; code?: string };
}

export class OpenWhiskProvider implements Provider {
  readonly platform = 'openwhisk';
  readonly cluster: string;
  private readonly ow: openwhisk.Client;
  private readonly agent: http.Agent;
  /** The per-client calls (invoke, activation), over the same agent. */
  private readonly rest: OpenWhiskRest;
  /** Activations this provider started and has not yet seen end (OpenWhisk answers 404 until they do). */
  private readonly issued = new Map<string, { functionName: string; invokedAt: number }>();

  constructor(private readonly opts: OpenWhiskClusterOptions) {
    this.cluster = opts.cluster;
    const secure = opts.apiHost.startsWith('https:');
    this.agent = secure ? new https.Agent({ keepAlive: true, maxSockets: 64, rejectUnauthorized: !opts.insecure }) : new http.Agent({ keepAlive: true, maxSockets: 64 });
    this.ow = openwhisk({ apihost: opts.apiHost, api_key: opts.apiKey, namespace: opts.namespace, ignore_certs: opts.insecure, agent: this.agent });
    this.rest = new OpenWhiskRest({ apiHost: opts.apiHost, apiKey: opts.apiKey, namespace: opts.namespace, agent: this.agent });
  }

  private fail(e: unknown, what: string, name?: string): ProviderError {
    const err = e as OwError;
    const where = `openwhisk cluster ${this.cluster}`;
    const detail = err.error?.error ?? err.message;
    if (err.statusCode === 401 || err.statusCode === 403) return new ProviderError(`${where}: the API key was refused (HTTP ${err.statusCode}); check auth.ow_auth`, 2);
    if (err.statusCode === 404 && name) return new ProviderError(`${where}: action ${name} does not exist (deploy it first: fedkeeper deploy -c CONFIG)`, 2);
    // The namespace's throttles (invocations per minute, concurrent invocations): wait and repeat, not a failure.
    // OpenWhisk sends no Retry-After (and the client would not show one): the keeper's own backoff paces it.
    if (err.statusCode === 429) return new ThrottledError(`${where}: ${what}${name ? ` ${name}` : ''} was throttled (HTTP 429: ${detail})`);
    if (err.statusCode) {
      const transient = err.statusCode >= 500;
      return new ProviderError(`${where}: ${what}${name ? ` ${name}` : ''} failed with HTTP ${err.statusCode}: ${detail}`, 1, transient);
    }
    return new ProviderError(`${where}: cannot reach ${this.opts.apiHost} (${what}${name ? ` ${name}` : ''}): ${detail}`, 1, true);
  }

  validate(spec: FunctionSpec): string[] {
    const want = { memoryMb: spec.memoryMb, timeoutMs: spec.timeoutMs, concurrency: Number(spec.settings.concurrency ?? 1) };
    const { fitted, warnings } = fitLimits(this.cluster, spec.name, want, this.opts.limits ?? STOCK_ACTION_LIMITS, this.opts.onLimit ?? 'refuse');
    spec.memoryMb = fitted.memoryMb;
    spec.timeoutMs = fitted.timeoutMs;
    if (fitted.concurrency !== want.concurrency) spec.settings = { ...spec.settings, concurrency: fitted.concurrency };
    return warnings;
  }

  async deploy(spec: FunctionSpec): Promise<void> {
    const s = spec.settings;
    const image = typeof s.docker_image === 'string' && s.docker_image ? s.docker_image : undefined;
    const { code, binary } = await this.codeOf(spec);
    const kind = image ? 'blackbox' : typeof s.kind === 'string' ? s.kind : 'nodejs:20';
    const exec = { kind, ...(image ? { image } : {}), code, binary, ...(binary ? { main: 'main' } : {}) };
    const concurrency = Number(s.concurrency ?? 1);
    const annotations: { key: string; value: unknown }[] = [{ key: 'fedkeeper-function', value: spec.name }];
    if (spec.artifact) annotations.push({ key: PACKAGE_ANNOTATION, value: { sha256: spec.artifact.sha256, size: spec.artifact.size } });
    if (s.web === true) annotations.push({ key: 'web-export', value: true } as never);
    try {
      // An action object is sent as the PUT body as it is (the client adds nothing to it).
      await this.ow.actions.create({
        name: spec.name,
        action: { exec, annotations, limits: { timeout: spec.timeoutMs, memory: spec.memoryMb, concurrency } } as unknown as openwhisk.Action,
        overwrite: true,
      });
    } catch (e) {
      const err = e as OwError;
      if (err.statusCode === 400 || err.statusCode === 413) {
        // The platform refused the action itself (its kind, its size, its limits): the config must change.
        const said = String(err.error?.error ?? err.message).replace(/\s+/g, ' ').trim();
        const fix = err.statusCode === 413 ? 'the package is over this cluster\'s action size limit; set max_package_mb for the cluster or deploy to another one' : /kind|runtime/i.test(said) ? `this cluster does not run ${kind}; set functions.${spec.name}.openwhisk.kind to a Node.js kind it supports (nodejs:20 or later)` : 'check the function\'s settings (timeout, memory, concurrency) against the cluster\'s limits';
        throw new ProviderError(`openwhisk cluster ${this.cluster}: function ${spec.name}: the platform refused the action (HTTP ${err.statusCode}: ${said}); ${fix}`, 2);
      }
      throw this.fail(e, 'creating action', spec.name);
    }
  }

  /** The action's code: a user's own file (`func_path`, .js source or .zip package) or FedKeeper's function package. */
  private async codeOf(spec: FunctionSpec): Promise<{ code: string; binary: boolean }> {
    const file = spec.settings.func_path;
    const own = typeof file === 'string' && file ? file : undefined;
    const from = own ?? spec.artifact?.file;
    if (!from) throw new ProviderError(`openwhisk cluster ${this.cluster}: function ${spec.name} has neither a package nor a func_path`, 2);
    try {
      const bytes = await readFile(from);
      return from.endsWith('.zip') ? { code: bytes.toString('base64'), binary: true } : { code: bytes.toString('utf8'), binary: false };
    } catch (e) {
      const what = own ? `func_path ${own}` : `its package ${from}`;
      throw new ProviderError(`openwhisk cluster ${this.cluster}: function ${spec.name}: ${what}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (e as Error).message}`, 2);
    }
  }

  /** The package a deployed action runs, from the annotation deploy put on it. */
  async deployedArtifact(name: string): Promise<{ sha256: string; size: number } | undefined> {
    let a: openwhisk.Action;
    try {
      a = await this.ow.actions.get({ name, code: false } as never);
    } catch (e) {
      if ((e as OwError).statusCode === 404) return undefined;
      throw this.fail(e, 'reading action', name);
    }
    const v = ((a.annotations ?? []) as { key: string; value: unknown }[]).find((x) => x.key === PACKAGE_ANNOTATION)?.value as { sha256?: unknown; size?: unknown } | undefined;
    return typeof v?.sha256 === 'string' ? { sha256: v.sha256, size: Number(v.size) } : undefined;
  }

  async remove(name: string): Promise<void> {
    try {
      await this.ow.actions.delete({ name });
    } catch (e) {
      if ((e as OwError).statusCode === 404) return; // already gone
      throw this.fail(e, 'deleting action', name);
    }
  }

  async list(): Promise<string[]> {
    const names: string[] = [];
    for (let skip = 0; ; skip += 200) {
      let page: openwhisk.ActionDesc[];
      try {
        page = await this.ow.actions.list({ limit: 200, skip });
      } catch (e) {
        throw this.fail(e, 'listing actions');
      }
      names.push(...page.map((a) => a.name!));
      if (page.length < 200) return names.sort();
    }
  }

  async invoke(name: string, params: Record<string, unknown>): Promise<string> {
    let activationId: string;
    try {
      activationId = await this.rest.invoke(name, params);
    } catch (e) {
      throw this.fail(e, 'invoking action', name);
    }
    this.issued.set(activationId, { functionName: name, invokedAt: Date.now() });
    return activationId;
  }

  async activation(activationId: string): Promise<Activation | undefined> {
    let a: openwhisk.Activation<Record<string, unknown>>;
    try {
      a = (await this.rest.activation(activationId)) as unknown as openwhisk.Activation<Record<string, unknown>>;
    } catch (e) {
      const err = e as OwError;
      const mine = this.issued.get(activationId);
      if (err.statusCode === 404 && mine) {
        // Not recorded yet: OpenWhisk stores an activation when it ends.
        return { activationId, functionName: mine.functionName, status: 'running', startTime: mine.invokedAt, endTime: null, coldStart: false };
      }
      if (err.statusCode === 404) return undefined;
      throw this.fail(e, 'reading activation', activationId);
    }
    this.issued.delete(activationId);
    const response = (a.response ?? {}) as { status?: string; result?: Record<string, unknown> };
    const result = response.result ?? {};
    let status = STATUS[response.status ?? ''] ?? 'internal error';
    if (status === 'developer error' && /exceeded its time limit/i.test(String(result.error ?? ''))) status = 'timed out';
    const annotations = (a.annotations ?? []) as { key: string; value: unknown }[];
    return {
      activationId,
      functionName: a.name ?? this.issued.get(activationId)?.functionName ?? '',
      status,
      startTime: a.start,
      endTime: a.end,
      result,
      coldStart: annotations.some((x) => x.key === 'initTime'),
      logs: a.logs,
    };
  }

  /**
   * Faults injected so far by a local FedKeeper OpenWhisk platform (its profile's fault injection), or undefined
   * for a cluster that does not offer them (a real OpenWhisk). Not part of the OpenWhisk API: a plain GET.
   */
  async faults(): Promise<Record<string, number> | undefined> {
    try {
      const res = await fetch(`${this.opts.apiHost}/api/v1/fedkeeper/faults`, {
        headers: { Authorization: `Basic ${Buffer.from(this.opts.apiKey).toString('base64')}` },
        signal: AbortSignal.timeout(5000),
      });
      return res.ok ? ((await res.json()) as Record<string, number>) : undefined;
    } catch {
      return undefined;
    }
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }
}
