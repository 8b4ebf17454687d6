/**
 * Streaming reads of a round's client updates, shared by the stores: the client ids sorted and deduplicated, then
 * read a chunk of ids at a time (one query per chunk, nothing held open between chunks), so a stream holds a bounded
 * number of stored updates whatever the number of clients.
 *
 * Chunk sizes: the first chunk asks for FIRST_CHUNK_IDS ids (the size of an update is not known yet); after that as
 * many ids as keep a chunk's stored bytes near CHUNK_BYTES, judged by the largest row seen so far, between 1 and
 * MAX_CHUNK_IDS. With `prefetch` (a store across the network) the next chunk's query runs while the current chunk is
 * handed out, so at most two chunks are held; without it (an in-process store) one.
 *
 * No imports: bundled into function packages (http-store.ts uses sortedUniqueIds).
 */

export const FIRST_CHUNK_IDS = 4;
export const MAX_CHUNK_IDS = 16;
export const CHUNK_BYTES = 16 * 2 ** 20;

/** The ids ascending, each once. */
export function sortedUniqueIds(ids: readonly number[]): number[] {
  return [...new Set(ids)].sort((a, b) => a - b);
}

/** How many ids the next chunk asks for, given the largest stored row seen so far (0: none seen yet). */
export function nextChunkIds(largestRowBytes: number, maxIds = MAX_CHUNK_IDS, targetBytes = CHUNK_BYTES): number {
  if (largestRowBytes <= 0) return Math.min(FIRST_CHUNK_IDS, maxIds);
  return Math.max(1, Math.min(maxIds, Math.floor(targetBytes / largestRowBytes)));
}

export interface ChunkedReadOptions {
  /** Read the next chunk while the current one is handed out (default false). */
  prefetch?: boolean;
  maxIds?: number;
  targetBytes?: number;
}

/**
 * Rows of `ids` (already sorted and unique) read by `read` one chunk of ids at a time, each turned into an item by
 * `toItem` only when it is handed out (so a chunk is held as stored bytes, decoded one row at a time). `read` must
 * answer its chunk's rows in ascending id order; `bytesOf` gives a row's stored size.
 */
export async function* readInChunks<R, T>(
  ids: readonly number[],
  read: (chunk: number[]) => Promise<R[]> | R[],
  bytesOf: (row: R) => number,
  toItem: (row: R) => T,
  opts: ChunkedReadOptions = {},
): AsyncGenerator<T> {
  const maxIds = opts.maxIds ?? MAX_CHUNK_IDS;
  const targetBytes = opts.targetBytes ?? CHUNK_BYTES;
  let start = 0;
  let largest = 0;
  const take = (): Promise<R[]> | undefined => {
    if (start >= ids.length) return undefined;
    const chunk = ids.slice(start, (start += nextChunkIds(largest, maxIds, targetBytes)));
    const p = Promise.resolve().then(() => read(chunk));
    p.catch(() => undefined); // surfaces where it is awaited; never unhandled when the consumer stops early
    return p;
  };
  let pending = take();
  while (pending) {
    const rows = await pending;
    for (const r of rows) largest = Math.max(largest, bytesOf(r));
    pending = opts.prefetch ? take() : undefined;
    for (let i = 0; i < rows.length; i++) {
      const item = toItem(rows[i]!);
      rows[i] = undefined as R; // the stored bytes of a row handed out are not held any longer
      yield item;
    }
    if (!opts.prefetch) pending = take();
  }
}
