// File sinks for the CLI: atomic writes (temporary file, fsync, rename) so that a
// crash, a full disk or Ctrl-C mid-write never leaves a half-written checkpoint in
// place of a good one, and the metrics log.
import { closeSync, existsSync, mkdirSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync, writeFileSync } from 'node:fs';
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

export async function readCheckpointFile(path: string | undefined, flag = '--checkpoint'): Promise<CheckpointData> {
  return decodeCheckpoint(readInputFile(path, 'checkpoint', flag));
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
