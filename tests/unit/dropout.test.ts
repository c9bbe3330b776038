// Dropout (src/core/dropout.ts masks, src/reference/dropout.ts ops, and where the
// reference GPT applies it): masks drop a fraction p, differ per key and repeat per key;
// kept elements are scaled by 1/(1-p); gradients through masked attention and through the
// whole model with dropout on match finite differences (a fixed key is a fixed mask).
import { describe, expect, it } from 'vitest';
import { dropoutKeep, dropoutKey, dropoutScale, dropoutStepSeed, dropoutThreshold, lowbias32 } from '../../src/core/dropout.ts';
import type { ModelConfig } from '../../src/core/model-spec.ts';
import { attentionBackward, attentionForward } from '../../src/reference/attention.ts';
import { dropoutBackward, dropoutForward } from '../../src/reference/dropout.ts';
import { ReferenceGPT, type GPTDropout } from '../../src/reference/gpt.ts';
import { compareClose } from '../helpers/expect-close.ts';
import { checkGradients, filled, numericGrad, randn, randTokens, Rng, weightedSum } from '../helpers/finite-diff.ts';
import { testParams } from '../helpers/gpt-params.ts';

function keptFraction(key: number, p: number, n: number): number {
  const t = dropoutThreshold(p);
  let kept = 0;
  for (let i = 0; i < n; i++) if (dropoutKeep(key, i, t)) kept++;
  return kept / n;
}

describe('dropout masks', () => {
  it('lowbias32 is a u32 permutation-style hash: in range, spreads neighbours', () => {
    const seen = new Set<number>();
    for (let i = 0; i < 1000; i++) {
      const h = lowbias32(i);
      expect(h).toBeGreaterThanOrEqual(0);
      expect(h).toBeLessThan(2 ** 32);
      expect(Number.isInteger(h)).toBe(true);
      seen.add(h);
    }
    expect(seen.size).toBe(1000);
  });

  it('drops a fraction p of elements (p 0.1, 0.5), none at p 0', () => {
    for (const p of [0.1, 0.5]) {
      for (const key of [dropoutKey(1, 0, 0), dropoutKey(dropoutStepSeed(7, 3), 2, 5)]) {
        expect(Math.abs(1 - keptFraction(key, p, 200_000) - p)).toBeLessThan(0.005);
      }
    }
    expect(keptFraction(dropoutKey(1, 0, 0), 0, 10_000)).toBe(1);
  });

  it('masks repeat for a key and differ between steps, micro-batches and sites', () => {
    const t = dropoutThreshold(0.5);
    const mask = (key: number) => Array.from({ length: 4096 }, (_, i) => dropoutKeep(key, i, t));
    const base = dropoutKey(dropoutStepSeed(1337, 10), 0, 1);
    expect(mask(base)).toEqual(mask(dropoutKey(dropoutStepSeed(1337, 10), 0, 1)));
    const others = [
      dropoutKey(dropoutStepSeed(1337, 11), 0, 1), dropoutKey(dropoutStepSeed(1337, 10), 1, 1),
      dropoutKey(dropoutStepSeed(1337, 10), 0, 2), dropoutKey(dropoutStepSeed(1338, 10), 0, 1),
    ];
    const a = mask(base);
    for (const k of others) {
      const b = mask(k);
      const agree = a.filter((x, i) => x === b[i]).length / a.length;
      // Independent fair masks agree on about half the elements.
      expect(Math.abs(agree - 0.5)).toBeLessThan(0.05);
    }
  });

  it('dropoutForward zeroes dropped elements and scales kept ones; backward accumulates the same mask', () => {
    const n = 1000;
    const x = randn(n, new Rng(1));
    const out = new Float64Array(n);
    const mask = { p: 0.3, key: 12345 };
    dropoutForward(out, x, n, mask);
    const t = dropoutThreshold(0.3);
    const s = dropoutScale(0.3);
    expect(s).toBe(Math.fround(1 / 0.7));
    for (let i = 0; i < n; i++) expect(out[i]).toBe(x[i] * (dropoutKeep(12345, i, t) ? s : 0));
    const dx = new Float64Array(n).fill(2);
    const dout = randn(n, new Rng(2));
    dropoutBackward(dx, dout, n, mask);
    for (let i = 0; i < n; i++) expect(dx[i]).toBe(2 + dout[i] * (dropoutKeep(12345, i, t) ? s : 0));
  });
});

