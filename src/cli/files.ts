// File sinks for the CLI: atomic writes (temporary file, fsync, rename) so that a
// crash, a full disk or Ctrl-C mid-write never leaves a half-written checkpoint in
// place of a good one, and the metrics log.
import { closeSync, existsSync, mkdirSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync, writeFileSync } from 'node:fs';
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

export function writeFileAtomic(path: string, data: Uint8Array | string, whenFull: FullDiskHint = TRY_AGAIN): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  let fd = -1;
  try {
    fd = openSync(tmp, 'w');
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    renameSync(tmp, path);
  } catch (e) {
    if (fd >= 0) closeSync(fd);
    rmSync(tmp, { force: true });
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

/** Appends JSON lines; on resume, drops lines past the checkpoint's step so the curve continues cleanly. */
export class MetricsLog {
  constructor(
    private readonly path: string,
    private readonly whenFull: FullDiskHint = TRY_AGAIN,
  ) {}

  truncateAfter(step: number): void {
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
    try {
      writeFileSync(this.path, text, { flag });
    } catch (e) {
      throw storageError(this.path, e, this.whenFull);
    }
  }
}
