// kernels/attention.cu's flash-style causal attention, forward and backward, against
// src/reference/attention.ts (in f64, on the values the device holds), with and without
// dropout on the probabilities.
import { expect, it } from 'vitest';
import { attentionBackward, attentionForward } from '../../src/reference/attention.ts';
import type { DropoutMask } from '../../src/reference/dropout.ts';
import { expectClose, type Tolerance } from '../helpers/expect-close.ts';
import { DT, describeCuda, randomFloats, roundBf16, type CudaHarness } from './helpers.ts';

interface Shape {
  B: number;
  T: number;
  C: number;
  NH: number;
}

// The SIMT kernels tile 64 rows by 32 streamed rows and compile for head sizes 8, 16, 32,
// 64, 128 (others zero-padded up to the next); the tensor-core ones (bf16, head size 64 or
// 128) tile 64 rows by 64 keys forward and 64 (hs 64) or 32 (hs 128) rows backward. These
// cover: one element; head sizes 4, 5 and 12 (padded), 8, 16, 64, 128 (exact); T below,
// across and past one tile of each (17, 33, 40, 70: two row tiles and two or three
// streamed ones, the last of each partial).
const SHAPES: Shape[] = [
  { B: 1, T: 1, C: 8, NH: 1 },
  { B: 2, T: 5, C: 12, NH: 3 },
  { B: 2, T: 3, C: 10, NH: 2 },
  { B: 1, T: 7, C: 36, NH: 3 },
  { B: 2, T: 17, C: 32, NH: 2 },
  { B: 1, T: 33, C: 128, NH: 2 },
  { B: 1, T: 70, C: 40, NH: 5 },
  { B: 1, T: 9, C: 256, NH: 2 },
  { B: 1, T: 70, C: 128, NH: 2 },
  { B: 1, T: 40, C: 256, NH: 2 },
];

// bf16 with head size 64 or 128 runs on tensor cores by default (the entries' optional
// last number picks: 1 SIMT, 2 tensor cores); both paths are tested there.
const IMPL = { simt: 1, 'tensor-core': 2 } as const;
type Impl = keyof typeof IMPL;
function implsFor(s: Shape, bf16: boolean): (Impl | undefined)[] {
  const hs = s.C / s.NH;
  return bf16 && (hs === 64 || hs === 128) ? ['simt', 'tensor-core'] : [undefined];
}

// p = 0.25 is exact in f32, so the f32 the launchers take gives the reference's threshold;
// the key has its top bit set (unsigned all the way through).
const DROPOUT: DropoutMask = { p: 0.25, key: 0x9e3779b9 };

function inputs({ B, T, C }: Shape, bf16: boolean, seed: number) {
  // Spread 2 makes the softmax rows far from uniform, so a wrong max or sum shows.
  const qkv = randomFloats(B * T * 3 * C, seed, 2);
  const dout = randomFloats(B * T * C, seed + 1);
  return bf16 ? { qkv: roundBf16(qkv), dout: roundBf16(dout) } : { qkv, dout };
}

/** The reference in f64: out, each row's log-sum-exp of its scaled scores (preatt), and dqkv. */
function reference(qkv: Float32Array, dout: Float32Array, { B, T, C, NH }: Shape, dropout?: DropoutMask) {
  const q64 = Float64Array.from(qkv);
  const out = new Float64Array(B * T * C);
  const preatt = new Float64Array(B * NH * T * T);
  const att = new Float64Array(B * NH * T * T);
  attentionForward(out, preatt, att, q64, B, T, C, NH, dropout);
  const lse = new Float64Array(B * NH * T);
  for (let r = 0; r < B * NH * T; r++) {
    const t = r % T;
    let max = -Infinity;
    for (let t2 = 0; t2 <= t; t2++) max = Math.max(max, preatt[r * T + t2]);
    let sum = 0;
    for (let t2 = 0; t2 <= t; t2++) sum += Math.exp(preatt[r * T + t2] - max);
    lse[r] = max + Math.log(sum);
  }
  const dqkv = new Float64Array(B * T * 3 * C);
  const scratch = () => new Float64Array(B * NH * T * T);
  attentionBackward(dqkv, scratch(), scratch(), Float64Array.from(dout), q64, att, B, T, C, NH, dropout);
  return { out, lse, dqkv, att };
}

