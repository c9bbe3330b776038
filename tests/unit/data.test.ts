// Data path and small numeric helpers: splitting, batch sampling (seeded, resumable),
// fixed validation batches, refusing non-text, the PRNG, the learning-rate schedule
// and token sampling.
import { describe, expect, it } from 'vitest';
import { BatchSampler, splitTokens, valBatches, type Batch } from '../../src/core/data.ts';
import { KilnError } from '../../src/core/errors.ts';
import { Rng } from '../../src/core/rng.ts';
import { sampleToken } from '../../src/core/sampling.ts';
import { lrAt } from '../../src/core/schedule.ts';
import { decodeText } from '../../src/core/text.ts';

/** Token ids 0..n-1 (mod m): every window is recognisable by its first id. */
function ramp(n: number, m = 1 << 30): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => i % m);
}

function thrown(fn: () => unknown): KilnError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(KilnError);
    return e as KilnError;
  }
  return expect.fail('expected a KilnError');
}

function sameBatch(a: Batch, b: Batch): boolean {
  return a.B === b.B && a.T === b.T && a.microBatches === b.microBatches &&
    Buffer.from(a.inputs.buffer).equals(Buffer.from(b.inputs.buffer)) &&
    Buffer.from(a.targets.buffer).equals(Buffer.from(b.targets.buffer));
}

describe('splitTokens', () => {
  it('holds out the last valFraction for validation when it is too short to cut in pieces', () => {
    const t = ramp(1000);
    const { train, val } = splitTokens(t, 0.1, 16);
    expect(train.length).toBe(900);
    expect(val.length).toBe(100);
    expect(train[0]).toBe(0);
    expect(train[899]).toBe(899);
    expect(val[0]).toBe(900);
    expect(val[99]).toBe(999);
  });

  it('spreads validation over the whole text in long contiguous pieces, so an ordered file is not judged by its tail', () => {
    // 20000 tokens, 10%, blockSize 16: 2000 wanted; pieces of at least 16 windows of 17.
    const n = 20000;
    const { train, val } = splitTokens(ramp(n), 0.1, 16);
    const runs = (a: Int32Array) => {
      const out: number[][] = [];
      for (let i = 0; i < a.length; i++) {
        if (i === 0 || a[i] !== a[i - 1] + 1) out.push([a[i], a[i]]);
        else out[out.length - 1][1] = a[i];
      }
      return out;
    };
    const pieces = runs(val);
    expect(pieces.length).toBe(7);
    for (const [a, b] of pieces) expect(b - a + 1).toBeGreaterThanOrEqual(16 * 17);
    expect(val.length).toBeGreaterThan(0.099 * n);
    expect(val.length).toBeLessThanOrEqual(0.1 * n);
    // Every token in exactly one part, each part in file order.
    expect(train.length + val.length).toBe(n);
    const seen = new Uint8Array(n);
    for (const t of [...train, ...val]) seen[t]++;
    expect(seen.every((c) => c === 1)).toBe(true);
    for (const part of [train, val]) for (let i = 1; i < part.length; i++) expect(part[i]).toBeGreaterThan(part[i - 1]);
    // From the first seventh of the file to its end (a sorted word list: every part of the alphabet).
    expect(val[0]).toBeLessThan(n / 7);
    expect(val[val.length - 1]).toBe(n - 1);
    // Deterministic.
    expect(Array.from(splitTokens(ramp(n), 0.1, 16).val)).toEqual(Array.from(val));
  });

  it('gives validation at least a block plus one when the fraction is smaller', () => {
    const { train, val } = splitTokens(ramp(200), 0.01, 16);
    expect(val.length).toBe(17);
    expect(train.length).toBe(183);
    // Exactly enough: 17 + 17.
    const edge = splitTokens(ramp(34), 0.1, 16);
    expect([edge.train.length, edge.val.length]).toEqual([17, 17]);
  });

  it('refuses data too short for a block, saying how many tokens it has and needs', () => {
    const e = thrown(() => splitTokens(ramp(33), 0.1, 16));
    expect(e.code).toBe('data');
    expect(e.message).toContain('too short');
    expect(e.message).toContain('33 tokens');
    expect(e.message).toContain('34');
    expect(e.message).not.toContain('\n');
    expect(e.hint).toMatch(/more text|blockSize/);
    // The blockSize the hint suggests does fit the data.
    const suggested = Number(/lower blockSize to (\d+) or less/.exec(e.hint)![1]);
    expect(suggested).toBe(15);
    expect(() => splitTokens(ramp(33), 0.1, suggested)).not.toThrow();
    // Text too short for even the smallest block: no blockSize is suggested.
    const tiny = thrown(() => splitTokens(ramp(5), 0.1, 16));
    expect(tiny.hint).toMatch(/more text/);
    expect(tiny.hint).not.toMatch(/blockSize/);
    expect(() => splitTokens(ramp(6), 0.1, 2)).not.toThrow();
    expect(thrown(() => splitTokens(ramp(6), 0.1, 16)).hint).toMatch(/lower blockSize to 2 or less/);
    expect(thrown(() => splitTokens(new Int32Array(0), 0.1, 4)).message).toContain('0 tokens');
  });
});

