// kernels/adamw.cu: the global gradient norm, clip_grad_norm_'s factor and AdamW over a
// segment table, against src/reference/adamw.ts.
import { expect, it } from 'vitest';
import type { ModelSpec } from '../../src/core/model-spec.ts';
import { adamwUpdate, clipScale, gradNorm, type AdamWHyper } from '../../src/reference/adamw.ts';
import { Rng } from '../../src/core/rng.ts';
import { expectClose } from '../helpers/expect-close.ts';
import { describeCuda, randomFloats, roundBf16, type CudaHarness } from './helpers.ts';

const bits = (x: Float32Array) => Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length));

function normSquared(h: CudaHarness, grads: Float32Array, misalign: boolean): number {
  const out = new Float32Array(1);
  h.kernel('globalNormSquared', [grads, out], [misalign ? 1 : 0]);
  return out[0];
}

/**
 * Mostly small gradients (|g| < 1e-3) and a few large ones at the front: the small squares
 * are ~1e-5 of the total, which a sum that adds them one by one to the large ones in f32
 * loses entirely (each is below half an ulp of the running sum).
 */
function skewedGrads(n: number, seed: number): Float32Array {
  const g = randomFloats(n, seed, 1e-3);
  g[0] = 30;
  g[1] = -25;
  g[2] = 20;
  return g;
}

// Segments out of offset order, of sizes around the emulation's grid-stride (8 blocks of
// 256 threads = 2048), one of size 1, and gaps (40..42, 4990..4999) no segment covers:
// those elements must come back untouched.
const N_PARAMS = 5000;
const SEGMENTS = [
  { offset: 43, size: 2100, decay: true },
  { offset: 0, size: 40, decay: false },
  { offset: 2143, size: 1, decay: true },
  { offset: 2144, size: 2049, decay: false },
  { offset: 4193, size: 700, decay: true },
  { offset: 4893, size: 97, decay: false },
];
const SPEC = { params: SEGMENTS } as unknown as ModelSpec;
const SEG_WORDS = Uint32Array.from(SEGMENTS.flatMap((s) => [s.offset, s.size, s.decay ? 1 : 0]));
const GAPS: number[] = [];
for (let i = 0; i < N_PARAMS; i++) if (!SEGMENTS.some((s) => i >= s.offset && i < s.offset + s.size)) GAPS.push(i);

// Hyperparameters as f32 values, as the kernel receives them (kernels.h takes floats):
// otherwise the reference's 1 - 0.999 and the device's 1 - f32(0.999) differ by 1.3e-5.
const f = Math.fround;
const HP: AdamWHyper = { lr: f(0.01), beta1: f(0.9), beta2: f(0.999), eps: f(1e-8), weightDecay: f(0.1) };

interface State {
  params: Float32Array;
  m: Float32Array;
  v: Float32Array;
}

function step(h: CudaHarness, s: State, grads: Float32Array, t: number, gradClip: number, withBf16: boolean, normsq = 0) {
  const out = { params: s.params.slice(), m: s.m.slice(), v: s.v.slice() };
  const bf16 = new Float32Array(withBf16 ? s.params.length : 0);
  const norm = new Float32Array([normsq]);
  const computeNorm = normsq === 0 ? 1 : 0;
  h.kernel(
    'adamwUpdate',
    [out.params, grads, out.m, out.v, SEG_WORDS, bf16, norm],
    [HP.lr, HP.beta1, HP.beta2, HP.eps, HP.weightDecay, t, gradClip, computeNorm],
  );
  return { ...out, bf16, normsq: norm[0] };
}

function referenceStep(s: State, grads: Float32Array, t: number, gradScale: number): State {
  const params = Float64Array.from(s.params);
  const m = Float64Array.from(s.m);
  const v = Float64Array.from(s.v);
  adamwUpdate(params, Float64Array.from(grads), m, v, SPEC, HP, t, gradScale);
  return { params: Float32Array.from(params), m: Float32Array.from(m), v: Float32Array.from(v) };
}

// An f32 update against the f64 reference: a few ulps, plus an absolute term where two
// terms cancel: p * decay - update with p O(1) (an ulp of 1), and beta1 m + (1 - beta1) g
// with (1 - beta1) g up to 0.1 (a couple of its ulps). v adds two non-negative terms.
const TOL = { params: { rtol: 1e-5, atol: 2e-7 }, m: { rtol: 1e-5, atol: 2e-8 }, v: { rtol: 1e-5, atol: 1e-16 } };

