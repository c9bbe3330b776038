// Shared by the byte-level tokenizers (bpe, gpt2): token ids -> their bytes -> UTF-8 text.
// Invalid or cut-off UTF-8 (a token ending mid-character) decodes to U+FFFD, never throws.
import { outOfVocab } from './char.ts';

const DECODER = new TextDecoder('utf-8', { ignoreBOM: true });

export function decodeTokenBytes(table: readonly Uint8Array[], ids: ArrayLike<number>, kind: string): string {
  let total = 0;
  for (let i = 0; i < ids.length; i++) {
    const b = table[ids[i]];
    if (b === undefined) throw outOfVocab(ids[i], table.length, kind);
    total += b.length;
  }
  const buf = new Uint8Array(total);
  for (let i = 0, o = 0; i < ids.length; i++) {
    const b = table[ids[i]];
    buf.set(b, o);
    o += b.length;
  }
  return DECODER.decode(buf);
}
