import { describe, expect, it } from 'vitest';
import { KilnError } from '../../src/core/errors.ts';
import { BPE_SPLIT_PATTERN, BpeTokenizer, trainBpe } from '../../src/core/tokenizers/bpe.ts';
import { CharTokenizer } from '../../src/core/tokenizers/char.ts';
import { loadGpt2Tokenizer } from '../../src/core/tokenizers/gpt2.ts';
import { createTokenizer, tokenizerFromJSON } from '../../src/core/tokenizers/index.ts';
import type { Tokenizer } from '../../src/core/tokenizers/tokenizer.ts';
import { englishLike } from '../helpers/english-like.ts';

const SAMPLES: Record<string, string> = {
  ascii: 'Hello, world! The quick brown fox jumps over the lazy dog.\n\tTabs,  double  spaces   and 12345.',
  emoji: 'I 😀 you 👍🏽 — family: 👩‍👩‍👧‍👦, flags: 🇫🇷🇯🇵🏳️‍🌈, keycap 1️⃣',
  cjk: '日本語のテキスト。中文字符，한국어 텍스트. 𠜎𠜱𠝹 (astral CJK)',
  combining: 'e\u0301 n\u0303 a\u0308\u0304 Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǫ̗͕̇ and Hangul jamo \u1100\u1161\u11a8',
  mixed: '\uFEFFBOM first; Ελληνικά, русский, עברית, العربية, हिन्दी — “quotes” ‘single’ … \r\n end',
  long: 'x'.repeat(300) + ' ' + '='.repeat(90) + '\n\n\n' + ' '.repeat(70) + 'y' + '😀'.repeat(40) + '1234567890'.repeat(8),
};

function expectIds(actual: Int32Array, expected: ArrayLike<number>): void {
  expect(Array.from(actual)).toEqual(Array.from(expected));
}

function roundTrips(tok: Tokenizer, text: string): void {
  const ids = tok.encode(text);
  expect(ids).toBeInstanceOf(Int32Array);
  expect(tok.decode(ids)).toBe(text);
  expectIds(tok.encode(tok.decode(ids)), ids);
  for (const id of ids) expect(id >= 0 && id < tok.vocabSize).toBe(true);
}

// Applies the merges one after another to each chunk: the definition encode() must match.
function referenceEncode(merges: ReadonlyArray<readonly [number, number]>, text: string): number[] {
  const out: number[] = [];
  for (const m of text.matchAll(BPE_SPLIT_PATTERN)) {
    let t = Array.from(new TextEncoder().encode(m[0]));
    merges.forEach(([a, b], r) => {
      const next: number[] = [];
      for (let i = 0; i < t.length; i++) {
        if (i + 1 < t.length && t[i] === a && t[i + 1] === b) {
          next.push(256 + r);
          i++;
        } else next.push(t[i]);
      }
      t = next;
    });
    out.push(...t);
  }
  return out;
}

const corpus = englishLike(60_000) + Object.values(SAMPLES).join('\n');

describe('char tokenizer', () => {
  const tok = CharTokenizer.fromText(corpus);

  it.each(Object.entries(SAMPLES))('round-trips %s text', (_, text) => roundTrips(tok, text));

  it('round-trips its whole training text', () => roundTrips(tok, corpus));

  it('has one token per code point, sorted by code point', () => {
    const t = CharTokenizer.fromText('b😀a\uFF01a');
    expect(t.vocabSize).toBe(4);
    expect(t.chars).toEqual(['a', 'b', '\uFF01', '😀']); // U+FF01 < U+1F600 though '\uD83D' < '\uFF01'
    expectIds(t.encode('😀a'), [3, 0]);
  });

  it('names an unknown character, its position and the way out', () => {
    const t = CharTokenizer.fromText('abc ');
    let err: unknown;
    try {
      t.encode('ab c 😀 and 😀');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KilnError);
    const k = err as KilnError;
    expect(k.code).toBe('data');
    expect(k.message).toContain('U+1F600');
    expect(k.message).toContain('position 5');
    expect(k.hint).toMatch(/only the characters of its training text/);
    expect(k.hint).toMatch(/bpe/);
  });

  it('rejects ids outside its vocabulary and corrupt metadata', () => {
    expect(() => tok.decode([tok.vocabSize])).toThrow(KilnError);
    expect(() => tok.decode([-1])).toThrow(KilnError);
    expect(() => CharTokenizer.fromJSON({ kind: 'char', chars: ['a', 'bc'] })).toThrow(/single character/);
    expect(() => CharTokenizer.fromJSON({ kind: 'char', chars: ['a', 'a'] })).toThrow(/twice/);
    expect(() => CharTokenizer.fromText('')).toThrow(KilnError);
  });
});

