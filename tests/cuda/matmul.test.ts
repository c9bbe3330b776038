// kernels/matmul.cu (our SIMT f32 GEMM, our tensor-core bf16 GEMM, cuBLASLt where built)
// and the bias gradient, against src/reference/matmul.ts (matmulAcc, whose strides express
// every transpose) computed in f64 on the values the device holds (bf16-rounded operands
// in bf16 mode).
//
// Tolerances come from the computation's error bound, not from guesses: an f32 dot product
// of length K is within about K * 2^-24 * sum_k |a_ik * b_kj| of the exact value (products
// of bf16 values are exact in f32, so the bound holds in bf16 mode too), and a bf16 store
// adds at most half an ulp: 2^-8 relative (8 significant bits). A wrong index, a lost k tile or a missing bias instead moves
// an element by O(|a||b|), several orders of magnitude more.
import { expect, it } from 'vitest';
import { matmulAcc } from '../../src/reference/matmul.ts';
import { expectClose } from '../helpers/expect-close.ts';
import { DT, describeCuda, randomFloats, roundBf16, type CudaHarness } from './helpers.ts';

const IMPL = { auto: 0, simt: 1, 'tensor-core': 2, cublaslt: 3 } as const;
type ImplName = keyof typeof IMPL;

interface Problem {
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
  bias: boolean;
  accumulate: boolean;
  ab: 'f32' | 'bf16';
  c: 'f32' | 'bf16';
  /** Row strides as stored; default packed. */
  lda?: number;
  ldb?: number;
  ldc?: number;
  seed: number;
}

const LAYOUTS = [
  { name: 'NN', transA: false, transB: false },
  { name: 'NT', transA: false, transB: true },
  { name: 'TN', transA: true, transB: false },
  { name: 'TT', transA: true, transB: true },
] as const;

const U = 2 ** -24; // f32 unit roundoff

function packedLd(p: Problem) {
  return {
    lda: p.lda ?? (p.transA ? p.M : p.K),
    ldb: p.ldb ?? (p.transB ? p.K : p.N),
    ldc: p.ldc ?? p.N,
  };
}

/** Seeded inputs as the host hands them over (f32), and as the device holds them. */
function inputs(p: Problem) {
  const { lda, ldb, ldc } = packedLd(p);
  const aRows = p.transA ? p.K : p.M;
  const bRows = p.transB ? p.N : p.K;
  const A = randomFloats(aRows * lda, p.seed);
  const B = randomFloats(bRows * ldb, p.seed + 1);
  const C = randomFloats(p.M * ldc, p.seed + 2);
  const bias = p.bias ? randomFloats(p.N, p.seed + 3) : new Float32Array(0);
  const held = {
    A: p.ab === 'bf16' ? roundBf16(A) : A,
    B: p.ab === 'bf16' ? roundBf16(B) : B,
    C: p.c === 'bf16' ? roundBf16(C) : C,
  };
  return { A, B, C, bias, held, lda, ldb, ldc };
}

/**
 * The reference: out (M,N) = op(A) @ op(B) (+ bias) (+ C), in f64, and the error bound's
 * magnitude mag = |op(A)| @ |op(B)| + |bias| + |C| per element.
 */
function reference(p: Problem, A: Float32Array, B: Float32Array, C: Float32Array, bias: Float32Array, lda: number, ldb: number, ldc: number) {
  const { M, N, K } = p;
  // op(A)(i,k) = a[i*ars + k*acs]: the strides alone transpose A.
  const ars = p.transA ? 1 : lda;
  const acs = p.transA ? lda : 1;
  // matmulAcc wants op(B) packed (K,N).
  const b = new Float64Array(K * N);
  for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) b[k * N + n] = p.transB ? B[n * ldb + k] : B[k * ldb + n];
  const a = Float64Array.from(A);
  const out = new Float64Array(M * N);
  const mag = new Float64Array(M * N);
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      const base = (p.accumulate ? C[m * ldc + n] : 0) + (p.bias ? bias[n] : 0);
      out[m * N + n] = base;
      mag[m * N + n] = (p.accumulate ? Math.abs(C[m * ldc + n]) : 0) + (p.bias ? Math.abs(bias[n]) : 0);
    }
  matmulAcc(out, a, ars, acs, b, M, K, N);
  matmulAcc(mag, a.map(Math.abs), ars, acs, b.map(Math.abs), M, K, N);
  return { out, mag };
}

