/**
 * The keeper's side of function packages: before anything is deployed, every FedKeeper function of the plan gets
 * its package for its platform kind (built, or reused when its inputs did not change) and is checked against the
 * cluster's limit, so that a package too large for a cluster is refused before any cluster is touched.
 */
import path from 'node:path';
import { functionCode } from '../functions/catalog.js';
import { buildArtifact, formatSize, TARGETS, targetOfPlatform, type Artifact, type PackageTarget } from '../packaging/index.js';
import type { FedKeeperConfig } from '../config/types.js';
import type { FunctionSpec } from '../providers/types.js';
import { BadInputError } from './errors.js';

/** The relay function (fl_invoker_weights_update): deployed on the server cluster for clusters that use it. */
export const RELAY_FUNCTION = 'fl_invoker_weights_update';

/** Where built packages are kept, under the keeper's state directory. */
export function packageCacheDir(stateDir: string): string {
  return path.resolve(stateDir, 'packages');
}

/** Does this function (on this platform) get a FedKeeper package? Not when the config brings its own code. */
export function wantsPackage(spec: FunctionSpec): boolean {
  const s = spec.settings;
  return functionCode(spec.name) !== undefined && !(typeof s.func_path === 'string' && s.func_path);
}

export interface ClusterRef {
  name: string;
  platform: string;
  /** `max_package_mb` of the cluster's block: an operator's own limit, below the platform's default. */
  maxPackageMb?: number;
}

/** Builds (or reuses) one artifact per (function, target), shared by every cluster of that platform kind. */
export class PackageSet {
  private readonly built = new Map<string, Promise<Artifact>>();
  constructor(
    private readonly cacheDir: string,
    private readonly onBuilt?: (a: Artifact) => void,
  ) {}

  artifact(functionName: string, target: PackageTarget): Promise<Artifact> {
    const key = `${functionName}\0${target}`;
    let p = this.built.get(key);
    if (!p) {
      p = buildArtifact(functionName, target, this.cacheDir).then((a) => {
        this.onBuilt?.(a);
        return a;
      });
      this.built.set(key, p);
    }
    return p;
  }

  /** The spec with its package attached, after checking it fits the cluster. */
  async attach(cluster: ClusterRef, spec: FunctionSpec): Promise<FunctionSpec> {
    if (!wantsPackage(spec)) return spec;
    const target = targetOfPlatform(cluster.platform);
    if (!target) return spec;
    const a = await this.artifact(spec.name, target);
    const t = TARGETS[target];
    const limit = cluster.maxPackageMb !== undefined ? cluster.maxPackageMb * 1024 * 1024 : t.maxBytes;
    if (a.size > limit) {
      const what = cluster.maxPackageMb !== undefined ? `the cluster's max_package_mb (${cluster.maxPackageMb} MB)` : t.limitName;
      throw new BadInputError(
        `${cluster.platform} cluster ${cluster.name}: function ${spec.name}: its package is ${formatSize(a.size)}, over ${what}; raise the cluster's action size limit (and max_package_mb) or deploy the function to another cluster`,
      );
    }
    return { ...spec, artifact: { file: a.file, sha256: a.sha256, size: a.size, target } };
  }
}

/**
 * What `fedkeeper package -c CONFIG` builds: every function the config may deploy (server functions, client
 * functions, the relay), for every platform kind among its clusters. `only` narrows it to some functions.
 */
export function configPackages(cfg: FedKeeperConfig, only: readonly string[] = []): { functionName: string; target: PackageTarget }[] {
  const fl = cfg.scenarios.federated_learning;
  const names = [...new Set([...fl.server_config.server_manager_functions, ...fl.clients_info.client_functions, RELAY_FUNCTION])];
  for (const f of only) {
    if (!functionCode(f)) throw new BadInputError(`-f ${f}: FedKeeper has no function of that name (it has: ${names.join(', ')}, nodeinfo)`);
  }
  const wanted = only.length ? [...only] : names.filter((n) => functionCode(n));
  const platforms = (['local', 'openwhisk', 'google', 'lambda'] as const).filter((p) => Object.keys(cfg.providers[p] ?? {}).length > 0);
  const targets = [...new Set(platforms.map((p) => targetOfPlatform(p)!))];
  return targets.flatMap((target) => wanted.map((functionName) => ({ functionName, target })));
}
