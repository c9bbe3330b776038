// Tokenizer speed: BPE training time and encode/decode throughput of char, bpe and gpt2.
//   npx tsx bench/tokenizers.ts [file] [--vocab N]
// Without a file it uses ~1 MB of generated English-like text. Prints one JSON line per
// measurement. MB/s counts the UTF-8 bytes of the text (1 MB = 10^6 bytes). "cold" is the
// first encode by a fresh tokenizer (its chunk cache empty); "warm" the best of 3 more.

import { readFileSync } from 'node:fs';
import { BpeTokenizer, trainBpe } from '../src/core/tokenizers/bpe.ts';
import { CharTokenizer } from '../src/core/tokenizers/char.ts';
import { loadGpt2Tokenizer } from '../src/core/tokenizers/gpt2.ts';
import type { Tokenizer } from '../src/core/tokenizers/tokenizer.ts';
import { englishLike } from '../tests/helpers/english-like.ts';

const args = process.argv.slice(2);
const vocabAt = args.indexOf('--vocab');
const vocab = vocabAt >= 0 ? Number(args[vocabAt + 1]) : 4096;
const file = args.find((a, i) => !a.startsWith('--') && (vocabAt < 0 || i !== vocabAt + 1));
const text = file ? readFileSync(file, 'utf8') : englishLike(1_000_000);
const source = file ?? 'generated';
const bytes = new TextEncoder().encode(text).length;

const emit = (o: Record<string, unknown>): void => console.log(JSON.stringify({ bench: 'tokenizers', source, ...o }));
const round = (x: number, digits = 3): number => Number(x.toPrecision(digits));
const time = <T>(fn: () => T): [T, number] => {
  const t0 = performance.now();
  const out = fn();
  return [out, (performance.now() - t0) / 1000];
};

const [trained, trainS] = time(() => trainBpe(text, vocab));
emit({ name: 'bpe_train', vocab: trained.vocabSize, bytes, seconds: round(trainS) });

const t0 = performance.now();
const gpt2 = await loadGpt2Tokenizer();
emit({ name: 'gpt2_load', seconds: round((performance.now() - t0) / 1000) });

const fresh: Array<[string, () => Tokenizer]> = [
  ['char', () => CharTokenizer.fromText(text)],
  ['bpe', () => BpeTokenizer.fromJSON(trained.toJSON())],
  ['gpt2', () => gpt2], // the package keeps its own merge cache: "cold" is cold only on the first run
];
for (const [kind, make] of fresh) {
  const tok = make();
  const [ids, cold] = time(() => tok.encode(text));
  let warm = Infinity;
  for (let i = 0; i < 3; i++) warm = Math.min(warm, time(() => tok.encode(text))[1]);
  let dec = Infinity;
  for (let i = 0; i < 3; i++) dec = Math.min(dec, time(() => tok.decode(ids))[1]);
  if (tok.decode(ids) !== text) throw new Error(`${kind}: decode(encode(text)) differs from the text`);
  emit({
    name: 'encode',
    tokenizer: kind,
    vocab: tok.vocabSize,
    bytes,
    tokens: ids.length,
    bytes_per_token: round(bytes / ids.length),
    cold_mb_per_s: round(bytes / 1e6 / cold),
    warm_mb_per_s: round(bytes / 1e6 / warm),
    decode_mb_per_s: round(bytes / 1e6 / dec),
  });
}
