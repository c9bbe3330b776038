// The charts' smoothing is TensorBoard's debiased EMA (DESIGN.md, "Facts for building the
// lab"): no start-up dip towards 0, non-finite points skipped; and axis ranges a log scale
// can take.
import { describe, expect, it } from 'vitest';
import { DebiasedEma, clampSmoothing, debiasedEma, floorSignificant, paddedRange, stepRange } from '../../src/ui/smoothing.ts';
import { expectClose } from '../helpers/expect-close.ts';

describe('debiasedEma', () => {
  it('matches a hand-computed 3-point example (w = 0.5)', () => {
    // last: 0.5, 1.25, 2.125; divided by 1 - 0.5^n: 0.5, 0.75, 0.875.
    expectClose(debiasedEma([1, 2, 3], 0.5), [1, 1.25 / 0.75, 2.125 / 0.875], { rtol: 1e-14, atol: 0 });
  });

  it('starts at the first raw point, with no dip towards 0', () => {
    for (const w of [0.1, 0.6, 0.9, 0.99, 0.999]) {
      const s = debiasedEma([4.17, 4.1, 4.0], w);
      expect(s[0]).toBeCloseTo(4.17, 12);
      expect(s[1]).toBeGreaterThan(4.1 - 1e-12);
    }
  });

  it('keeps a constant series constant', () => {
    const s = debiasedEma(new Float64Array(10_000).fill(2.5), 0.999);
    for (const v of s) expect(v).toBeCloseTo(2.5, 9);
  });

  it('skips non-finite points: NaN there, and the average goes on as if they were absent', () => {
    const s = debiasedEma([1, NaN, 2, Infinity, -Infinity, 3], 0.5);
    const clean = debiasedEma([1, 2, 3], 0.5);
    expect(Number.isNaN(s[1]) && Number.isNaN(s[3]) && Number.isNaN(s[4])).toBe(true);
    expectClose([s[0], s[2], s[5]], clean, { rtol: 1e-15, atol: 0 });
  });

  it('returns the input for w = 0', () => {
    const ys = [3.1, 2.7, 2.9, 1.2345678901234];
    expect(Array.from(debiasedEma(ys, 0))).toEqual(ys);
  });

  it('clamps the weight to [0, 0.999]', () => {
    expect(clampSmoothing(-1)).toBe(0);
    expect(clampSmoothing(1)).toBe(0.999);
    expect(clampSmoothing(NaN)).toBe(0);
    expect(new DebiasedEma(5).w).toBe(0.999);
  });

  it('gives the same numbers one point at a time as over the whole series', () => {
    const ys = Array.from({ length: 500 }, (_, i) => 3 * Math.exp(-i / 100) + 0.1 * Math.sin(i));
    const ema = new DebiasedEma(0.9);
    expect(ys.map((y) => ema.push(y))).toEqual(Array.from(debiasedEma(ys, 0.9)));
  });
});

describe('paddedRange', () => {
  it('pads a linear range by 5% of its span and keeps reference lines in view', () => {
    expect(paddedRange(1, 3, false)).toEqual([0.9, 3.1]);
    const [lo, hi] = paddedRange(2, 4, false, [1.4697]);
    expect(lo).toBeLessThan(1.4697);
    expect(hi).toBeGreaterThan(4);
  });

  it('stays positive on a log axis, ignoring values a log cannot take', () => {
    const [lo, hi] = paddedRange(-1, 10, true, [0, 1]);
    expect(lo).toBeGreaterThan(0);
    expect(lo).toBeLessThan(1);
    expect(hi).toBeGreaterThan(10);
    // The padding is a ratio (then the bottom rounds down to two significant digits).
    expect(lo).toBe(0.89); // 1 / 10^0.05 = 0.891
    expect(hi).toBeCloseTo(10 * Math.pow(10, 0.05), 12);
  });

  it('starts a log axis on a value with two significant digits (where uPlot puts its first tick)', () => {
    expect(paddedRange(1.2, 4.5, true)[0]).toBe(1.1);
    expect(paddedRange(0.0123, 0.02, true)[0]).toBe(0.012);
  });

  it('opens up a single value and answers something drawable for no data', () => {
    const [lo, hi] = paddedRange(2, 2, false);
    expect(lo).toBeLessThan(2);
    expect(hi).toBeGreaterThan(2);
    expect(paddedRange(null, null, false)).toEqual([0, 1]);
    expect(paddedRange(NaN, NaN, true)).toEqual([1, 10]);
  });
});

describe('floorSignificant', () => {
  it('rounds down, and keeps values already round', () => {
    expect(floorSignificant(1.117, 2)).toBe(1.1);
    expect(floorSignificant(1.1, 2)).toBe(1.1);
    expect(floorSignificant(0.000687, 1)).toBe(0.0006);
    expect(floorSignificant(98765, 2)).toBe(98000);
  });
});

describe('stepRange', () => {
  it('runs from the first to the last step, and has a span before there is one', () => {
    expect(stepRange(1, 5000, false)).toEqual([1, 5000]);
    expect(stepRange(null, null, false)).toEqual([0, 100]);
    expect(stepRange(null, null, true)).toEqual([1, 10]);
    expect(stepRange(7, 7, false)).toEqual([7, 107]);
    expect(stepRange(0, 100, true)[0]).toBeGreaterThan(0);
    // Before the first step, the steps the settings ask for.
    expect(stepRange(null, null, false, 300)).toEqual([0, 300]);
    expect(stepRange(null, null, true, 300)).toEqual([1, 300]);
    expect(stepRange(1, 5000, false, 300)).toEqual([1, 5000]);
  });
});