describe('bpe tokenizer', () => {
  const tok = trainBpe(corpus, 1024);

  it.each(Object.entries(SAMPLES))('round-trips %s text', (_, text) => roundTrips(tok, text));

  it('round-trips its whole training text', () => roundTrips(tok, corpus));

  it('round-trips text it was not trained on', () => {
    roundTrips(trainBpe('aaa bbb', 300), SAMPLES.emoji + SAMPLES.cjk);
  });

  it('has exactly the vocabulary asked for, the same on every run', () => {
    expect(tok.vocabSize).toBe(1024);
    expect(tok.merges.length).toBe(1024 - 256);
    expect(trainBpe(corpus, 1024).toJSON()).toEqual(tok.toJSON());
  });

  it('breaks ties by the smallest pair and stops when nothing is left to merge', () => {
    // "aaab": (a,a) occurs twice; then (a,b) and (aa,a)... tie at 1: (97,98) < (256,97).
    const t = trainBpe('aaab', 300);
    expect(t.toJSON()).toEqual({ kind: 'bpe', merges: [[97, 97], [97, 98], [256, 257]] });
    expect(t.vocabSize).toBe(259);
    expectIds(t.encode('aaab'), [258]);
    const small = trainBpe(englishLike(2000, 7), 50_000);
    expect(small.vocabSize).toBeLessThan(50_000);
    roundTrips(small, englishLike(2000, 7));
    for (const m of englishLike(2000, 7).matchAll(BPE_SPLIT_PATTERN)) expect(small.encode(m[0]).length).toBe(1);
  });

  it('compresses repetitive text', () => {
    const text = englishLike(20_000, 3);
    const bytes = new TextEncoder().encode(text).length;
    const n = tok.encode(text).length;
    expect(n).toBeLessThan(bytes / 2);
    expect(trainBpe(corpus, 2048).encode(text).length).toBeLessThan(n);
  });

  it('encodes as applying the merges in order would, for short and long chunks', () => {
    for (const text of [englishLike(5000, 11), ...Object.values(SAMPLES)]) {
      expectIds(tok.encode(text), referenceEncode(tok.merges, text));
    }
    const runs = trainBpe('ab'.repeat(200) + ' ' + 'a'.repeat(500) + ' ' + 'xyz'.repeat(50), 400);
    const probe = 'ab'.repeat(123) + 'a ' + 'a'.repeat(333) + ' ' + 'xyz'.repeat(41) + 'x';
    expectIds(runs.encode(probe), referenceEncode(runs.merges, probe));
    roundTrips(runs, probe);
  });

  it('decodes partial UTF-8 to U+FFFD without throwing', () => {
    const smile = new TextEncoder().encode('😀');
    expect(tok.decode([smile[0], smile[1]])).toBe('\uFFFD');
    expect(tok.decode([0x61, smile[0], 0x62])).toBe('a\uFFFDb');
    expect(tok.decode([0xff])).toBe('\uFFFD');
    expect(() => tok.decode([tok.vocabSize])).toThrow(KilnError);
  });

  it('rejects bad vocabulary sizes and corrupt merges', () => {
    expect(() => trainBpe('abc', 100)).toThrow(KilnError);
    expect(() => trainBpe('abc', 300.5)).toThrow(KilnError);
    expect(() => BpeTokenizer.fromJSON({ kind: 'bpe', merges: [[97, 256]] })).toThrow(/below 256/);
    expect(() => BpeTokenizer.fromJSON({ kind: 'bpe', merges: [[97, 98], [97, 98]] })).toThrow(/repeats/);
  });

  it('trains 4096 tokens on 1 MB in seconds', () => {
    const text = englishLike(1 << 20, 5);
    const t0 = performance.now();
    const big = trainBpe(text, 4096);
    const seconds = (performance.now() - t0) / 1000;
    expect(big.vocabSize).toBe(4096);
    expect(seconds).toBeLessThan(20); // ~0.5 s on a 2-core VM; a full recount per merge takes minutes
  });
});

describe('gpt2 tokenizer', () => {
  it('gives GPT-2 ids', async () => {
    const tok = await loadGpt2Tokenizer();
    expect(tok.vocabSize).toBe(50257);
    expectIds(tok.encode('Hello world'), [15496, 995]);
    expectIds(tok.encode('Hello, world!'), [15496, 11, 995, 0]);
    expectIds(tok.encode(' the'), [262]);
    expectIds(tok.encode('<|endoftext|>'), [50256]);
    expectIds(tok.encode('a<|endoftext|><|endoftext|>b'), [64, 50256, 50256, 65]);
    expect(tok.decode([15496, 995])).toBe('Hello world');
    expect(await loadGpt2Tokenizer()).toBe(tok);
  });

  it.each(Object.entries(SAMPLES))('round-trips %s text', async (_, text) => {
    roundTrips(await loadGpt2Tokenizer(), text);
  });

  it('decodes a split character to U+FFFD, and nothing leaks into the next call', async () => {
    const tok = await loadGpt2Tokenizer();
    const ids = tok.encode('😀');
    expect(ids.length).toBeGreaterThan(1);
    expect(tok.decode(ids.slice(0, 1))).toContain('\uFFFD');
    expect(tok.decode(tok.encode('ok'))).toBe('ok');
    expect(() => tok.decode([50257])).toThrow(KilnError);
  });
});

describe('createTokenizer / tokenizerFromJSON', () => {
  it.each(['char', 'bpe', 'gpt2'] as const)('%s survives JSON with identical encodings', async (kind) => {
    const tok = await createTokenizer(kind, corpus, { bpeVocab: 600 });
    expect(tok.kind).toBe(kind);
    const back = await tokenizerFromJSON(JSON.parse(JSON.stringify(tok.toJSON())));
    expect(back.kind).toBe(kind);
    expect(back.vocabSize).toBe(tok.vocabSize);
    for (const text of Object.values(SAMPLES)) expectIds(back.encode(text), tok.encode(text));
  });

  it('reports bpe progress up to the last merge', async () => {
    const seen: Array<[number, number]> = [];
    const tok = await createTokenizer('bpe', corpus, { bpeVocab: 500, onProgress: (d, t) => seen.push([d, t]) });
    expect(tok.vocabSize).toBe(500);
    expect(seen.length).toBeGreaterThan(1);
    expect(seen[seen.length - 1]).toEqual([244, 244]);
  });

  it('rejects unknown kinds', async () => {
    await expect(tokenizerFromJSON({ kind: 'word' } as never)).rejects.toMatchObject({ code: 'checkpoint' });
    await expect(createTokenizer('word' as never, 'x', { bpeVocab: 300 })).rejects.toMatchObject({ code: 'config' });
  });
});
