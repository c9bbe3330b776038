// One writer per run folder: `kiln train` (and `kiln serve`) hold a lock on each run's
// folder while they write it, so a second kiln started on the same folder is refused at
// once, naming the first, instead of truncating its metrics.jsonl and writing over its
// checkpoints. The lock is proper-lockfile's: a folder DIR/.kiln.lock made with mkdir
// (atomic), whose mtime the holder refreshes every UPDATE_MS; inside it, holder.json
// says who holds it (pid, machine, command, start time). A lock left by a run that
// crashed or was killed (kill -9) is taken over: at once when its process is gone from
// this machine; when it ran on another machine (a shared disk) or left no holder.json,
// once its mtime is STALE_MS old. A holder that is alive here keeps its lock even if it
// stalled (a long step on the CPU) and let the mtime age.
import { mkdir, lstatSync, rmdirSync, rmSync, readdirSync, readFileSync, stat, utimes, existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { isKilnError, KilnError } from '../core/errors.ts';
import { ensureDir, writeFileAtomic } from './files.ts';

/** The lock's folder inside the run's folder; what lists a run's files skips it. */
export const LOCK_NAME = '.kiln.lock';
const HOLDER_FILE = 'holder.json';
/** A lock whose holder cannot be checked here is taken over after this long without a refresh. */
export const STALE_MS = 10_000;
/** How often the holder refreshes the lock's mtime (well inside STALE_MS, so a busy step does not lose it). */
const UPDATE_MS = 2_500;

/** Who holds a run folder's lock, as holder.json records it. */
export interface LockHolder {
  pid: number;
  host: string;
  /** The command line, shortened (`kiln train --preset tiny ...`). */
  command: string;
  /** When the lock was taken (ISO 8601). */
  started: string;
}

export interface RunLock {
  readonly dir: string;
  /** The folder held nothing but this lock when it was taken (it was made now, was empty, or held only a crashed run's lock). */
  readonly wasEmpty: boolean;
  /** The holder of a lock this one took over: a run whose process was gone. */
  readonly tookOver: LockHolder | null;
  /** Set when the lock was lost while held (its folder removed, or taken by another kiln after this process stalled). */
  readonly lost: KilnError | null;
  /** Gives the lock up (again is a no-op); a folder the lock made and nothing was written to is removed. */
  release(): Promise<void>;
}

export interface RunLockOptions {
  /** How the user named the folder, for messages (default --out). */
  flag?: string;
  /** The command recorded for others to see (default this process's command line). */
  command?: string;
  /** Told when the lock is lost while held (default: a warning on stderr). */
  onLost?: (e: KilnError) => void;
}

/** This process's command line as `kiln ...`, shortened for a message. */
export function commandLine(argv: readonly string[] = process.argv.slice(2), max = 80): string {
  const words = argv.map((a) => (/^[\w./:=@,+-]+$/.test(a) ? a : JSON.stringify(a)));
  const line = ['kiln', ...words].join(' ');
  return line.length > max ? `${line.slice(0, max - 4)} ...` : line;
}

/** Whether process `pid` exists on this machine (EPERM: it does, as another user's). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** holder.json of the lock at `lockPath`, or null when there is none or it is not one. */
export function readHolder(lockPath: string): LockHolder | null {
  try {
    const h = JSON.parse(readFileSync(join(lockPath, HOLDER_FILE), 'utf8')) as Partial<LockHolder> | null;
    if (typeof h !== 'object' || h === null || !Number.isSafeInteger(h.pid) || h.pid! <= 0) return null;
    if (typeof h.host !== 'string' || typeof h.command !== 'string' || typeof h.started !== 'string') return null;
    return { pid: h.pid!, host: h.host, command: h.command, started: h.started };
  } catch {
    return null;
  }
}

/**
 * Who holds run folder `dir`'s lock now, found without taking the lock or writing
 * anything (for listing a folder another kiln may be writing): its holder; 'unknown'
 * for a fresh lock that does not say who holds it, or holds it on another machine with
 * no holder.json; null when no live kiln holds it (no lock, or one left by a process
 * that is gone or not refreshed for STALE_MS). The answer can be out of date at once.
 */
export function peekRunLock(dir: string): LockHolder | 'unknown' | null {
  const lockPath = join(dir, LOCK_NAME);
  let mtimeMs: number;
  try {
    const st = lstatSync(lockPath);
    if (!st.isDirectory()) return null;
    mtimeMs = st.mtimeMs;
  } catch {
    return null;
  }
  const holder = readHolder(lockPath);
  if (holder && holder.host === hostname()) return isAlive(holder.pid) ? holder : null;
  return Date.now() - mtimeMs < STALE_MS ? (holder ?? 'unknown') : null;
}

/** Removes a lock's folder: its holder.json, then the (then empty) folder; never anything else put there. */
function removeLockDir(lockPath: string): void {
  rmSync(join(lockPath, HOLDER_FILE), { force: true });
  rmdirSync(lockPath);
}

/**
 * The file system proper-lockfile works through: the lock's folder is made with its
 * holder.json already inside (so the mtime it then records and refreshes stays its
 * own, and others see the lock without its holder only for a moment), and removed with it.
 */
function lockFs(holder: LockHolder) {
  return {
    mkdir(path: string, cb: (err: Error | null) => void) {
      mkdir(path, (err) => {
        if (err) return cb(err);
        try {
          writeFileAtomic(join(path, HOLDER_FILE), JSON.stringify(holder) + '\n');
        } catch {
          // The lock holds without it (a full disk): others are told it does not say who
          // holds it, and take it over only once stale. The run's own first write says why.
        }
        cb(null);
      });
    },
    rmdir(path: string, cb: (err: Error | null) => void) {
      try {
        removeLockDir(path);
        cb(null);
      } catch (e) {
        cb(e as Error);
      }
    },
    rmdirSync: removeLockDir,
    stat,
    utimes,
  };
}

/** "12:03:05" today, else "2026-03-01 12:03". */
function fmtStarted(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso.slice(0, 30);
  const pad = (n: number) => String(n).padStart(2, '0');
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return d.toDateString() === new Date().toDateString() ? time : `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time.slice(0, 5)}`;
}

/** The refusal: who holds the folder, and what to do about it. */
function refusal(dir: string, holder: LockHolder | null): KilnError {
  const stale = `${STALE_MS / 1000} s`;
  if (!holder)
    return new KilnError('usage', `${dir} is being written by another kiln (its lock, ${join(dir, LOCK_NAME)}, does not say which)`,
      `wait for it to finish or stop it (Ctrl-C); if no kiln is writing there, run again in ${stale}: a lock nobody refreshes is taken over then`);
  const here = holder.host === hostname();
  const self = here && holder.pid === process.pid ? ', this process' : '';
  return new KilnError('usage',
    `${dir} is being written by another kiln (pid ${holder.pid}${self}, \`${holder.command}\`, started ${fmtStarted(holder.started)} ${here ? 'on this machine' : `on ${holder.host}`})`,
    here
      ? 'wait for it to finish or stop it (Ctrl-C); if that process is gone, run again: a lock left by a crashed run is taken over at once'
      : `wait for it to finish or stop it (Ctrl-C) on ${holder.host}; if that process is gone, run again in ${stale}: a lock nobody refreshes is taken over then`);
}

/** The topmost folder of `dir` that does not exist yet (what making `dir` creates), or null. */
function firstMissing(dir: string): string | null {
  let missing: string | null = null;
  for (let d = resolve(dir); !existsSync(d); d = dirname(d)) {
    missing = d;
    if (dirname(d) === d) break;
  }
  return missing;
}

/**
 * Takes the lock on run folder `dir`, making the folder if it does not exist. Refuses
 * (KilnError 'usage', exit 1) when another kiln holds it, naming that process; takes
 * over a lock whose process is gone. Release it on every way out (a `finally`); on
 * process.exit or a fatal signal proper-lockfile removes it too. Its refresh timer is
 * unref'd: a held lock does not keep the process alive.
 */
export async function acquireRunLock(dir: string, options: RunLockOptions = {}): Promise<RunLock> {
  const made = firstMissing(dir);
  ensureDir(dir, options.flag ?? '--out');
  const lockPath = join(dir, LOCK_NAME);
  const me: LockHolder = { pid: process.pid, host: hostname(), command: options.command ?? commandLine(), started: new Date().toISOString() };

  // A holder on this machine is asked directly: alive, it keeps the lock however old its
  // mtime; gone, its lock is taken over now rather than after STALE_MS.
  let tookOver: LockHolder | null = null;
  const held = existsSync(lockPath) ? readHolder(lockPath) : null;
  if (held && held.host === me.host) {
    if (isAlive(held.pid)) throw refusal(dir, held);
    try {
      removeLockDir(lockPath);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw lockError(dir, lockPath, e);
    }
    tookOver = held;
  }

  let lost: KilnError | null = null;
  const onCompromised = (err: Error) => {
    lost = new KilnError('storage', `the lock on ${dir} was lost while training (${err.message})`,
      `another kiln may be writing ${dir} too: stop one of them; ${join(dir, LOCK_NAME)} must stay while a run writes the folder`);
    if (options.onLost) options.onLost(lost);
    else process.stderr.write(`\nkiln: warning: ${lost.message}\n  hint: ${lost.hint}\n`);
  };
  const { lock } = await import('proper-lockfile');
  let unlock: () => Promise<void>;
  try {
    unlock = await lock(dir, { lockfilePath: lockPath, realpath: false, stale: STALE_MS, update: UPDATE_MS, retries: 0, fs: lockFs(me), onCompromised });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ELOCKED') throw refusal(dir, readHolder(lockPath));
    throw lockError(dir, lockPath, e);
  }
  const wasEmpty = readdirSync(dir).every((f) => f === LOCK_NAME);

  let released = false;
  return {
    dir,
    wasEmpty,
    tookOver,
    get lost() {
      return lost;
    },
    async release() {
      if (released) return;
      released = true;
      try {
        await unlock();
      } catch {
        // Already gone (lost while held, and said so then): nothing of ours to remove.
      }
      // A folder this lock made and nothing was written to goes again, with the parents it made.
      if (made) {
        for (let d = resolve(dir); ; d = dirname(d)) {
          try {
            rmdirSync(d);
          } catch {
            break;
          }
          if (d === made) break;
        }
      }
    },
  };
}

function lockError(dir: string, lockPath: string, e: unknown): KilnError {
  if (isKilnError(e)) return e;
  const err = e as NodeJS.ErrnoException;
  const why = err.code === 'EACCES' || err.code === 'EPERM' ? 'permission denied' : err.code === 'ENOTEMPTY' ? `${lockPath} holds files Kiln did not put there` : err.message;
  return new KilnError('storage', `cannot lock ${dir} for this run: ${why}`,
    err.code === 'ENOTEMPTY' ? `remove ${lockPath} (no kiln is writing ${dir}), then run again` : 'check the folder is writable');
}
