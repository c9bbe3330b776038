import { describe, it } from 'vitest';
import { encoderBackward, encoderForward } from '../../src/reference/encoder.ts';
import { expectClose } from '../helpers/expect-close.ts';
import { checkGradients, filled, randn, randTokens, Rng, weightedSum } from '../helpers/finite-diff.ts';

describe('encoder', () => {
  const B = 2, T = 3, C = 6, V = 7, maxT = 5;

  it('adds the token row and the position row', () => {
    const rng = new Rng(1);
    const wte = randn(V * C, rng);
    const wpe = randn(maxT * C, rng);
    const inp = Int32Array.from([3, 0, 6, 6, 1, 3]);
    const out = new Float64Array(B * T * C);
    encoderForward(out, inp, wte, wpe, B, T, C);
    const expected = new Float64Array(B * T * C);
    for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let c = 0; c < C; c++) {
      expected[(b * T + t) * C + c] = wte[inp[b * T + t] * C + c] + wpe[t * C + c];
    }
    expectClose(out, expected, { rtol: 0, atol: 0 }, 'encoder out');
  });

  it('backward matches finite differences (repeated tokens accumulate)', () => {
    const rng = new Rng(2);
    const wte = randn(V * C, rng);
    const wpe = randn(maxT * C, rng);
    const inp = randTokens(B * T, V, rng);
    inp[0] = inp[4]; // a token used twice
    const w = randn(B * T * C, rng);
    const out = new Float64Array(B * T * C);
    checkGradients('encoder', {
      inputs: { wte, wpe },
      loss: () => {
        encoderForward(out, inp, wte, wpe, B, T, C);
        return weightedSum(out, w);
      },
      backward: (prior) => {
        const dwte = filled(V * C, prior);
        const dwpe = filled(maxT * C, prior);
        encoderBackward(dwte, dwpe, w, inp, B, T, C);
        return { wte: dwte, wpe: dwpe };
      },
    });
  });
});