describe('BatchSampler', () => {
  const tokens = ramp(5000);

  it('gives B*T*microBatches tokens whose targets are the inputs shifted by one', () => {
    const s = new BatchSampler(tokens, 1);
    const b = s.next(4, 16, 3);
    expect([b.B, b.T, b.microBatches]).toEqual([4, 16, 3]);
    expect(b.inputs.length).toBe(4 * 16 * 3);
    expect(b.targets.length).toBe(4 * 16 * 3);
    for (let seq = 0; seq < 12; seq++) {
      const start = b.inputs[seq * 16];
      for (let t = 0; t < 16; t++) {
        // A contiguous window of the data...
        expect(b.inputs[seq * 16 + t]).toBe(start + t);
        // ...and the next token after each position.
        expect(b.targets[seq * 16 + t]).toBe(start + t + 1);
      }
      expect(start + 16).toBeLessThan(tokens.length);
    }
  });

  it('shifts by one on real data too (not only on a ramp)', () => {
    const rng = new Rng(3);
    const data = Int32Array.from({ length: 300 }, () => rng.int(7));
    const b = new BatchSampler(data, 9).next(8, 10, 1);
    for (let seq = 0; seq < 8; seq++) {
      for (let t = 0; t < 9; t++) expect(b.targets[seq * 10 + t]).toBe(b.inputs[seq * 10 + t + 1]);
    }
  });

  it('reaches both ends of the data and never runs past them', () => {
    const short = ramp(20);
    const s = new BatchSampler(short, 5);
    const starts = new Set<number>();
    for (let i = 0; i < 400; i++) {
      const b = s.next(1, 8, 1);
      starts.add(b.inputs[0]);
      expect(b.targets[7]).toBeLessThanOrEqual(19);
    }
    // 20 tokens, windows of 8 plus a target: starts 0..11.
    expect([...starts].sort((a, b) => a - b)).toEqual(Array.from({ length: 12 }, (_, i) => i));
  });

  it('is a function of the seed', () => {
    const a = new BatchSampler(tokens, 42);
    const b = new BatchSampler(tokens, 42);
    const c = new BatchSampler(tokens, 43);
    let differs = false;
    for (let i = 0; i < 20; i++) {
      const ba = a.next(4, 8, 2);
      expect(sameBatch(ba, b.next(4, 8, 2))).toBe(true);
      if (!sameBatch(ba, c.next(4, 8, 2))) differs = true;
    }
    expect(differs).toBe(true);
  });

  it('state() restores the identical continuation, and the state is plain JSON', () => {
    const a = new BatchSampler(tokens, 7);
    for (let i = 0; i < 5; i++) a.next(4, 8, 1);
    const saved = a.state();
    const json = JSON.parse(JSON.stringify(saved));
    expect(json).toEqual(saved);
    // 32-bit words (Rng normalises them with >>> 0 when it reads a state back).
    expect(json.every((x: number) => Number.isInteger(x) && x >= -(2 ** 31) && x < 2 ** 32)).toBe(true);
    const resumed = new BatchSampler(tokens, json);
    for (let i = 0; i < 10; i++) expect(sameBatch(a.next(4, 8, 1), resumed.next(4, 8, 1)), `batch ${i}`).toBe(true);
    // Taking the state does not disturb the stream.
    const x = new BatchSampler(tokens, 7);
    const y = new BatchSampler(tokens, 7);
    x.state();
    expect(sameBatch(x.next(2, 4, 1), y.next(2, 4, 1))).toBe(true);
  });

  it('N straight == N/2, save, restore, N/2', () => {
    const straight = new BatchSampler(tokens, 99);
    const first = new BatchSampler(tokens, 99);
    const all = Array.from({ length: 8 }, () => straight.next(3, 5, 2));
    for (let i = 0; i < 4; i++) expect(sameBatch(first.next(3, 5, 2), all[i])).toBe(true);
    const second = new BatchSampler(tokens, first.state());
    for (let i = 4; i < 8; i++) expect(sameBatch(second.next(3, 5, 2), all[i])).toBe(true);
  });
});

