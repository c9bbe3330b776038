// kernels/gelu.cu: GELU (tanh approximation) forward and backward against
// src/reference/gelu.ts (which computes in f64). The kernel's backward WRITES dinp; the
// reference accumulates, so it runs on zeros.
//
// f32: 1e-5 relative. bf16: the reference in f32 on bf16-rounded inputs; the kernel's
// bf16 store is within half a bf16 ulp (2^-8 relative) of it, so rtol 4e-3.
import { expect, it } from 'vitest';
import { geluBackward, geluForward } from '../../src/reference/gelu.ts';
import { expectClose, type Tolerance } from '../helpers/expect-close.ts';
import { DT, describeCuda, randomFloats, roundBf16, type CudaHarness } from './helpers.ts';

const DTYPES = ['f32', 'bf16'] as const;
type DtypeName = (typeof DTYPES)[number];
const TOL: Record<DtypeName, Tolerance> = { f32: { rtol: 1e-5, atol: 1e-6 }, bf16: { rtol: 4e-3, atol: 1e-6 } };
const asAct = (x: Float32Array, dt: DtypeName) => (dt === 'bf16' ? roundBf16(x) : x);

// Around the vector widths (4 f32, 8 bf16 per thread) and one block (256 threads).
const SIZES = [1, 5, 17, 33, 130, 2051];

/** Inputs over [-5, 5] plus the edges: zeros, the saturated tails, tiny values. */
function inputs(n: number, seed: number): Float32Array {
  const x = randomFloats(n, seed, 5);
  const special = [-0.75, 0, -0, -20, 20, -9, 1e-3, -1e-3, 3];
  for (let i = 0; i < Math.min(n, special.length); i++) x[(i * 7) % n] = special[i];
  return x;
}

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

function backward(h: CudaHarness, x: Float32Array, dout: Float32Array, dt: DtypeName, v: Variant): Float32Array {
  const dinp = new Float32Array(x.length).fill(123);
  h.kernel('geluBackward', [dinp, x, dout], [DT[dt], v.inPlace ? 1 : 0, v.misalign ? 1 : 0]);
  return dinp;
}

describeCuda('gelu', (h) => {
  for (const n of SIZES) {
    for (const dt of DTYPES) {
      for (const v of VARIANTS(n)) {
        it(`forward N=${n} ${dt}${label(v)}`, () => {
          const x = asAct(inputs(n, n), dt);
          const out = new Float32Array(n).fill(NaN);
          h.kernel('geluForward', [out, x], [DT[dt], v.inPlace ? 1 : 0, v.misalign ? 1 : 0]);
          const want = new Float32Array(n);
          geluForward(want, x, n);
          expectClose(out, want, TOL[dt], 'out');
        });

        it(`backward N=${n} ${dt}${label(v)}: dinp written`, () => {
          const x = asAct(inputs(n, n + 1), dt);
          const dout = asAct(randomFloats(n, n + 2, 2), dt);
          const got = backward(h, x, dout, dt, v);
          const want = new Float32Array(n);
          geluBackward(want, x, dout, n);
          expectClose(got, want, TOL[dt], 'dinp');
        });
      }
    }
  }

  it('saturated tails are exact: gelu(-20) = -0, gelu(20) = 20, gelu\'(+-20) = 1, 0', () => {
    const x = Float32Array.from([-20, 20, -1e30, 1e30]);
    const out = new Float32Array(4);
    h.kernel('geluForward', [out, x], [DT.f32]);
    expect(Array.from(out)).toEqual([-0, 20, -0, 1e30].map(Math.fround));
    const d = backward(h, x, new Float32Array(4).fill(1), 'f32', { inPlace: false, misalign: false });
    expect(Math.abs(d[0])).toBeLessThan(1e-30);
    expect(d[1]).toBe(1);
    expect(Math.abs(d[2])).toBeLessThan(1e-30);
    expect(d[3]).toBe(1);
  });
});
