// TensorBoard event files for a run: the scalars of each metrics row by step (loss,
// val loss, lr, grad norm, tokens/s, MFU) and the run's config as text. The format is
// TensorFlow's record file (tensorflow/core/lib/io/record_writer.cc): each record is
//   uint64 length (little-endian) | uint32 masked CRC-32C of those 8 bytes |
//   data | uint32 masked CRC-32C of data,
// with data a serialised Event (tensorboard-proto.ts). CRC-32C is @aws-crypto/crc32c's,
// the Event messages are protobufjs's; only the framing and the mask are written here.
//
// One file per process: a resumed run adds a new file to the same folder rather than
// appending to the old one. TensorBoard reads a folder's event files in the order of
// their names and, while a run is live, follows only the newest file for growth
// (tensorboard/backend/event_processing/directory_watcher.py), so a new file named
// after every earlier one is read in full and in order; appending to an old file would
// also write after whatever a crash left at its end. Steps continue across files: on
// resume, events past the checkpoint's step (rows metrics.jsonl drops too) are cut from
// the earlier files, and what the folder lacks up to that step is copied from
// metrics.jsonl, so each step is in the log once with metrics.jsonl's values.
import { closeSync, constants, existsSync, lstatSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { crc32c } from '@aws-crypto/crc32c';
import { FIELDS, type RunConfig } from '../core/config.ts';
import { KilnError } from '../core/errors.ts';
import type { StepMetrics } from '../train/trainer.ts';
import { ensureDir, writeFileAtomic, type FullDiskHint } from './files.ts';
import { EVENT_TYPES, FILE_VERSION } from './tensorboard-proto.ts';

/** TensorFlow's CRC mask (crc32c.h): rotate right by 15 bits and add a constant. */
const MASK_DELTA = 0xa282ead8;

export function maskCrc(crc: number): number {
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + MASK_DELTA) >>> 0;
}

export function maskedCrc32c(bytes: Uint8Array): number {
  return maskCrc(crc32c(bytes));
}

/** One record of a TFRecord file around `data`. */
export function frameRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length + 4);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(data.length), true);
  view.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(data, 12);
  view.setUint32(12 + data.length, maskedCrc32c(data), true);
  return out;
}

/**
 * The records of a TFRecord file, up to the first one that is cut short or fails its
 * CRCs (a write interrupted by a full disk or a crash). `end` is where the good records end.
 */
export function readRecords(bytes: Uint8Array): { records: Uint8Array[]; end: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const records: Uint8Array[] = [];
  let at = 0;
  while (at + 12 <= bytes.length) {
    if (view.getUint32(at + 8, true) !== maskedCrc32c(bytes.subarray(at, at + 8))) break;
    const n = view.getBigUint64(at, true);
    if (n > BigInt(bytes.length - at - 16)) break;
    const len = Number(n);
    const data = bytes.subarray(at + 12, at + 12 + len);
    if (view.getUint32(at + 12 + len, true) !== maskedCrc32c(data)) break;
    records.push(data);
    at += 16 + len;
  }
  return { records, end: at };
}

/** A metrics row as metrics.jsonl holds it: a step and whichever values were measured. */
export type MetricsRow = Pick<StepMetrics, 'step'> & Partial<Omit<StepMetrics, 'step'>>;

/** The TensorBoard tag of each metrics field (what the seeds' training scripts log). */
export const SCALAR_TAGS = {
  loss: 'loss/train',
  val_loss: 'loss/val',
  lr: 'lr',
  grad_norm: 'grad_norm',
  tokens_per_s: 'tokens_per_s',
  mfu: 'mfu',
} as const satisfies Partial<Record<keyof StepMetrics, string>>;

export const CONFIG_TAG = 'config';

/** The run's settings as a markdown table (the text plugin renders markdown), in FIELDS' order. */
export function configMarkdown(config: RunConfig): string {
  const rows = FIELDS.map((f) => `| ${f.key} | ${String(config[f.key])} |`);
  return ['| setting | value |', '|---|---|', ...rows].join('\n');
}

/** The file name TensorBoard looks for: events.out.tfevents.<unix seconds>.<host>.<pid>.<n>. */
export function eventFileName(seconds: number, host: string, pid: number, n: number): string {
  return `events.out.tfevents.${seconds}.${host}.${pid}.${n}`;
}

