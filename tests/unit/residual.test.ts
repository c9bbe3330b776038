import { describe, it } from 'vitest';
import { residualBackward, residualForward } from '../../src/reference/residual.ts';
import { expectClose } from '../helpers/expect-close.ts';
import { checkGradients, filled, randn, Rng, weightedSum } from '../helpers/finite-diff.ts';

describe('residual', () => {
  const N = 5;

  it('adds elementwise', () => {
    const out = new Float64Array(3);
    residualForward(out, Float64Array.from([1, 2, 3]), Float64Array.from([10, -20, 0.5]), 3);
    expectClose(out, [11, -18, 3.5], { rtol: 0, atol: 0 }, 'residual');
  });

  it('backward matches finite differences', () => {
    const rng = new Rng(1);
    const a = randn(N, rng);
    const b = randn(N, rng);
    const w = randn(N, rng);
    const out = new Float64Array(N);
    checkGradients('residual', {
      inputs: { a, b },
      loss: () => {
        residualForward(out, a, b, N);
        return weightedSum(out, w);
      },
      backward: (prior) => {
        const d = { a: filled(N, prior), b: filled(N, prior) };
        residualBackward(d.a, d.b, w, N);
        return d;
      },
    });
  });
});
