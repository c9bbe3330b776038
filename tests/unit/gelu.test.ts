import { describe, it } from 'vitest';
import { geluBackward, geluForward } from '../../src/reference/gelu.ts';
import { expectClose } from '../helpers/expect-close.ts';
import { checkGradients, filled, randn, Rng, weightedSum } from '../helpers/finite-diff.ts';

describe('gelu', () => {
  it('matches the tanh formula at known points, and is within 1e-3 of exact (erf) GELU', () => {
    const x = Float64Array.from([-3, -1, -0.5, 0, 0.5, 1, 3]);
    const out = new Float64Array(x.length);
    geluForward(out, x, x.length);
    // Python: 0.5*x*(1+math.tanh(math.sqrt(2/math.pi)*(x+0.044715*x**3)))
    const expected = [-0.0036373920817729943, -0.15880800939172324, -0.15428599017485606, 0, 0.34571400982514394, 0.8411919906082768, 2.996362607918227];
    expectClose(out, expected, { rtol: 1e-14, atol: 1e-15 }, 'gelu');
    // Python: 0.5*x*(1+math.erf(x/math.sqrt(2)))
    const exact = [-0.00404969409489031, -0.15865525393145707, -0.15426876936299344, 0, 0.34573123063700656, 0.8413447460685429, 2.99595030590511];
    expectClose(out, exact, { rtol: 0, atol: 1e-3 }, 'gelu vs erf');
  });

  it('backward matches finite differences, including large |x|', () => {
    const rng = new Rng(1);
    const N = 11;
    const inp = randn(N, rng, 2);
    inp[0] = 30;
    inp[1] = -30;
    const w = randn(N, rng);
    const out = new Float64Array(N);
    checkGradients('gelu', {
      inputs: { inp },
      loss: () => {
        geluForward(out, inp, N);
        return weightedSum(out, w);
      },
      backward: (prior) => {
        const dinp = filled(N, prior);
        geluBackward(dinp, inp, w, N);
        return { inp: dinp };
      },
    });
  });
});
