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
