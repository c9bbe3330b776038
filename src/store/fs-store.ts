// The run library on the file system, for `kiln serve` (the RunStore of run-store.ts):
// a run the page trains through the server is a run folder as `kiln train` writes it,
// so `kiln eval/sample/info --checkpoint OUT/<folder>` and `kiln train --resume --out
// OUT/<folder>` work on it as they are.
//
//   OUT/<name>-<id8>/run.json                        {"kiln":"run","version":1,"metricsBytes":N,"record":RunRecord}
//                    checkpoint.safetensors          the newest checkpoint (the exact bytes saved)
//                    checkpoint-step<N>.safetensors  the older kept ones (the newest KEEP in all)
//                    metrics.jsonl                   one StepMetrics JSON per line, as kiln train writes it
//                    .kiln.lock/                     held while this process writes the folder (run-lock.ts)
//   OUT/.kiln-datasets/<sha256>.txt (+ .json)        a user's texts, by content hash
//
// run.json is the truth: a file the record does not name is not part of the run, and
// the record names each checkpoint's length and SHA-256, checked on every load. A save
// (one folder, its lock held) goes:
//   1 write   the new bytes to .kiln-checkpoint-next.safetensors (temp file, fsync, rename)
//   2 move    checkpoint.safetensors (the record's newest) to checkpoint-step<N>.safetensors
//   3 place   the new file as checkpoint.safetensors
//   4 metrics cut metrics.jsonl back to the committed length in run.json, append the rows
//   5 record  run.json rewritten (temp + rename): the save is committed
//   6 prune   the files of checkpoints that fell out of the kept window
// A kill -9 after 1 leaves a hidden file; after 2 no checkpoint.safetensors; after 3 an
// uncommitted one there; after 4 rows past metricsBytes; after 5 pruned files. In every
// case the record still names files that hold what it says: a load tries the newest at
// checkpoint.safetensors and then at its step's name (and the other way round for the
// older ones), reads only the committed prefix of metrics.jsonl, and settle() puts the
// folder back in order (newest at checkpoint.safetensors, nothing unnamed) the first
// time this process locks it again. The per-folder file work is run-folder.ts's.
//
// Folders the lab did not write are listed too (foreign-folder.ts): a `kiln train --out`
// folder (checkpoint.safetensors, metrics.jsonl, no run.json) and a `kiln scale` folder
// trained by torchrun (spec.json, metrics.jsonl, checkpoints/step_N/). Listing and
// opening them writes nothing there; a folder another kiln is writing is listed as busy
// (its lock, read without taking it). A `kiln train` folder becomes one of the library's
// own when the person acts on it (trains it: adopt(), or saves, renames or deletes it):
// its lock is taken (refused while that kiln runs), and run.json is added naming its
// checkpoint and the rows of metrics.jsonl up to it, so it reads as any run folder (and
// `kiln train --resume` still continues it). A scaled run is never written: every write
// is refused with the reason (torchrun trains it). A folder whose config cannot be known
// is not listed, said once in the log.
import { randomUUID } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readdirSync, renameSync, rmdirSync, rmSync, type Dirent } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureDir } from '../cli/files.ts';
import { acquireRunLock, peekRunLock, type RunLock } from '../cli/run-lock.ts';
import { KilnError } from '../core/errors.ts';
import { formatBytes } from '../core/model-spec.ts';
import type { CheckpointMeta, RunRecord, StorageUsage } from '../core/run-record.ts';
import { printable } from '../core/text.ts';
import { readOnlyError } from '../worker/run-library.ts';
import { foreignCheckpoint, foreignRows, foreignSignature, readForeignFolder, type ForeignRead, type ForeignRun } from './foreign-folder.ts';
import {
  appendRows, byStep, CHECKPOINT_FILE, checkpointBytes, committedRows, isFullError, locate, messageOf, METRICS_FILE, readCheckpoint, readOwn,
  readRunFile, removeRunFiles, rowsText, RUN_FILE, RUN_ID, settle, sha256Of, STAGED, stepFile, writeRunFile, writeWhole, folderSlug, type RunFolder,
} from './run-folder.ts';
import type { RunStore } from './run-store.ts';

export { CHECKPOINT_FILE, folderSlug, METRICS_FILE, RUN_FILE, stepFile } from './run-folder.ts';

export const DATASETS_DIR = '.kiln-datasets';
const SHA256 = /^[0-9a-f]{64}$/;
const DEFAULT_KEEP = 3;
const MAX_NAME = 120;