function expectState(got: State, want: State, label: string) {
  expectClose(got.params, want.params, TOL.params, `${label} params`);
  expectClose(got.m, want.m, TOL.m, `${label} m`);
  expectClose(got.v, want.v, TOL.v, `${label} v`);
}

describeCuda('globalNormSquared', (h) => {
  for (const n of [1, 5, 100_003]) {
    for (const misalign of [false, true]) {
      it(`n=${n} ${misalign ? 'unaligned (scalar path)' : 'aligned (float4 path)'}: the f64 sum of squares`, () => {
        const grads = n > 1000 ? skewedGrads(n, n) : randomFloats(n, n, 2);
        const want = gradNorm(Float64Array.from(grads)) ** 2;
        const got = normSquared(h, grads, misalign);
        expectClose([got], [want], { rtol: 1e-6, atol: 0 }, 'normsq');
        if (n > 1000) {
          // The test has teeth: the small squares alone are far more than the tolerance.
          const big = grads[0] ** 2 + grads[1] ** 2 + grads[2] ** 2;
          expect(Math.abs(want - big) / want).toBeGreaterThan(10 * 1e-6);
        }
        expect(normSquared(h, grads, misalign)).toBe(got);
      });
    }
  }
});

describeCuda('adamwUpdate', (h) => {
  const rng = new Rng(7);
  const initial = (): State => ({
    params: randomFloats(N_PARAMS, 1, 1),
    // Non-trivial moments, as after earlier steps (v >= 0).
    m: randomFloats(N_PARAMS, 2, 1e-3),
    v: Float32Array.from(randomFloats(N_PARAMS, 3, 1), (x) => x * x * 1e-6),
  });

  for (const { gradClip, what } of [
    { gradClip: 0, what: 'no clipping' },
    { gradClip: 1, what: 'clipping active (norm ~40 > 1)' },
    { gradClip: 1000, what: 'clip above the norm (factor 1)' },
  ]) {
    it(`t = 1..3, ${what}, norm computed on the device`, () => {
      let s: State = { params: randomFloats(N_PARAMS, 1, 1), m: new Float32Array(N_PARAMS), v: new Float32Array(N_PARAMS) };
      for (let t = 1; t <= 3; t++) {
        const grads = randomFloats(N_PARAMS, 10 + t + rng.int(1000), 1);
        const norm = gradNorm(Float64Array.from(grads));
        const scale = clipScale(norm, gradClip);
        if (gradClip === 1) expect(scale).toBeLessThan(0.1);
        if (gradClip === 1000) expect(scale).toBe(1);
        const got = step(h, s, grads, t, gradClip, false);
        expectClose([got.normsq], [norm * norm], { rtol: 1e-6, atol: 0 }, 'normsq');
        // Each step from the device's own previous state, so a step's error is its own.
        expectState(got, referenceStep(s, grads, t, scale), `t=${t}`);
        for (const i of GAPS) {
          expect(got.params[i]).toBe(s.params[i]);
          expect(got.m[i]).toBe(s.m[i]);
          expect(got.v[i]).toBe(s.v[i]);
        }
        s = got;
      }
    });
  }

  it('clips by a given norm, refreshes the bf16 copy, and repeats bit for bit', () => {
    const s = initial();
    const grads = randomFloats(N_PARAMS, 5, 0.5);
    const normsq = f(123.456);
    const scale = clipScale(Math.sqrt(normsq), 2);
    const got = step(h, s, grads, 2, 2, true, normsq);
    expect(got.normsq).toBe(normsq);
    expectState(got, referenceStep(s, grads, 2, scale), 'given norm');
    const want16 = roundBf16(got.params);
    for (const i of GAPS) want16[i] = 0; // no segment: the copy is not written there
    expect(bits(got.bf16)).toEqual(bits(want16));
    const again = step(h, s, grads, 2, 2, true, normsq);
    expect(bits(again.params)).toEqual(bits(got.params));
    expect(bits(again.m)).toEqual(bits(got.m));
    expect(bits(again.v)).toEqual(bits(got.v));
  });
});
