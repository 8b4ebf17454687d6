/**
 * The `local` provider: the embedded fabric. Each deployed function is an OpenWhisk `nodejs:20` zip action — the
 * very package a real OpenWhisk cluster gets (src/packaging) — run in containers of runtime/ContainerPool, the same
 * runtime the local platforms of fabric/ use: each container unpacks the zip into a fresh empty directory outside
 * this repository and sees nothing of it (no variable pointing at an installed fedkeeper, no NODE_PATH).
 * Every invocation gets an OpenWhisk-style activation id and record (start, end, status, result, cold
 * start, logs) that the keeper polls, exactly as it polls a remote platform. Deployments are recorded in a small
 * JSON file per cluster so that `deploy`, `start` and `remove` can be separate commands; keepers running at the
 * same time change it under a lock (state-lock.ts), and keeper/holds.ts decides what a finished run may remove.
 */
import os from 'node:os';
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fedkeeperVariables } from '../runtime/action-code.js';
import { ContainerPool } from '../runtime/container-pool.js';
import type { ContainerAction } from '../runtime/container-types.js';
import type { Activation, FunctionSpec, Provider } from './types.js';
import { ProviderError } from './types.js';
import { withStateLock } from './state-lock.js';

export interface LocalProviderOptions {
  cluster: string;
  poolSize: number;
  /** Directory holding the deployment records of local clusters. */
  stateDir: string;
  /** Extra environment for the containers (e.g. FEDKEEPER_NATIVE_ADDON: the explicit native-kernel opt-in). */
  env?: Record<string, string>;
}

interface Deployment {
  spec: FunctionSpec;
  deployedAt: number;
}

/** Zips read for running, by sha256, base64 (what /init gets). */
const zips = new Map<string, Promise<string>>();

async function zipCode(a: NonNullable<FunctionSpec['artifact']>, cluster: string, name: string): Promise<string> {
  let z = zips.get(a.sha256);
  if (!z) {
    z = readFile(a.file).then((b) => b.toString('base64'));
    zips.set(a.sha256, z);
    z.catch(() => zips.delete(a.sha256));
  }
  try {
    return await z;
  } catch (e) {
    throw new ProviderError(`local cluster ${cluster}: the package of ${name} (${a.file}) cannot be read: ${(e as Error).message}; deploy again (fedkeeper deploy -c CONFIG)`, 2);
  }
}

/** How long an invocation trusts the deployment record last read before checking the file again. */
const RECHECK_MS = 250;

/** Memory given to the pool per slot: a client's container and the server functions' can all stay warm. */
const SLOT_MEMORY_MB = 2048;

/** The container action of a deployed function. Its version is the deployment time: a redeploy gets new containers. */
function containerAction(name: string, dep: Deployment, code: string): ContainerAction {
  return {
    name: `local/${name}`,
    version: String(dep.deployedAt),
    exec: { kind: 'nodejs:20', code, binary: true, main: 'main' },
    limits: { timeoutMs: dep.spec.timeoutMs, memoryMb: dep.spec.memoryMb, concurrency: 1 },
    env: {},
  };
}

export class LocalProvider implements Provider {
  readonly platform = 'local';
  readonly cluster: string;
  private pool: ContainerPool | undefined;
  private readonly activations = new Map<string, Activation>();
  private readonly file: string;

  constructor(private readonly opts: LocalProviderOptions) {
    this.cluster = opts.cluster;
    this.file = path.join(opts.stateDir, `${opts.cluster}.json`);
  }

  /** The record as last read, with the file's identity then: an invoke re-reads it only when the file changed. */
  private cached: { stamp: string; data: Record<string, Deployment> } | undefined;

