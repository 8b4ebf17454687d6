/**
 * Google Cloud Functions, local mode: every deployed function is one instance of Google's real functions-framework
 * in its own process on 127.0.0.1 (google-local-server), serving the GCF entry wrapper around the function's
 * `main(params)` (google-entry). Deploy writes the source directory and starts the instance (restarts it on
 * update); remove stops it; invoke POSTs to it in the background and keeps the activation record (google-invoke).
 * Like GCF scaling from zero, an instance that died (a crash kills it) is started again by the next invoke.
 *
 * Deployments are recorded in `<stateDir>/google-<cluster>/deployments.json` with the instance's pid and port, so a
 * later CLI command (start, remove) finds the functions an earlier one deployed.
 */
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { unzipSync } from 'fflate';
import { functionEnv, functionIdOf, type GoogleLocalSettings } from './google-config.js';
import { ENTRY_POINT, gcfSourceFiles } from './google-entry.js';
import { ActivationBook, activationHeaders, FunctionCaller, type GoogleActivation } from './google-invoke.js';
import { isServerAlive, ServerStartError, startFunctionServer, stopFunctionServer, type ServerRecord } from './google-local-server.js';
import type { FunctionSource } from './google-source.js';
import { ProviderError, type FunctionSpec, type Provider } from './types.js';
import { withStateLock } from './state-lock.js';

export interface GoogleLocalProviderOptions {
  cluster: string;
  settings: GoogleLocalSettings;
  /** Directory for deployment records, function sources and instance logs. */
  stateDir: string;
  /** For a function deployed without a package: its OpenWhisk-style `exports.main = async (params) => …` source. */
  source: FunctionSource;
  /** Extra environment for every instance. */
  env?: Record<string, string>;
}

interface LocalDeployment {
  spec: FunctionSpec;
  sourceDir: string;
  deployedAt: number;
  server?: ServerRecord;
}

type Deployments = Record<string, LocalDeployment>;

/** Variables of the keeper's environment an instance inherits (everything else it does not see). */
const INHERITED_ENV = new Set(['PATH', 'HOME', 'TMPDIR', 'LANG', 'TZ']);

/** How long an instance that answered a crash is watched for exiting before it gets requests again, ms. */
const CRASH_SETTLE_MS = 150;

export class GoogleLocalProvider implements Provider {
  readonly platform = 'google';
  readonly cluster: string;
  private readonly root: string;
  private readonly file: string;
  private readonly book = new ActivationBook();
  private readonly caller = new FunctionCaller();
  /** Serialises read-modify-write of the deployment record within this process. */
  private stateLock: Promise<unknown> = Promise.resolve();
  /** Restarts in progress, by function name, so concurrent invokes of a dead instance start it once. */
  private readonly restarting = new Map<string, Promise<ServerRecord>>();
  /** Instances that just failed a request, by function name, until it is known whether they exit. */
  private readonly suspects = new Map<string, Promise<void>>();

  constructor(private readonly opts: GoogleLocalProviderOptions) {
    this.cluster = opts.cluster;
    this.root = path.join(opts.stateDir, `google-${opts.cluster}`);
    this.file = path.join(this.root, 'deployments.json');
  }

  private fail(message: string, exitCode: 1 | 2 = 1): ProviderError {
    return new ProviderError(`google cluster ${this.cluster}: ${message}`, exitCode);
  }

  private async readState(): Promise<Deployments> {
    try {
      return JSON.parse(await readFile(this.file, 'utf8')) as Deployments;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw this.fail(`cannot read its deployment record ${this.file}: ${(e as Error).message}`);
    }
  }

  private updateState<T>(change: (d: Deployments) => Promise<T>): Promise<T> {
    // Serialised in this process, and locked against other keepers changing the same cluster's record.
    const run = this.stateLock.then(async () => {
      await mkdir(this.root, { recursive: true });
      return withStateLock(this.file, async () => {
        const d = await this.readState();
        const out = await change(d);
        const tmp = `${this.file}.${process.pid}.tmp`;
        await writeFile(tmp, JSON.stringify(d, null, 2));
        await rename(tmp, this.file);
        return out;
      });
    });
    this.stateLock = run.catch(() => undefined);
    return run;
  }

  private instanceEnv(name: string, dep: LocalDeployment): Record<string, string> {
    const id = functionIdOf(this.cluster, name);
    const env: Record<string, string> = {
      // What Google's Node.js runtime sets for a 2nd gen function.
      K_SERVICE: id,
      K_REVISION: `${id}-${dep.deployedAt}`,
      K_CONFIGURATION: id,
      FUNCTION_TARGET: ENTRY_POINT,
      FUNCTION_SIGNATURE_TYPE: 'http',
      ...this.opts.env,
      ...functionEnv(this.cluster, name, dep.spec.settings),
    };
    // An instance sees its own environment only, not the keeper's (which may hold other platforms' secrets).
    // Kept: what any process needs, and the BLAS/OpenMP settings a machine may rely on for its native kernels.
    for (const [k, v] of Object.entries(process.env)) {
      if (v !== undefined && env[k] === undefined && (INHERITED_ENV.has(k) || /^(OPENBLAS|OMP)_/.test(k))) env[k] = v;
    }
    return env;
  }

  private async start(name: string, dep: LocalDeployment): Promise<ServerRecord> {
    await mkdir(path.join(this.root, 'logs'), { recursive: true });
    try {
      return await startFunctionServer({
        sourceDir: dep.sourceDir,
        logFile: path.join(this.root, 'logs', `${name}.log`),
        preloadFile: path.join(this.root, 'loopback-preload.cjs'),
        env: this.instanceEnv(name, dep),
        startupTimeoutMs: this.opts.settings.startupTimeoutMs,
      });
    } catch (e) {
      if (e instanceof ServerStartError) throw this.fail(`function ${name} did not start: ${e.message}`);
      throw e;
    }
  }

