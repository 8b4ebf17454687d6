/**
 * `fedkeeper runs` lists the runs in a store — status, rounds, stored client updates, size, and which keeper
 * drives each — and `fedkeeper runs rm RUN_ID…` deletes runs from it (their weights, updates, partitions and
 * activations; the run directories on disk stay). A run whose keeper lives is never deleted: `rm` takes the run's
 * lease first, exactly as `--resume` does, so it is refused (exit 2, naming pid and host) while the keeper runs.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { FedKeeperConfig } from '../config/types.js';
import { formatSize } from '../packaging/index.js';
import { openStore, redactUrlPassword, type ParameterStore, type RunInfo, type StoreSpec } from '../store/index.js';
import { isPostgresUrl } from '../store/store-url.js';
import { BadInputError } from './errors.js';
import { describeHolder, HeldLease, holderAlive } from './lease.js';

/** The store `runs` opens when neither a config nor --store names one: the default SQLite file. */
export const DEFAULT_STORE = '.fedkeeper/store.sqlite';

/** --store VALUE: a postgres:// URL, or the path of a SQLite file that must exist (runs never creates a store). */
export function storeSpecOf(value: string, flag: string): StoreSpec {
  if (isPostgresUrl(value)) return { type: 'postgres', url: value };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    throw new BadInputError(`${flag} ${redactUrlPassword(value)}: expected a postgres:// URL or the path of a SQLite store file`);
  }
  return { type: 'sqlite', path: path.resolve(value) };
}

/** The store a config names, as the keeper opens it. */
export function storeOfConfig(cfg: FedKeeperConfig): StoreSpec {
  const st = cfg.scenarios.federated_learning.store;
  return st.type === 'postgres' ? { type: 'postgres', url: st.url } : { type: 'sqlite', path: path.resolve(st.path) };
}

function describeStore(spec: StoreSpec): string {
  return spec.type === 'sqlite' ? `SQLite store ${spec.path}` : `PostgreSQL store ${redactUrlPassword(spec.url)}`;
}

async function open(spec: StoreSpec, hint: string): Promise<ParameterStore> {
  if (spec.type === 'sqlite' && !fs.existsSync(spec.path)) {
    throw new BadInputError(`no store at ${spec.path}: nothing has run with it yet; ${hint}`);
  }
  return openStore(spec);
}

/** What a run's keeper is doing, for the KEEPER column. */
function keeperOf(r: RunInfo, now: number): string {
  if (r.lease && holderAlive(r.lease, now)) return `live: ${describeHolder(r.lease, now)}`;
  if (r.status === 'running') return r.lease ? `gone (pid ${r.lease.pid} on host ${r.lease.host}); resumable` : 'gone; resumable';
  return '-';
}

/** The table of `fedkeeper runs`, one line per run and a total. */
export async function listRunsCommand(spec: StoreSpec, hint: string): Promise<string[]> {
  const store = await open(spec, hint);
  try {
    const runs = await store.listRuns();
    const now = Date.now();
    const rows = runs.map((r) => [
      r.runId,
      r.status === 'running' && !(r.lease && holderAlive(r.lease, now)) ? 'interrupted' : r.status,
      r.rounds === null ? '-' : String(r.rounds),
      String(r.updates),
      formatSize(r.bytes),
      new Date(r.createdAt).toISOString().replace(/\.\d+Z$/, 'Z'),
      keeperOf(r, now),
    ]);
    const head = ['RUN', 'STATUS', 'ROUNDS', 'UPDATES', 'SIZE', 'CREATED', 'KEEPER'];
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
    const total = runs.reduce((s, r) => s + r.bytes, 0);
    const file = spec.type === 'sqlite' ? `; the file takes ${formatSize(fileBytes(spec.path))}` : '';
    return [...(rows.length ? [line(head), ...rows.map(line)] : []), `${runs.length} run(s), ${formatSize(total)} of weights, updates and partitions in the ${describeStore(spec)}${file}`];
  } finally {
    await store.close();
  }
}

/** The store file with its WAL. */
function fileBytes(file: string): number {
  let n = 0;
  for (const f of [file, `${file}-wal`]) {
    try {
      n += fs.statSync(f).size;
    } catch {
      // no WAL
    }
  }
  return n;
}

/**
 * Deletes the runs `ids` from the store. Every id is checked first (it exists, its keeper is not alive) and its
 * lease taken, so that either all named runs are deleted or — on bad input — none.
 */
export async function removeRunsCommand(spec: StoreSpec, ids: readonly string[], hint: string): Promise<string[]> {
  const store = await open(spec, hint);
  const leases: HeldLease[] = [];
  try {
    const known = new Map((await store.listRuns()).map((r) => [r.runId, r]));
    const missing = ids.filter((id) => !known.has(id));
    if (missing.length) {
      throw new BadInputError(`run ${missing.join(', ')} is not in the ${describeStore(spec)}; \`fedkeeper runs\` lists the runs there`);
    }
    for (const id of new Set(ids)) leases.push(await HeldLease.acquire(store, id, `runs rm ${id}`));
    const before = spec.type === 'sqlite' ? fileBytes(spec.path) : 0;
    const lines: string[] = [];
    for (const id of new Set(ids)) {
      await store.deleteRun(id);
      lines.push(`deleted run ${id} (${formatSize(known.get(id)!.bytes)})`);
    }
    if (spec.type === 'sqlite') lines.push(`${spec.path}: ${formatSize(before)} → ${formatSize(fileBytes(spec.path))}`);
    return lines;
  } finally {
    for (const l of leases) await l.release().catch(() => {});
    await store.close();
  }
}
