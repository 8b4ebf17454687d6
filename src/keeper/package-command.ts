/** `fedkeeper package -c CONFIG [-f FN1,FN2] [-o DIR]`: build (or reuse) the packages a deploy would send. */
import type { FedKeeperConfig } from '../config/types.js';
import { buildArtifact, exportArtifact, formatSize, TARGETS } from '../packaging/index.js';
import { configPackages, packageCacheDir } from './packages.js';

/** One line per package: function, target, size (with the platform's limit), sha256, where it is. */
export async function packageCommand(cfg: FedKeeperConfig, only: readonly string[], stateDir: string, outDir?: string): Promise<string[]> {
  const lines: string[] = [];
  for (const { functionName, target } of configPackages(cfg, only)) {
    const a = await buildArtifact(functionName, target, packageCacheDir(stateDir));
    const file = outDir ? await exportArtifact(a, outDir) : a.file;
    const t = TARGETS[target];
    lines.push(`${functionName} ${target}: ${formatSize(a.size)} (limit ${formatSize(t.maxBytes)}) sha256 ${a.sha256}${a.reused ? ' (unchanged, reused)' : ''} ${file}`);
  }
  return lines;
}