describe('attention with dropout', () => {
  const B = 2, T = 4, C = 6, NH = 2;
  const mask = { p: 0.4, key: dropoutKey(99, 0, 1) };

  it('gradients match finite differences; the output uses the dropped probabilities', () => {
    const rng = new Rng(3);
    const qkv = randn(B * T * 3 * C, rng);
    const w = randn(B * T * C, rng);
    const fwd = (x: Float64Array, m = mask) => {
      const out = new Float64Array(B * T * C);
      attentionForward(out, new Float64Array(B * NH * T * T), new Float64Array(B * NH * T * T), x, B, T, C, NH, m);
      return out;
    };
    checkGradients('attention (dropout 0.4)', {
      inputs: { qkv },
      loss: () => weightedSum(fwd(qkv), w),
      backward: (prior) => {
        const att = new Float64Array(B * NH * T * T);
        attentionForward(new Float64Array(B * T * C), new Float64Array(B * NH * T * T), att, qkv, B, T, C, NH, mask);
        const dqkv = filled(B * T * 3 * C, prior);
        attentionBackward(dqkv, new Float64Array(B * NH * T * T), new Float64Array(B * NH * T * T), w, qkv, att, B, T, C, NH, mask);
        return { qkv: dqkv };
      },
    });
    // A mask that drops something changes the output; p 0 is the plain attention.
    expect(compareClose(fwd(qkv), fwd(qkv, { p: 0, key: mask.key }), { rtol: 1e-3 }).ok).toBe(false);
    const plain = new Float64Array(B * T * C);
    attentionForward(plain, new Float64Array(B * NH * T * T), new Float64Array(B * NH * T * T), qkv, B, T, C, NH);
    expect(Array.from(fwd(qkv, { p: 0, key: mask.key }))).toEqual(Array.from(plain));
  });
});

describe('ReferenceGPT with dropout', () => {
  const MODEL: ModelConfig = { vocabSize: 7, blockSize: 5, nLayer: 2, nHead: 2, nEmbd: 8 };
  const B = 2, T = 5;

  it('every parameter gradient matches finite differences with dropout 0.3 at every site (f64)', () => {
    const rng = new Rng(21);
    const gpt = new ReferenceGPT(MODEL, testParams(MODEL, 1), { maxBatch: B, dtype: 'f64' });
    const inputs = randTokens(B * T, MODEL.vocabSize, rng);
    const targets = randTokens(B * T, MODEL.vocabSize, rng);
    const drop: GPTDropout = { p: 0.3, seed: dropoutStepSeed(5, 2), microBatch: 1 };
    gpt.zeroGrad();
    gpt.forward(inputs, targets, B, T, drop);
    gpt.backward(1);
    const analytic = Float64Array.from(gpt.grads);
    const numeric = numericGrad(gpt.params, () => gpt.forward(inputs, targets, B, T, drop), 1e-5);
    const failures: string[] = [];
    for (const p of gpt.spec.params) {
      const r = compareClose(analytic.subarray(p.offset, p.offset + p.size), numeric.subarray(p.offset, p.offset + p.size), { rtol: 1e-6, atol: 1e-9 });
      if (!r.ok) failures.push(`${p.name}[${r.worstIndex}]: got ${r.actual}, expected ${r.expected}`);
    }
    expect(failures).toEqual([]);
  });

  it('changes the training loss, not eval; p 0 is no dropout; each site matters', () => {
    const rng = new Rng(22);
    const inputs = randTokens(B * T, MODEL.vocabSize, rng);
    const targets = randTokens(B * T, MODEL.vocabSize, rng);
    const gpt = new ReferenceGPT(MODEL, testParams(MODEL, 2), { maxBatch: B, dtype: 'f64' });
    const plain = gpt.forward(inputs, targets, B, T);
    const seed = dropoutStepSeed(1, 1);
    expect(gpt.forward(inputs, targets, B, T, { p: 0, seed, microBatch: 0 })).toBe(plain);
    const dropped = gpt.forward(inputs, targets, B, T, { p: 0.5, seed, microBatch: 0 });
    expect(Math.abs(dropped - plain)).toBeGreaterThan(1e-3);
    expect(gpt.forward(inputs, targets, B, T, { p: 0.5, seed, microBatch: 0 })).toBe(dropped);
    expect(gpt.forward(inputs, targets, B, T, { p: 0.5, seed, microBatch: 1 })).not.toBe(dropped);
    expect(gpt.forward(inputs, targets, B, T)).toBe(plain);
  });
});
