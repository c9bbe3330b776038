// The shape of a relative path a page names a file by (kiln serve's --data and --out).
// Pure, so the wire protocol (lab-protocol.ts) refuses a bad one before the server reads
// it, and the server (src/serve/safe-path.ts) checks it again where it resolves it
// inside its folder (realpath, symlinks: that part needs the file system).
import { KilnError } from './errors.ts';
import { describeValue, printable } from './text.ts';

export const MAX_PATH_CHARS = 1024;

/**
 * Checks the shape of a page-given relative path and returns its segments: text of at
 * most MAX_PATH_CHARS, '/'-separated, not absolute, no drive letter, no backslash, no
 * NUL or control character, no `..` segment. Throws a KilnError ('usage') saying which.
 */
export function checkRelativePath(rel: unknown, what = 'the path'): string[] {
  const refuse = (why: string): never => {
    throw new KilnError('usage', `${what} ${typeof rel === 'string' ? JSON.stringify(printable(rel, 80)) : describeValue(rel)} ${why}`, 'pick a file inside the folder kiln serve was given');
  };
  if (typeof rel !== 'string') return refuse('is not text');
  if (rel.length === 0) return refuse('is empty');
  if (rel.length > MAX_PATH_CHARS) return refuse(`is ${rel.length} characters long (at most ${MAX_PATH_CHARS})`);
  if (/[\u0000-\u001f\u007f]/.test(rel)) return refuse('has a control character (NUL or another)');
  if (rel.includes('\\')) return refuse('has a backslash: use / between folders');
  if (rel.startsWith('/') || /^[A-Za-z]:/.test(rel)) return refuse('is absolute: give it relative to the folder');
  const segments = rel.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.includes('..')) return refuse('goes up a folder (..)');
  if (segments.length === 0) return refuse('names no file');
  return segments;
}