/**
 * The backward's one use of the saved out: Delta_t = dO_t . O_t (FlashAttention-2's
 * sum_t2 P dP). From an out stored in bf16 it is off by dDelta_t = dO_t . (stored - exact),
 * and dS = P (dP - Delta) by -P dDelta: this adds that to the reference's dq and dk, so
 * the bf16 comparison is left with dqkv's own rounding and stays tight.
 */
function storedOutCorrection(
  dqkv: Float64Array, att: Float64Array, qkv: Float32Array, dout: Float32Array, stored: Float32Array, exact: Float64Array,
  { B, T, C, NH }: Shape,
): void {
  const HS = C / NH;
  const scale = 1 / Math.sqrt(HS);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < NH; h++)
      for (let t = 0; t < T; t++) {
        const o = (b * T + t) * C + h * HS;
        let dDelta = 0;
        for (let i = 0; i < HS; i++) dDelta += dout[o + i] * (stored[o + i] - exact[o + i]);
        const row = ((b * NH + h) * T + t) * T;
        const q = (b * T + t) * 3 * C + h * HS;
        for (let t2 = 0; t2 <= t; t2++) {
          const d = -att[row + t2] * dDelta * scale;
          const k = (b * T + t2) * 3 * C + C + h * HS;
          for (let i = 0; i < HS; i++) {
            dqkv[q + i] += d * qkv[k + i];
            dqkv[k + i] += d * qkv[q + i];
          }
        }
      }
}

function nums(dtype: number, { B, T, C, NH }: Shape, dropout?: DropoutMask, impl?: Impl): number[] {
  const n = [dtype, B, T, C, NH, dropout?.p ?? 0, dropout?.key ?? 0];
  return impl ? [...n, IMPL[impl]] : n;
}

function forward(h: CudaHarness, dtype: number, s: Shape, qkv: Float32Array, dropout?: DropoutMask, impl?: Impl) {
  const out = new Float32Array(s.B * s.T * s.C).fill(Number.NaN);
  const lse = new Float32Array(s.B * s.NH * s.T).fill(Number.NaN);
  h.kernel('attentionForward', [out, lse, qkv], nums(dtype, s, dropout, impl));
  return { out, lse };
}

function backward(
  h: CudaHarness, dtype: number, s: Shape, dout: Float32Array, qkv: Float32Array, out: Float32Array, lse: Float32Array,
  dropout?: DropoutMask, impl?: Impl,
) {
  // NaN where nothing was written: every element of dqkv must be.
  const dqkv = new Float32Array(s.B * s.T * 3 * s.C).fill(Number.NaN);
  h.kernel('attentionBackward', [dqkv, dout, qkv, out, lse], nums(dtype, s, dropout, impl));
  return dqkv;
}

const maxAbs = (x: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]));
  return m;
};
/** rtol, and an atol that is a fraction of the array's largest magnitude (for the elements that cancel to near 0). */
const tol = (ref: ArrayLike<number>, rtol: number, frac: number): Tolerance => ({ rtol, atol: frac * maxAbs(ref) });
const bits = (x: Float32Array) => Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length));

