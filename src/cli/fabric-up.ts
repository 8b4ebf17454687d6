/** `fedkeeper fabric up -c FILE`: start the config's local clusters (OpenWhisk, Lambda) and keep them up until Ctrl-C. */
import type { FedKeeperConfig } from '../config/types.js';
import { BadInputError } from '../keeper/errors.js';
import { openClusters } from '../keeper/plan.js';

export async function fabricUp(cfg: FedKeeperConfig): Promise<number> {
  const ow = Object.entries(cfg.providers.openwhisk).filter(([, c]) => c.local !== undefined);
  const lambda = Object.entries(cfg.providers.lambda ?? {}).filter(([, c]) => c.local !== undefined);
  if (ow.length + lambda.length === 0) throw new BadInputError('providers: no openwhisk or lambda cluster has a `local` block, so there is no local fabric to start');
  const { clusters, close } = await openClusters({ ...cfg, providers: { local: {}, google: {}, openwhisk: Object.fromEntries(ow), lambda: Object.fromEntries(lambda) } }, '.fedkeeper');
  for (const c of clusters.values()) {
    if (c.platform === 'openwhisk') process.stdout.write(`openwhisk cluster ${c.name}: ${String(c.settings.api_host)} (namespace ${String(c.settings.namespace ?? '_')})\n`);
    else process.stdout.write(`${c.platform} cluster ${c.name}: ${String(c.settings.endpoint)} (region ${String(c.settings.region ?? '')})\n`);
  }
  process.stdout.write('fabric up; Ctrl-C stops it\n');
  await new Promise<void>((resolve) => {
    process.removeAllListeners('SIGINT');
    process.removeAllListeners('SIGTERM');
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await close();
  // Keepers that reused these clusters (registered with them) keep them up until the last of them ends.
  process.stdout.write('fabric stopped (a cluster other running keepers still use stays up until they end)\n');
  return 0;
}
