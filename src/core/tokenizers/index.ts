// Builds a tokenizer for a run (from its training text) or rebuilds one from a checkpoint's
// kiln.tokenizer metadata. Async because gpt2's tables load on demand.

import { KilnError } from '../errors.ts';
import { BpeTokenizer, trainBpe } from './bpe.ts';
import { CharTokenizer } from './char.ts';
import { loadGpt2Tokenizer } from './gpt2.ts';
import type { Tokenizer, TokenizerJSON } from './tokenizer.ts';

export type { Tokenizer, TokenizerJSON } from './tokenizer.ts';
export { BPE_MAX_TABLE_BYTES, BPE_MAX_TOKEN_BYTES, BpeTokenizer, checkBpeMerges, trainBpe, type BpeTrainOptions } from './bpe.ts';
export { CharTokenizer } from './char.ts';
export { Gpt2Tokenizer, loadGpt2Tokenizer } from './gpt2.ts';

export type TokenizerKind = Tokenizer['kind'];
export const TOKENIZER_KINDS: readonly TokenizerKind[] = ['char', 'bpe', 'gpt2'];

export interface CreateTokenizerOptions {
  /** Vocabulary size for bpe (256 bytes + merges). */
  bpeVocab: number;
  /** bpe training progress: (merges done, merges wanted). */
  onProgress?: (done: number, total: number) => void;
}

/** The tokenizer of kind `kind` for `text` (gpt2 ignores the text). */
export async function createTokenizer(kind: TokenizerKind, text: string, opts: CreateTokenizerOptions): Promise<Tokenizer> {
  switch (kind) {
    case 'char':
      return CharTokenizer.fromText(text);
    case 'bpe':
      return trainBpe(text, opts.bpeVocab, { onProgress: opts.onProgress });
    case 'gpt2':
      return loadGpt2Tokenizer();
    default:
      throw new KilnError('config', `unknown tokenizer ${JSON.stringify(kind)}`, `Choose one of ${TOKENIZER_KINDS.join(', ')}.`);
  }
}

/** Rebuilds the tokenizer that `toJSON()` described (e.g. from a checkpoint). */
export async function tokenizerFromJSON(json: TokenizerJSON): Promise<Tokenizer> {
  // Metadata comes from files and links: check the shape rather than trust the type.
  const kind = (json as { kind?: unknown } | null)?.kind;
  switch (kind) {
    case 'char':
      return CharTokenizer.fromJSON(json);
    case 'bpe':
      return BpeTokenizer.fromJSON(json);
    case 'gpt2':
      return loadGpt2Tokenizer();
    default:
      throw new KilnError(
        'checkpoint',
        `unknown tokenizer kind ${JSON.stringify(kind)} in the tokenizer metadata`,
        `Kiln knows ${TOKENIZER_KINDS.join(', ')}; the checkpoint is corrupt or from a newer Kiln.`,
      );
  }
}
