// kernels/encoder.cu: token + position embedding, forward and the deterministic bucketed
// backward, against src/reference/encoder.ts.
//
// Every comparison is exact. The forward is one f32 add per element (rounded once to the
// dtype, as roundBf16 of the reference's f32 result). The backward starts each gradient row
// from the value already there and adds its positions one at a time in ascending order,
// which is the reference's loop, so the f32 sums round identically; in bf16 only dout is
// rounded (on upload), and the reference gets the same rounded dout.
import { expect, it } from 'vitest';
import { encoderBackward, encoderForward } from '../../src/reference/encoder.ts';
import { expectClose } from '../helpers/expect-close.ts';
import { DT, describeCuda, randomFloats, randomInts, roundBf16, type CudaHarness } from './helpers.ts';

const EXACT = { rtol: 0, atol: 0 };

interface Shape {
  B: number;
  T: number;
  C: number;
  V: number;
  maxT: number;
  /** Token ids, with repeats and hot tokens where the case is about them. */
  inp: Int32Array;
}

function shape(B: number, T: number, C: number, V: number, seed: number, hot?: number): Shape {
  const inp = randomInts(B * T, V, seed);
  // A hot token: most positions, spread over every batch row, so one bucket is long.
  if (hot !== undefined) for (let i = 0; i < inp.length; i++) if (i % 3 !== 1) inp[i] = hot;
  return { B, T, C, V, maxT: T + 2, inp };
}

// Odd channel counts (scalar paths, tails), multiples of both vector widths (4 f32, 8 bf16),
// V = 1 (every position the same token), and a hot token among rare ones.
const SHAPES: [string, Shape][] = [
  ['B=1 T=1 C=1 V=1', shape(1, 1, 1, 1, 1)],
  ['B=2 T=3 C=7 V=5', shape(2, 3, 7, 5, 2)],
  ['B=3 T=5 C=33 V=9, hot token', shape(3, 5, 33, 9, 3, 4)],
  ['B=2 T=4 C=130 V=1', shape(2, 4, 130, 1, 4)],
  ['B=2 T=7 C=24 V=6 (vector path)', shape(2, 7, 24, 6, 5)],
  ['B=2 T=2 C=2056 V=3, hot token (vector path, several column tiles)', shape(2, 2, 2056, 3, 6, 0)],
];

const DTYPES = ['f32', 'bf16'] as const;
type DtypeName = (typeof DTYPES)[number];
const asAct = (x: Float32Array, dt: DtypeName) => (dt === 'bf16' ? roundBf16(x) : x);

function forward(h: CudaHarness, s: Shape, dt: DtypeName, wte: Float32Array, wpe: Float32Array): Float32Array {
  const out = new Float32Array(s.B * s.T * s.C).fill(NaN);
  h.kernel('encoderForward', [out, s.inp, wte, wpe], [DT[dt], s.B, s.T, s.C]);
  return out;
}

function backward(h: CudaHarness, s: Shape, dt: DtypeName, dwte0: Float32Array, dwpe0: Float32Array, dout: Float32Array) {
  const dwte = dwte0.slice();
  const dwpe = dwpe0.slice();
  h.kernel('encoderBackward', [dwte, dwpe, dout, s.inp], [DT[dt], s.B, s.T, s.C]);
  return { dwte, dwpe };
}

describeCuda('encoder', (h) => {
  for (const [name, s] of SHAPES) {
    for (const dt of DTYPES) {
      it(`forward ${name} ${dt}`, () => {
        const wte = randomFloats(s.V * s.C, 10);
        const wpe = randomFloats(s.maxT * s.C, 11);
        const got = forward(h, s, dt, wte, wpe);
        const want = new Float32Array(got.length);
        encoderForward(want, s.inp, wte, wpe, s.B, s.T, s.C);
        expectClose(got, asAct(want, dt), EXACT, 'out');
      });

      it(`backward ${name} ${dt}: accumulates, bit for bit the reference's sums`, () => {
        const dwte0 = randomFloats(s.V * s.C, 20);
        const dwpe0 = randomFloats(s.maxT * s.C, 21);
        const dout = randomFloats(s.B * s.T * s.C, 22);
        const got = backward(h, s, dt, dwte0, dwpe0, dout);
        const dwte = dwte0.slice();
        const dwpe = dwpe0.slice();
        encoderBackward(dwte, dwpe, asAct(dout, dt), s.inp, s.B, s.T, s.C);
        expectClose(got.dwte, dwte, EXACT, 'dwte');
        expectClose(got.dwpe, dwpe, EXACT, 'dwpe');
        // Rows of tokens absent from the batch, and positions >= T, keep their values.
        expect(got.dwpe.subarray(s.T * s.C)).toEqual(dwpe0.subarray(s.T * s.C));
      });
    }
  }

  it('backward is bit-identical on a second run (bf16, hot token)', () => {
    const s = SHAPES[2][1];
    const dwte0 = randomFloats(s.V * s.C, 30);
    const dwpe0 = randomFloats(s.maxT * s.C, 31);
    const dout = randomFloats(s.B * s.T * s.C, 32, 100);
    const a = backward(h, s, 'bf16', dwte0, dwpe0, dout);
    const b = backward(h, s, 'bf16', dwte0, dwpe0, dout);
    expect(new Uint32Array(a.dwte.buffer)).toEqual(new Uint32Array(b.dwte.buffer));
    expect(new Uint32Array(a.dwpe.buffer)).toEqual(new Uint32Array(b.dwpe.buffer));
  });

  it('buckets: each distinct token once, its positions ascending, largest bucket first', () => {
    const inp = Int32Array.from([5, 2, 5, 7, 2, 5, 0, 7, 5, 3]);
    const n = inp.length;
    const tokens = new Int32Array(n);
    const starts = new Int32Array(n + 1);
    const positions = new Int32Array(n);
    h.kernel('encoderBuckets', [inp, tokens, starts, positions], []);
    const distinct = 5;
    expect(Array.from(tokens.subarray(0, distinct))).toEqual([5, 2, 7, 0, 3]);
    expect(Array.from(starts.subarray(0, distinct + 1))).toEqual([0, 4, 6, 8, 9, 10]);
    expect(Array.from(positions)).toEqual([0, 2, 5, 8, 1, 4, 3, 7, 6, 9]);
    expect(tokens[distinct]).toBe(-1);
  });
});
