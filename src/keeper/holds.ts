/**
 * Which live keepers use which deployed functions, so that concurrent runs on the same clusters never remove each
 * other's functions. Every keeper that deploys or runs registers as a holder of its functions
 * ("platform:cluster/function") in a small SQLite file in the state directory, shared by all keepers of that
 * directory, and renews a heartbeat while it lives. At the end of `run`, a keeper drops its holds and deletes only
 * the functions no other live keeper holds; the others stay for the runs that still use them (the last one to finish
 * removes them). A function being removed is marked, and a keeper registering for it waits until the removal is
 * done, so a deploy never races a removal. A holder is live while its process exists and its heartbeat is fresh
 * (lease.ts); a killed keeper's holds are ignored and cleared. `fedkeeper remove` still removes everything.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { HEARTBEAT_MS, holderAlive } from './lease.js';

export interface Holder {
  holder: string;
  pid: number;
  host: string;
  runId: string | null;
  heartbeatAt: number;
}

/** What release() decided: functions free to delete (marked as being removed until done()), and those kept. */
export interface Release {
  free: string[];
  kept: Map<string, Holder[]>;
  /** Clears the removal marks: call once the free functions are deleted (or the deletion failed). */
  done(): void;
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS holders (
    holder       TEXT    PRIMARY KEY,
    pid          INTEGER NOT NULL,
    host         TEXT    NOT NULL,
    run_id       TEXT,
    heartbeat_at INTEGER NOT NULL
  ) STRICT;
  CREATE TABLE IF NOT EXISTS holds (
    holder TEXT NOT NULL,
    target TEXT NOT NULL,
    PRIMARY KEY (holder, target)
  ) STRICT;
  CREATE TABLE IF NOT EXISTS removing (
    target TEXT PRIMARY KEY,
    holder TEXT NOT NULL
  ) STRICT;
`;

/** How long a deploy waits for another keeper's removal of the same function before giving up. */
const REMOVAL_WAIT_MS = 10 * 60_000;

interface HolderRow {
  holder: string;
  pid: number;
  host: string;
  run_id: string | null;
  heartbeat_at: number;
}

const toHolder = (r: HolderRow): Holder => ({ holder: r.holder, pid: r.pid, host: r.host, runId: r.run_id, heartbeatAt: r.heartbeat_at });

export function holdsFile(stateDir: string): string {
  return path.resolve(stateDir, 'holds.sqlite');
}

export class DeploymentHolds {
  readonly id = randomBytes(8).toString('hex');
  private runId: string | null = null;
  private timer: NodeJS.Timeout | undefined;

  private constructor(private readonly db: Database.Database) {}

  static open(stateDir: string): DeploymentHolds {
    const file = holdsFile(stateDir);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const db = new Database(file);
    try {
      db.pragma('busy_timeout = 30000');
      db.pragma('journal_mode = WAL');
      db.transaction(() => db.exec(SCHEMA)).immediate();
    } catch (e) {
      db.close();
      throw e;
    }
    return new DeploymentHolds(db);
  }

  /** Live holders other than this one. Dead holders (and their holds and removal marks) are cleared on the way. */
  private liveOthers(now = Date.now()): Map<string, Holder> {
    const live = new Map<string, Holder>();
    for (const r of this.db.prepare('SELECT * FROM holders').all() as HolderRow[]) {
      if (r.holder === this.id) continue;
      const h = toHolder(r);
      if (holderAlive(h, now)) live.set(h.holder, h);
      else {
        this.db.prepare('DELETE FROM holds WHERE holder = ?').run(h.holder);
        this.db.prepare('DELETE FROM removing WHERE holder = ?').run(h.holder);
        this.db.prepare('DELETE FROM holders WHERE holder = ?').run(h.holder);
      }
    }
    return live;
  }

  /**
   * Registers this keeper as a user of `targets` (waiting while another live keeper is removing one of them), and
   * keeps its heartbeat fresh until close().
   */
  async hold(targets: readonly string[]): Promise<void> {
    const deadline = Date.now() + REMOVAL_WAIT_MS;
    for (;;) {
      const blocked = this.db.transaction(() => {
        const live = this.liveOthers();
        const busy = (this.db.prepare('SELECT target, holder FROM removing').all() as { target: string; holder: string }[]).filter(
          (r) => targets.includes(r.target) && live.has(r.holder),
        );
        if (busy.length) return busy.map((b) => b.target);
        const now = Date.now();
        this.db
          .prepare(`INSERT INTO holders (holder, pid, host, run_id, heartbeat_at) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT (holder) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, run_id = excluded.run_id`)
          .run(this.id, process.pid, os.hostname(), this.runId, now);
        const ins = this.db.prepare('INSERT INTO holds (holder, target) VALUES (?, ?) ON CONFLICT DO NOTHING');
        for (const t of targets) ins.run(this.id, t);
        return [];
      }).immediate();
      if (blocked.length === 0) break;
      if (Date.now() > deadline) throw new Error(`another keeper has been removing ${blocked.join(', ')} for more than ${REMOVAL_WAIT_MS / 60_000} min; try again`);
      await new Promise((r) => setTimeout(r, 100));
    }
    if (!this.timer) {
      this.timer = setInterval(() => this.heartbeat(), HEARTBEAT_MS);
      this.timer.unref();
    }
  }

  /** Names the run this keeper drives, for the messages of other keepers. */
  setRun(runId: string): void {
    this.runId = runId;
    this.db.prepare('UPDATE holders SET run_id = ? WHERE holder = ?').run(runId, this.id);
  }

  private heartbeat(): void {
    try {
      this.db.prepare('UPDATE holders SET heartbeat_at = ? WHERE holder = ?').run(Date.now(), this.id);
    } catch {
      // busy for longer than the timeout: the next heartbeat tries again
    }
  }

  /** The live keepers other than this one that hold each of `targets` (targets nobody else holds are absent). */
  users(targets: readonly string[]): Map<string, Holder[]> {
    return this.db.transaction(() => this.usersIn(targets, this.liveOthers())).immediate();
  }

  private usersIn(targets: readonly string[], live: Map<string, Holder>): Map<string, Holder[]> {
    const out = new Map<string, Holder[]>();
    const q = this.db.prepare('SELECT holder FROM holds WHERE target = ?');
    for (const t of targets) {
      const hs = (q.all(t) as { holder: string }[]).map((r) => live.get(r.holder)).filter((h): h is Holder => h !== undefined);
      if (hs.length) out.set(t, hs);
    }
    return out;
  }

  /**
   * Drops this keeper's holds on `targets`; those no other live keeper holds are returned as free and marked as
   * being removed by this keeper (other keepers' hold() waits) until done().
   */
  release(targets: readonly string[]): Release {
    const { free, kept } = this.db.transaction(() => {
      const del = this.db.prepare('DELETE FROM holds WHERE holder = ? AND target = ?');
      for (const t of targets) del.run(this.id, t);
      const kept = this.usersIn(targets, this.liveOthers());
      const free = targets.filter((t) => !kept.has(t));
      const mark = this.db.prepare('INSERT INTO removing (target, holder) VALUES (?, ?) ON CONFLICT (target) DO UPDATE SET holder = excluded.holder');
      for (const t of free) mark.run(t, this.id);
      return { free, kept };
    }).immediate();
    return {
      free,
      kept,
      done: () => {
        const del = this.db.prepare('DELETE FROM removing WHERE target = ? AND holder = ?');
        this.db.transaction(() => free.forEach((t) => del.run(t, this.id))).immediate();
      },
    };
  }

  /** Leaves the registry: this keeper's holds and marks go, the heartbeat stops. Idempotent. */
  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    if (!this.db.open) return;
    try {
      this.db.transaction(() => {
        this.db.prepare('DELETE FROM holds WHERE holder = ?').run(this.id);
        this.db.prepare('DELETE FROM removing WHERE holder = ?').run(this.id);
        this.db.prepare('DELETE FROM holders WHERE holder = ?').run(this.id);
      }).immediate();
    } finally {
      this.db.close();
    }
  }
}

/** "run R (pid P)" / "a keeper (pid P)" for messages. */
export function describeUsers(hs: readonly Holder[]): string {
  return hs.map((h) => `${h.runId ? `run ${h.runId}` : 'a keeper'} (pid ${h.pid}${h.host !== os.hostname() ? ` on ${h.host}` : ''})`).join(', ');
}
