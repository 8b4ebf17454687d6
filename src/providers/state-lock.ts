/**
 * A lock across processes for the read-modify-write of a local cluster's deployment record (a JSON file), so that
 * two keepers deploying to the same cluster at once never lose each other's functions. The lock is a file created
 * exclusively next to the record, holding the owner's pid; a lock whose owner process is gone is taken over.
 */
import { open, readFile, stat, unlink } from 'node:fs/promises';
import { pidAlive } from '../keeper/lease.js';

/** Longer than any deploy or removal of one local function takes. */
const WAIT_MS = 5 * 60_000;
/** A lock file left empty (its owner died between creating and writing it) is stale after this. */
const EMPTY_STALE_MS = 10_000;

async function stale(lock: string): Promise<boolean> {
  try {
    const text = (await readFile(lock, 'utf8')).trim();
    if (text === '') return Date.now() - (await stat(lock)).mtimeMs > EMPTY_STALE_MS;
    const pid = Number(text);
    return !(pid === process.pid || pidAlive(pid));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false; // released meanwhile: just try again
    throw e;
  }
}

/** Runs `fn` holding the lock `${file}.lock` (waiting for another process or call that holds it). */
export async function withStateLock<T>(file: string, fn: () => Promise<T>): Promise<T> {
  const lock = `${file}.lock`;
  const deadline = Date.now() + WAIT_MS;
  for (let delay = 10; ; delay = Math.min(delay * 2, 100)) {
    try {
      const h = await open(lock, 'wx');
      try {
        await h.writeFile(String(process.pid));
      } finally {
        await h.close();
      }
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    if (await stale(lock)) {
      await unlink(lock).catch(() => {});
      continue;
    }
    if (Date.now() > deadline) throw new Error(`the deployment record ${file} has been locked by another keeper for ${WAIT_MS / 60_000} min (lock file ${lock})`);
    await new Promise((r) => setTimeout(r, delay));
  }
  try {
    return await fn();
  } finally {
    await unlink(lock).catch(() => {});
  }
}
