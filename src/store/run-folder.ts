// One run's folder as fs-store.ts keeps it (its header gives the layout and why a save
// goes in the order it does): reading and writing run.json, the committed part of
// metrics.jsonl, finding a checkpoint's file, and putting a folder back in order after
// a save that never finished. No locks and no index here: the store holds the folder's
// lock before calling anything that writes.
//
// Nothing is written through a symbolic link: whole files go through files.ts's
// writeFileAtomic (an exclusive temp file, then rename, which replaces a link rather
// than following it), metrics.jsonl is opened with O_NOFOLLOW, and every read is
// O_NOFOLLOW.
import { createHash } from 'node:crypto';
import { closeSync, constants, existsSync, fstatSync, fsyncSync, ftruncateSync, openSync, readdirSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { refuseLink, writeFileAtomic } from '../cli/files.ts';
import type { CheckpointMeta, RunRecord } from '../core/run-record.ts';
import type { StepMetrics } from '../train/trainer.ts';

export const RUN_FILE = 'run.json';
export const CHECKPOINT_FILE = 'checkpoint.safetensors';
export const METRICS_FILE = 'metrics.jsonl';
/** Where a save writes the new checkpoint before it becomes checkpoint.safetensors. */
export const STAGED = '.kiln-checkpoint-next.safetensors';
/** writeFileAtomic's temporary names for the files the store writes. */
const OUR_TEMP = /^\.(run\.json|metrics\.jsonl|\.kiln-checkpoint-next\.safetensors)\.[0-9a-f]{16}\.tmp$/;
const STEP_FILE = /^checkpoint-step\d+\.safetensors$/;
/** The wire protocol's run id (lab-protocol.ts): a record with another id could not be opened from the page. */
export const RUN_ID = /^[A-Za-z0-9][A-Za-z0-9 ._-]{0,199}$/;
const NOFOLLOW = constants.O_NOFOLLOW ?? 0;

/** An older kept checkpoint's file. */
export const stepFile = (step: number): string => `checkpoint-step${step}.safetensors`;

/** What run.json holds: the record, and how much of metrics.jsonl it has committed. */
interface RunFile {
  kiln: 'run';
  version: 1;
  metricsBytes: number;
  record: RunRecord;
}

/** A run folder's run.json, read. */
export interface RunFolder {
  /** The folder's name in OUT. */
  folder: string;
  rec: RunRecord;
  metricsBytes: number;
}

/** A file's bytes, or why not, said after its name ("is missing"). */
export type Read = { bytes: Uint8Array } | { why: string };

export function sha256Of(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function checkpointBytes(run: RunRecord): number {
  return run.checkpoints.reduce((s, c) => s + c.bytes, 0);
}

export function isFullError(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

export function messageOf(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return err?.code ? `${err.code}: ${err.message}` : e instanceof Error ? e.message : String(e);
}

/** A run's name as a folder name: letters, digits and `._-` only, never hidden. */
export function folderSlug(name: string): string {
  return name.normalize('NFKD').replace(/[\u0300-\u036f]/g, '').replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[-.]+|[-.]+$/g, '').slice(0, 60).replace(/[-.]+$/, '') || 'run';
}

/** A file's whole contents, never through a link; or why it cannot be read. */
export function readOwn(path: string): Read {
  let fd = -1;
  try {
    fd = openSync(path, constants.O_RDONLY | NOFOLLOW);
    const st = fstatSync(fd);
    if (!st.isFile()) return { why: 'is not a file' };
    const out = new Uint8Array(st.size);
    let off = 0;
    while (off < out.length) {
      const n = readSync(fd, out, off, out.length - off, off);
      if (n === 0) break;
      off += n;
    }
    return { bytes: off === out.length ? out : out.subarray(0, off) };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { why: code === 'ENOENT' ? 'is missing' : code === 'ELOOP' ? 'is a symbolic link' : `cannot be read (${messageOf(e)})` };
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

/**
 * writeFileAtomic, with a full disk thrown as ENOSPC (files.ts turns every failure into
 * a KilnError; the hint it asks for tells the two apart), so the store can say how much
 * a checkpoint needed.
 */
export function writeWhole(path: string, data: Uint8Array | string): void {
  let full = false;
  try {
    writeFileAtomic(path, data, () => {
      full = true;
      return 'free some space';
    });
  } catch (e) {
    if (full) throw Object.assign(new Error('no space left on the device'), { code: 'ENOSPC' });
    throw e;
  }
}

/** The folder's run.json, or null when there is none or it is not one (a run folder of `kiln train`, a user's folder). */
export function readRunFile(dir: string, folder: string): RunFolder | null {
  const got = readOwn(join(dir, RUN_FILE));
  if (!('bytes' in got)) return null;
  try {
    const f = JSON.parse(Buffer.from(got.bytes).toString('utf8')) as Partial<RunFile>;
    const r = f?.record;
    if (f?.kiln !== 'run' || f.version !== 1 || !Number.isSafeInteger(f.metricsBytes) || f.metricsBytes! < 0) return null;
    if (typeof r !== 'object' || r === null || typeof r.id !== 'string' || !RUN_ID.test(r.id) || typeof r.name !== 'string') return null;
    if (!Array.isArray(r.checkpoints) || typeof r.spec !== 'object' || r.spec === null) return null;
    for (const c of r.checkpoints) {
      if (typeof c !== 'object' || c === null || !Number.isSafeInteger(c.step) || c.step < 0 || !Number.isSafeInteger(c.bytes) || typeof c.sha256 !== 'string') return null;
    }
    return { folder, rec: r, metricsBytes: f.metricsBytes! };
  } catch {
    return null;
  }
}

export function writeRunFile(dir: string, record: RunRecord, metricsBytes: number): void {
  const file: RunFile = { kiln: 'run', version: 1, metricsBytes, record };
  writeWhole(join(dir, RUN_FILE), JSON.stringify(file, null, 1) + '\n');
}

// ---- metrics.jsonl ----

export const rowsText = (rows: StepMetrics[]): string => rows.map((r) => JSON.stringify(r) + '\n').join('');

/** Rows of metrics.jsonl text: each line an object with a numeric step; anything else (a torn line) is skipped. */
function parseRows(text: string): StepMetrics[] {
  const rows: StepMetrics[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const r = JSON.parse(line) as unknown;
      if (typeof r === 'object' && r !== null && !Array.isArray(r) && typeof (r as StepMetrics).step === 'number') rows.push(r as StepMetrics);
    } catch {
      // A line cut short (a write that never finished): not a row.
    }
  }
  return rows;
}

/** Rows by step, a later row for the same step replacing an earlier one (a resume re-ran it). */
export function byStep(rows: StepMetrics[]): StepMetrics[] {
  const m = new Map<number, StepMetrics>();
  for (const r of rows) m.set(r.step, r);
  return [...m.values()].sort((a, b) => a.step - b.step);
}

/** The committed rows: the first metricsBytes of metrics.jsonl (a save that died after appending left more). */
export function committedRows(dir: string, metricsBytes: number): StepMetrics[] {
  const got = readOwn(join(dir, METRICS_FILE));
  if (!('bytes' in got)) return [];
  return parseRows(Buffer.from(got.bytes.subarray(0, Math.min(got.bytes.length, metricsBytes))).toString('utf8'));
}

/** Cuts metrics.jsonl back to its committed length and appends `rows`; returns the new committed length. */
export function appendRows(dir: string, committed: number, rows: StepMetrics[]): number {
  const path = join(dir, METRICS_FILE);
  refuseLink(path, '--out');
  const fd = openSync(path, constants.O_RDWR | constants.O_CREAT | NOFOLLOW, 0o666);
  try {
    const size = fstatSync(fd).size;
    // A file cut shorter by someone else: go on from its end, on a line of its own.
    let at = Math.min(size, committed);
    if (size > at) ftruncateSync(fd, at);
    let text = rowsText(rows);
    if (at > 0) {
      const last = Buffer.alloc(1);
      readSync(fd, last, 0, 1, at - 1);
      if (last[0] !== 0x0a) text = '\n' + text;
    }
    const bytes = Buffer.from(text, 'utf8');
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off, at + off);
    fsyncSync(fd);
    at += bytes.length;
    return at;
  } finally {
    closeSync(fd);
  }
}

// ---- checkpoints ----

/** Where a checkpoint may be, likeliest first: the newest at checkpoint.safetensors, older ones at their step's name. */
export function checkpointFiles(rec: RunRecord, meta: CheckpointMeta): string[] {
  return rec.checkpoints.at(-1)?.id === meta.id ? [CHECKPOINT_FILE, stepFile(meta.step)] : [stepFile(meta.step), CHECKPOINT_FILE];
}

/** The checkpoint's bytes (length and SHA-256 as recorded), or what is wrong with the first place it should be. */
export function readCheckpoint(dir: string, rec: RunRecord, meta: CheckpointMeta): Read {
  let first: string | null = null;
  for (const file of checkpointFiles(rec, meta)) {
    const got = readOwn(join(dir, file));
    if (!('bytes' in got)) first ??= `${file} ${got.why}`;
    else if (got.bytes.length !== meta.bytes) first ??= `${file} has ${got.bytes.length} bytes, not the ${meta.bytes} recorded`;
    else if (sha256Of(got.bytes) !== meta.sha256) first ??= `the SHA-256 of ${file} does not match the one recorded when it was saved; another program may have written it`;
    else return got;
  }
  return { why: first! };
}

/** Whether file `name` of a folder holds checkpoint `meta` (length, then SHA-256). */
function holds(dir: string, name: string, meta: CheckpointMeta): boolean {
  const got = readOwn(join(dir, name));
  return 'bytes' in got && got.bytes.length === meta.bytes && sha256Of(got.bytes) === meta.sha256;
}

/** The file that holds checkpoint `meta`, or null. */
export function locate(dir: string, rec: RunRecord, meta: CheckpointMeta): string | null {
  return checkpointFiles(rec, meta).find((name) => holds(dir, name, meta)) ?? null;
}

/**
 * Puts a folder (its lock held) in order after whatever stopped a save: the newest
 * checkpoint at checkpoint.safetensors, each older one at its step's name, no staged or
 * temporary file of the store, no checkpoint file the record does not name. Hashes only
 * where two files could hold the newest. Returns the files removed.
 */
export function settle(dir: string, rec: RunRecord): number {
  let removed = 0;
  const rm = (name: string) => {
    rmSync(join(dir, name), { force: true });
    removed++;
  };
  for (const name of readdirSync(dir)) if (name === STAGED || OUR_TEMP.test(name)) rm(name);
  const newest = rec.checkpoints.at(-1);
  const newestStep = newest ? stepFile(newest.step) : null;
  if (newest && newestStep && existsSync(join(dir, newestStep))) {
    if (holds(dir, CHECKPOINT_FILE, newest)) rm(newestStep);
    else if (holds(dir, newestStep, newest)) renameSync(join(dir, newestStep), join(dir, CHECKPOINT_FILE));
    // Neither holds it: both stay, and loading it says it is damaged.
  }
  const named = new Set(rec.checkpoints.slice(0, -1).map((c) => stepFile(c.step)));
  for (const name of readdirSync(dir)) if (STEP_FILE.test(name) && !named.has(name) && name !== newestStep) rm(name);
  return removed;
}

/** Removes the files the store writes (run.json first: from then on the folder is no run); anything else stays. */
export function removeRunFiles(dir: string): void {
  rmSync(join(dir, RUN_FILE), { force: true });
  for (const name of readdirSync(dir)) {
    if (name === CHECKPOINT_FILE || name === METRICS_FILE || name === STAGED || STEP_FILE.test(name) || OUR_TEMP.test(name)) rmSync(join(dir, name), { force: true });
  }
}
