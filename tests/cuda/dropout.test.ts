// kernels/dropout.cu against src/core/dropout.ts and src/reference/dropout.ts, bit for bit:
// the host helpers (keys, thresholds, scales), the device's masks, and the forward and
// backward products (one f32 multiply rounded once to the dtype, as the reference rounds
// its f64 product of two f32 values: the same number). The kernel's backward WRITES dinp;
// the reference accumulates, so it runs on zeros.
import { expect, it } from 'vitest';
import { dropoutKeep, dropoutKey, dropoutScale, dropoutThreshold, lowbias32 } from '../../src/core/dropout.ts';
import { dropoutBackward, dropoutForward } from '../../src/reference/dropout.ts';
import { Rng } from '../../src/core/rng.ts';
import { expectClose } from '../helpers/expect-close.ts';
import { DT, describeCuda, randomFloats, roundBf16, type CudaHarness } from './helpers.ts';

const EXACT = { rtol: 0, atol: 0 };
const DTYPES = ['f32', 'bf16'] as const;
type DtypeName = (typeof DTYPES)[number];
const asAct = (x: Float32Array, dt: DtypeName) => (dt === 'bf16' ? roundBf16(x) : x);
const bitsOf = (x: Float32Array) => Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length));

// Around the vector widths (4 f32, 8 bf16 per thread) and one block (256 threads).
const SIZES = [1, 5, 17, 33, 130, 2051];
const KEY = dropoutKey(lowbias32(12345), 1, 4);

interface Variant {
  inPlace: boolean;
  misalign: boolean;
}
const VARIANTS = (n: number): Variant[] =>
  n >= 130
    ? [
        { inPlace: false, misalign: false },
        { inPlace: true, misalign: false },
        { inPlace: false, misalign: true },
      ]
    : [{ inPlace: false, misalign: false }];
const label = (v: Variant) => `${v.inPlace ? ', in place' : ''}${v.misalign ? ', misaligned' : ''}`;

function run(h: CudaHarness, name: string, x: Float32Array, dt: DtypeName, p: number, key: number, v: Variant): Float32Array {
  const out = new Float32Array(x.length).fill(123);
  h.kernel(name, [out, x], [DT[dt], p, key, v.inPlace ? 1 : 0, v.misalign ? 1 : 0]);
  return out;
}

describeCuda('dropout', (h) => {
  it('dropoutKey equals src/core/dropout.ts', () => {
    const rng = new Rng(7);
    const seeds: number[] = [0, 0xffffffff, 1, 0x80000000];
    const mbs: number[] = [0, 3, 0xffff, 0x10001];
    const sites: number[] = [0, 1, 100, -1];
    for (let i = 0; i < 60; i++) {
      seeds.push(rng.int(0x7fffffff) * 2 + rng.int(2));
      mbs.push(rng.int(8));
      sites.push(rng.int(40));
    }
    const keys = new Uint32Array(seeds.length);
    h.kernel('dropoutKey', [keys, Uint32Array.from(seeds), Int32Array.from(mbs), Int32Array.from(sites)], []);
    expect(Array.from(keys)).toEqual(seeds.map((s, i) => dropoutKey(s, mbs[i], sites[i])));
  });

  it('thresholds and scales equal src/core/dropout.ts for doubles that are not f32s', () => {
    // 0.1, 0.2, 1/3: not f32 values (an f32 p would round to another threshold); 1.5/2^32
    // sits on a .5 tie; the next one just below a tie, where floor(x + 0.5) rounds wrongly.
    const ps = [0, 0.1, 0.2, 1 / 3, 0.5, 0.9, 0.999, 1e-10, 1.5 / 2 ** 32, 0.49999999999999994 / 2 ** 32, 1 - 2 ** -40, 1];
    const thresholds = new Uint32Array(ps.length);
    const scales = new Float32Array(ps.length);
    h.kernel('dropoutThresholdScale', [thresholds, scales], ps);
    expect(Array.from(thresholds)).toEqual(ps.map(dropoutThreshold));
    expect(bitsOf(scales)).toEqual(bitsOf(Float32Array.from(ps.map(dropoutScale))));
    expect(thresholds[1]).toBe(429496730);
  });

  for (const [p, key] of [
    [0.1, KEY],
    [0.5, dropoutKey(0, 0, 0)],
    [0.9, 0xffffffff],
    [0, KEY],
  ] as const) {
    it(`device mask equals dropoutKeep (p=${p}, key=${key})`, () => {
      const n = 4099;
      const keep = new Uint32Array(n).fill(7);
      h.kernel('dropoutMask', [keep], [p, key]);
      const threshold = dropoutThreshold(p);
      const want = Array.from({ length: n }, (_, i) => (dropoutKeep(key, i, threshold) ? 1 : 0));
      expect(Array.from(keep)).toEqual(want);
      // And the mask is a real one: about 1 - p kept.
      const kept = want.reduce((a: number, b) => a + b, 0) / n;
      expect(Math.abs(kept - (1 - p))).toBeLessThan(0.05);
    });
  }

  for (const n of SIZES) {
    for (const dt of DTYPES) {
      for (const v of VARIANTS(n)) {
        it(`forward N=${n} ${dt}${label(v)}`, () => {
          const x = asAct(randomFloats(n, n, 3), dt);
          const got = run(h, 'dropoutForward', x, dt, 0.3, KEY, v);
          const want = new Float32Array(n);
          dropoutForward(want, x, n, { p: 0.3, key: KEY });
          expectClose(got, asAct(want, dt), EXACT, 'out');
          // Signs of zeros too (a dropped negative is -0 on both sides).
          expect(bitsOf(got)).toEqual(bitsOf(asAct(want, dt)));
        });

        it(`backward N=${n} ${dt}${label(v)}: dinp written`, () => {
          const dout = asAct(randomFloats(n, n + 1, 2), dt);
          const got = run(h, 'dropoutBackward', dout, dt, 0.2, KEY, v);
          const want = new Float32Array(n);
          dropoutBackward(want, dout, n, { p: 0.2, key: KEY });
          // Value equality: the reference's += on zeros turns a dropped -0 into +0.
          expectClose(got, asAct(want, dt), EXACT, 'dinp');
        });
      }
    }
  }

  it('p = 0 is the identity, copied or in place', () => {
    for (const dt of DTYPES) {
      for (const inPlace of [false, true]) {
        const x = asAct(randomFloats(37, 5), dt);
        const v = { inPlace, misalign: false };
        expect(bitsOf(run(h, 'dropoutForward', x, dt, 0, KEY, v))).toEqual(bitsOf(x));
        expect(bitsOf(run(h, 'dropoutBackward', x, dt, 0, KEY, v))).toEqual(bitsOf(x));
      }
    }
  });
});
