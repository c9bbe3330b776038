import { describe, it } from 'vitest';
import { matmulAcc, matmulAccTransB, matmulBackward, matmulForward } from '../../src/reference/matmul.ts';
import { expectClose } from '../helpers/expect-close.ts';
import { checkGradients, filled, randn, Rng, weightedSum } from '../helpers/finite-diff.ts';

/** out[N,OC] = inp[N,C] @ weight[C,OC] + bias, the obvious way. */
function naive(inp: ArrayLike<number>, weight: ArrayLike<number>, bias: ArrayLike<number> | null, N: number, C: number, OC: number): Float64Array {
  const out = new Float64Array(N * OC);
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < OC; o++) {
      let s = bias ? bias[o] : 0;
      for (let c = 0; c < C; c++) s += inp[n * C + c] * weight[c * OC + o];
      out[n * OC + o] = s;
    }
  }
  return out;
}

// Shapes on and off the kernels' blocks of 4 rows, 4 k and 2x4 dot products.
const SHAPES: Array<[number, number, number]> = [
  [1, 1, 1], [5, 6, 7], [4, 8, 12], [7, 9, 3], [13, 5, 18], [2, 3, 4],
];

describe('matmul', () => {
  it.each(SHAPES)('forward matches a naive triple loop (N=%i C=%i OC=%i), with and without bias', (N, C, OC) => {
    const rng = new Rng(N * 100 + C * 10 + OC);
    const inp = randn(N * C, rng);
    const weight = randn(C * OC, rng);
    const bias = randn(OC, rng);
    const out = new Float64Array(N * OC).fill(99);
    matmulForward(out, inp, weight, bias, N, C, OC);
    expectClose(out, naive(inp, weight, bias, N, C, OC), { rtol: 1e-12, atol: 1e-12 }, 'with bias');
    matmulForward(out, inp, weight, null, N, C, OC);
    expectClose(out, naive(inp, weight, null, N, C, OC), { rtol: 1e-12, atol: 1e-12 }, 'without bias');
    // the f32 path on the same numbers agrees to f32 precision
    const out32 = new Float32Array(N * OC);
    matmulForward(out32, Float32Array.from(inp), Float32Array.from(weight), Float32Array.from(bias), N, C, OC);
    expectClose(out32, naive(inp, weight, bias, N, C, OC), { rtol: 1e-5, atol: 1e-5 }, 'f32');
  });

  it.each(SHAPES)('the two kernels accumulate A@B, A^T@B and A@B^T (N=%i K=%i M=%i)', (N, K, M) => {
    const rng = new Rng(7 + N + K + M);
    const a = randn(N * K, rng);
    const b = randn(K * M, rng);
    const prior = randn(N * M, rng);
    const ref = naive(a, b, null, N, K, M).map((x, i) => x + prior[i]);
    const out = Float64Array.from(prior);
    matmulAcc(out, a, K, 1, b, N, K, M);
    expectClose(out, ref, { rtol: 1e-12, atol: 1e-12 }, 'A@B');
    // A stored transposed: at is (K,N), A(i,k) = at[k*N + i]
    const at = new Float64Array(K * N);
    for (let i = 0; i < N; i++) for (let k = 0; k < K; k++) at[k * N + i] = a[i * K + k];
    const out2 = Float64Array.from(prior);
    matmulAcc(out2, at, 1, N, b, N, K, M);
    expectClose(out2, ref, { rtol: 1e-12, atol: 1e-12 }, 'A^T@B');
    // b stored transposed: bt is (M,K)
    const bt = new Float64Array(M * K);
    for (let k = 0; k < K; k++) for (let j = 0; j < M; j++) bt[j * K + k] = b[k * M + j];
    const out3 = Float64Array.from(prior);
    matmulAccTransB(out3, a, bt, N, K, M);
    expectClose(out3, ref, { rtol: 1e-12, atol: 1e-12 }, 'A@B^T');
  });

  it.each(SHAPES)('backward matches finite differences (N=%i C=%i OC=%i)', (N, C, OC) => {
    const rng = new Rng(3 + N * C * OC);
    const inp = randn(N * C, rng);
    const weight = randn(C * OC, rng);
    const bias = randn(OC, rng);
    const w = randn(N * OC, rng);
    const out = new Float64Array(N * OC);
    checkGradients(`matmul ${N}x${C}x${OC}`, {
      inputs: { inp, weight, bias },
      loss: () => {
        matmulForward(out, inp, weight, bias, N, C, OC);
        return weightedSum(out, w);
      },
      backward: (prior) => {
        const d = { inp: filled(N * C, prior), weight: filled(C * OC, prior), bias: filled(OC, prior) };
        matmulBackward(d.inp, d.weight, d.bias, w, inp, weight, N, C, OC);
        return d;
      },
    });
  });

  it('backward without a bias leaves dbias alone', () => {
    const rng = new Rng(4);
    const [N, C, OC] = [5, 6, 7];
    const inp = randn(N * C, rng);
    const weight = randn(C * OC, rng);
    const w = randn(N * OC, rng);
    const out = new Float64Array(N * OC);
    checkGradients('matmul no bias', {
      inputs: { inp, weight },
      loss: () => {
        matmulForward(out, inp, weight, null, N, C, OC);
        return weightedSum(out, w);
      },
      backward: (prior) => {
        const d = { inp: filled(N * C, prior), weight: filled(C * OC, prior) };
        matmulBackward(d.inp, d.weight, null, w, inp, weight, N, C, OC);
        return d;
      },
    });
  });
});
