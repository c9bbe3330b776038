// Paths from the page, kept inside the folders `kiln serve` was given (--data, --out).
// A page names a file relative to one of them; nothing it sends may reach outside: no
// absolute paths, no `..`, no NUL, and no symlink in the folder that points elsewhere
// (both sides are resolved with realpath and compared with a trailing separator, so
// /data-other is not inside /data).
//
// What is left: a process on this machine that can change the folder between the check
// and the open could still swap a file for a link. That process could read the files
// itself; the server's job is that a page cannot.
import { lstat, open, readdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { KilnError } from '../core/errors.ts';
import { checkRelativePath } from '../core/relative-path.ts';
import { printable } from '../core/text.ts';

// The path's shape is checked in core (the wire protocol checks it too, before a call runs).
export { checkRelativePath, MAX_PATH_CHARS } from '../core/relative-path.ts';

/** Whether `child` (a real path) is `root` (a real path) or inside it. */
export function isInside(root: string, child: string): boolean {
  if (child === root) return true;
  const base = root.endsWith(path.sep) ? root : root + path.sep;
  return child.startsWith(base);
}

export interface ResolveOptions {
  /** The file must exist (default): its real path is returned. Otherwise its nearest existing folder must be inside, and the path may name a new file. */
  mustExist?: boolean;
  /** For messages: "the data file". */
  what?: string;
}

/**
 * The real path of a page-given relative path inside `root`, or a KilnError: 'usage'
 * for a path that may not be used (its shape, or a link out of the folder), 'data' for
 * a file that is not there.
 */
export async function resolveInside(root: string, rel: unknown, opts: ResolveOptions = {}): Promise<string> {
  const what = opts.what ?? 'the path';
  const segments = checkRelativePath(rel, what);
  const shown = JSON.stringify(printable(rel as string, 80));
  const realRoot = await realpath(root);
  const target = path.join(realRoot, ...segments);
  const outside = (): never => {
    throw new KilnError('usage', `${what} ${shown} leads outside the folder (through a symbolic link)`, 'pick a file inside the folder kiln serve was given');
  };
  try {
    const real = await realpath(target);
    if (!isInside(realRoot, real)) outside();
    return real;
  } catch (e) {
    if (e instanceof KilnError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw new KilnError('data', `${what} ${shown} cannot be read: ${code ?? (e as Error).message}`, 'check the file and its permissions');
    if (opts.mustExist !== false) throw new KilnError('data', `${what} ${shown} is not in the folder`, 'pick one of the files listed');
  }
  // A new file: each part of the path that exists must be a folder inside (a link only to
  // inside, a dangling one refused: writing through it would create its target).
  let cur = realRoot;
  for (const seg of segments) {
    cur = path.join(cur, seg);
    const st = await lstat(cur).catch(() => null);
    if (!st) break;
    if (st.isSymbolicLink()) {
      const real = await realpath(cur).catch(() => null);
      if (!real || !isInside(realRoot, real)) outside();
    }
  }
  return target;
}

export interface TextFileEntry {
  /** Relative to the folder, '/'-separated: what the page sends back to pick it. */
  path: string;
  bytes: number;
  modifiedMs: number;
}

export interface ListOptions {
  /** Folders deep (default 3: DIR/a/b/c.txt). */
  maxDepth?: number;
  /** Stop after this many files (default 1000). */
  maxFiles?: number;
}

/**
 * The .txt files of a folder (--data) for the page to pick from, sorted by path.
 * Hidden names are skipped; symbolic links are followed only to files inside the folder,
 * never into folders (no loops, no escapes).
 */
export async function listTextFiles(root: string, opts: ListOptions = {}): Promise<TextFileEntry[]> {
  const maxDepth = opts.maxDepth ?? 3;
  const maxFiles = opts.maxFiles ?? 1000;
  const realRoot = await realpath(root);
  const out: TextFileEntry[] = [];
  const walk = async (dir: string, rel: string, depth: number): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (out.length >= maxFiles) return;
      if (e.name.startsWith('.') || /[\u0000-\u001f\u007f\\]/.test(e.name)) continue;
      const full = path.join(dir, e.name);
      const relPath = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        if (depth < maxDepth) await walk(full, relPath, depth + 1);
      } else if ((e.isFile() || e.isSymbolicLink()) && e.name.toLowerCase().endsWith('.txt')) {
        const real = await realpath(full).catch(() => null);
        if (!real || !isInside(realRoot, real)) continue;
        const st = await stat(real).catch(() => null);
        if (st?.isFile()) out.push({ path: relPath, bytes: st.size, modifiedMs: st.mtimeMs });
      }
    }
  };
  await walk(realRoot, '', 0);
  return out;
}

/** Largest text read from --data: the page's own limit for a file it opens (src/ui/data-choice.ts's MAX_FILE_BYTES). */
export const MAX_DATA_FILE_BYTES = 200 * 1024 * 1024;

/**
 * A .txt file of a folder (--data) that a page picked by its relative path: resolved
 * inside the folder (resolveInside), a plain file, not hidden, at most `maxBytes`. Its
 * base name and bytes; a KilnError a person can act on otherwise.
 */
export async function readTextFileInside(root: string, rel: unknown, maxBytes = MAX_DATA_FILE_BYTES): Promise<{ name: string; bytes: Uint8Array }> {
  const what = 'the data file';
  const real = await resolveInside(root, rel, { what });
  const shown = JSON.stringify(printable(rel as string, 80));
  const name = (rel as string).split('/').filter((s) => s !== '' && s !== '.').at(-1)!;
  const pick = 'pick one of the .txt files listed';
  if ((rel as string).split('/').some((s) => s.startsWith('.') && s !== '.')) throw new KilnError('usage', `${what} ${shown} is hidden (a name starting with .)`, pick);
  if (!name.toLowerCase().endsWith('.txt')) throw new KilnError('usage', `${what} ${shown} is not a .txt file`, pick);
  const fh = await open(real, 'r').catch((e: NodeJS.ErrnoException) => {
    throw new KilnError('data', `${what} ${shown} cannot be read: ${e.code ?? e.message}`, 'check the file and its permissions');
  });
  try {
    // The size of the file opened, not of the path checked: it cannot change between the two.
    const st = await fh.stat();
    if (!st.isFile()) throw new KilnError('usage', `${what} ${shown} is not a file`, pick);
    if (st.size > maxBytes) {
      throw new KilnError('data', `${what} ${shown} is ${(st.size / 2 ** 20).toFixed(1)} MiB: the lab reads text files up to ${(maxBytes / 2 ** 20).toFixed(0)} MiB`,
        'choose a smaller part of the text, or train on the whole file with kiln train --data FILE');
    }
    const b = await fh.readFile();
    return { name, bytes: new Uint8Array(b.buffer, b.byteOffset, b.length) };
  } finally {
    await fh.close();
  }
}
