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

// Common words plus made-up ones from syllables, drawn with Zipf frequencies (as in
// tests/unit/tokenizers.test.ts), so that BPE has a realistic number of distinct words.
function englishLike(bytes: number, seed = 1): string {
  let s = seed >>> 0;
  const rand = (): number => {
    s = (s + 0x6d2b79f5) >>> 0; // mulberry32
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const words = (
    'the of and to a in that is was he for it with as his on be at by i this had not are but from or ' +
    'have an they which one you were her all she there would their we him been has when who will more'
  ).split(' ');
  const onsets = ['b', 'c', 'd', 'f', 'g', 'h', 'l', 'm', 'n', 'p', 'r', 's', 't', 'w', 'st', 'th', 'ch', 'br', 'pl', ''];
  const vowels = ['a', 'e', 'i', 'o', 'u', 'ea', 'ou', 'ai'];
  const codas = ['', '', 'n', 'r', 's', 't', 'll', 'nd', 'ng', 'ck'];
  while (words.length < 8000) {
    let w = '';
    for (let k = 1 + Math.floor(rand() * 3); k > 0; k--) w += pick(onsets) + pick(vowels) + pick(codas);
    words.push(w);
  }
  const parts: string[] = [];
  let len = 0;
  let start = true;
  while (len < bytes) {
    let w = words[Math.floor(Math.exp(rand() * Math.log(words.length + 1))) - 1];
    if (start) w = w[0].toUpperCase() + w.slice(1);
    const r = rand();
    const sep = r < 0.06 ? '.\n' : r < 0.1 ? '. ' : r < 0.16 ? ', ' : r < 0.17 ? '; ' : ' ';
    start = sep.startsWith('.');
    parts.push(w + sep);
    len += w.length + sep.length;
  }
  return parts.join('');
}

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
