import { describe, it } from 'vitest';
import {
  logitsBackward, logitsForward, softmaxCrossEntropyBackward, softmaxCrossEntropyForward,
} from '../../src/reference/crossentropy.ts';
import { expectClose } from '../helpers/expect-close.ts';
import { checkGradients, filled, randn, randTokens, Rng, weightedSum } from '../helpers/finite-diff.ts';

describe('crossentropy', () => {
  const N = 5, C = 6, V = 7;

  it('logits are x @ wte^T', () => {
    const rng = new Rng(1);
    const x = randn(N * C, rng);
    const wte = randn(V * C, rng);
    const logits = new Float64Array(N * V).fill(5);
    logitsForward(logits, x, wte, N, C, V);
    const expected = new Float64Array(N * V);
    for (let n = 0; n < N; n++) for (let v = 0; v < V; v++) for (let c = 0; c < C; c++) expected[n * V + v] += x[n * C + c] * wte[v * C + c];
    expectClose(logits, expected, { rtol: 1e-12, atol: 1e-14 }, 'logits');
  });

  it('softmax rows sum to 1 and the loss is -log p[target]', () => {
    const rng = new Rng(2);
    const logits = randn(N * V, rng, 3);
    const targets = randTokens(N, V, rng);
    const losses = new Float64Array(N);
    const probs = new Float64Array(N * V);
    softmaxCrossEntropyForward(losses, probs, logits, targets, N, V);
    const sums: number[] = [];
    const expLoss: number[] = [];
    for (let n = 0; n < N; n++) {
      sums.push(probs.subarray(n * V, (n + 1) * V).reduce((a, b) => a + b, 0));
      let z = 0;
      for (let v = 0; v < V; v++) z += Math.exp(logits[n * V + v]);
      expLoss.push(-Math.log(Math.exp(logits[n * V + targets[n]]) / z));
    }
    expectClose(sums, new Array(N).fill(1), { rtol: 1e-14 }, 'row sums');
    expectClose(losses, expLoss, { rtol: 1e-12 }, 'losses');
  });

  it('uniform logits give ln(V); huge logits stay finite (f32 too)', () => {
    const losses = new Float32Array(2);
    const probs = new Float32Array(2 * V);
    const logits = new Float32Array(2 * V);
    logits.fill(1000, V); // row 1: all 1000 except the target
    logits[V + 3] = -1000;
    softmaxCrossEntropyForward(losses, probs, logits, Int32Array.from([0, 3]), 2, V);
    expectClose([losses[0]], [Math.log(V)], { rtol: 1e-6 }, 'uniform');
    expectClose([losses[1]], [2000 + Math.log(V - 1)], { rtol: 1e-6 }, 'underflowed target');
  });

  it('logits backward matches finite differences', () => {
    const rng = new Rng(3);
    const x = randn(N * C, rng);
    const wte = randn(V * C, rng);
    const w = randn(N * V, rng);
    const logits = new Float64Array(N * V);
    checkGradients('logits', {
      inputs: { x, wte },
      loss: () => {
        logitsForward(logits, x, wte, N, C, V);
        return weightedSum(logits, w);
      },
      backward: (prior) => {
        const d = { x: filled(N * C, prior), wte: filled(V * C, prior) };
        logitsBackward(d.x, d.wte, w, x, wte, N, C, V);
        return d;
      },
    });
  });

  it('softmax + cross-entropy backward matches finite differences of scale * sum(losses)', () => {
    const rng = new Rng(4);
    const logits = randn(N * V, rng, 2);
    const targets = randTokens(N, V, rng);
    const scale = 1 / 3;
    const losses = new Float64Array(N);
    const probs = new Float64Array(N * V);
    const run = () => softmaxCrossEntropyForward(losses, probs, logits, targets, N, V);
    checkGradients('softmax-ce', {
      inputs: { logits },
      loss: () => {
        run();
        return scale * losses.reduce((a, b) => a + b, 0);
      },
      backward: (prior) => {
        run();
        const dlogits = filled(N * V, 123); // overwritten, not accumulated
        softmaxCrossEntropyBackward(dlogits, probs, targets, scale, N, V);
        return { logits: dlogits.map((d) => d + prior) };
      },
    });
  });
});