describe('valBatches', () => {
  it('spreads its windows evenly over the whole split, targets shifted by one', () => {
    // 200 tokens, T=10: 19 windows; 3 batches of 2 take every ~3rd, from start to end.
    const val = ramp(200);
    const batches = valBatches(val, 2, 10, 3);
    expect(batches).toHaveLength(3);
    const starts = batches.flatMap((b) => [0, 1].map((s) => b.inputs[s * 10]));
    expect(starts).toEqual([0, 30, 60, 90, 120, 150]);
    for (const b of batches) {
      expect([b.B, b.T, b.microBatches]).toEqual([2, 10, 1]);
      for (let s = 0; s < 2; s++) {
        const start = b.inputs[s * 10];
        expect(Array.from(b.inputs.subarray(s * 10, s * 10 + 10))).toEqual(Array.from({ length: 10 }, (_, i) => start + i));
        expect(Array.from(b.targets.subarray(s * 10, s * 10 + 10))).toEqual(Array.from({ length: 10 }, (_, i) => start + i + 1));
      }
    }
    // Asked for every window: all of them, in order.
    const all = valBatches(val, 1, 10, 19).map((b) => b.inputs[0]);
    expect(all).toEqual(Array.from({ length: 19 }, (_, i) => i * 10));
  });

  it('is identical on every call (evaluation consumes no randomness)', () => {
    const rng = new Rng(5);
    const val = Int32Array.from({ length: 777 }, () => rng.int(50));
    const a = valBatches(val, 4, 16, 5);
    const b = valBatches(val, 4, 16, 5);
    expect(a).toHaveLength(5);
    for (let i = 0; i < a.length; i++) expect(sameBatch(a[i], b[i])).toBe(true);
    expect(a[0].inputs).not.toBe(b[0].inputs);
  });

  it('uses no more windows than the data has, wrapping to fill the last batch', () => {
    // 50 tokens, T=10: windows start at 0,10,20,30 (the 4th needs token 40 as a target).
    const val = ramp(50);
    const batches = valBatches(val, 3, 10, 100);
    expect(batches).toHaveLength(2);
    const starts = batches.flatMap((b) => [0, 1, 2].map((s) => b.inputs[s * 10]));
    expect(starts).toEqual([0, 10, 20, 30, 0, 10]);
    for (const b of batches) for (let i = 0; i < b.targets.length; i++) expect(b.targets[i]).toBe(b.inputs[i] + 1);
  });

  it('gives one full batch even from a validation split of a single window', () => {
    const batches = valBatches(ramp(17), 4, 16, 2);
    expect(batches).toHaveLength(1);
    expect(batches[0].inputs.length).toBe(64);
    for (let s = 0; s < 4; s++) expect(batches[0].inputs[s * 16]).toBe(0);
  });
});

