// Byte-level BPE, trained on the user's own text. Ids 0..255 are the bytes of the UTF-8
// encoding; id 256+r is merge r, the concatenation of its two parts. Any text encodes
// (every byte has a token), so unlike the char tokenizer nothing is ever out of vocabulary.
//
// Training follows Hugging Face tokenizers' BpeTrainer: the text is pre-split into chunks
// (words with their leading space) by GPT-2's pattern, so merges never cross a word
// boundary; each distinct chunk is counted once with its frequency; pair counts are kept
// up to date incrementally (only the chunks that contain the merged pair are touched), and
// the next merge comes off a max-heap whose stale entries are re-pushed lazily.

import { KilnError } from '../errors.ts';
import { outOfVocab } from './char.ts';
import type { Tokenizer, TokenizerJSON } from './tokenizer.ts';
import { decodeTokenBytes } from './byte-decode.ts';
import { preview } from '../text.ts';

/** GPT-2's pre-tokenizer (openai/gpt-2 encoder.py), with Unicode property escapes. */
export const BPE_SPLIT_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** Largest vocabulary: a pair (a, b) is keyed as a * V + b, exact in a double. */
export const BPE_MAX_VOCAB = 1 << 20;

/**
 * Longest token, in bytes. GPT-2's longest is 128 bytes; Kiln's training never makes a
 * longer one than this (a pair that would be longer is not merged), so a tokenizer
 * that has one was not made by Kiln. Each merge may at most double a token, so without
 * a cap 40 merges of [97,97],[256,256],... would ask for a 2^40-byte token.
 */
export const BPE_MAX_TOKEN_BYTES = 1024;

/** Most bytes all tokens together may hold: 2^20 tokens of 64 bytes on average. */
export const BPE_MAX_TABLE_BYTES = 64 * 1024 * 1024;

const CORRUPT_HINT = 'The tokenizer metadata is corrupt or was not made by Kiln: retrain the bpe tokenizer on the training text.';

/**
 * Checks a merge list before anything is built from it: each merge is two ids already
 * defined, and the byte lengths of the tokens it makes, summed as plain numbers, stay
 * under BPE_MAX_TOKEN_BYTES each and BPE_MAX_TABLE_BYTES together. Returns the total
 * bytes of the table; throws KilnError('checkpoint') naming the first bad merge.
 */
export function checkBpeMerges(merges: ReadonlyArray<unknown>): number {
  if (merges.length > BPE_MAX_VOCAB - 256) {
    throw new KilnError('checkpoint', `bpe tokenizer has ${merges.length} merges, above the ${BPE_MAX_VOCAB - 256} Kiln allows`, CORRUPT_HINT);
  }
  const lens = new Float64Array(256 + merges.length);
  lens.fill(1, 0, 256);
  let total = 256;
  for (let r = 0; r < merges.length; r++) {
    const m = merges[r];
    const id = 256 + r;
    const ok = Array.isArray(m) && m.length === 2 &&
      Number.isInteger(m[0]) && Number.isInteger(m[1]) && m[0] >= 0 && m[1] >= 0 && m[0] < id && m[1] < id;
    if (!ok) {
      throw new KilnError('checkpoint', `bpe merge ${r} (${preview(m, 40)}) must be two ids below ${id}, the ones defined before it`, CORRUPT_HINT);
    }
    const len = lens[m[0] as number] + lens[m[1] as number];
    if (len > BPE_MAX_TOKEN_BYTES) {
      throw new KilnError(
        'checkpoint',
        `bpe merge ${r} (${m[0]}, ${m[1]}) makes a token of ${len} bytes, above the ${BPE_MAX_TOKEN_BYTES}-byte limit`,
        CORRUPT_HINT,
      );
    }
    total += len;
    if (total > BPE_MAX_TABLE_BYTES) {
      throw new KilnError(
        'checkpoint',
        `bpe merge ${r} brings the tokens to ${total} bytes in all, above the ${BPE_MAX_TABLE_BYTES}-byte limit`,
        CORRUPT_HINT,
      );
    }
    lens[id] = len;
  }
  return total;
}

const ENCODER = new TextEncoder();
// Non-fatal: invalid or truncated UTF-8 becomes U+FFFD. ignoreBOM keeps a leading U+FEFF.

// Min-heap of (p, q) entries ordered by p, then q. Training uses p = -count, q = pair key
// (most frequent pair first, ties to the smallest pair: the same merges on every machine);
// encoding uses p = rank, q = position (lowest rank first, leftmost first).
class PairHeap {
  private p: number[] = [];
  private q: number[] = [];

