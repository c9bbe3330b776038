import { describe, it } from 'vitest';
import { layernormBackward, layernormForward } from '../../src/reference/layernorm.ts';
import { expectClose } from '../helpers/expect-close.ts';
import { checkGradients, filled, randn, Rng, weightedSum } from '../helpers/finite-diff.ts';

describe('layernorm', () => {
  const N = 5, C = 6;

  it('with weight 1 and bias 0 gives rows of mean 0 and variance 1; saves mean and rstd', () => {
    const rng = new Rng(1);
    const inp = randn(N * C, rng, 3).map((x, i) => x + i); // off-centre rows
    const out = new Float64Array(N * C);
    const mean = new Float64Array(N);
    const rstd = new Float64Array(N);
    layernormForward(out, mean, rstd, inp, filled(C, 1), filled(C, 0), N, C);
    const means: number[] = [];
    const vars: number[] = [];
    const expMean: number[] = [];
    const expRstd: number[] = [];
    for (let n = 0; n < N; n++) {
      const row = out.subarray(n * C, (n + 1) * C);
      const m = row.reduce((a, b) => a + b, 0) / C;
      means.push(m);
      // biased variance of the normalised row: 1 up to the eps inside the sqrt
      vars.push(row.reduce((a, b) => a + (b - m) ** 2, 0) / C);
      const x = inp.subarray(n * C, (n + 1) * C);
      const xm = x.reduce((a, b) => a + b, 0) / C;
      const xv = x.reduce((a, b) => a + (b - xm) ** 2, 0) / C;
      expMean.push(xm);
      expRstd.push(1 / Math.sqrt(xv + 1e-5));
      vars[n] *= (xv + 1e-5) / xv;
    }
    expectClose(means, new Array(N).fill(0), { atol: 1e-12 }, 'row means');
    expectClose(vars, new Array(N).fill(1), { rtol: 1e-12 }, 'row variances');
    expectClose(mean, expMean, { rtol: 1e-12 }, 'saved mean');
    expectClose(rstd, expRstd, { rtol: 1e-12 }, 'saved rstd');
  });

  it('applies weight and bias per channel', () => {
    const inp = Float64Array.from([1, 2, 3, 4, 5, 6]);
    const out = new Float64Array(6);
    const weight = Float64Array.from([1, 2, 3, 4, 5, 6]);
    const bias = Float64Array.from([0, 0, 0, 1, 1, 1]);
    layernormForward(out, new Float64Array(1), new Float64Array(1), inp, weight, bias, 1, 6);
    const s = 1 / Math.sqrt(35 / 12 + 1e-5); // var of 1..6 = 35/12
    const expected = [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5].map((d, i) => d * s * weight[i] + bias[i]);
    expectClose(out, expected, { rtol: 1e-12 }, 'layernorm out');
  });

  it('backward matches finite differences', () => {
    const rng = new Rng(2);
    const inp = randn(N * C, rng, 2);
    const weight = randn(C, rng).map((x) => 1 + 0.5 * x);
    const bias = randn(C, rng);
    const w = randn(N * C, rng);
    const out = new Float64Array(N * C);
    const mean = new Float64Array(N);
    const rstd = new Float64Array(N);
    const run = () => layernormForward(out, mean, rstd, inp, weight, bias, N, C);
    checkGradients('layernorm', {
      inputs: { inp, weight, bias },
      loss: () => {
        run();
        return weightedSum(out, w);
      },
      backward: (prior) => {
        run();
        const d = { inp: filled(N * C, prior), weight: filled(C, prior), bias: filled(C, prior) };
        layernormBackward(d.inp, d.weight, d.bias, w, inp, weight, mean, rstd, N, C);
        return d;
      },
    });
  });
});