describe('decodeText', () => {
  const enc = (s: string) => new TextEncoder().encode(s);

  function refused(bytes: Uint8Array, re: RegExp): void {
    const e = thrown(() => decodeText(bytes, 'names.txt'));
    expect(e.code).toBe('data');
    expect(e.message).toMatch(re);
    expect(e.message).toContain('names.txt');
    expect(e.message).not.toContain('\n');
    expect(e.hint.length).toBeGreaterThan(0);
  }

  it('refuses an empty file', () => refused(new Uint8Array(0), /is empty/));

  it('refuses whitespace only', () => {
    refused(enc(' \n\t\r\n   '), /only whitespace/);
    refused(enc('\uFEFF  \n'), /only whitespace/);
    refused(enc('\u00a0\u3000\n'), /only whitespace/);
  });

  it('refuses NUL bytes, naming the offset', () => {
    refused(enc('hello\u0000world'), /binary.*NUL byte at offset 5/);
    // UTF-16 text (NUL in every other byte) is not UTF-8 text.
    refused(new Uint8Array([0xff, 0xfe, 0x68, 0x00, 0x69, 0x00]), /binary|UTF-8/);
  });

  it('refuses invalid UTF-8', () => {
    refused(new Uint8Array([0x68, 0x69, 0xc3, 0x28, 0x0a]), /not valid UTF-8/);
    refused(enc('caf\u00e9').subarray(0, 4), /not valid UTF-8/); // cut mid-character
    refused(new Uint8Array([0x68, 0xe9, 0x74, 0xe9]), /not valid UTF-8/); // Latin-1 "été"
    refused(new Uint8Array([0xed, 0xa0, 0x80]), /not valid UTF-8/); // an encoded surrogate
  });

  it('refuses random binary bytes (with and without NULs)', () => {
    const rng = new Rng(11);
    for (let trial = 0; trial < 20; trial++) {
      const any = Uint8Array.from({ length: 4096 }, () => rng.int(256));
      refused(any, /binary|UTF-8/);
      const noNul = Uint8Array.from({ length: 4096 }, () => 1 + rng.int(255));
      refused(noNul, /binary|UTF-8/);
      // High bytes only: no control bytes at all, still not text.
      const high = Uint8Array.from({ length: 4096 }, () => 128 + rng.int(128));
      refused(high, /binary|UTF-8/);
    }
  });

  it('accepts UTF-8 with a BOM (dropped), emoji, CJK and accents', () => {
    const text = 'Zoë\n李小龍\n😀 rocket 🚀\nnaïve café\r\n\ttab\n';
    expect(decodeText(enc(text))).toBe(text);
    expect(decodeText(new Uint8Array([0xef, 0xbb, 0xbf, ...enc(text)]))).toBe(text);
    expect(decodeText(enc('a'))).toBe('a');
    // A form feed or two (old text files) is not binary.
    expect(decodeText(enc('page one\fpage two\n'))).toBe('page one\fpage two\n');
  });

  it('decodes text longer than the 64 KiB probe and checks UTF-8 past it', () => {
    const long = 'abcdefgh\n'.repeat(10_000);
    expect(decodeText(enc(long))).toBe(long);
    const bad = new Uint8Array([...enc(long), 0xff]);
    refused(bad, /not valid UTF-8/);
  });

  it('refuses a NUL byte anywhere, not only in the first 64 KiB', () => {
    // E.g. a log file whose tail was preallocated with zeros: valid UTF-8, but not text.
    const long = enc('abcdefgh\n'.repeat(10_000)); // 90,000 bytes
    const tail = new Uint8Array(long.length + 1000);
    tail.set(long);
    refused(tail, /NUL byte/);
  });
});

describe('Rng', () => {
  it('is deterministic from the seed, and different seeds differ', () => {
    const a = new Rng(1);
    const b = new Rng(1);
    const c = new Rng(2);
    const xs = Array.from({ length: 100 }, () => a.nextU32());
    expect(Array.from({ length: 100 }, () => b.nextU32())).toEqual(xs);
    expect(Array.from({ length: 100 }, () => c.nextU32())).not.toEqual(xs);
  });

  it('derive gives independent named streams', () => {
    const seed = 1337;
    const data = Rng.derive(seed, 'data');
    const init = Rng.derive(seed, 'init');
    const n = 20_000;
    const u = Array.from({ length: n }, () => data.next());
    const v = Array.from({ length: n }, () => init.next());
    // No shared prefix, no shared values at the same positions.
    let same = 0;
    for (let i = 0; i < n; i++) if (u[i] === v[i]) same++;
    expect(same).toBe(0);
    // Uncorrelated: |r| within ~4 standard errors of 0.
    const mean = (a: number[]) => a.reduce((s, x) => s + x, 0) / a.length;
    const mu = mean(u), mv = mean(v);
    let cov = 0, su = 0, sv = 0;
    for (let i = 0; i < n; i++) {
      cov += (u[i] - mu) * (v[i] - mv);
      su += (u[i] - mu) ** 2;
      sv += (v[i] - mv) ** 2;
    }
    expect(Math.abs(cov / Math.sqrt(su * sv))).toBeLessThan(4 / Math.sqrt(n));
    // A derived stream is reproducible and differs from the plain seed's stream.
    expect(Rng.derive(seed, 'data').nextU32()).toBe(Rng.derive(seed, 'data').nextU32());
    expect(Rng.derive(seed, 'data').nextU32()).not.toBe(new Rng(seed).nextU32());
    // Drawing from one stream never shifts another.
    const init2 = Rng.derive(seed, 'init');
    expect(init2.next()).toBe(v[0]);
  });

  it('state() round-trips: a new Rng from the state continues the identical sequence', () => {
    const a = new Rng(77);
    for (let i = 0; i < 1000; i++) a.next();
    const s = a.state();
    expect(s).toHaveLength(4);
    const b = new Rng(JSON.parse(JSON.stringify(s)));
    for (let i = 0; i < 100; i++) expect(b.nextU32()).toBe(a.nextU32());
    expect(b.state()).toEqual(a.state());
    // state() is a copy, not a live view.
    const before = a.state();
    a.next();
    expect(a.state()).not.toEqual(before);
  });

  it('next, int and normal have the right ranges and moments', () => {
    const r = new Rng(3);
    const n = 50_000;
    let s = 0, s2 = 0, nmin = Infinity, nmax = -Infinity, badNext = 0, badInt = 0;
    const counts = new Array(10).fill(0);
    for (let i = 0; i < n; i++) {
      const x = r.next();
      if (!(x >= 0 && x < 1)) badNext++;
      const k = r.int(10);
      if (!(Number.isInteger(k) && k >= 0 && k < 10)) badInt++;
      else counts[k]++;
      const z = r.normal();
      s += z;
      s2 += z * z;
      nmin = Math.min(nmin, z);
      nmax = Math.max(nmax, z);
    }
    expect(badNext).toBe(0);
    expect(badInt).toBe(0);
    expect(Math.abs(s / n)).toBeLessThan(0.03);
    expect(Math.abs(s2 / n - 1)).toBeLessThan(0.03);
    expect(nmin).toBeLessThan(-3);
    expect(nmax).toBeGreaterThan(3);
    for (const c of counts) expect(Math.abs(c / n - 0.1)).toBeLessThan(0.01);
  });
});