/** A point of a save (see the header), for tests that stop a save there as a kill -9 would. */
export type SaveStep = 'write' | 'move' | 'place' | 'metrics' | 'record' | 'prune';

export interface FsRunStoreOptions {
  /** Checkpoints kept per run, newest; older ones are deleted when a save commits. */
  keepCheckpoints?: number;
  /** One line for something a person should know (a lock taken over from a crashed run, a lock lost). */
  note?: (line: string) => void;
  /** Free bytes on the disk of OUT (default: statfs); null where unknown. */
  freeBytes?: () => Promise<number | null>;
  /** Test hook: runs before each point of a save; what it throws is that point's failure (nothing is cleaned up, as after a kill -9). */
  faults?: { beforeSaveStep?(step: SaveStep): void };
}

export interface FsRunStore extends RunStore {
  /** The folder the runs are in (OUT). */
  readonly dir: string;
  /** The run's folder, or null when there is no such run. */
  folderOf(id: string): Promise<string | null>;
  /** Waits for the calls in flight, then gives up every run folder's lock (close() starts the same without waiting). */
  release(): Promise<void>;
  /**
   * Makes a listed `kiln train` folder the library's own before the lab trains it (see
   * the header): its lock taken, run.json added. `step` is the checkpoint step the lab
   * opened: a folder whose checkpoint moved on since is refused. A run already the
   * library's is returned as it is; a scaled run is refused with the reason.
   */
  adopt(id: string, step?: number): Promise<RunRecord>;
}

const noop = () => {};

/** The trimmed name, or a usage error that says what is wrong with it (the same rules as idb-store.ts). */
function checkName(name: string): string {
  const trimmed = name.trim();
  if (trimmed.length === 0) throw new KilnError('usage', 'a run needs a name', 'type at least one character');
  if (trimmed.length > MAX_NAME) throw new KilnError('usage', `a run name may be at most ${MAX_NAME} characters (this one has ${trimmed.length})`, 'choose a shorter name');
  if (/[\u0000-\u001f\u007f-\u009f]/.test(trimmed)) throw new KilnError('usage', 'a run name may not contain control characters (tabs, line breaks)', 'type the name on one line');
  return trimmed;
}

