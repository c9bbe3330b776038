// kernels/convert.cu: f32 -> bf16 (round to nearest, ties to even; NaN stays NaN) and
// bf16 -> f32, bit for bit against the rounding tests/cuda/helpers.ts's roundBf16 does
// (portable.cuh's f32_to_bf16_bits), on the edges of the format and on misaligned arrays.
import { expect, it } from 'vitest';
import { describeCuda, randomFloats, roundBf16, type CudaHarness } from './helpers.ts';

const fromBits = (bits: number[]) => new Float32Array(Uint32Array.from(bits).buffer);
/** The bf16 bits roundBf16 gives: its f32 result's top half. */
const wantBits = (x: Float32Array) => Array.from(new Uint32Array(roundBf16(x).buffer), (u) => u >>> 16);

/** Rounding edges: ties both ways, just off ties, NaNs with payloads, infinities, zeros, subnormals, overflow to inf. */
const EDGES = fromBits([
  0x3f808000, // 1 + 2^-8: a tie, rounds down to even
  0x3f818000, // a tie, rounds up to even
  0x3f808001, // just above a tie: up
  0x3f807fff, // just below: down
  0x7fc00000, // quiet NaN
  0x7f800001, // signalling NaN, low payload: must stay NaN, not become inf
  0xffffffff, // negative NaN, full payload
  0x7f800000, // +inf
  0xff800000, // -inf
  0x00000000, // +0
  0x80000000, // -0
  0x00000001, // smallest subnormal
  0x807fffff, // largest negative subnormal
  0x7f7fffff, // FLT_MAX rounds to +inf
  0x7f7f7fff, // just below the largest bf16's tie: stays finite
]);

function f32ToBf16(h: CudaHarness, x: Float32Array, misalign: boolean): number[] {
  const dst = new Uint32Array(x.length).fill(0xdead);
  h.kernel('f32ToBf16', [dst, x], [misalign ? 1 : 0]);
  return Array.from(dst);
}

describeCuda('convert', (h) => {
  // Around the chunk (8 per thread) and one block (256 threads = 2048 elements).
  for (const n of [1, 7, 8, 9, 33, 2053]) {
    for (const misalign of [false, true]) {
      it(`f32 -> bf16, n=${n}${misalign ? ', misaligned' : ''}`, () => {
        const x = randomFloats(n, n, 100);
        x.set(EDGES.subarray(0, Math.min(n, EDGES.length)), 0);
        expect(f32ToBf16(h, x, misalign)).toEqual(wantBits(x));
      });
    }
  }

  it('f32 -> bf16 on the format edges (ties to even, NaN stays NaN, FLT_MAX to inf)', () => {
    const got = f32ToBf16(h, EDGES, false);
    expect(got.slice(0, 4)).toEqual([0x3f80, 0x3f82, 0x3f81, 0x3f80]);
    for (const k of [4, 5, 6]) expect((got[k] & 0x7f80) === 0x7f80 && (got[k] & 0x7f) !== 0).toBe(true);
    expect(got.slice(7)).toEqual([0x7f80, 0xff80, 0x0000, 0x8000, 0x0000, 0x8080, 0x7f80, 0x7f7f]);
    expect(got).toEqual(wantBits(EDGES));
  });

  for (const misalign of [false, true]) {
    it(`bf16 -> f32, every one of the 65536 bit patterns${misalign ? ', misaligned' : ''}`, () => {
      const n = 65536 + (misalign ? 3 : 0);
      const src = Uint32Array.from({ length: n }, (_, i) => i & 0xffff);
      const dst = new Float32Array(n).fill(NaN);
      h.kernel('bf16ToF32', [dst, src], [misalign ? 1 : 0]);
      expect(Array.from(new Uint32Array(dst.buffer))).toEqual(Array.from(src, (b) => (b << 16) >>> 0));
    });
  }
});