describe('lrAt', () => {
  const c = { lr: 1e-3, minLr: 1e-4, warmupSteps: 10, decaySteps: 110 };

  it('warms up linearly to lr, reaching it at step warmupSteps', () => {
    expect(lrAt(0, c)).toBeCloseTo(1e-3 / 11, 15);
    expect(lrAt(4, c)).toBeCloseTo((5 * 1e-3) / 11, 15);
    expect(lrAt(9, c)).toBeCloseTo((10 * 1e-3) / 11, 15);
    expect(lrAt(10, c)).toBe(1e-3);
    for (let i = 0; i < 10; i++) expect(lrAt(i + 1, c)).toBeGreaterThan(lrAt(i, c));
  });

  it('decays by a cosine to minLr at decaySteps and stays there', () => {
    expect(lrAt(60, c)).toBeCloseTo((1e-3 + 1e-4) / 2, 15); // half way: the cosine is 0
    expect(lrAt(110, c)).toBe(1e-4);
    expect(lrAt(109, c)).toBeGreaterThan(1e-4);
    expect(lrAt(109, c) - 1e-4).toBeLessThan(1e-6);
    for (const it of [111, 500, 1e7]) expect(lrAt(it, c)).toBe(1e-4);
  });

  it('never rises after the warmup and stays within [minLr, lr]', () => {
    for (let i = 10; i < 200; i++) {
      expect(lrAt(i + 1, c), `step ${i + 1}`).toBeLessThanOrEqual(lrAt(i, c));
      expect(lrAt(i, c)).toBeGreaterThanOrEqual(1e-4);
      expect(lrAt(i, c)).toBeLessThanOrEqual(1e-3);
    }
  });

  it('handles no warmup, minLr = lr, and a one-step decay', () => {
    expect(lrAt(0, { ...c, warmupSteps: 0 })).toBe(1e-3);
    for (const it of [0, 5, 50, 500]) expect(lrAt(it + 10, { ...c, minLr: 1e-3 })).toBeCloseTo(1e-3, 15);
    const one = { lr: 1, minLr: 0.5, warmupSteps: 0, decaySteps: 1 };
    expect(lrAt(0, one)).toBe(1);
    expect(lrAt(1, one)).toBe(0.5);
  });
});