/** Runs the `matmul` entry point; returns C as downloaded (M, ldc). */
function runMatmul(h: CudaHarness, p: Problem, impl: number) {
  const x = inputs(p);
  const C = x.C.slice();
  h.kernel(
    'matmul',
    [C, x.A, x.B, x.bias],
    [DT[p.ab], DT[p.c], p.M, p.N, p.K, p.transA ? 1 : 0, p.transB ? 1 : 0, p.accumulate ? 1 : 0, impl, x.lda, x.ldb, x.ldc],
  );
  return { C, x };
}

/**
 * Checks one problem. `accumSlack` widens the f32 summation bound for implementations that
 * accumulate in another order or with the tensor core's internal alignment (2x covers both).
 */
function check(h: CudaHarness, p: Problem, impl: number, label: string, accumSlack = 1) {
  const { C, x } = runMatmul(h, p, impl);
  const { out, mag } = reference(p, x.held.A, x.held.B, x.held.C, x.bias, x.lda, x.ldb, x.ldc);
  const got = new Float64Array(p.M * p.N);
  for (let m = 0; m < p.M; m++) for (let n = 0; n < p.N; n++) got[m * p.N + n] = C[m * x.ldc + n];
  let maxMag = 0;
  for (const v of mag) maxMag = Math.max(maxMag, v);
  // Summation: K + 2 roundings (products, bias, C) of at most maxMag each, doubled for slack.
  const atol = 2 * accumSlack * (p.K + 2) * U * maxMag + 1e-30;
  // A store rounds once more: half an ulp, 2^-8 relative for bf16 (the f32 error under it is
  // in atol, which the factor 2 above makes cover its own rounding too), 2^-24 for f32.
  const rtol = p.c === 'bf16' ? 2 ** -8 : 4 * U;
  expectClose(got, out, { rtol, atol }, label);
  if (process.env.KILN_MATMUL_REPORT) {
    let worst = 0;
    for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - out[i]) / (atol + rtol * Math.abs(out[i])));
    console.log(`${label}: worst error / tolerance ${worst.toFixed(3)}`);
  }
  // Padding columns of a strided C are never written.
  for (let m = 0; m < p.M; m++)
    for (let n = p.N; n < x.ldc; n++) if (C[m * x.ldc + n] !== x.held.C[m * x.ldc + n]) expect.fail(`${label}: wrote C[${m}, ${n}] past N`);
}

const describeProblem = (p: Problem) =>
  `${p.M}x${p.N}x${p.K} ${p.transA ? 'T' : 'N'}${p.transB ? 'T' : 'N'} ab=${p.ab} c=${p.c}` +
  `${p.bias ? ' +bias' : ''}${p.accumulate ? ' +=C' : ''}${p.lda || p.ldb || p.ldc ? ` ld=${p.lda ?? '-'},${p.ldb ?? '-'},${p.ldc ?? '-'}` : ''}`;