/** Whether a file name is an event file (TensorBoard's own test: "tfevents" in the name). */
export function isEventFile(name: string): boolean {
  return name.includes('tfevents');
}

const NOFOLLOW = constants.O_NOFOLLOW ?? 0;

/** Files opened by this process, for the <n> of their names. */
let filesOpened = 0;

interface Decoded {
  step: number;
  tags: string[];
}

/** The step and summary tags of an event record, or null where it is not an Event. */
function decodeEvent(data: Uint8Array): Decoded | null {
  try {
    const e = EVENT_TYPES.Event.toObject(EVENT_TYPES.Event.decode(data), { longs: Number }) as {
      step?: number; summary?: { value?: Array<{ tag?: string }> };
    };
    return { step: e.step ?? 0, tags: (e.summary?.value ?? []).map((v) => v.tag ?? '') };
  } catch {
    return null;
  }
}

function storageError(path: string, e: unknown, whenFull: FullDiskHint): KilnError {
  const err = e as NodeJS.ErrnoException;
  const full = err.code === 'ENOSPC' || err.code === 'EDQUOT';
  return new KilnError('storage', `could not write ${path}: ${full ? 'the disk is full' : err.message}`,
    full ? whenFull() : 'check the --tensorboard folder exists and is writable');
}

export interface OpenOptions {
  /** The step a resumed run continues from: earlier files are kept up to it. Null: a new log. */
  resumeStep: number | null;
  /** A new log in a folder that holds event files replaces them (otherwise it is refused). */
  force?: boolean;
  whenFull?: FullDiskHint;
  /** The flag that named the folder, for messages. */
  flag?: string;
}

/**
 * The event log of one run in one folder. Each event is written to the file at once
 * (one write of the whole record, no buffering in this process), so Ctrl-C or a crash
 * loses nothing that was logged.
 */
export class TensorBoardLog {
  /** The last step already in the folder's files (-1 when none). */
  lastStep = -1;
  /** Whether the config is already in the folder's files. */
  hasConfig = false;
  private fd = -1;
  private path = '';
  /** The seconds in the name of the newest file already there; a new file is named after it. */
  private newestSeconds = 0;

  private constructor(
    readonly dir: string,
    private readonly whenFull: FullDiskHint,
  ) {}

  static open(dir: string, options: OpenOptions): TensorBoardLog {
    const flag = options.flag ?? '--tensorboard';
    const log = new TensorBoardLog(dir, options.whenFull ?? (() => 'free some space and try again'));
    ensureDir(dir, flag);
    const files = readdirSync(dir).filter((n) => isEventFile(n) && lstatSync(join(dir, n)).isFile()).sort();
    if (options.resumeStep === null) {
      if (files.length && !options.force)
        throw new KilnError('usage', `${dir} already holds TensorBoard event files (${files.length}; a new run's log would mix with them)`,
          `choose another ${flag} folder (TensorBoard shows each folder as one run), continue that run with --resume, or add --force to replace them`);
      for (const f of files) rmSync(join(dir, f), { force: true });
      return log;
    }
    for (const f of files) log.keepUpTo(join(dir, f), options.resumeStep);
    for (const f of files) log.newestSeconds = Math.max(log.newestSeconds, Number(/^events\.out\.tfevents\.(\d+)\./.exec(f)?.[1] ?? 0));
    return log;
  }

  /** Cuts events past `step` (and anything unreadable at the end) from a file, and notes what it holds. */
  private keepUpTo(path: string, step: number): void {
    const bytes = new Uint8Array(readFileSync(path));
    const { records, end } = readRecords(bytes);
    const kept: Uint8Array[] = [];
    for (const r of records) {
      const e = decodeEvent(r);
      if (!e) break;
      if (e.step > step && e.tags.length) continue;
      kept.push(r);
      if (e.tags.length) this.lastStep = Math.max(this.lastStep, e.step);
      if (e.tags.includes(CONFIG_TAG)) this.hasConfig = true;
    }
    if (kept.length === records.length && end === bytes.length) return;
    const framed = kept.map(frameRecord);
    const out = new Uint8Array(framed.reduce((n, r) => n + r.length, 0));
    let at = 0;
    for (const r of framed) {
      out.set(r, at);
      at += r.length;
    }
    writeFileAtomic(path, out, this.whenFull);
  }