  get size(): number {
    return this.p.length;
  }

  private less(i: number, j: number): boolean {
    return this.p[i] < this.p[j] || (this.p[i] === this.p[j] && this.q[i] < this.q[j]);
  }

  private swap(i: number, j: number): void {
    const p = this.p[i], q = this.q[i];
    this.p[i] = this.p[j]; this.q[i] = this.q[j];
    this.p[j] = p; this.q[j] = q;
  }

  push(p: number, q: number): void {
    let i = this.p.length;
    this.p.push(p);
    this.q.push(q);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  /** Removes the smallest entry; read it first with topP/topQ. */
  pop(): void {
    const last = this.p.length - 1;
    this.swap(0, last);
    this.p.pop();
    this.q.pop();
    let i = 0;
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < last && this.less(l, m)) m = l;
      if (r < last && this.less(r, m)) m = r;
      if (m === i) return;
      this.swap(i, m);
      i = m;
    }
  }

  get topP(): number {
    return this.p[0];
  }

  get topQ(): number {
    return this.q[0];
  }
}

export interface BpeTrainOptions {
  /** Called every few merges with (merges done, merges wanted). */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Learns vocabSize - 256 merges from `text`. Stops early, with a smaller vocabulary, when
 * every chunk of the text is already a single token (no pair is left to merge). A pair
 * whose token would pass BPE_MAX_TOKEN_BYTES is never merged.
 */
export function trainBpe(text: string, vocabSize: number, opts: BpeTrainOptions = {}): BpeTokenizer {
  if (!Number.isInteger(vocabSize) || vocabSize < 256 || vocabSize > BPE_MAX_VOCAB) {
    throw new KilnError(
      'config',
      `bpe vocabulary size ${vocabSize} is out of range`,
      `Choose a whole number from 256 (bytes only) to ${BPE_MAX_VOCAB}; 4096 to 16384 suit small models.`,
    );
  }
  const wanted = vocabSize - 256;
  // Pairs are keyed a * V + b: below 2^31 (a small integer to V8's maps) up to V = 46340.
  const pairKey = (a: number, b: number): number => a * vocabSize + b;

  // Distinct chunks with their counts. Chunks of one byte hold no pair and are dropped.
  const chunkCounts = new Map<string, number>();
  for (const m of text.matchAll(BPE_SPLIT_PATTERN)) {
    chunkCounts.set(m[0], (chunkCounts.get(m[0]) ?? 0) + 1);
  }
  const words: Int32Array[] = [];
  const freq: number[] = [];
  for (const [chunk, n] of chunkCounts) {
    const bytes = ENCODER.encode(chunk);
    if (bytes.length < 2) continue;
    words.push(Int32Array.from(bytes));
    freq.push(n);
  }
  chunkCounts.clear();

  // Pair -> total count, and pair -> the words that (may) contain it. A word stays on the
  // list of a pair it lost; merging skips it at no harm.
  const counts = new Map<number, number>();
  const where = new Map<number, number[]>();
  const add = (k: number, n: number): void => {
    const v = (counts.get(k) ?? 0) + n;
    if (v === 0) counts.delete(k);
    else counts.set(k, v);
  };
  const note = (k: number, w: number): void => {
    const list = where.get(k);
    if (list === undefined) where.set(k, [w]);
    else if (list[list.length - 1] !== w) list.push(w);
  };
  for (let w = 0; w < words.length; w++) {
    const t = words[w];
    for (let i = 0; i + 1 < t.length; i++) {
      const k = pairKey(t[i], t[i + 1]);
      add(k, freq[w]);
      note(k, w);
    }
  }
  const heap = new PairHeap();
  for (const [k, n] of counts) heap.push(-n, k);

  const merges: Array<[number, number]> = [];
  // Token lengths in bytes: a pair whose token would pass BPE_MAX_TOKEN_BYTES (a long run
  // of one symbol) is never merged, so every tokenizer Kiln trains also loads.
  const lens: number[] = new Array<number>(256).fill(1);
  const seen = new Int32Array(words.length).fill(-1); // last merge that touched each word
  const report = opts.onProgress;
  while (merges.length < wanted && heap.size > 0) {
    const n = -heap.topP;
    const k = heap.topQ;
    heap.pop();
    // Counts only fall while a pair is on the heap, so a stale entry overestimates: put it
    // back with its true count and look again.
    const actual = counts.get(k) ?? 0;
    if (actual !== n) {
      if (actual > 0) heap.push(-actual, k);
      continue;
    }
    const a = Math.floor(k / vocabSize);
    const b = k - a * vocabSize;
    if (lens[a] + lens[b] > BPE_MAX_TOKEN_BYTES) continue; // dropped from the heap for good
    const c = 256 + merges.length;
    merges.push([a, b]);
    lens.push(lens[a] + lens[b]);

    const born = new Set<number>(); // pairs with c: the only ones whose count can rise
    for (const w of where.get(k) ?? []) {
      if (seen[w] === c) continue;
      seen[w] = c;
      const t = words[w];
      const merged = mergePair(t, a, b, c);
      if (merged === t) continue;
      const f = freq[w];
      for (let i = 0; i + 1 < t.length; i++) add(pairKey(t[i], t[i + 1]), -f);
      for (let i = 0; i + 1 < merged.length; i++) {
        const x = merged[i], y = merged[i + 1];
        const pk = pairKey(x, y);
        add(pk, f);
        if (x === c || y === c) {
          born.add(pk);
          note(pk, w);
        }
      }
      words[w] = merged;
    }
    counts.delete(k);
    where.delete(k);
    for (const pk of born) {
      const v = counts.get(pk);
      if (v !== undefined) heap.push(-v, pk);
    }
    if (report && merges.length % 64 === 0) report(merges.length, wanted);
  }
  report?.(merges.length, wanted);
  return new BpeTokenizer(merges);
}

// Replaces each (a, b) in t, left to right, with c; returns t itself when there is none.
function mergePair(t: Int32Array, a: number, b: number, c: number): Int32Array {
  let out: Int32Array | undefined;
  let n = 0;
  for (let i = 0; i < t.length; i++) {
    if (i + 1 < t.length && t[i] === a && t[i + 1] === b) {
      if (out === undefined) {
        out = new Int32Array(t.length - 1);
        out.set(t.subarray(0, i));
        n = i;
      }
      out[n++] = c;
      i++;
    } else if (out !== undefined) {
      out[n++] = t[i];
    }
  }
  return out === undefined ? t : out.subarray(0, n);
}

const CACHE_ENTRIES = 65536; // distinct chunks kept; English text has far fewer
const CACHE_CHUNK_CHARS = 256; // longer chunks (runs of spaces or symbols) are not kept
const SHORT_CHUNK = 32; // bytes; longer chunks merge through a heap (O(n log n), not O(n^2))

export class BpeTokenizer implements Tokenizer {
  readonly kind = 'bpe' as const;
  readonly vocabSize: number;
  readonly merges: ReadonlyArray<readonly [number, number]>;
  private readonly ranks = new Map<number, number>(); // pair key -> merge index
  private readonly bytes: Uint8Array[] = []; // token id -> its bytes
  private readonly cache = new Map<string, Int32Array>();
  private readonly stride: number; // pair key = a * stride + b, as in training