/** Opens (creating it if needed) the run library in folder `out`. */
export async function openFsRunStore(out: string, opts: FsRunStoreOptions = {}): Promise<FsRunStore> {
  const keep = opts.keepCheckpoints ?? DEFAULT_KEEP;
  if (!Number.isSafeInteger(keep) || keep < 1) throw new Error(`openFsRunStore: bad keepCheckpoints ${keep}`);
  ensureDir(out, '--out');
  const note = opts.note ?? ((line: string) => process.stderr.write(`${line}\n`));
  const freeBytes = opts.freeBytes ?? (async () => {
    try {
      const s = await statfs(out);
      return s.bavail * s.bsize;
    } catch {
      return null;
    }
  });
  const datasetsDir = join(out, DATASETS_DIR);
  /** id -> folder name, from the last scan and this store's own writes. */
  const index = new Map<string, string>();
  /** Run folders this store has written, with their locks (kept until release). */
  const locks = new Map<string, RunLock>();
  /** Folders put in order since their lock was taken (a failed save takes one out again). */
  const settled = new Set<string>();
  /** id -> folder of the folders the lab did not write, from the last scan. */
  const foreignIndex = new Map<string, string>();
  /** Each such folder's last read, kept while its files stay the same (foreignSignature). */
  const foreignCache = new Map<string, { signature: string; read: ForeignRead }>();
  /** Lines already said about folders not listed (once each, not at every listing). */
  const said = new Set<string>();
  let closed = false;

  // Calls run one at a time: a save moves files another call may be reading.
  let queue: Promise<unknown> = Promise.resolve();
  function serial<T>(f: () => Promise<T> | T): Promise<T> {
    const run = queue.then(() => {
      if (closed) throw new KilnError('storage', 'the run library was closed (kiln serve is stopping)', 'start kiln serve again');
      return f();
    });
    queue = run.then(noop, noop);
    return run;
  }

  const pathOf = (folder: string, file?: string) => (file === undefined ? join(out, folder) : join(out, folder, file));

  /**
   * A folder the lab did not write, read (again only when its files changed), with
   * whether another kiln is writing it now; null when it is no run (a folder not listed
   * is said once).
   */
  function readForeign(folder: string): ForeignRun | null {
    const dir = pathOf(folder);
    const signature = foreignSignature(dir);
    let cached = foreignCache.get(folder);
    if (!cached || cached.signature !== signature) {
      cached = { signature, read: readForeignFolder(dir, folder) };
      foreignCache.set(folder, cached);
    }
    const read = cached.read;
    if (read === null) return null;
    if ('skip' in read) {
      const line = `kiln serve: not listing ${dir}: ${read.skip}`;
      if (!said.has(line)) {
        said.add(line);
        note(line);
      }
      return null;
    }
    const run = read.run;
    if (run.rec.source.kind !== 'train') return run;
    const holder = peekRunLock(dir);
    if (!holder) return run;
    const busy = holder === 'unknown' ? 'another kiln is writing it' : `being written by pid ${holder.pid} (${printable(holder.command, 80)})`;
    // A live writer's last line may be half written: that is no problem of the folder.
    const problem = run.rec.source.problem?.split('; ').filter((p) => !p.endsWith('ends in a cut-off line, skipped')).join('; ');
    const { problem: _p, ...source } = run.rec.source;
    return { ...run, rec: { ...run.rec, phase: 'training', source: { ...source, busy, ...(problem ? { problem } : {}) } } };
  }

  /** Every run folder, re-reading OUT (another kiln serve may share it): the library's own, and the folders it did not write. */
  function scanAll(): { own: RunFolder[]; foreign: ForeignRun[] } {
    let entries: Dirent[];
    try {
      entries = readdirSync(out, { withFileTypes: true });
    } catch {
      return { own: [], foreign: [] };
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const own: RunFolder[] = [];
    const foreign: ForeignRun[] = [];
    index.clear();
    foreignIndex.clear();
    for (const e of entries) {
      // A link is not followed: it could lead anywhere.
      if (!e.isDirectory() || e.name.startsWith('.')) continue;
      const f = readRunFile(pathOf(e.name), e.name);
      if (!f) {
        const g = readForeign(e.name);
        if (g) {
          foreignIndex.set(g.rec.id, e.name);
          foreign.push(g);
        }
        continue;
      }
      // A copied folder has its original's id: the first by name is the run.
      if (index.has(f.rec.id)) continue;
      index.set(f.rec.id, e.name);
      own.push(f);
    }
    // Folders gone from OUT are forgotten.
    const names = new Set(entries.map((e) => e.name));
    for (const folder of [...foreignCache.keys()]) if (!names.has(folder)) foreignCache.delete(folder);
    return { own, foreign };
  }

  /** The library's own run folders. */
  function scan(): RunFolder[] {
    return scanAll().own;
  }

  function find(id: string): RunFolder | null {
    const known = index.get(id);
    const f = known === undefined ? null : readRunFile(pathOf(known), known);
    if (f && f.rec.id === id) return f;
    return scan().find((x) => x.rec.id === id) ?? null;
  }

  /** A listed folder the lab did not write, by its run's id. */
  function findForeign(id: string): ForeignRun | null {
    const known = foreignIndex.get(id);
    const g = known === undefined || readRunFile(pathOf(known), known) ? null : readForeign(known);
    if (g && g.rec.id === id) return g;
    return scanAll().foreign.find((x) => x.rec.id === id) ?? null;
  }

  /**
   * A listed `kiln train` folder made the library's own (see the header), its lock held;
   * refused for a scaled run, a folder another kiln is writing, one with no checkpoint to
   * name, or (given `step`) one whose checkpoint is no longer the one opened.
   */
  async function adoptFolder(g: ForeignRun, step?: number, action: 'train' | 'change' = 'train'): Promise<RunRecord> {
    const { folder, rec: listed } = g;
    if (listed.source.readOnly) throw readOnlyError(listed, action);
    if (listed.checkpoints.length === 0)
      throw new KilnError('checkpoint', `"${listed.name}" has no checkpoint the lab can continue from (${listed.source.problem ?? `no ${CHECKPOINT_FILE}`})`,
        `continue it with kiln train --resume --out ${pathOf(folder)}, or delete the folder`);
    const dir = pathOf(folder);
    await hold(folder, null);
    try {
      // Read again under the lock: what is there now is what the record names.
      const now = readForeignFolder(dir, folder);
      const run = now && 'run' in now ? now.run : null;
      const at = run?.rec.checkpoints[0];
      if (!run || run.rec.source.kind !== 'train' || !at) throw new KilnError('checkpoint', `${dir} changed while it was being opened (${now && 'skip' in now ? now.skip : 'it is no kiln train run now'})`, 'reload the run list');
      if (step !== undefined && at.step !== step)
        throw new KilnError('usage', `${dir} changed since the run was opened: its checkpoint is now at step ${at.step}, not ${step}`, 'open the run again from the run list');
      const got = readOwn(join(dir, CHECKPOINT_FILE));
      if (!('bytes' in got)) throw new KilnError('checkpoint', `${join(dir, CHECKPOINT_FILE)} ${got.why}`, 'reload the run list');
      const meta: CheckpointMeta = { ...at, id: randomUUID(), bytes: got.bytes.length, sha256: sha256Of(got.bytes) };
      const { source: _s, ...fields } = run.rec;
      const rec: RunRecord = { ...fields, checkpoints: [meta], bytesOnDisk: meta.bytes + run.metricsBytes, updatedAt: Date.now() };
      writeRunFile(dir, rec, run.metricsBytes);
      settled.add(folder);
      index.set(rec.id, folder);
      foreignIndex.delete(rec.id);
      foreignCache.delete(folder);
      note(`kiln serve: ${dir} (written by kiln train) is a run of the lab now: ${RUN_FILE} added beside its files`);
      return rec;
    } catch (e) {
      // The folder stays kiln train's: its lock goes back.
      const lock = locks.get(folder);
      locks.delete(folder);
      settled.delete(folder);
      await lock?.release();
      throw e;
    }
  }

  /** The run's own folder; a listed folder the lab did not write is adopted first (the person acted on it). */
  async function ownFolder(id: string, action: 'train' | 'change' = 'change'): Promise<RunFolder | null> {
    const f = find(id);
    if (f) return f;
    const g = findForeign(id);
    if (!g) return null;
    await adoptFolder(g, undefined, action);
    return find(id);
  }

  /** A new, empty folder for a run: its name made safe, then the id's start, then a number if taken. */
  function claimFolder(name: string, id: string): string {
    const base = `${folderSlug(name)}-${id.replace(/[^A-Za-z0-9]/g, '').slice(0, 8) || 'run'}`;
    for (let i = 1; ; i++) {
      const folder = i === 1 ? base : `${base}-${i}`;
      try {
        mkdirSync(pathOf(folder));
        return folder;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
    }
  }

  /** This process's lock on a run folder (taken once, kept), and the folder put in order. */
  async function hold(folder: string, rec: RunRecord | null): Promise<void> {
    let lock = locks.get(folder);
    if (!lock) {
      lock = await acquireRunLock(pathOf(folder), { flag: '--out', onLost: (e) => note(`kiln serve: warning: ${e.message}`) });
      locks.set(folder, lock);
      if (lock.tookOver) note(`kiln serve: note: took over ${pathOf(folder)} from a kiln that is gone (pid ${lock.tookOver.pid})`);
    }
    if (lock.lost) throw lock.lost;
    if (rec && !settled.has(folder)) {
      settle(pathOf(folder), rec);
      settled.add(folder);
    }
  }

  /** A failed write as a person can act on it. */
  function writeError(e: unknown, what: string): KilnError {
    if (e instanceof KilnError) return e;
    if (isFullError(e)) return new KilnError('storage', `the disk is full: ${what} failed`, `free some space on the disk that holds ${out}, or delete runs you no longer need in the run list`);
    return new KilnError('storage', `${what} failed (${printable(messageOf(e), 200)})`, `check that ${out} is writable`);
  }

  async function quotaError(runId: string, needed: number): Promise<KilnError> {
    let largest: RunRecord | null = null;
    for (const f of scan()) if (f.rec.id !== runId && (!largest || f.rec.bytesOnDisk > largest.bytesOnDisk)) largest = f.rec;
    const free = await freeBytes().catch(() => null);
    const more = free !== null && free < needed ? needed - free : needed;
    const others = largest ? ` or delete runs you no longer need in the run list (largest: "${printable(largest.name, 80)}", ${formatBytes(largest.bytesOnDisk)})` : '';
    return new KilnError(
      'storage',
      `the disk is full: saving this checkpoint needs ${formatBytes(more)} more`,
      `free some space on the disk that holds ${out},${others}; training is paused and nothing was lost`,
    );
  }

  /** The save itself (see the header), in a folder whose lock is held. */
  async function commitSave(f: RunFolder, bytes: Uint8Array, save: Parameters<RunStore['saveCheckpoint']>[2]): Promise<RunRecord> {
    const { folder, rec } = f;
    const dir = pathOf(folder);
    const fault = (step: SaveStep) => opts.faults?.beforeSaveStep?.(step);
    const meta: CheckpointMeta = { id: randomUUID(), step: save.step, bytes: bytes.length, sha256: sha256Of(bytes), chunks: 1, savedAt: Date.now(), valLoss: save.valLoss };
    const prev = rec.checkpoints.at(-1);
    fault('write');
    writeWhole(join(dir, STAGED), bytes);
    fault('move');
    // After settle() (and every save since), the record's newest is at checkpoint.safetensors.
    if (prev && existsSync(join(dir, CHECKPOINT_FILE))) renameSync(join(dir, CHECKPOINT_FILE), join(dir, stepFile(prev.step)));
    fault('place');
    renameSync(join(dir, STAGED), join(dir, CHECKPOINT_FILE));
    fault('metrics');
    const metricsBytes = appendRows(dir, f.metricsBytes, save.metrics);
    const { id: _i, checkpoints: _c, bytesOnDisk: _b, createdAt: _t, ...patch } = save.patch as Partial<RunRecord>;
    // A checkpoint at a step replaces an older one at the same step (a save() while paused).
    const kept = [...rec.checkpoints.filter((c) => c.step !== meta.step), meta];
    const dropped = [...rec.checkpoints.filter((c) => c.step === meta.step), ...kept.splice(0, Math.max(0, kept.length - keep))];
    const next: RunRecord = { ...rec, ...patch, step: meta.step, checkpoints: kept, updatedAt: Date.now() };
    next.bytesOnDisk = checkpointBytes(next) + metricsBytes;
    fault('record');
    writeRunFile(dir, next, metricsBytes);
    try {
      fault('prune');
      const named = new Set(kept.slice(0, -1).map((c) => stepFile(c.step)));
      for (const d of dropped) if (!named.has(stepFile(d.step))) rmSync(join(dir, stepFile(d.step)), { force: true });
    } catch {
      // Committed all the same: the next settle() removes what is left.
      settled.delete(folder);
    }
    return next;
  }

  /** Datasets no run names any more. */
  function dropUnusedDatasets(runs: RunFolder[]): void {
    const used = new Set<string>();
    for (const f of runs) if (f.rec.spec.data?.kind === 'file') used.add(f.rec.spec.data.sha256);
    let names: string[];
    try {
      names = readdirSync(datasetsDir);
    } catch {
      return;
    }
    for (const name of names) {
      const m = /^([0-9a-f]{64})\.(txt|json)$/.exec(name);
      if (m && !used.has(m[1])) rmSync(join(datasetsDir, name), { force: true });
    }
  }

  const store: FsRunStore = {
    dir: out,

    async listRuns() {
      const { own, foreign } = scanAll();
      return [...own.map((f) => f.rec), ...foreign.map((g) => g.rec)].sort((a, b) => b.updatedAt - a.updatedAt);
    },

    async getRun(id) {
      return find(id)?.rec ?? findForeign(id)?.rec ?? null;
    },

    async folderOf(id) {
      const f = find(id) ?? findForeign(id);
      return f ? pathOf(f.folder) : null;
    },

    adopt(id, step) {
      return serial(async () => {
        const f = find(id);
        if (f) return f.rec;
        const g = findForeign(id);
        if (!g) throw new KilnError('usage', 'that run is no longer in the run library', 'its folder may have been moved or deleted: reload the run list');
        return adoptFolder(g, step, 'train');
      });
    },

    putRun(given) {
      return serial(async () => {
        // Where a run came from is the listing's to say, never the record's.
        const { source: _s, ...run } = given;
        try {
          const old = await ownFolder(run.id);
          if (old) {
            // The store owns checkpoints and bytesOnDisk: a record from before a save must not drop that save.
            await hold(old.folder, old.rec);
            writeRunFile(pathOf(old.folder), { ...run, createdAt: old.rec.createdAt, checkpoints: old.rec.checkpoints, bytesOnDisk: old.rec.bytesOnDisk }, old.metricsBytes);
            return;
          }
          if (!RUN_ID.test(run.id)) throw new Error(`putRun: run id ${JSON.stringify(run.id.slice(0, 40))} is not one the page can name`);
          const folder = claimFolder(run.name, run.id);
          await hold(folder, null);
          settled.add(folder);
          writeRunFile(pathOf(folder), { ...run, checkpoints: [], bytesOnDisk: 0 }, 0);
          index.set(run.id, folder);
        } catch (e) {
          throw writeError(e, `saving run "${printable(run.name, 80)}"`);
        }
      });
    },

    renameRun(id, name) {
      return serial(async () => {
        const trimmed = checkName(name);
        const f = await ownFolder(id);
        if (!f) throw new KilnError('usage', `there is no run ${id} in the library`, 'it may have been deleted in another tab: reload the run list');
        await hold(f.folder, f.rec);
        const next = { ...f.rec, name: trimmed };
        try {
          writeRunFile(pathOf(f.folder), next, f.metricsBytes);
        } catch (e) {
          throw writeError(e, `renaming "${printable(f.rec.name, 80)}"`);
        }
        return next;
      });
    },

    deleteRun(id) {
      return serial(async () => {
        const f = await ownFolder(id);
        if (f) {
          await hold(f.folder, null);
          removeRunFiles(pathOf(f.folder));
          index.delete(id);
          settled.delete(f.folder);
          const lock = locks.get(f.folder);
          locks.delete(f.folder);
          await lock?.release();
          // Only if nothing else is left in it (files Kiln did not write stay, and so does their folder).
          try {
            rmdirSync(pathOf(f.folder));
          } catch {
            // not empty, or gone
          }
        }
        dropUnusedDatasets(scan());
      });
    },

    saveCheckpoint(runId, bytes, save) {
      return serial(async () => {
        const f = await ownFolder(runId, 'train');
        if (!f) throw new KilnError('storage', `run ${runId} is not in the library, so its checkpoint was not saved`, 'it was deleted, perhaps in another tab');
        await hold(f.folder, f.rec);
        try {
          return await commitSave(f, bytes, save);
        } catch (e) {
          // Put in order again (from the record, which still names the previous checkpoint) before the next write here.
          settled.delete(f.folder);
          if (isFullError(e)) throw await quotaError(runId, bytes.length);
          if (e instanceof KilnError) throw e;
          throw new KilnError('storage', `saving the checkpoint at step ${save.step} of "${printable(f.rec.name, 80)}" failed (${printable(messageOf(e), 200)})`,
            `training is paused and nothing was lost: try again, or check that ${out} is writable`);
        }
      });
    },

    loadCheckpoint(runId, meta) {
      return serial(async () => {
        const f = find(runId);
        const g = f ? null : findForeign(runId);
        if (g) return foreignCheckpoint(pathOf(g.folder), g, meta);
        let earlier: CheckpointMeta | null = null;
        for (const c of f?.rec.checkpoints ?? []) if (c.id !== meta.id && c.step < meta.step && (!earlier || c.step > earlier.step)) earlier = c;
        const got = f ? readCheckpoint(pathOf(f.folder), f.rec, meta) : { why: 'its run folder is gone' };
        if ('bytes' in got) return got.bytes;
        throw new KilnError(
          'checkpoint',
          `the checkpoint at step ${meta.step} of "${printable(f?.rec.name ?? runId, 80)}" is damaged (${got.why})`,
          earlier ? `open the run at an earlier checkpoint (step ${earlier.step})` : 'this run has no earlier checkpoint: delete it, or import its downloaded file',
        );
      });
    },

    metrics(runId) {
      return serial(async () => {
        const f = find(runId);
        if (f) return byStep(committedRows(pathOf(f.folder), f.metricsBytes));
        const g = findForeign(runId);
        return g ? foreignRows(pathOf(g.folder)) : [];
      });
    },

    replaceMetrics(runId, rows) {
      return serial(async () => {
        const f = await ownFolder(runId, 'train');
        if (!f) return;
        await hold(f.folder, f.rec);
        const text = rowsText(rows);
        const n = Buffer.byteLength(text, 'utf8');
        try {
          writeWhole(pathOf(f.folder, METRICS_FILE), text);
          writeRunFile(pathOf(f.folder), { ...f.rec, bytesOnDisk: checkpointBytes(f.rec) + n }, n);
        } catch (e) {
          throw writeError(e, 'saving the run\'s metrics');
        }
      });
    },

    rewind(runId, step) {
      return serial(async () => {
        const f = await ownFolder(runId, 'train');
        if (!f) throw new KilnError('usage', 'that run is no longer in the run library', 'it may have been deleted in another tab: reload the page');
        const { folder, rec } = f;
        const dir = pathOf(folder);
        const target = rec.checkpoints.filter((c) => c.step === step).at(-1);
        if (!target) throw new KilnError('usage', `"${printable(rec.name, 80)}" has no checkpoint at step ${step}`, 'choose one of its checkpoints');
        await hold(folder, rec);
        try {
          // The rows first: a crash before run.json leaves the old record with fewer rows, never rows it has not got.
          const text = rowsText(byStep(committedRows(dir, f.metricsBytes)).filter((r) => r.step <= step));
          const n = Buffer.byteLength(text, 'utf8');
          writeWhole(join(dir, METRICS_FILE), text);
          const at = locate(dir, rec, target);
          if (at !== null && at !== CHECKPOINT_FILE) renameSync(join(dir, at), join(dir, CHECKPOINT_FILE));
          const checkpoints = rec.checkpoints.filter((c) => c.step <= step);
          const next: RunRecord = { ...rec, checkpoints, step, phase: 'paused', bytesOnDisk: checkpointBytes({ ...rec, checkpoints }) + n };
          writeRunFile(dir, next, n);
          settle(dir, next);
          return next;
        } catch (e) {
          settled.delete(folder);
          throw writeError(e, 'going back to an earlier checkpoint');
        }
      });
    },

    putDataset(sha256, name, bytes) {
      return serial(async () => {
        const actual = sha256Of(bytes);
        if (actual !== sha256) throw new Error(`putDataset: the bytes of ${name} hash to ${actual}, not ${sha256}`);
        try {
          ensureDir(datasetsDir, '--out');
          writeWhole(join(datasetsDir, `${sha256}.txt`), bytes);
          writeWhole(join(datasetsDir, `${sha256}.json`), JSON.stringify({ name, bytes: bytes.length, addedAt: Date.now() }) + '\n');
        } catch (e) {
          throw writeError(e, `keeping ${printable(name, 80)}`);
        }
      });
    },

    async getDataset(sha256) {
      if (!SHA256.test(sha256)) return null;
      const got = readOwn(join(datasetsDir, `${sha256}.txt`));
      // A file changed since it was kept is not that dataset any more.
      if (!('bytes' in got) || sha256Of(got.bytes) !== sha256) return null;
      let name = `${sha256.slice(0, 12)}.txt`;
      const about = readOwn(join(datasetsDir, `${sha256}.json`));
      try {
        if ('bytes' in about) {
          const n = (JSON.parse(Buffer.from(about.bytes).toString('utf8')) as { name?: unknown }).name;
          if (typeof n === 'string' && n.length > 0) name = n;
        }
      } catch {
        // The name is only for showing.
      }
      return { name, bytes: got.bytes };
    },

    async usage(): Promise<StorageUsage> {
      const { own, foreign } = scanAll();
      const runsBytes = own.reduce((s, f) => s + f.rec.bytesOnDisk, 0) + foreign.reduce((s, g) => s + g.rec.bytesOnDisk, 0);
      let datasetsBytes = 0;
      try {
        for (const name of readdirSync(datasetsDir)) if (/^[0-9a-f]{64}\.txt$/.test(name)) datasetsBytes += lstatSync(join(datasetsDir, name)).size;
      } catch {
        // no datasets yet
      }
      // A disk has no quota as a browser's storage has: what is used, and that plus the free space.
      const free = await freeBytes().catch(() => null);
      const usage = runsBytes + datasetsBytes;
      return { runsBytes, datasetsBytes, usage, quota: free === null ? null : usage + free };
    },

    sweep() {
      return serial(async () => {
        let removed = 0;
        for (const folder of locks.keys()) {
          const f = readRunFile(pathOf(folder), folder);
          if (!f) continue;
          removed += settle(pathOf(folder), f.rec);
          settled.add(folder);
        }
        return removed;
      });
    },

    release() {
      const done = queue.then(async () => {
        closed = true;
        const held = [...locks.values()];
        locks.clear();
        settled.clear();
        await Promise.all(held.map((l) => l.release()));
      });
      queue = done.then(noop, noop);
      return done;
    },

    close() {
      void store.release().catch(noop);
    },
  };
  scan();
  return store;
}
