/**
 * `fedkeeper functions deploy|remove` — the seed's deploy.py: deploy or remove any function of any scenario on all
 * clusters (-a) or on some (-p openwhisk:NAME,google:NAME), to test a fabric. `--invoke` then calls each deployed
 * function once and prints what it answered (e.g. nodeinfo: the host's platform, cores and memory).
 */
import { parseDurationMs, parseMemoryMB } from '../config/index.js';
import type { FedKeeperConfig } from '../config/types.js';
import type { FunctionSpec } from '../providers/types.js';
import { BadInputError } from './errors.js';
import { PackageSet, packageCacheDir } from './packages.js';
import { openClusters, type ClusterPlan } from './plan.js';

export interface FunctionsRequest {
  action: 'deploy' | 'remove';
  scenario: string;
  functions: string[];
  /** 'all' or a list of "platform:cluster". */
  targets: 'all' | string[];
  invoke: boolean;
}

export interface FunctionsOutcome {
  target: string;
  function: string;
  action: 'deployed' | 'removed' | 'invoked';
  activationId?: string;
  status?: string;
  result?: Record<string, unknown>;
  seconds?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function scenarioFunctions(cfg: FedKeeperConfig, scenario: string): Record<string, Record<string, Record<string, unknown>>> {
  const sc = cfg.scenarios[scenario] as { functions?: unknown } | undefined;
  if (!sc) throw new BadInputError(`-s ${scenario}: no scenario of that name under scenarios (have: ${Object.keys(cfg.scenarios).join(', ')})`);
  const fns = sc.functions;
  if (!fns || typeof fns !== 'object') throw new BadInputError(`scenarios.${scenario}.functions: missing; list the functions and their per-platform settings`);
  return fns as Record<string, Record<string, Record<string, unknown>>>;
}

function specFor(scenario: string, name: string, platform: string, raw: Record<string, unknown> | undefined): FunctionSpec {
  const at = `scenarios.${scenario}.functions.${name}.${platform}`;
  const timeoutMs = raw?.timeout === undefined ? 300_000 : parseDurationMs(raw.timeout);
  const memoryMb = raw?.memory === undefined ? 256 : parseMemoryMB(raw.memory);
  if (timeoutMs === undefined || !(timeoutMs > 0)) throw new BadInputError(`${at}.timeout: expected a duration such as 60s or 60000, found ${JSON.stringify(raw?.timeout)}`);
  if (memoryMb === undefined || !(memoryMb > 0)) throw new BadInputError(`${at}.memory: expected a size such as 256MB, found ${JSON.stringify(raw?.memory)}`);
  return { name, timeoutMs, memoryMb, settings: { ...(raw ?? {}), timeout: timeoutMs, memory: memoryMb } };
}

function selectTargets(all: Map<string, ClusterPlan>, targets: 'all' | string[]): ClusterPlan[] {
  if (targets === 'all') return [...all.values()];
  return targets.map((t) => {
    const [platform, name] = t.includes(':') ? t.split(':', 2) : [undefined, t];
    const c = all.get(name!);
    if (!c || (platform && c.platform !== platform)) {
      const have = [...all.values()].map((x) => `${x.platform}:${x.name}`).join(', ');
      throw new BadInputError(`-p ${t}: no such cluster in the config (have: ${have})`);
    }
    return c;
  });
}

export async function runFunctionsCommand(
  cfg: FedKeeperConfig,
  req: FunctionsRequest,
  stateDir: string,
  out: (o: FunctionsOutcome) => void,
  onPackage?: (line: string) => void,
): Promise<void> {
  const fns = scenarioFunctions(cfg, req.scenario);
  for (const f of req.functions) if (!fns[f]) throw new BadInputError(`-f ${f}: scenarios.${req.scenario}.functions has no function of that name (have: ${Object.keys(fns).join(', ')})`);
  const { clusters, close } = await openClusters(cfg, stateDir);
  try {
    const targets = selectTargets(clusters, req.targets);
    if (req.action === 'remove') {
      for (const c of targets) {
        for (const f of req.functions) {
          await c.provider.remove(f);
          out({ target: `${c.platform}:${c.name}`, function: f, action: 'removed' });
        }
      }
    } else {
      // Every package is built and checked against its cluster before the first one is deployed.
      const packages = new PackageSet(packageCacheDir(stateDir), (a) =>
        onPackage?.(`package ${a.functionName} (${a.target}): ${(a.size / 1024 / 1024).toFixed(2)} MB, sha256 ${a.sha256}${a.reused ? ' (unchanged, reused)' : ''}`),
      );
      const work: { c: ClusterPlan; spec: FunctionSpec }[] = [];
      for (const c of targets) {
        for (const f of req.functions) {
          const ref = { name: c.name, platform: c.platform, ...(c.maxPackageMb !== undefined ? { maxPackageMb: c.maxPackageMb } : {}) };
          work.push({ c, spec: await packages.attach(ref, specFor(req.scenario, f, c.platform, fns[f]![c.platform])) });
        }
      }
      for (const { c, spec } of work) {
        await c.provider.deploy(spec);
        out({ target: `${c.platform}:${c.name}`, function: spec.name, action: 'deployed' });
      }
    }
    if (req.action === 'deploy' && req.invoke) {
      const calls = targets.flatMap((c) => req.functions.map(async (f) => {
        const t0 = Date.now();
        const id = await c.provider.invoke(f, {});
        for (;;) {
          const a = await c.provider.activation(id);
          if (a && a.status !== 'running') {
            out({ target: `${c.platform}:${c.name}`, function: f, action: 'invoked', activationId: id, status: a.status, result: a.result ?? {}, seconds: (Date.now() - t0) / 1000 });
            return;
          }
          await sleep(50);
        }
      }));
      await Promise.all(calls);
    }
  } finally {
    await close();
  }
}