  private pairKey(a: number, b: number): number {
    return a * this.stride + b;
  }

  constructor(merges: ReadonlyArray<readonly [number, number]>) {
    // Bounds first, as plain numbers: nothing is allocated for a list that would blow up.
    checkBpeMerges(merges);
    this.stride = 256 + merges.length;
    for (let i = 0; i < 256; i++) this.bytes.push(Uint8Array.of(i));
    merges.forEach((m, r) => {
      const k = this.pairKey(m[0], m[1]);
      if (this.ranks.has(k)) {
        throw new KilnError(
          'checkpoint',
          `bpe merge ${r} repeats merge ${this.ranks.get(k)} (${m[0]}, ${m[1]})`,
          CORRUPT_HINT,
        );
      }
      this.ranks.set(k, r);
      const left = this.bytes[m[0]], right = this.bytes[m[1]];
      const joined = new Uint8Array(left.length + right.length);
      joined.set(left);
      joined.set(right, left.length);
      this.bytes.push(joined);
    });
    this.merges = merges.map((m) => [m[0], m[1]] as const);
    this.vocabSize = 256 + merges.length;
  }

  static fromJSON(json: TokenizerJSON): BpeTokenizer {
    if (json.kind !== 'bpe' || !Array.isArray(json.merges)) {
      throw new KilnError('checkpoint', 'bpe tokenizer metadata has no list of merges', 'The checkpoint is corrupt or was not written by Kiln.');
    }
    return new BpeTokenizer(json.merges);
  }

