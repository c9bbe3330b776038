// GPT-2's own tokenizer (r50k_base: 50,000 merges + 256 bytes + <|endoftext|>), from the
// `gpt-tokenizer` package, so nothing is downloaded at run time. The ranks are ~0.6 MB of
// JavaScript: they are imported dynamically, and a browser fetches them only when a run
// chooses this tokenizer.
//
// Encoding is the package's. Decoding is ours, from the same ranks: the package decodes
// through one module-wide streaming TextDecoder, so an id that ends inside a UTF-8
// character leaves bytes behind that leak into the next, unrelated, decode() call.

import { KilnError } from '../errors.ts';
import type { Tokenizer, TokenizerJSON } from './tokenizer.ts';
import { decodeTokenBytes } from './byte-decode.ts';

export const GPT2_VOCAB_SIZE = 50257;
/** `<|endoftext|>` in the text encodes as this id, as in Hugging Face's GPT2Tokenizer. */
export const GPT2_EOT = '<|endoftext|>';
export const GPT2_EOT_ID = 50256;

const ENCODER = new TextEncoder();

/**
 * The longest run of non-space characters handed to the package's encoder at once. Its
 * BPE merges a pre-token in time quadratic in its length (0.5 s for 40k letters without
 * a space, hours for a 10 MB one), so longer runs go in pieces of this many code points:
 * encoding stays linear in the text. Real words are far shorter (GPT-2's longest token is
 * 128 bytes), so ordinary text tokenizes exactly as GPT-2's; only a run longer than this
 * can differ from it, at the cuts.
 */
export const MAX_GPT2_RUN = 256;
const LONG_RUN = new RegExp(` ?\\S{${MAX_GPT2_RUN + 1},}`, 'gu');
const PIECE = new RegExp(`[\\s\\S]{1,${MAX_GPT2_RUN}}`, 'gu');

/** `encode` applied to the text with every run of more than MAX_GPT2_RUN non-space characters cut into pieces of at most that many. */
export function encodeBounded(text: string, encode: (text: string) => number[]): number[] {
  const ids: number[] = [];
  const push = (part: string) => {
    if (part) for (const id of encode(part)) ids.push(id);
  };
  let at = 0;
  for (const m of text.matchAll(LONG_RUN)) {
    push(text.slice(at, m.index));
    // The leading space stays with the first piece, as GPT-2's pre-tokenizer attaches it.
    for (const piece of m[0].match(PIECE) ?? []) push(piece);
    at = m.index! + m[0].length;
  }
  push(text.slice(at));
  return ids;
}

export class Gpt2Tokenizer implements Tokenizer {
  readonly kind = 'gpt2' as const;
  readonly vocabSize = GPT2_VOCAB_SIZE;

  constructor(
    /** The package's encoder for text without special tokens. */
    private readonly encodeOrdinary: (text: string) => number[],
    /** Token id -> its bytes. */
    private readonly bytes: readonly Uint8Array[],
  ) {}

  encode(text: string): Int32Array {
    const pieces = text.split(GPT2_EOT);
    if (pieces.length === 1) return Int32Array.from(encodeBounded(text, this.encodeOrdinary));
    const ids: number[] = [];
    pieces.forEach((piece, i) => {
      if (i > 0) ids.push(GPT2_EOT_ID);
      if (piece.length > 0) for (const id of encodeBounded(piece, this.encodeOrdinary)) ids.push(id);
    });
    return Int32Array.from(ids);
  }

  decode(ids: ArrayLike<number>): string {
    return decodeTokenBytes(this.bytes, ids, 'gpt2');
  }

  toJSON(): TokenizerJSON {
    return { kind: 'gpt2' };
  }
}

let loading: Promise<Gpt2Tokenizer> | undefined;

/** GPT-2's tokenizer; the first call loads the ranks, later calls share them. */
export function loadGpt2Tokenizer(): Promise<Gpt2Tokenizer> {
  loading ??= load().catch((e: unknown) => {
    loading = undefined; // let a later call retry (e.g. after going back online)
    throw new KilnError(
      'data',
      `could not load the GPT-2 tokenizer tables: ${e instanceof Error ? e.message : String(e)}`,
      'Reload the page while online (the tables are cached afterwards), or choose the char or bpe tokenizer.',
    );
  });
  return loading;
}

async function load(): Promise<Gpt2Tokenizer> {
  const [encoding, ranks] = await Promise.all([
    import('gpt-tokenizer/encoding/gpt2'),
    import('gpt-tokenizer/bpeRanks/r50k_base'),
  ]);
  // The ranks list each token as its text when its bytes are valid UTF-8, else as bytes.
  const table: Array<string | number[]> = ranks.default;
  const bytes: Uint8Array[] = table.map((t) => (typeof t === 'string' ? ENCODER.encode(t) : Uint8Array.from(t)));
  bytes[GPT2_EOT_ID] = ENCODER.encode(GPT2_EOT);
  for (let id = 0; id < GPT2_VOCAB_SIZE; id++) {
    // A plain loop: some() would skip holes in the table.
    if (bytes[id] === undefined || bytes.length !== GPT2_VOCAB_SIZE) {
      throw new Error(`expected ${GPT2_VOCAB_SIZE} tokens, token ${id} is missing (the package has ${bytes.length})`);
    }
  }
  return new Gpt2Tokenizer((text) => encoding.encode(text), bytes);
}