  async deploy(spec: FunctionSpec): Promise<void> {
    const id = functionIdOf(this.cluster, spec.name);
    functionEnv(this.cluster, spec.name, spec.settings); // refuse a bad env before touching anything
    const files = await this.sourceFiles(spec, id);
    const startError = await this.updateState(async (d) => {
      const old = d[spec.name];
      if (old?.server) await stopFunctionServer(old.server, old.sourceDir);
      if (old) await rm(old.sourceDir, { recursive: true, force: true });
      // Like Google's build, the function's source is unpacked on its own, in a fresh directory outside any project:
      // nothing resolves through a parent node_modules (the framework is the platform's, as on GCF).
      const sourceDir = await mkdtemp(path.join(os.tmpdir(), `fk-gcf-${this.cluster}-${spec.name}-`));
      for (const [file, data] of Object.entries(files)) {
        const target = path.resolve(sourceDir, file);
        if (!target.startsWith(sourceDir + path.sep)) throw this.fail(`function ${spec.name}: its package has an entry outside its directory: ${file}`, 2);
        if (file.endsWith('/')) continue;
        await mkdir(path.dirname(target), { recursive: true });
        await writeFile(target, data);
      }
      const dep: LocalDeployment = { spec, sourceDir, deployedAt: Date.now() };
      d[spec.name] = dep; // recorded even if the start fails, so that remove cleans up and invoke retries the start
      try {
        dep.server = await this.start(spec.name, dep);
        return undefined;
      } catch (e) {
        return e;
      }
    });
    if (startError) throw startError;
  }

  /** The function's source: its package (a GCF source zip), or for code without one, its source wrapped for GCF. */
  private async sourceFiles(spec: FunctionSpec, id: string): Promise<Record<string, Uint8Array | string>> {
    if (spec.artifact) {
      try {
        return unzipSync(await readFile(spec.artifact.file));
      } catch (e) {
        throw this.fail(`function ${spec.name}: its package ${spec.artifact.file} cannot be read: ${(e as Error).message}`, 2);
      }
    }
    try {
      return gcfSourceFiles(id, await this.opts.source(spec.name));
    } catch (e) {
      throw this.fail(`no code for function ${spec.name}: ${(e as Error).message}`, 2);
    }
  }

  async deployedArtifact(name: string): Promise<{ sha256: string; size: number } | undefined> {
    const a = (await this.readState())[name]?.spec.artifact;
    return a ? { sha256: a.sha256, size: a.size } : undefined;
  }

  async remove(name: string): Promise<void> {
    await this.updateState(async (d) => {
      const dep = d[name];
      if (!dep) return;
      if (dep.server) await stopFunctionServer(dep.server, dep.sourceDir);
      await rm(dep.sourceDir, { recursive: true, force: true });
      delete d[name];
    });
  }

  async list(): Promise<string[]> {
    return Object.keys(await this.readState()).sort();
  }

  async invoke(name: string, params: Record<string, unknown>): Promise<string> {
    const dep = (await this.readState())[name];
    if (!dep) throw this.fail(`function ${name} is not deployed (run \`fedkeeper deploy -c CONFIG\` first)`, 2);
    const record = this.book.open(name);
    void this.run(name, dep, record, params);
    return record.activationId;
  }

  private async run(name: string, dep: LocalDeployment, record: GoogleActivation, params: Record<string, unknown>): Promise<void> {
    let server: ServerRecord;
    try {
      server = await this.ensureRunning(name, dep);
    } catch (e) {
      this.book.fail(record, 'developer error', (e as Error).message);
      return;
    }
    const outcome = await this.caller.call({
      url: new URL(`http://127.0.0.1:${server.port}/`),
      params,
      headers: activationHeaders(record.activationId, dep.spec.timeoutMs),
      timeoutMs: dep.spec.timeoutMs,
    });
    if (outcome.status === 'developer error' && !this.suspects.has(name)) {
      // The framework answers a crash first and may exit right after (process.exit, uncaught errors): until that
      // is settled, new requests must not be routed to a dying instance (GCF would route them to a healthy one).
      const watch = this.awaitDeath(server, dep.sourceDir).finally(() => this.suspects.delete(name));
      this.suspects.set(name, watch);
    }
    this.book.settle(record, outcome);
  }

  /** Resolves when the instance has exited, or after a short while if it stays up (a thrown error keeps it). */
  private async awaitDeath(server: ServerRecord, sourceDir: string): Promise<void> {
    for (let waited = 0; waited < CRASH_SETTLE_MS; waited += 10) {
      if (!(await isServerAlive(server, sourceDir))) return;
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** The instance's address; a dead instance is started again first (its next request is then a cold start). */
  private async ensureRunning(name: string, dep: LocalDeployment): Promise<ServerRecord> {
    await this.suspects.get(name);
    if (dep.server && (await isServerAlive(dep.server, dep.sourceDir))) return dep.server;
    let pending = this.restarting.get(name);
    if (!pending) {
      pending = this.updateState(async (d) => {
        const current = d[name];
        if (!current) throw this.fail(`function ${name} was removed`);
        if (current.server && (await isServerAlive(current.server, current.sourceDir))) return current.server;
        current.server = await this.start(name, current);
        return current.server;
      }).finally(() => this.restarting.delete(name));
      this.restarting.set(name, pending);
    }
    const server = await pending;
    dep.server = server;
    return server;
  }

  async activation(activationId: string): Promise<GoogleActivation | undefined> {
    return this.book.get(activationId);
  }

  /** Instances keep running: the functions stay deployed until `remove`. */
  async close(): Promise<void> {
    this.caller.close();
  }
}
