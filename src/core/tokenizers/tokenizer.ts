// The tokenizer interface every kind implements. A tokenizer serialises to JSON for
// the checkpoint's kiln.tokenizer metadata and is rebuilt from it exactly.

export type TokenizerJSON =
  | { kind: 'char'; chars: string[] }
  | { kind: 'bpe'; merges: Array<[number, number]> }
  | { kind: 'gpt2' };

export interface Tokenizer {
  readonly kind: 'char' | 'bpe' | 'gpt2';
  readonly vocabSize: number;
  encode(text: string): Int32Array;
  decode(ids: ArrayLike<number>): string;
  toJSON(): TokenizerJSON;
}
