// Turning a user's bytes into text, refusing what is not text: a binary file given
// as training data would otherwise train a model on garbage without a word.
import { KilnError } from './errors.ts';

/** Decodes UTF-8 text (a BOM is dropped); rejects binary data and empty files with a readable error. */
export function decodeText(bytes: Uint8Array, name = 'the data'): string {
  if (bytes.length === 0) throw new KilnError('data', `${name} is empty`, 'give a UTF-8 text file with some text in it');
  const nul = bytes.indexOf(0);
  if (nul >= 0) {
    throw new KilnError('data', `${name} looks like a binary file, not text (it has a NUL byte at offset ${nul})`, 'give a UTF-8 text file (.txt)');
  }
  const probe = bytes.subarray(0, 1 << 16);
  let control = 0;
  for (let i = 0; i < probe.length; i++) {
    const b = probe[i];
    if (b < 32 && b !== 9 && b !== 10 && b !== 13 && b !== 12) control++;
  }
  if (control > probe.length * 0.01 + 8) {
    throw new KilnError('data', `${name} looks like a binary file, not text (${control} control bytes in its first ${probe.length})`, 'give a UTF-8 text file (.txt)');
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new KilnError('data', `${name} is not valid UTF-8 text`, 'save the file as UTF-8 (most editors offer "UTF-8" when saving), or give a different file');
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text.trim().length === 0) throw new KilnError('data', `${name} has only whitespace`, 'give a UTF-8 text file with some text in it');
  return text;
}

/**
 * Untrusted text made safe to print in a message: control characters (C0, DEL, C1,
 * which include ESC and the terminal's OSC/CSI introducers), lone surrogates and the
 * bidi/line-separator controls become \xNN or \u{...} escapes, and text longer than
 * `max` characters is cut with an ellipsis. Iterates by code unit, so any length is cheap.
 */
export function printable(s: string, max = 200): string {
  const cut = s.length > max;
  const text = cut ? s.slice(0, max) : s;
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) {
      out += `\\x${c.toString(16).padStart(2, '0')}`;
    } else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      out += text[i] + text[i + 1];
      i++;
    } else if ((c >= 0xd800 && c <= 0xdfff) || (c >= 0x200e && c <= 0x200f) || (c >= 0x2028 && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069)) {
      out += `\\u{${c.toString(16)}}`;
    } else {
      out += text[i];
    }
  }
  return cut ? `${out}…` : out;
}

/**
 * A value from a file or link, quoted for a message without walking into it: strings
 * quoted and escaped (printable), numbers, booleans and null as themselves, arrays and
 * objects by type and size only, so a value nested 100k levels deep costs nothing.
 */
export function describeValue(v: unknown, max = 40): string {
  if (typeof v === 'string') return `"${printable(v, max).replace(/"/g, '\\"')}"`;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return printable(String(v), max);
  if (v === null) return 'null';
  if (v === undefined) return 'nothing';
  if (Array.isArray(v)) return v.length === 0 ? 'an empty array' : `an array of ${v.length}`;
  if (typeof v === 'object') return 'an object';
  return `a ${typeof v}`;
}

/**
 * A short JSON-like rendering of a value for a message ([128], {"a":1}), that walks at
 * most `depth` levels and stops after about `max` characters: deep or huge values from a
 * file cost a few dozen steps, never a stack overflow. Control characters are escaped.
 */
export function preview(v: unknown, max = 40, depth = 4): string {
  let out = '';
  const full = (): boolean => out.length > max;
  const walk = (x: unknown, d: number): void => {
    if (full()) return;
    if (typeof x === 'string') {
      out += JSON.stringify(x.length > max ? `${x.slice(0, max)}…` : x);
    } else if (Array.isArray(x)) {
      if (d >= depth) {
        out += x.length ? '[…]' : '[]';
        return;
      }
      out += '[';
      for (let i = 0; i < x.length; i++) {
        if (full()) break;
        if (i > 0) out += ',';
        walk(x[i], d + 1);
      }
      out += ']';
    } else if (typeof x === 'object' && x !== null) {
      if (d >= depth) {
        out += '{…}';
        return;
      }
      out += '{';
      let i = 0;
      for (const k in x) {
        if (!Object.hasOwn(x, k)) continue;
        if (full()) break;
        if (i++ > 0) out += ',';
        out += `${JSON.stringify(k.length > max ? `${k.slice(0, max)}…` : k)}:`;
        walk((x as Record<string, unknown>)[k], d + 1);
      }
      out += '}';
    } else {
      out += String(x);
    }
  };
  walk(v, 0);
  return printable(out, max);
}