// Every shape runs every layout with every bias / accumulate / C-dtype combination.
// Simt tiles are 64x64x16, the tensor-core kernel's 128x128x32 with 4 pipeline stages.
const SHAPES = [
  { M: 1, N: 1, K: 1 },
  { M: 7, N: 13, K: 9 },
  { M: 33, N: 65, K: 17 }, // Simt: two tiles in N, two in K
  { M: 5, N: 6, K: 8 }, // K % 8 == 0: the tensor-core path on a single partial tile
  { M: 130, N: 72, K: 40 }, // Simt: 3 x 2 tiles, 3 k tiles; tensor core: 2 tiles in M, 2 k tiles
  { M: 131, N: 133, K: 168 }, // tensor core: 2 x 2 tiles, 6 k tiles (> 4 stages), ragged 16-byte chunks in M and N
];
const COMBOS = [
  { bias: false, accumulate: false, c: 'f32' },
  { bias: true, accumulate: false, c: 'bf16' },
  { bias: false, accumulate: true, c: 'bf16' },
  { bias: true, accumulate: true, c: 'f32' },
  { bias: true, accumulate: false, c: 'f32' },
  { bias: false, accumulate: false, c: 'bf16' },
  { bias: true, accumulate: true, c: 'bf16' },
  { bias: false, accumulate: true, c: 'f32' },
] as const;

function problems(ab: 'f32' | 'bf16'): Problem[] {
  const out: Problem[] = [];
  SHAPES.forEach((s, si) =>
    LAYOUTS.forEach((l, li) =>
      COMBOS.forEach((combo, ci) => out.push({ ...s, transA: l.transA, transB: l.transB, ...combo, ab, seed: 1000 * si + 100 * li + ci + 1 })),
    ),
  );
  return out;
}

describeCuda('matmul', (h) => {
  const impls = new Set<string>(h.addon.gemmImpls());

  it('reports its implementations: ours always, cuBLASLt where built', () => {
    expect(impls.has('simt')).toBe(true);
    expect(impls.has('tensor-core')).toBe(true);
    if (h.flavour === 'emulation') expect(impls.has('cublaslt')).toBe(false);
  });

  const cases: { impl: ImplName; ab: 'f32' | 'bf16'; slack: number }[] = [
    { impl: 'simt', ab: 'f32', slack: 1 },
    { impl: 'simt', ab: 'bf16', slack: 1 },
    { impl: 'tensor-core', ab: 'bf16', slack: 2 },
    { impl: 'cublaslt', ab: 'bf16', slack: 2 },
    { impl: 'cublaslt', ab: 'f32', slack: 2 },
  ];
  for (const { impl, ab, slack } of cases) {
    const run = impls.has(impl) ? it : it.skip;
    run(`${impl}, ${ab} operands: every layout, bias and accumulate, C f32 and bf16`, () => {
      for (const p of problems(ab)) check(h, p, IMPL[impl], `${impl} ${describeProblem(p)}`, slack);
    });
  }

  it('tensor-core: strided operands (lda, ldb multiples of 8) and C rows with padding left untouched', () => {
    for (const l of LAYOUTS) {
      const p: Problem = { M: 70, N: 41, K: 24, ...l, bias: true, accumulate: true, ab: 'bf16', c: l.transA ? 'bf16' : 'f32', seed: 7 };
      const { lda, ldb } = packedLd(p);
      check(h, { ...p, lda: lda + (8 - (lda % 8)) + 8, ldb: ldb + (8 - (ldb % 8)), ldc: p.N + 3 }, IMPL['tensor-core'], `strided ${describeProblem(p)}`, 2);
    }
  });

  it('tensor-core falls back to Simt where it cannot run: K, lda or ldb not a multiple of 8', () => {
    for (const l of LAYOUTS) {
      const base: Problem = { M: 37, N: 29, K: 16, ...l, bias: true, accumulate: false, ab: 'bf16', c: 'bf16', seed: 9 };
      const { lda, ldb } = packedLd(base);
      check(h, { ...base, K: 21 }, IMPL['tensor-core'], `K=21 ${describeProblem(base)}`, 2);
      check(h, { ...base, lda: lda + 1 }, IMPL['tensor-core'], `lda+1 ${describeProblem(base)}`, 2);
      check(h, { ...base, ldb: ldb + 3 }, IMPL['tensor-core'], `ldb+3 ${describeProblem(base)}`, 2);
    }
  });

  it('auto: f32 exact (Simt), bf16 on the best path built', () => {
    const p: Problem = { M: 19, N: 40, K: 24, transA: false, transB: true, bias: true, accumulate: true, ab: 'f32', c: 'f32', seed: 11 };
    check(h, p, IMPL.auto, `auto ${describeProblem(p)}`);
    const q: Problem = { ...p, ab: 'bf16', c: 'bf16' };
    check(h, q, IMPL.auto, `auto ${describeProblem(q)}`, 2);
  });

  it('is deterministic: the same bits on a second run', () => {
    for (const [impl, ab] of [
      ['simt', 'f32'],
      ['tensor-core', 'bf16'],
    ] as const) {
      const p: Problem = { M: 131, N: 133, K: 168, transA: true, transB: false, bias: true, accumulate: true, ab, c: 'f32', seed: 13 };
      const first = runMatmul(h, p, IMPL[impl]).C;
      const second = runMatmul(h, p, IMPL[impl]).C;
      expect(Buffer.from(second.buffer).equals(Buffer.from(first.buffer))).toBe(true);
    }
  });

  it('matmulBench reports a time and a rate', () => {
    const out = new Float32Array(2);
    h.kernel('matmulBench', [out], [9, 16, 8, DT.bf16, IMPL['tensor-core'], 2]);
    expect(Number.isFinite(out[0]) && out[0] >= 0).toBe(true);
    expect(Number.isFinite(out[1]) && out[1] >= 0).toBe(true);
  });

  it('rejects an implementation the build lacks and a C too small for its shape', () => {
    if (!impls.has('cublaslt'))
      expect(() => h.kernel('matmul', [new Float32Array(1), new Float32Array(1), new Float32Array(1), new Float32Array(0)], [0, 0, 1, 1, 1, 0, 0, 0, IMPL.cublaslt])).toThrow(
        /not part of this build/,
      );
    expect(() => h.kernel('matmul', [new Float32Array(3), new Float32Array(4), new Float32Array(4), new Float32Array(0)], [0, 0, 2, 2, 2, 0, 0, 0, IMPL.simt])).toThrow(
      /C needs 4 elements/,
    );
  });
});

