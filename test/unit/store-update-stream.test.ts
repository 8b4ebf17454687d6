/** store/update-stream.ts: ids sorted once, chunks sized by the rows' bytes, reads ahead by at most one chunk. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CHUNK_BYTES, FIRST_CHUNK_IDS, MAX_CHUNK_IDS, nextChunkIds, readInChunks, sortedUniqueIds } from '../../src/store/update-stream.js';

interface Row {
  id: number;
  bytes: number;
}

/** A fake store: rows for every id except multiples of 10; records each chunk read and when, among the handouts. */
function fakeStore(bytesOf: (id: number) => number) {
  const reads: number[][] = [];
  const events: string[] = [];
  const read = (chunk: number[]): Row[] => {
    reads.push(chunk);
    events.push(`read ${chunk[0]}..${chunk[chunk.length - 1]}`);
    return chunk.filter((id) => id % 10 !== 0).map((id) => ({ id, bytes: bytesOf(id) }));
  };
  return { reads, events, read };
}

async function drain<T>(it: AsyncIterable<T>, events?: string[], show: (x: T) => string = String): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) {
    events?.push(`got ${show(x)}`);
    out.push(x);
  }
  return out;
}

test('sortedUniqueIds: ascending, each once, numerically', () => {
  assert.deepEqual(sortedUniqueIds([10, 9, 100, 9, 0, 2]), [0, 2, 9, 10, 100]);
  assert.deepEqual(sortedUniqueIds([]), []);
});

test('chunk sizes: a few ids first, then as many as keep a chunk near CHUNK_BYTES, between 1 and MAX_CHUNK_IDS', () => {
  assert.equal(nextChunkIds(0), FIRST_CHUNK_IDS);
  assert.equal(nextChunkIds(1000), MAX_CHUNK_IDS);
  assert.equal(nextChunkIds(CHUNK_BYTES / 5), 5);
  assert.equal(nextChunkIds(CHUNK_BYTES * 3), 1);
});

test('every row once, in order; chunk sizes follow the largest row seen', async () => {
  const ids = Array.from({ length: 60 }, (_, i) => i);
  const small = fakeStore(() => 100);
  const got = await drain(readInChunks(ids, small.read, (r) => r.bytes, (r) => r.id));
  assert.deepEqual(got, ids.filter((id) => id % 10 !== 0));
  assert.deepEqual(small.reads.map((c) => c.length), [4, 16, 16, 16, 8]);
  assert.deepEqual(small.reads.flat(), ids, 'each id asked once, in order');

  // One large row makes the following chunks small: the held bytes stay bounded.
  const large = fakeStore((id) => (id === 2 ? CHUNK_BYTES / 2 : 100));
  await drain(readInChunks(ids.slice(0, 12), large.read, (r) => r.bytes, (r) => r.id));
  assert.deepEqual(large.reads.map((c) => c.length), [4, 2, 2, 2, 2]);
});

test('without prefetch the next chunk is read only when the consumer asks past the current one; rows decoded as handed out', async () => {
  const f = fakeStore(() => 100);
  const decode = (r: Row) => (f.events.push(`decode ${r.id}`), r.id);
  await drain(readInChunks([1, 2, 3, 4, 5, 6], f.read, (r) => r.bytes, decode), f.events);
  assert.deepEqual(f.events, [
    'read 1..4', 'decode 1', 'got 1', 'decode 2', 'got 2', 'decode 3', 'got 3', 'decode 4', 'got 4',
    'read 5..6', 'decode 5', 'got 5', 'decode 6', 'got 6',
  ]);
});

test('with prefetch at most one chunk is read ahead', async () => {
  const f = fakeStore(() => 100);
  const read = async (chunk: number[]) => f.read(chunk);
  await drain(readInChunks(Array.from({ length: 25 }, (_, i) => i + 1), read, (r) => r.bytes, (r) => r.id, { prefetch: true }), f.events);
  assert.deepEqual(f.events.slice(0, 3), ['read 1..4', 'read 5..20', 'got 1']);
  // When a chunk's first row is handed out, the chunk after it (and no further) has been asked for.
  assert.ok(f.events.indexOf('read 21..25') < f.events.indexOf('got 5'));
  assert.ok(f.events.indexOf('read 21..25') > f.events.indexOf('got 4'));
  assert.deepEqual(f.events.filter((e) => e.startsWith('got')).length, 23);
});

test('a consumer that stops early stops the reads; a failed read surfaces at its turn', async () => {
  const f = fakeStore(() => 100);
  for await (const id of readInChunks(Array.from({ length: 100 }, (_, i) => i + 1), f.read, (r) => r.bytes, (r) => r.id)) {
    if (id === 2) break;
  }
  assert.deepEqual(f.reads.length, 1);

  const failing = async (chunk: number[]): Promise<Row[]> => {
    if (chunk[0] === 5) throw new Error('store gone');
    return chunk.map((id) => ({ id, bytes: 1 }));
  };
  const seen: number[] = [];
  await assert.rejects(async () => {
    for await (const id of readInChunks([1, 2, 3, 4, 5, 6], failing, (r) => r.bytes, (r) => r.id, { prefetch: true })) seen.push(id);
  }, /store gone/);
  assert.deepEqual(seen, [1, 2, 3, 4], 'the rows before the failed chunk were handed out first');
  // A prefetch that fails after the consumer stopped is not an unhandled rejection (the test process would fail).
  for await (const id of readInChunks([1, 2, 3, 4, 5, 6], failing, (r) => r.bytes, (r) => r.id, { prefetch: true })) {
    if (id === 1) break;
  }
});
