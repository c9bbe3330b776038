// kernels/crossentropy.cu's fused softmax + cross-entropy (+ its backward, in place)
// against src/reference/crossentropy.ts, on rows padded past the vocabulary with garbage.
import { expect, it } from 'vitest';
import { softmaxCrossEntropyBackward, softmaxCrossEntropyForward } from '../../src/reference/crossentropy.ts';
import { expectClose } from '../helpers/expect-close.ts';
import { DT, describeCuda, randomFloats, randomInts, roundBf16, type CudaHarness } from './helpers.ts';

// What a kernel reading past V would pick up: each would wreck the max, the sum or the
// gradient if it leaked.
const GARBAGE = [1e30, Number.NaN, Number.POSITIVE_INFINITY, 3e4, Number.NEGATIVE_INFINITY];

interface Case {
  N: number;
  V: number;
  Vp: number;
  spread: number; // logits uniform in [-spread, spread)
  seed: number;
}

function makeInputs({ N, V, Vp, spread, seed }: Case, bf16: boolean) {
  const dense = randomFloats(N * V, seed, spread);
  const targets = randomInts(N, V, seed + 1);
  // Row 0's target is its argmax, so one loss is near 0 and its gradient near (p - 1) = 0.
  let arg = 0;
  for (let v = 1; v < V; v++) if (dense[v] > dense[arg]) arg = v;
  targets[0] = arg;
  const rounded = bf16 ? roundBf16(dense) : dense;
  const logits = new Float32Array(N * Vp);
  for (let n = 0; n < N; n++) {
    logits.set(rounded.subarray(n * V, (n + 1) * V), n * Vp);
    for (let c = V; c < Vp; c++) logits[n * Vp + c] = GARBAGE[(n + c) % GARBAGE.length];
  }
  return { dense: rounded, logits, targets };
}

/** The reference in f64 on the values the device holds, the gradient laid out with padding zeros. */
function reference(dense: Float32Array, targets: Int32Array, { N, V, Vp }: Case, scale: number) {
  const losses = new Float64Array(N);
  const probs = new Float64Array(N * V);
  softmaxCrossEntropyForward(losses, probs, Float64Array.from(dense), targets, N, V);
  const d = new Float64Array(N * V);
  softmaxCrossEntropyBackward(d, probs, targets, scale, N, V);
  const dlogits = new Float64Array(N * Vp);
  for (let n = 0; n < N; n++) dlogits.set(d.subarray(n * V, (n + 1) * V), n * Vp);
  return { losses, dlogits };
}

function run(h: CudaHarness, c: Case, dtype: number, logits: Float32Array, targets: Int32Array, scale: number, write: boolean) {
  const out = logits.slice();
  const losses = new Float32Array(c.N);
  h.kernel('crossentropyForwardBackward', [out, losses, targets], [dtype, c.N, c.V, c.Vp, scale, write ? 1 : 0]);
  return { out, losses };
}

const bits = (x: Float32Array) => Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length));

// Vp % 4 == 0 (f32) or % 8 == 0 (bf16) takes the 16-byte vector path; the others the
// scalar one. The two large V make each thread stride over several vectors (1024 threads).
const SHAPES: Omit<Case, 'spread' | 'seed'>[] = [
  { N: 3, V: 1, Vp: 4 },
  { N: 4, V: 2, Vp: 5 },
  { N: 5, V: 37, Vp: 40 },
  { N: 3, V: 37, Vp: 37 },
  { N: 3, V: 300, Vp: 304 },
  { N: 2, V: 300, Vp: 301 },
  { N: 2, V: 4099, Vp: 4101 },
  { N: 2, V: 9001, Vp: 9008 },
];

describeCuda('crossentropyForwardBackward', (h) => {
  for (const dtName of ['f32', 'bf16'] as const) {
    const bf16 = dtName === 'bf16';
    // The losses are f32 from the same (rounded) logits as the reference: tight in both.
    // The gradient: bf16 rounds it once (2^-9 relative) after f32 arithmetic. In both, the
    // target's (p - 1) cancels when p is near 1, so an f32 p's last bit (6e-8) is all its
    // error: an absolute term of a few f32 ulps of the onehot's 1 * scale.
    const gradTol = (scale: number) => (bf16 ? { rtol: 5e-3, atol: 3e-7 * scale } : { rtol: 1e-5, atol: 3e-7 * scale });
    const lossTol = { rtol: 1e-5, atol: 1e-6 };
    for (const shape of SHAPES) {
      for (const spread of [4, 500]) {
        const c: Case = { ...shape, spread, seed: shape.V * 7 + shape.Vp + spread };
        it(`${dtName} N=${c.N} V=${c.V} Vp=${c.Vp} logits in ±${spread}`, () => {
          const { dense, logits, targets } = makeInputs(c, bf16);
          const scale = 1 / (c.N * 3);
          const ref = reference(dense, targets, c, scale);
          const got = run(h, c, DT[dtName], logits, targets, scale, true);
          expectClose(got.losses, ref.losses, lossTol, 'losses');
          expectClose(got.out, ref.dlogits, gradTol(scale), 'dlogits');
          // Deterministic: the same bits again.
          const again = run(h, c, DT[dtName], logits, targets, scale, true);
          expect(bits(again.out)).toEqual(bits(got.out));
          expect(bits(again.losses)).toEqual(bits(got.losses));
        });
      }
    }

    it(`${dtName} forward only leaves the logits (and their padding) untouched`, () => {
      const c: Case = { N: 3, V: 37, Vp: 40, spread: 500, seed: 99 };
      const { dense, logits, targets } = makeInputs(c, bf16);
      const ref = reference(dense, targets, c, 1);
      const got = run(h, c, DT[dtName], logits, targets, 1, false);
      expectClose(got.losses, ref.losses, lossTol, 'losses');
      // bf16: the device holds (and hands back) the padding's garbage rounded to bf16.
      expect(bits(got.out)).toEqual(bits(bf16 ? roundBf16(logits) : logits));
    });
  }
});
