// Character-level tokenizer: one token per Unicode code point of the training text.
// The vocabulary is the sorted set of code points, so an emoji or a CJK character is one
// token (never two UTF-16 halves) and the same text gives the same ids on every machine.

import { KilnError } from '../errors.ts';
import type { Tokenizer, TokenizerJSON } from './tokenizer.ts';

/** "U+1F600": the way the error messages name a character. */
export function codePointName(cp: number): string {
  return 'U+' + cp.toString(16).toUpperCase().padStart(4, '0');
}

// Walks a string by code point; a lone surrogate is a code point of its own.
function forEachCodePoint(text: string, fn: (cp: number, index: number) => void): void {
  let index = 0;
  for (let i = 0; i < text.length; i++) {
    let cp = text.charCodeAt(i);
    if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < text.length) {
      const lo = text.charCodeAt(i + 1);
      if (lo >= 0xdc00 && lo <= 0xdfff) {
        cp = ((cp - 0xd800) << 10) + (lo - 0xdc00) + 0x10000;
        i++;
      }
    }
    fn(cp, index++);
  }
}

export class CharTokenizer implements Tokenizer {
  readonly kind = 'char' as const;
  readonly vocabSize: number;
  /** Token id -> the character (one code point). */
  readonly chars: readonly string[];
  // Code point -> id: a flat table for the BMP (fast path), a map for the rest.
  private readonly bmp = new Int32Array(0x10000).fill(-1);
  private readonly astral = new Map<number, number>();

  constructor(chars: readonly string[]) {
    this.chars = chars.slice();
    this.vocabSize = chars.length;
    chars.forEach((ch, id) => {
      const cp = ch.codePointAt(0);
      if (cp === undefined || String.fromCodePoint(cp) !== ch) {
        throw new KilnError(
          'checkpoint',
          `char tokenizer entry ${id} (${JSON.stringify(ch)}) is not a single character`,
          'The tokenizer metadata is corrupt: re-create the tokenizer from the training text.',
        );
      }
      if (this.idOf(cp) >= 0) {
        throw new KilnError(
          'checkpoint',
          `char tokenizer lists ${codePointName(cp)} twice (ids ${this.idOf(cp)} and ${id})`,
          'The tokenizer metadata is corrupt: re-create the tokenizer from the training text.',
        );
      }
      if (cp < 0x10000) this.bmp[cp] = id;
      else this.astral.set(cp, id);
    });
  }

  /** The vocabulary of `text`: its distinct code points in code point order. */
  static fromText(text: string): CharTokenizer {
    const seen = new Set<number>();
    forEachCodePoint(text, (cp) => seen.add(cp));
    if (seen.size === 0) {
      throw new KilnError('data', 'the training text is empty', 'Choose a dataset or file with some text in it.');
    }
    // Numeric sort: the default sort compares UTF-16 units and puts U+1F600 before U+FF01.
    const cps = [...seen].sort((a, b) => a - b);
    return new CharTokenizer(cps.map((cp) => String.fromCodePoint(cp)));
  }

  static fromJSON(json: TokenizerJSON): CharTokenizer {
    if (json.kind !== 'char' || !Array.isArray(json.chars) || !json.chars.every((c) => typeof c === 'string')) {
      throw new KilnError('checkpoint', 'char tokenizer metadata has no list of characters', 'The checkpoint is corrupt or was not written by Kiln.');
    }
    return new CharTokenizer(json.chars);
  }

  private idOf(cp: number): number {
    return cp < 0x10000 ? this.bmp[cp] : (this.astral.get(cp) ?? -1);
  }

  encode(text: string): Int32Array {
    const out = new Int32Array(text.length);
    let n = 0;
    forEachCodePoint(text, (cp, index) => {
      const id = this.idOf(cp);
      if (id < 0) {
        throw new KilnError(
          'data',
          `character ${codePointName(cp)} ${JSON.stringify(String.fromCodePoint(cp))} at position ${index} ` +
            `is not in this char tokenizer's vocabulary (${this.vocabSize} characters)`,
          'a char model knows only the characters of its training text: leave this one out, ' +
            'or train with the bpe tokenizer, which can encode any text',
        );
      }
      out[n++] = id;
    });
    return n === out.length ? out : out.slice(0, n);
  }

  decode(ids: ArrayLike<number>): string {
    // Gather UTF-16 units and turn them into a string a block at a time: about 5x faster
    // than joining one string per token.
    const units = new Uint16Array(ids.length * 2);
    let n = 0;
    for (let i = 0; i < ids.length; i++) {
      const ch = this.chars[ids[i]];
      if (ch === undefined) throw outOfVocab(ids[i], this.vocabSize, 'char');
      units[n++] = ch.charCodeAt(0);
      if (ch.length === 2) units[n++] = ch.charCodeAt(1);
    }
    const BLOCK = 8192; // well below engines' argument-count limits
    const parts: string[] = [];
    for (let i = 0; i < n; i += BLOCK) {
      parts.push(String.fromCharCode.apply(null, units.subarray(i, Math.min(n, i + BLOCK)) as unknown as number[]));
    }
    return parts.join('');
  }

  toJSON(): TokenizerJSON {
    return { kind: 'char', chars: this.chars.slice() };
  }
}

/** The error every tokenizer throws for an id it has no token for. */
export function outOfVocab(id: number, vocabSize: number, kind: string): KilnError {
  return new KilnError(
    'data',
    `token id ${id} is outside the ${kind} tokenizer's vocabulary (0..${vocabSize - 1})`,
    'Decode with the tokenizer the model was trained with; a model whose vocabulary is padded ' +
      'beyond the tokenizer must not sample the padding ids.',
  );
}