  private async readDeployments(): Promise<Record<string, Deployment>> {
    try {
      const st = await stat(this.file);
      const stamp = `${st.ino}:${st.mtimeMs}:${st.size}`;
      if (this.cached?.stamp === stamp) return structuredClone(this.cached.data);
      const data = JSON.parse(await readFile(this.file, 'utf8')) as Record<string, Deployment>;
      this.cached = { stamp, data };
      return structuredClone(data);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        this.cached = undefined;
        return {};
      }
      throw new ProviderError(`local cluster ${this.cluster}: cannot read its deployment record ${this.file}: ${(e as Error).message}`);
    }
  }

  /** When the record was last checked against the file for an invocation (Date.now()), see invocable(). */
  private checkedAt = 0;

  /**
   * The record for invoking, read-only: checked against the file at most every RECHECK_MS (a round invokes
   * hundreds of clients a second: one stat and one copy of the record per client were a good part of its cost), and
   * at once after this provider changed it. Another keeper's redeploy is seen within RECHECK_MS.
   */
  private async invocable(): Promise<Record<string, Deployment>> {
    const now = Date.now();
    if (this.cached && now - this.checkedAt < RECHECK_MS) return this.cached.data;
    const d = await this.readDeployments();
    this.checkedAt = now;
    return this.cached?.data ?? d;
  }

  private async writeDeployments(d: Record<string, Deployment>): Promise<void> {
    await mkdir(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(d, null, 2));
    await rename(tmp, this.file);
  }

  /** Read-modify-write of the record, locked against other keepers deploying to this cluster at the same time. */
  private async updateDeployments(change: (d: Record<string, Deployment>) => boolean): Promise<void> {
    await mkdir(path.dirname(this.file), { recursive: true });
    await withStateLock(this.file, async () => {
      const d = await this.readDeployments();
      if (change(d)) await this.writeDeployments(d);
    });
    this.checkedAt = 0;
  }

  async deploy(spec: FunctionSpec): Promise<void> {
    if (!spec.artifact) throw new ProviderError(`local cluster ${this.cluster}: function ${spec.name} has no package to run (a local cluster runs FedKeeper's function packages)`, 2);
    await this.updateDeployments((d) => {
      d[spec.name] = { spec, deployedAt: Date.now() };
      return true;
    });
  }

  async remove(name: string): Promise<void> {
    await this.updateDeployments((d) => Object.hasOwn(d, name) && delete d[name]);
  }

  async list(): Promise<string[]> {
    return Object.keys(await this.readDeployments()).sort();
  }

  async invoke(name: string, params: Record<string, unknown>): Promise<string> {
    const deployments = await this.invocable();
    const dep = Object.hasOwn(deployments, name) ? deployments[name] : undefined;
    if (!dep) {
      throw new ProviderError(`local cluster ${this.cluster}: function ${name} is not deployed (run \`fedkeeper deploy -c CONFIG\` first)`, 2);
    }
    if (!dep.spec.artifact) throw new ProviderError(`local cluster ${this.cluster}: function ${name} was deployed by an older fedkeeper without a package; deploy again (fedkeeper deploy -c CONFIG)`, 2);
    const action = containerAction(name, dep, await zipCode(dep.spec.artifact, this.cluster, name));
    this.pool ??= this.createPool(Object.values(deployments));
    const activationId = randomUUID().replaceAll('-', '');
    const record: Activation = { activationId, functionName: name, status: 'running', startTime: Date.now(), endTime: null, coldStart: false };
    this.activations.set(activationId, record);
    void this.pool.run(action, params, { activationId, namespace: 'local', actionName: action.name }).then((r) => {
      record.status = r.status;
      record.startTime = r.startTime;
      record.endTime = r.endTime;
      record.result = r.result;
      record.coldStart = r.coldStart;
      record.logs = r.logs;
    });
    return activationId;
  }

  /**
   * maxActive = poolSize: FL training is CPU-bound and must not oversubscribe the cores. Memory for poolSize + 2
   * containers, so that the server functions' containers stay warm next to the clients' (a function deployed with
   * more than 2 GB gets room for as many of its size). The containers see the keeper's FEDKEEPER_* variables (engine
   * knobs), not the rest of its environment.
   */
  private createPool(deployed: Deployment[]): ContainerPool {
    const largest = Math.max(SLOT_MEMORY_MB, ...deployed.map((d) => d.spec.memoryMb));
    return new ContainerPool({
      memoryMb: (this.opts.poolSize + 2) * largest,
      maxActive: this.opts.poolSize,
      // poolSize containers train at once: give each one share of the cores for the native kernels' threads.
      env: { FEDKEEPER_NATIVE_THREADS: String(Math.max(1, Math.floor(os.availableParallelism() / this.opts.poolSize))), ...fedkeeperVariables(), ...this.opts.env },
      label: `local cluster ${this.cluster}`,
    });
  }

  async deployedArtifact(name: string): Promise<{ sha256: string; size: number } | undefined> {
    const a = (await this.readDeployments())[name]?.spec.artifact;
    return a ? { sha256: a.sha256, size: a.size } : undefined;
  }

  async activation(activationId: string): Promise<Activation | undefined> {
    const a = this.activations.get(activationId);
    return a ? { ...a } : undefined;
  }

  async close(): Promise<void> {
    await this.pool?.close();
    this.pool = undefined;
  }
}
