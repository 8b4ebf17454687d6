/**
 * The `local` provider: the embedded fabric. Functions run in a pool of separate worker processes on this machine
 * (runtime/WorkerPool); every invocation gets an OpenWhisk-style activation id and record (start, end, status,
 * result, cold start) that the keeper polls, exactly as it polls a remote platform. Deployments are recorded in a
 * small JSON file per cluster so that `deploy`, `start` and `remove` can be separate commands.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { functionCode } from '../functions/catalog.js';
import type { FunctionCode } from '../runtime/protocol.js';
import { WorkerPool, type TaskResult } from '../runtime/pool.js';
import type { Activation, FunctionSpec, Provider } from './types.js';
import { ProviderError } from './types.js';

export interface LocalProviderOptions {
  cluster: string;
  poolSize: number;
  /** Directory holding the deployment records of local clusters. */
  stateDir: string;
}

interface Deployment {
  spec: FunctionSpec;
  code: FunctionCode;
  deployedAt: number;
}

const STATUS: Record<TaskResult['outcome'], Activation['status']> = {
  ok: 'success',
  'application error': 'application error',
  'developer error': 'developer error',
  'timed out': 'timed out',
};

export class LocalProvider implements Provider {
  readonly platform = 'local';
  readonly cluster: string;
  private pool: WorkerPool | undefined;
  private readonly activations = new Map<string, Activation>();
  private readonly file: string;

  constructor(private readonly opts: LocalProviderOptions) {
    this.cluster = opts.cluster;
    this.file = path.join(opts.stateDir, `${opts.cluster}.json`);
  }

  private async readDeployments(): Promise<Record<string, Deployment>> {
    try {
      return JSON.parse(await readFile(this.file, 'utf8')) as Record<string, Deployment>;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw new ProviderError(`local cluster ${this.cluster}: cannot read its deployment record ${this.file}: ${(e as Error).message}`);
    }
  }

  private async writeDeployments(d: Record<string, Deployment>): Promise<void> {
    await mkdir(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(d, null, 2));
    await rename(tmp, this.file);
  }

  async deploy(spec: FunctionSpec): Promise<void> {
    const code = functionCode(spec.name);
    if (!code) throw new ProviderError(`local cluster ${this.cluster}: no function named ${spec.name} in this package`, 2);
    const d = await this.readDeployments();
    d[spec.name] = { spec, code, deployedAt: Date.now() };
    await this.writeDeployments(d);
  }

  async remove(name: string): Promise<void> {
    const d = await this.readDeployments();
    if (!(name in d)) return;
    delete d[name];
    await this.writeDeployments(d);
  }

  async list(): Promise<string[]> {
    return Object.keys(await this.readDeployments()).sort();
  }

  async invoke(name: string, params: Record<string, unknown>): Promise<string> {
    const dep = (await this.readDeployments())[name];
    if (!dep) {
      throw new ProviderError(`local cluster ${this.cluster}: function ${name} is not deployed (run \`fedkeeper deploy -c CONFIG\` first)`, 2);
    }
    this.pool ??= new WorkerPool({ size: this.opts.poolSize });
    const activationId = randomUUID().replaceAll('-', '');
    const record: Activation = { activationId, functionName: name, status: 'running', startTime: Date.now(), endTime: null, coldStart: false };
    this.activations.set(activationId, record);
    const deadline = Date.now() + dep.spec.timeoutMs;
    void this.pool.run(dep.code, params, { activationId, functionName: name, deadline }, dep.spec.timeoutMs).then((r) => {
      record.status = STATUS[r.outcome];
      record.startTime = r.startTime;
      record.endTime = r.endTime;
      record.result = r.result;
      record.coldStart = r.coldStart;
      record.logs = r.logs;
    });
    return activationId;
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