describe('sampleToken', () => {
  const logits = Float32Array.from([0.5, 2.0, -1.0, 1.7, 0.0]);
  const ARGMAX = 1;

  it('temperature 0 is the argmax, whatever the RNG', () => {
    for (let s = 0; s < 20; s++) expect(sampleToken(logits, { temperature: 0, topK: 0, topP: 1 }, new Rng(s))).toBe(ARGMAX);
    // Ties go to the lowest id.
    expect(sampleToken([3, 5, 5, 1], { temperature: 0, topK: 0, topP: 1 }, new Rng(1))).toBe(1);
  });

  it('top-k 1 is the argmax', () => {
    const r = new Rng(2);
    for (let i = 0; i < 200; i++) expect(sampleToken(logits, { temperature: 1.5, topK: 1, topP: 1 }, r)).toBe(ARGMAX);
  });

  it('a tiny top-p is the argmax', () => {
    const r = new Rng(3);
    for (let i = 0; i < 200; i++) expect(sampleToken(logits, { temperature: 1, topK: 0, topP: 1e-6 }, r)).toBe(ARGMAX);
  });

  function frequencies(lg: ArrayLike<number>, opts: { temperature: number; topK: number; topP: number }, n: number, vocab?: number): number[] {
    const r = new Rng(12345);
    const counts = new Array(lg.length).fill(0);
    for (let i = 0; i < n; i++) counts[sampleToken(lg, opts, r, vocab)]++;
    return counts.map((c) => c / n);
  }

  function softmax(lg: number[], temp: number): number[] {
    const m = Math.max(...lg);
    const e = lg.map((x) => Math.exp((x - m) / temp));
    const s = e.reduce((a, b) => a + b, 0);
    return e.map((x) => x / s);
  }

  it('follows the softmax over many draws (temperature 1 and 0.5)', () => {
    const n = 40_000;
    for (const temp of [1, 0.5]) {
      const f = frequencies(logits, { temperature: temp, topK: 0, topP: 1 }, n);
      const p = softmax(Array.from(logits), temp);
      // 5 standard errors of a frequency at most.
      for (let i = 0; i < p.length; i++) expect(Math.abs(f[i] - p[i]), `t=${temp} id ${i}`).toBeLessThan(5 * Math.sqrt(p[i] * (1 - p[i]) / n) + 1e-3);
    }
  });

  it('top-k keeps the k most likely, renormalised', () => {
    const n = 30_000;
    const f = frequencies(logits, { temperature: 1, topK: 2, topP: 1 }, n);
    expect(f[0]).toBe(0);
    expect(f[2]).toBe(0);
    expect(f[4]).toBe(0);
    const p = softmax([2.0, 1.7], 1);
    expect(Math.abs(f[1] - p[0])).toBeLessThan(0.015);
    expect(Math.abs(f[3] - p[1])).toBeLessThan(0.015);
  });

  it('top-p keeps the smallest set reaching p', () => {
    const p = softmax(Array.from(logits), 1);
    // The top two (ids 1 and 3) hold about 0.70 of the mass; p = 0.6 keeps exactly them.
    expect(p[1] + p[3]).toBeGreaterThan(0.6);
    expect(p[1]).toBeLessThan(0.6);
    const f = frequencies(logits, { temperature: 1, topK: 0, topP: 0.6 }, 20_000);
    expect(f[0] + f[2] + f[4]).toBe(0);
    expect(Math.abs(f[1] - p[1] / (p[1] + p[3]))).toBeLessThan(0.02);
  });

  it('never picks padding rows at or past vocab, however large their logits', () => {
    const padded = Float32Array.from([0.1, 0.3, 0.2, 50, 60, 70]);
    const vocab = 3;
    expect(sampleToken(padded, { temperature: 0, topK: 0, topP: 1 }, new Rng(1), vocab)).toBe(1);
    for (const opts of [
      { temperature: 1, topK: 0, topP: 1 },
      { temperature: 5, topK: 2, topP: 1 },
      { temperature: 1, topK: 0, topP: 0.5 },
      { temperature: 100, topK: 0, topP: 0.999 },
      { temperature: 1, topK: 10, topP: 1 },
    ]) {
      const f = frequencies(padded, opts, 3000, vocab);
      expect(f[3] + f[4] + f[5], JSON.stringify(opts)).toBe(0);
      expect(f[0] + f[1] + f[2]).toBeCloseTo(1, 10);
    }
  });

  it('handles -Infinity logits (masked tokens) without NaN', () => {
    const lg = [-Infinity, 1, -Infinity, 1];
    const f = frequencies(lg, { temperature: 1, topK: 0, topP: 1 }, 4000);
    expect(f[0] + f[2]).toBe(0);
    expect(Math.abs(f[1] - 0.5)).toBeLessThan(0.05);
  });
});
