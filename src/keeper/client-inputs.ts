/**
 * What the keeper sends a client beyond its training settings, so that a warm function reads less from the store:
 * the digest of the round's global weights (a function that already holds those weights uses them again; see
 * functions/client-inputs.ts) and, when small, the client's partition itself. Both come from the run's store, the
 * only source of truth; partitions never change within a run (fl_server_init writes them once), so they are read
 * once per client per keeper and kept as they travel (base64).
 */
import { weightsSha256 } from '../fl/codec.js';
import { uint32ToBytes } from '../store/partition-bytes.js';
import type { ParameterStore } from '../store/types.js';

/**
 * Partitions up to this many bytes of indices (4,096 samples) ride in the invocation; a larger one is read from the
 * store by the function. Base64 makes it ~22 KB: far under every platform's payload limit (OpenWhisk's 1 MB).
 */
export const PARTITION_IN_PARAMS_MAX_BYTES = 16 * 1024;
/** Store reads at once when filling the partitions of a round. */
const READS_AT_ONCE = 32;

export class ClientInputs {
  /** Per client: its partition as it travels, or null when it stays in the store (too large, or none). */
  private readonly partitions = new Map<number, string | null>();

  constructor(
    readonly store: ParameterStore,
    readonly runId: string,
  ) {}

  /** sha256 (hex) of the fl/codec encoding of the global weights of `round`; undefined when the store has none. */
  async globalSha256(round: number): Promise<string | undefined> {
    const w = await this.store.getGlobalWeights(this.runId, round);
    return w ? weightsSha256(w) : undefined;
  }

  /** Reads the partitions of these clients not read yet. */
  async load(clientIds: readonly number[]): Promise<void> {
    const missing = clientIds.filter((c) => !this.partitions.has(c));
    for (let i = 0; i < missing.length; i += READS_AT_ONCE) {
      const chunk = missing.slice(i, i + READS_AT_ONCE);
      const got = await Promise.all(chunk.map((c) => this.store.getPartition(this.runId, c)));
      chunk.forEach((c, j) => this.partitions.set(c, travelling(got[j])));
    }
  }

  /** The client's partition to send along (after load()), or undefined: the function reads it from the store. */
  partition(clientId: number): string | undefined {
    return this.partitions.get(clientId) ?? undefined;
  }
}

function travelling(indices: Uint32Array | undefined): string | null {
  if (!indices || indices.byteLength > PARTITION_IN_PARAMS_MAX_BYTES) return null;
  const b = uint32ToBytes(indices);
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
}