  /** The bytes token `id` stands for. */
  tokenBytes(id: number): Uint8Array {
    const b = this.bytes[id];
    if (b === undefined) throw outOfVocab(id, this.vocabSize, 'bpe');
    return b;
  }

  encode(text: string): Int32Array {
    let out = new Int32Array(Math.max(16, text.length >> 1));
    let n = 0;
    for (const m of text.matchAll(BPE_SPLIT_PATTERN)) {
      const ids = this.encodeChunk(m[0]);
      if (n + ids.length > out.length) {
        const grown = new Int32Array(Math.max(out.length * 2, n + ids.length));
        grown.set(out.subarray(0, n));
        out = grown;
      }
      out.set(ids, n);
      n += ids.length;
    }
    return out.slice(0, n);
  }

  private encodeChunk(chunk: string): Int32Array {
    const hit = this.cache.get(chunk);
    if (hit !== undefined) return hit;
    const ids = this.mergeBytes(ENCODER.encode(chunk));
    if (chunk.length <= CACHE_CHUNK_CHARS) {
      if (this.cache.size >= CACHE_ENTRIES) this.cache.clear();
      this.cache.set(chunk, ids);
    }
    return ids;
  }

  // Applies merges by rank: always the lowest-ranked adjacent pair, leftmost first. A merge
  // only creates pairs with the new token, whose merges rank later, so this equals applying
  // the merges one after another as training did. Tokens live in a linked list over the
  // byte positions; heap entries that no longer match their position are skipped.
  private mergeBytes(bytes: Uint8Array): Int32Array {
    const len = bytes.length;
    if (len < 2) return Int32Array.from(bytes);
    if (len <= SHORT_CHUNK) return this.mergeShort(bytes);
    const tok = Int32Array.from(bytes);
    const next = new Int32Array(len);
    const prev = new Int32Array(len);
    for (let i = 0; i < len; i++) {
      next[i] = i + 1;
      prev[i] = i - 1;
    }
    const heap = new PairHeap();
    for (let i = 0; i + 1 < len; i++) {
      const r = this.ranks.get(this.pairKey(tok[i], tok[i + 1]));
      if (r !== undefined) heap.push(r, i);
    }
    let count = len;
    while (heap.size > 0) {
      const r = heap.topP;
      const i = heap.topQ;
      heap.pop();
      const j = next[i];
      if (tok[i] < 0 || j >= len || this.ranks.get(this.pairKey(tok[i], tok[j])) !== r) continue;
      tok[i] = 256 + r;
      tok[j] = -1; // removed
      next[i] = next[j];
      if (next[j] < len) prev[next[j]] = i;
      count--;
      if (prev[i] >= 0) {
        const rl = this.ranks.get(this.pairKey(tok[prev[i]], tok[i]));
        if (rl !== undefined) heap.push(rl, prev[i]);
      }
      if (next[i] < len) {
        const rr = this.ranks.get(this.pairKey(tok[i], tok[next[i]]));
        if (rr !== undefined) heap.push(rr, i);
      }
    }
    const ids = new Int32Array(count);
    for (let i = 0, n = 0; i < len; i = next[i]) ids[n++] = tok[i];
    return ids;
  }

  // The same rule for a word-sized chunk: a linear scan for the lowest rank beats a heap.
  private mergeShort(bytes: Uint8Array): Int32Array {
    const tok = Int32Array.from(bytes);
    const rank = new Float64Array(tok.length); // rank of (tok[i], tok[i+1]); Infinity: none
    let len = tok.length;
    const rankAt = (i: number): number =>
      i + 1 < len ? (this.ranks.get(this.pairKey(tok[i], tok[i + 1])) ?? Infinity) : Infinity;
    for (let i = 0; i < len; i++) rank[i] = rankAt(i);
    for (;;) {
      let best = 0;
      for (let i = 1; i < len - 1; i++) if (rank[i] < rank[best]) best = i;
      const r = rank[best];
      if (r === Infinity) break;
      tok[best] = 256 + r;
      tok.copyWithin(best + 1, best + 2, len);
      rank.copyWithin(best + 1, best + 2, len);
      len--;
      rank[best] = rankAt(best);
      if (best > 0) rank[best - 1] = rankAt(best - 1);
    }
    return tok.slice(0, len);
  }

  decode(ids: ArrayLike<number>): string {
    return decodeTokenBytes(this.bytes, ids, 'bpe');
  }

  toJSON(): TokenizerJSON {
    return { kind: 'bpe', merges: this.merges.map((m) => [m[0], m[1]]) };
  }
}
