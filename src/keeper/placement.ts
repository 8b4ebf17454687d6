/**
 * Which cluster hosts each client. The seed's per-platform counts (`ow_clients_count`, `gcf_clients_count`,
 * `edge_clients_count`, plus `local_clients_count`) split over the clusters of that kind; a cluster block may
 * instead fix its own `clients: N`. Without any count, clients are spread evenly over every cluster. Client ids are
 * handed out in contiguous blocks, in the order the clusters are declared.
 */
import { BadInputError } from './errors.js';

export type ClientGroup = 'local' | 'ow' | 'gcf' | 'lambda' | 'edge';

export interface ClusterSlot {
  name: string;
  group: ClientGroup;
  /** A fixed number of clients from the cluster's own block, if given. */
  clients?: number;
}

export type GroupCounts = Partial<Record<ClientGroup, number>>;

const COUNT_KEY: Record<ClientGroup, string> = {
  local: 'local_clients_count',
  ow: 'ow_clients_count',
  gcf: 'gcf_clients_count',
  lambda: 'lambda_clients_count',
  edge: 'edge_clients_count',
};

/** Returns, for each client id 0..total-1, the name of its cluster. */
export function placeClients(total: number, clusters: readonly ClusterSlot[], counts: GroupCounts): string[] {
  if (clusters.length === 0) throw new BadInputError('providers: no cluster can host clients');
  const perCluster = new Map<string, number>();
  for (const c of clusters) if (c.clients !== undefined) perCluster.set(c.name, c.clients);
  const fixed = [...perCluster.values()].reduce((a, b) => a + b, 0);
  const open = clusters.filter((c) => c.clients === undefined);
  const groups = Object.keys(counts).filter((g) => counts[g as ClientGroup] !== undefined) as ClientGroup[];

  if (groups.length > 0) {
    for (const g of groups) {
      const n = counts[g]!;
      const members = open.filter((c) => c.group === g);
      if (n > 0 && members.length === 0) {
        throw new BadInputError(`scenarios.federated_learning.clients_info.${COUNT_KEY[g]}: ${n} client(s) but no ${describe(g)} cluster without a fixed \`clients\` count is configured`);
      }
      spread(n, members, perCluster);
    }
    for (const c of open) if (!perCluster.has(c.name)) perCluster.set(c.name, 0);
  } else {
    if (fixed > total) throw new BadInputError(`providers: the clusters' \`clients\` counts add up to ${fixed}, more than total_num_clients (${total})`);
    if (open.length === 0 && fixed !== total) {
      throw new BadInputError(`providers: the clusters' \`clients\` counts add up to ${fixed}, expected total_num_clients (${total})`);
    }
    spread(total - fixed, open, perCluster);
  }
  const sum = [...perCluster.values()].reduce((a, b) => a + b, 0);
  if (sum !== total) {
    throw new BadInputError(`scenarios.federated_learning.clients_info: clients placed on clusters add up to ${sum}, expected total_num_clients (${total})`);
  }
  const placement: string[] = [];
  for (const c of clusters) for (let i = 0; i < perCluster.get(c.name)!; i++) placement.push(c.name);
  return placement;
}

function spread(n: number, members: readonly ClusterSlot[], into: Map<string, number>): void {
  members.forEach((c, i) => into.set(c.name, Math.floor(n / members.length) + (i < n % members.length ? 1 : 0)));
}

function describe(g: ClientGroup): string {
  return { local: 'local', ow: 'OpenWhisk (non-edge)', gcf: 'Google Cloud Functions', lambda: 'AWS Lambda (non-edge)', edge: 'edge' }[g];
}