  /** The file this process writes (empty until the first event). */
  get file(): string {
    return this.path;
  }

  /** One event of the scalars a metrics row holds (the fields it lacks are left out). */
  scalars(row: MetricsRow, wallTime = Date.now() / 1000): void {
    const value = (Object.keys(SCALAR_TAGS) as Array<keyof typeof SCALAR_TAGS>)
      .filter((k) => typeof row[k] === 'number')
      .map((k) => ({ tag: SCALAR_TAGS[k], simple_value: row[k] }));
    if (value.length) this.write({ wall_time: wallTime, step: row.step, summary: { value } });
  }

  /** Markdown text under `tag` at `step`, for TensorBoard's text plugin. */
  text(tag: string, step: number, markdown: string, wallTime = Date.now() / 1000): void {
    const value = [{
      tag,
      metadata: { plugin_data: { plugin_name: 'text', content: new Uint8Array(0) }, data_class: 'DATA_CLASS_TENSOR' },
      tensor: { dtype: 'DT_STRING', tensor_shape: {}, string_val: [new TextEncoder().encode(markdown)] },
    }];
    this.write({ wall_time: wallTime, step, summary: { value } });
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  private write(event: Record<string, unknown>): void {
    if (this.fd < 0) this.create();
    this.append(event);
  }

  /** A new file named after every event file already in the folder, starting with its version record. */
  private create(): void {
    const seconds = Math.max(Math.floor(Date.now() / 1000), this.newestSeconds + 1);
    this.path = join(this.dir, eventFileName(seconds, hostname(), process.pid, filesOpened++));
    try {
      // O_EXCL: a new file of this name only, never through a link placed there.
      this.fd = openSync(this.path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_APPEND | NOFOLLOW, 0o666);
    } catch (e) {
      throw storageError(this.path, e, this.whenFull);
    }
    this.append({ wall_time: Date.now() / 1000, step: 0, file_version: FILE_VERSION });
  }

  private append(event: Record<string, unknown>): void {
    const { Event } = EVENT_TYPES;
    const bytes = frameRecord(Event.encode(Event.fromObject(event)).finish());
    try {
      let off = 0;
      while (off < bytes.length) off += writeSync(this.fd, bytes, off, bytes.length - off);
    } catch (e) {
      throw storageError(this.path, e, this.whenFull);
    }
  }
}

/** The rows of a metrics.jsonl as MetricsLog wrote them; lines that are not rows are skipped. */
function metricsRows(path: string): MetricsRow[] {
  if (!existsSync(path)) return [];
  const rows: MetricsRow[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    try {
      const r = JSON.parse(line) as MetricsRow;
      if (typeof r === 'object' && r !== null && typeof r.step === 'number') rows.push(r);
    } catch {
      // an empty or cut-off line
    }
  }
  return rows;
}

export interface RunLogOptions extends OpenOptions {
  config: RunConfig;
  /** The run's metrics.jsonl: on resume, the steps up to resumeStep that the folder lacks come from it. */
  metricsPath: string;
}

/**
 * The log of `kiln train --tensorboard DIR`: a new one with the config at step 0, or on
 * resume the folder's earlier files cut at the resume step, caught up from metrics.jsonl
 * where they stop short of it (e.g. --tensorboard first given on resume).
 */
export function openRunLog(dir: string, options: RunLogOptions): TensorBoardLog {
  const log = TensorBoardLog.open(dir, options);
  if (!log.hasConfig) log.text(CONFIG_TAG, 0, configMarkdown(options.config));
  if (options.resumeStep !== null) {
    const upTo = options.resumeStep;
    const byStep = new Map<number, MetricsRow>();
    for (const r of metricsRows(options.metricsPath)) if (r.step > log.lastStep && r.step <= upTo) byStep.set(r.step, r);
    for (const step of [...byStep.keys()].sort((a, b) => a - b)) log.scalars(byStep.get(step)!);
  }
  return log;
}
