// File sinks for the CLI: atomic writes (temporary file, fsync, rename) so that a
// crash, a full disk or Ctrl-C mid-write never leaves a half-written checkpoint in
// place of a good one, and the metrics log. Nothing here writes through a symlink: temp
// files are created exclusively under a random name, the metrics log is opened with
// O_NOFOLLOW, and a run file that is a link is refused (see refuseLink).
import { randomBytes } from 'node:crypto';
import { closeSync, constants, existsSync, lstatSync, mkdirSync, fsyncSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { decodeCheckpoint, type CheckpointData } from '../core/checkpoint.ts';
import { KilnError } from '../core/errors.ts';

/** The bytes of a file the user named with `flag`, or a message that says why they cannot be read. */
export function readInputFile(path: string | undefined, what: string, flag: string): Uint8Array {
  if (!path) throw new KilnError('usage', `no ${what} given`, `add ${flag} FILE`);
  try {
    const b = readFileSync(path);
    return new Uint8Array(b.buffer, b.byteOffset, b.length);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOENT' ? 'no such file' : err.code === 'EISDIR' ? 'it is a folder' : err.message;
    throw new KilnError('checkpoint', `cannot read ${path}: ${why}`, `check the path given to ${flag}`);
  }
}

/**
 * The checkpoint file a path names: the file itself, or in a run's folder (what `kiln
 * train` got as --out) its best.safetensors, else its checkpoint.safetensors, said in a
 * note. A folder with neither is left as it is (readInputFile then says it is a folder).
 */
export function checkpointPath(path: string, note: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): string {
  let isDir = false;
  try {
    isDir = statSync(path).isDirectory();
  } catch {
    return path;
  }
  if (!isDir) return path;
  for (const [file, what] of [['best.safetensors', 'the lowest val loss'], ['checkpoint.safetensors', 'the latest']] as const) {
    const inside = join(path, file);
    if (existsSync(inside)) {
      note(`kiln: ${path} is a run's folder: using ${inside} (${what})`);
      return inside;
    }
  }
  return path;
}

/** Whether bytes can be a safetensors file: an 8-byte header length, then the header's "{". */
function startsLikeSafetensors(bytes: Uint8Array): boolean {
  return bytes.length < 9 || bytes[8] === 0x7b;
}

export async function readCheckpointFile(path: string | undefined, flag = '--checkpoint'): Promise<CheckpointData> {
  const file = path === undefined ? path : checkpointPath(path);
  const bytes = readInputFile(file, 'checkpoint', flag);
  // A text file (or any other) read as a header length gives nonsense such as "header
  // claims 7596568761.84 GB": say what it is instead. Short files are left to the decoder.
  if (!startsLikeSafetensors(bytes)) {
    throw new KilnError('checkpoint', `${file} is not a Kiln checkpoint (it does not start with a safetensors header)`,
      `give ${flag} a .safetensors file that kiln train, import or export wrote (e.g. runs/NAME/best.safetensors)${/\.(txt|md|csv|json)$/i.test(file!) ? '; a text to train on goes to --data' : ''}`);
  }
  return decodeCheckpoint(bytes);
}

/** Creates an output folder, or says plainly why it cannot (a file in the way, no permission). */
export function ensureDir(path: string, flag: string): void {
  try {
    mkdirSync(path, { recursive: true });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'EEXIST' || err.code === 'ENOTDIR' ? 'a file of that name is in the way' : err.code === 'EACCES' ? 'permission denied' : err.message;
    throw new KilnError('usage', `cannot use ${path} as the ${flag} folder: ${why}`, `give ${flag} a folder path (it is created if missing)`);
  }
}

/** What to tell a user whose disk filled up: the caller knows what can be resumed. */
export type FullDiskHint = () => string;

const TRY_AGAIN: FullDiskHint = () => 'free some space and try again';

/** A failed write as the user can act on it: a full disk or quota, or the system's reason. */
function storageError(path: string, e: unknown, whenFull: FullDiskHint): KilnError {
  const err = e as NodeJS.ErrnoException;
  const full = err.code === 'ENOSPC' || err.code === 'EDQUOT';
  return new KilnError(
    'storage',
    `could not write ${path}: ${full ? 'the disk is full' : err.message}`,
    full ? whenFull() : 'check the folder exists and is writable',
  );
}

/** O_NOFOLLOW where the system has it (not on Windows, where symlinks need privileges). */
const NOFOLLOW = constants.O_NOFOLLOW ?? 0;

/** Whether `path` is a symbolic link (false when it does not exist). */
function isLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

/**
 * Refuses a file Kiln is about to write that is a symbolic link: writing would change
 * whatever it points to (or replace a link someone placed there), not a file of the run.
 */
export function refuseLink(path: string, flag: string): void {
  if (isLink(path))
    throw new KilnError('storage', `${path} is a symbolic link; Kiln does not write through links`,
      `remove the link (or choose another ${flag} folder); Kiln writes its own file there`);
}

/**
 * Writes `data` to `path` so that the file is either the old one or the whole new one: a
 * temporary file next to it, created exclusively (O_EXCL, so never through a link planted
 * at its name) under a random name, synced, then renamed over `path` (which replaces a
 * link at `path` itself rather than writing to its target).
 */
export function writeFileAtomic(path: string, data: Uint8Array | string, whenFull: FullDiskHint = TRY_AGAIN): void {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(8).toString('hex')}.tmp`);
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  let fd = -1;
  try {
    fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | NOFOLLOW, 0o666);
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    renameSync(tmp, path);
  } catch (e) {
    if (fd >= 0) closeSync(fd);
    // Only a file this call created is removed (an EEXIST means the name was someone else's).
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') rmSync(tmp, { force: true });
    throw storageError(path, e, whenFull);
  }
  // Make the rename itself durable.
  try {
    const dfd = openSync(dirname(path), 'r');
    fsyncSync(dfd);
    closeSync(dfd);
  } catch {
    // Some file systems refuse fsync on directories; the data itself is synced.
  }
}

/**
 * Whether `path` holds what Kiln's MetricsLog writes: nothing, or JSON lines whose first is
 * an object with a numeric "step". Only the first 4 KB are read.
 */
export function looksLikeMetrics(path: string): boolean {
  let fd = -1;
  try {
    fd = openSync(path, constants.O_RDONLY | NOFOLLOW);
    const buf = Buffer.alloc(4096);
    const n = readSync(fd, buf, 0, buf.length, 0);
    if (n === 0) return true;
    const text = buf.subarray(0, n).toString('utf8');
    const nl = text.indexOf('\n');
    if (nl < 0) return false;
    const first = JSON.parse(text.slice(0, nl)) as unknown;
    return typeof first === 'object' && first !== null && !Array.isArray(first) && typeof (first as { step?: unknown }).step === 'number';
  } catch {
    return false;
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

/** The files of a run's folder that Kiln writes (the metrics log and the two checkpoints). */
export const RUN_FILES = ['metrics.jsonl', 'checkpoint.safetensors', 'best.safetensors'] as const;

/**
 * Refuses to start a new run in a folder that holds files but no Kiln run, unless `force`:
 * a folder that does not exist yet or is empty is fine, and so is one with a
 * checkpoint.safetensors (the caller decides about --resume) or a metrics.jsonl in
 * Kiln's form (a run that stopped before its first checkpoint). Any other file there
 * could be the user's, and metrics.jsonl would be overwritten.
 */
export function checkRunFolder(dir: string, force: boolean): void {
  let entries: string[];
  try {
    if (!statSync(dir).isDirectory()) return; // ensureDir says what is in the way
    entries = readdirSync(dir);
  } catch {
    return; // not there yet: it is created
  }
  if (entries.length === 0 || force) return;
  if (entries.includes('checkpoint.safetensors')) return;
  const metrics = join(dir, 'metrics.jsonl');
  if (entries.includes('metrics.jsonl') && !isLink(metrics) && looksLikeMetrics(metrics)) return;
  const shown = entries.slice(0, 3).map((e) => JSON.stringify(e.slice(0, 40))).join(', ') + (entries.length > 3 ? `, ... (${entries.length} in all)` : '');
  throw new KilnError('usage', `${dir} holds files but no Kiln run (${shown})`,
    'choose another --out (a new or empty folder), or add --force to write metrics.jsonl and checkpoints there anyway');
}

/**
 * Refuses to export into a folder that holds files but is not a Kiln export, unless
 * `force`. A Kiln export is the folder with Kiln's tokenizer file (kiln_tokenizer.json,
 * which only `kiln export` writes); a new or empty folder is fine.
 */
export function checkExportFolder(dir: string, tokenizerFile: string, force: boolean): void {
  let entries: string[];
  try {
    if (!statSync(dir).isDirectory()) return; // ensureDir says what is in the way
    entries = readdirSync(dir);
  } catch {
    return;
  }
  if (entries.length === 0 || force) return;
  const marker = join(dir, tokenizerFile);
  if (entries.includes(tokenizerFile) && !isLink(marker)) return;
  const shown = entries.slice(0, 3).map((e) => JSON.stringify(e.slice(0, 40))).join(', ') + (entries.length > 3 ? `, ... (${entries.length} in all)` : '');
  throw new KilnError('usage', `${dir} holds files but is not a Kiln export (${shown}); its config.json and model.safetensors would be replaced`,
    'choose another --hf folder (a new or empty one), or add --force to write there anyway');
}

/** Appends JSON lines; on resume, drops lines past the checkpoint's step so the curve continues cleanly. */
export class MetricsLog {
  constructor(
    private readonly path: string,
    private readonly whenFull: FullDiskHint = TRY_AGAIN,
  ) {}

  truncateAfter(step: number): void {
    refuseLink(this.path, '--out');
    if (!existsSync(this.path)) return;
    const kept = readFileSync(this.path, 'utf8')
      .split('\n')
      .filter((l) => {
        if (!l.trim()) return false;
        try {
          return (JSON.parse(l) as { step?: number }).step! <= step;
        } catch {
          return false;
        }
      });
    writeFileAtomic(this.path, kept.length ? kept.join('\n') + '\n' : '', this.whenFull);
  }

  reset(): void {
    this.write('', 'w');
  }

  append(obj: object): void {
    this.write(JSON.stringify(obj) + '\n', 'a');
  }

  private write(text: string, flag: 'w' | 'a'): void {
    // Never through a link: refused when one is there, and O_NOFOLLOW for one placed since.
    refuseLink(this.path, '--out');
    const mode = flag === 'w' ? constants.O_TRUNC : constants.O_APPEND;
    let fd = -1;
    try {
      fd = openSync(this.path, constants.O_WRONLY | constants.O_CREAT | mode | NOFOLLOW, 0o666);
      const bytes = Buffer.from(text, 'utf8');
      let off = 0;
      while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ELOOP') refuseLink(this.path, '--out');
      throw storageError(this.path, e, this.whenFull);
    } finally {
      if (fd >= 0) closeSync(fd);
    }
  }
}