describeCuda('biasBackward', (h) => {
  // Row chunks of 128 and column strips of 32: 300 rows are 3 chunks (the second pass adds
  // them), 70 columns 3 strips, the last ragged.
  const SHAPES = [
    { M: 1, N: 1 },
    { M: 7, N: 13 },
    { M: 300, N: 70 },
  ];
  for (const dt of ['f32', 'bf16'] as const) {
    it(`accumulates the column sums of dout (${dt})`, () => {
      for (const { M, N } of SHAPES) {
        const dbias0 = randomFloats(N, M + N);
        const dout = randomFloats(M * N, M * N + 1, 2);
        const held = dt === 'bf16' ? roundBf16(dout) : dout;
        const expected = new Float64Array(N);
        let maxMag = 0;
        for (let n = 0; n < N; n++) {
          let s = dbias0[n];
          let mag = Math.abs(dbias0[n]);
          for (let m = 0; m < M; m++) {
            s += held[m * N + n];
            mag += Math.abs(held[m * N + n]);
          }
          expected[n] = s;
          maxMag = Math.max(maxMag, mag);
        }
        const dbias = dbias0.slice();
        h.kernel('biasBackward', [dbias, dout], [DT[dt], M, N]);
        // The sum is f32 whatever dout's dtype: at most M + 1 roundings of maxMag, and bias
        // gradients are f32 parameters (never rounded to bf16).
        expectClose(dbias, expected, { rtol: 0, atol: 2 * (M + 2) * U * maxMag }, `biasBackward ${dt} ${M}x${N}`);
      }
    });
  }
});

