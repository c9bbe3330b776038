// TensorBoard logs of the runs `kiln serve` trains (issue 16 item 6): each run's own log
// in its run folder, OUT/<folder>/tensorboard/, so `tensorboard --logdir OUT` shows
// every run under its folder's name. The log is the one `kiln train --tensorboard`
// writes (cli/tensorboard.ts): the scalars of each metrics row by step and the run's
// config as text at step 0, each event appended to the file at once.
//
// The session's events carry the rows but not whose they are, so the calls that change
// the open run (createRun, openRun, branchRun) are wrapped on this session to learn it
// from the RunInfo they return; their events come before they return, and rows only
// after, so the change is queued between the right rows. A run's log is opened at its
// first row, not when it is opened (a run opened to look at or sample from is not
// written to): a new run's log starts afresh; an opened or branched one continues its
// folder's log as `kiln train --resume` does: events past the step training goes on
// from (rows the checkpoint does not have, dropped from metrics.jsonl too) are cut, and
// steps the log lacks up to there are copied from metrics.jsonl (a branch's history, or
// a run trained before it had a log). The same cut follows a step that goes back in a
// run left open (recover() returns to the last snapshot).
//
// In kiln serve the run's checkpoint and metrics.jsonl are what count: a log that cannot
// be written (a full disk) is said once as a note and that run's log is left as it is
// until the run is opened again; training goes on. deleteRun removes a run's log with
// its files, and disposing the session closes the log.
import { lstatSync, readdirSync, rmdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { isEventFile, openRunLog, type MetricsRow, type TensorBoardLog } from '../cli/tensorboard.ts';
import type { RunConfig } from '../core/config.ts';
import { printable } from '../core/text.ts';
import { METRICS_FILE, type FsRunStore } from '../store/fs-store.ts';
import type { LabEvent, RunInfo } from '../worker/api.ts';
import type { LabSession } from '../worker/lab-session.ts';

/** The log's folder inside a run folder. */
export const TENSORBOARD_DIR = 'tensorboard';

export interface ServeTensorBoard {
  /** Writes what is queued, closes the open log and stops listening (also done when the session is disposed). */
  close(): Promise<void>;
}

interface OpenRun {
  id: string;
  config: RunConfig;
  /** Made by this session: its log starts afresh. */
  fresh: boolean;
  log: TensorBoardLog | null;
  /** The newest step in the log. */
  lastStep: number;
  /** Its log could not be written (said once): nothing more until the run is opened again. */
  failed: boolean;
}

function messageOf(e: unknown): string {
  return printable((e as Error)?.message ?? String(e), 300);
}

/** A run folder's log and the folder too when nothing else is left in it (files not Kiln's stay). */
function removeLog(folder: string): void {
  const dir = join(folder, TENSORBOARD_DIR);
  try {
    if (!lstatSync(dir).isDirectory()) return;
    for (const name of readdirSync(dir)) if (isEventFile(name) && lstatSync(join(dir, name)).isFile()) rmSync(join(dir, name), { force: true });
    rmdirSync(dir);
    rmdirSync(folder);
  } catch {
    // not there, or not empty
  }
}

/**
 * Logs the runs `session` trains to TensorBoard in their run folders (found through
 * `store`, the session's run library). Lines for the terminal go to `note`.
 */
export function attachTensorBoard(session: LabSession, store: () => Promise<Pick<FsRunStore, 'folderOf'>>, note: (line: string) => void): ServeTensorBoard {
  let current: OpenRun | null = null;
  let closed = false;
  // Everything in event order, one thing at a time (a log is opened before its rows are written).
  let chain: Promise<void> = Promise.resolve();
  const enqueue = (f: () => void | Promise<void>): Promise<void> => (chain = chain.then(f).catch(() => {}));

  function closeLog(run: OpenRun | null): void {
    try {
      run?.log?.close();
    } catch {
      // nothing more to write there
    }
    if (run) run.log = null;
  }

  function fail(run: OpenRun, where: string, e: unknown): void {
    closeLog(run);
    run.failed = true;
    note(`kiln serve: warning: the TensorBoard log in ${where} could not be written (${messageOf(e)}); training goes on without it (the run's checkpoints and metrics.jsonl are saved as before)`);
  }

  async function write(run: OpenRun, rows: MetricsRow[]): Promise<void> {
    for (const row of rows) {
      if (run.failed || closed) return;
      let where = `the folder of run ${printable(run.id, 60)}`;
      try {
        // A step again: the run went back (recover); the log is cut back to before it.
        if (run.log && row.step <= run.lastStep) closeLog(run);
        if (!run.log) {
          const folder = await (await store()).folderOf(run.id);
          // Not in the library (deleted, or no library): there is no folder to log into.
          if (!folder) {
            run.failed = true;
            return;
          }
          const dir = join(folder, TENSORBOARD_DIR);
          where = dir;
          // Nothing is written through a link (as the run store writes nothing through one).
          const st = lstatSafe(dir);
          if (st && !st.isDirectory()) throw new Error(`${TENSORBOARD_DIR} there is not a folder`);
          const resumeStep = run.fresh ? null : row.step - 1;
          run.log = openRunLog(dir, {
            config: run.config, resumeStep, force: true, metricsPath: join(folder, METRICS_FILE), flag: 'kiln serve',
            whenFull: () => 'free some space: training goes on, and the log is caught up from metrics.jsonl when the run is opened again',
          });
          run.fresh = false;
          run.lastStep = resumeStep ?? 0;
        }
        where = run.log.dir;
        run.log.scalars(row);
        run.lastStep = row.step;
      } catch (e) {
        fail(run, where, e);
      }
    }
  }

  function opened(fresh: boolean) {
    return (info: RunInfo): RunInfo => {
      void enqueue(() => {
        closeLog(current);
        current = { id: info.id, config: { ...info.spec.config }, fresh, log: null, lastStep: -1, failed: false };
      });
      return info;
    };
  }

  const subscribed = session.subscribe((e: LabEvent) => {
    if (e.type !== 'metrics' || e.metrics.length === 0 || closed) return;
    const rows = e.metrics.slice();
    void enqueue(() => (current ? write(current, rows) : undefined));
  });

  const createRun = session.createRun.bind(session);
  const openRun = session.openRun.bind(session);
  const branchRun = session.branchRun.bind(session);
  const deleteRun = session.deleteRun.bind(session);
  const dispose = session.dispose.bind(session);
  session.createRun = (spec, backendKind) => createRun(spec, backendKind).then(opened(true));
  session.openRun = (id, backendKind, step) => openRun(id, backendKind, step).then(opened(false));
  session.branchRun = (id, step, config, backendKind, name) => branchRun(id, step, config, backendKind, name).then(opened(false));
  session.deleteRun = async (id) => {
    const folder = await store().then((s) => s.folderOf(id), () => null);
    await deleteRun(id);
    await enqueue(() => {
      // A deleted run may stay open (unsaved): it has no folder to log into any more.
      if (current?.id === id) {
        closeLog(current);
        current = null;
      }
      if (folder) removeLog(folder);
    });
  };

  let closing: Promise<void> | null = null;
  const handle: ServeTensorBoard = {
    close: () => (closing ??= (async () => {
      await session.unsubscribe(await subscribed).catch(() => {});
      await enqueue(() => {
        closed = true;
        closeLog(current);
        current = null;
      });
    })()),
  };
  session.dispose = async () => {
    try {
      await dispose();
    } finally {
      await handle.close();
    }
  };
  return handle;
}

function lstatSafe(path: string): import('node:fs').Stats | null {
  try {
    return lstatSync(path);
  } catch {
    return null;
  }
}