describeCuda('attention', (h) => {
  for (const dtName of ['f32', 'bf16'] as const) {
    const bf16 = dtName === 'bf16';
    const dt = DT[dtName];
    for (const s of SHAPES) {
      for (const impl of implsFor(s, bf16)) {
        for (const dropout of [undefined, DROPOUT]) {
          const label =
            `${dtName} B=${s.B} T=${s.T} C=${s.C} NH=${s.NH} (hs ${s.C / s.NH})` +
            (impl ? ` ${impl}` : '') +
            (dropout ? ` dropout ${dropout.p}` : '');
          const seed = s.B * 1000 + s.T * 10 + s.C + (dropout ? 7 : 0);
          // The tensor cores take P and dS rounded to bf16 (FlashAttention-2's choice):
          // about 2^-9 relative on each term of out and dqkv on top of the final rounding.
          const tc = impl === 'tensor-core';
          const outTol = (ref: Float64Array) => (!bf16 ? tol(ref, 1e-5, 1e-6) : tc ? tol(ref, 1e-2, 2e-3) : tol(ref, 5e-3, 1e-4));
          const gradTol = (ref: Float64Array) => (!bf16 ? tol(ref, 1e-4, 1e-6) : tc ? tol(ref, 1e-2, 3e-3) : tol(ref, 5e-3, 1e-4));

          it(`forward ${label}`, () => {
            const { qkv, dout } = inputs(s, bf16, seed);
            const ref = reference(qkv, dout, s, dropout);
            const got = forward(h, dt, s, qkv, dropout, impl);
            // bf16: f32 arithmetic on the same rounded inputs, then out rounded once (2^-9);
            // lse stays f32 and as tight as in f32.
            expectClose(got.out, ref.out, outTol(ref.out), 'out');
            expectClose(got.lse, ref.lse, { rtol: 1e-5, atol: 1e-6 }, 'lse');
          });

          it(`backward ${label}`, () => {
            const { qkv, dout } = inputs(s, bf16, seed);
            const ref = reference(qkv, dout, s, dropout);
            // The saved tensors the forward hands over: out in the run's dtype, lse in f32.
            const out = Float32Array.from(ref.out);
            const lse = Float32Array.from(ref.lse);
            const stored = bf16 ? roundBf16(out) : out;
            const got = backward(h, dt, s, dout, qkv, stored, lse, dropout, impl);
            storedOutCorrection(ref.dqkv, ref.att, qkv, dout, stored, ref.out, s);
            // bf16: f32 arithmetic on the rounded inputs, dqkv rounded once (2^-9); the
            // elements that cancel to near 0 get an atol, a fraction of the largest.
            expectClose(got, ref.dqkv, gradTol(ref.dqkv), 'dqkv');
          });
        }
      }
    }

    for (const s of [{ B: 1, T: 70, C: 40, NH: 5 }, { B: 2, T: 70, C: 128, NH: 1 }]) {
      const label = `${dtName} B=${s.B} T=${s.T} C=${s.C} NH=${s.NH}`;
      it(`${label}: forward then backward on the kernel's own saved tensors, twice: the same bits`, () => {
        const { qkv, dout } = inputs(s, bf16, 5);
        const ref = reference(qkv, dout, s, DROPOUT);
        const first = forward(h, dt, s, qkv, DROPOUT);
        const dqkv = backward(h, dt, s, dout, qkv, first.out, first.lse, DROPOUT);
        storedOutCorrection(ref.dqkv, ref.att, qkv, dout, first.out, ref.out, s);
        const tc = bf16 && s.C / s.NH === 128;
        expectClose(dqkv, ref.dqkv, !bf16 ? tol(ref.dqkv, 1e-4, 1e-6) : tc ? tol(ref.dqkv, 1e-2, 3e-3) : tol(ref.dqkv, 5e-3, 1e-4), 'dqkv');
        const again = forward(h, dt, s, qkv, DROPOUT);
        expect(bits(again.out)).toEqual(bits(first.out));
        expect(bits(again.lse)).toEqual(bits(first.lse));
        expect(bits(backward(h, dt, s, dout, qkv, again.out, again.lse, DROPOUT))).toEqual(bits(dqkv));
      });
    }
  }

  it('rejects a head size above 128, and tensor cores where they do not apply', () => {
    const s: Shape = { B: 1, T: 2, C: 258, NH: 1 };
    expect(() => forward(h, DT.f32, s, new Float32Array(s.B * s.T * 3 * s.C))).toThrow(/head size 258/);
    const f: Shape = { B: 1, T: 2, C: 64, NH: 1 };
    expect(() => forward(h, DT.f32, f, new Float32Array(f.B * f.T * 3 * f.C), undefined, 'tensor-core')).toThrow(/tensor-core/);
    const odd: Shape = { B: 1, T: 2, C: 48, NH: 1 };
    expect(() => forward(h, DT.bf16, odd, new Float32Array(odd.B * odd.T * 3 * odd.C), undefined, 'tensor-core')).toThrow(/tensor-core/);
  });
});
