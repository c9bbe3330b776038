import { describe, expect, it } from 'vitest';
import { initParams, modelSpec, type ModelConfig } from '../../src/core/model-spec.ts';
import { adamwUpdate } from '../../src/reference/adamw.ts';
import { ReferenceGPT } from '../../src/reference/gpt.ts';
import { compareClose, expectClose } from '../helpers/expect-close.ts';
import { numericGrad, randTokens, Rng } from '../helpers/finite-diff.ts';
import { testParams } from '../helpers/gpt-params.ts';

const MODEL: ModelConfig = { vocabSize: 7, blockSize: 5, nLayer: 2, nHead: 2, nEmbd: 8 };
const B = 2;

describe('ReferenceGPT', () => {
  it('every parameter gradient of the full model matches finite differences (f64)', () => {
    const rng = new Rng(11);
    const gpt = new ReferenceGPT(MODEL, testParams(MODEL, 1), { maxBatch: B, dtype: 'f64' });
    const T = MODEL.blockSize;
    const inputs = randTokens(B * T, MODEL.vocabSize, rng);
    const targets = randTokens(B * T, MODEL.vocabSize, rng);
    const lossScale = 0.7;
    gpt.zeroGrad();
    gpt.forward(inputs, targets, B, T);
    gpt.backward(lossScale);
    const analytic = Float64Array.from(gpt.grads);
    const numeric = numericGrad(gpt.params, () => lossScale * gpt.forward(inputs, targets, B, T), 1e-5);
    // every tensor that fails, with its worst element (one wrong term usually shows in several)
    const failures: string[] = [];
    for (const p of gpt.spec.params) {
      const r = compareClose(analytic.subarray(p.offset, p.offset + p.size), numeric.subarray(p.offset, p.offset + p.size), { rtol: 1e-6, atol: 1e-9 });
      if (!r.ok) failures.push(`${p.name}[${r.worstIndex}]: got ${r.actual}, expected ${r.expected}`);
    }
    expect(failures).toEqual([]);
  });

  it('micro-batches accumulate: two half-scaled backward passes give the mean of the two gradients', () => {
    const rng = new Rng(12);
    const gpt = new ReferenceGPT(MODEL, testParams(MODEL, 2), { dtype: 'f64' }); // maxBatch 1: forward grows it
    const T = 3; // shorter than blockSize: wpe rows 3 and 4 get no gradient
    const batches = [0, 1].map(() => [randTokens(B * T, 7, rng), randTokens(B * T, 7, rng)] as const);
    const mean = () => batches.reduce((s, [x, y]) => s + gpt.forward(x, y, B, T), 0) / 2;
    gpt.zeroGrad();
    for (const [x, y] of batches) {
      gpt.forward(x, y, B, T);
      gpt.backward(0.5);
    }
    const analytic = Float64Array.from(gpt.grads);
    expectClose(analytic, numericGrad(gpt.params, mean, 1e-5), { rtol: 1e-6, atol: 1e-9 }, 'accumulated grads');
    const wpe = gpt.spec.byName.get('transformer.wpe.weight')!;
    const C = MODEL.nEmbd;
    expect([...analytic.subarray(wpe.offset + T * C, wpe.offset + wpe.size)].every((g) => g === 0)).toBe(true);
  });

  it('f32 gradients agree with f64 ones', () => {
    const rng = new Rng(13);
    const params = Float32Array.from(testParams(MODEL, 3));
    const inputs = randTokens(B * 5, 7, rng);
    const targets = randTokens(B * 5, 7, rng);
    const run = (dtype: 'f32' | 'f64') => {
      const gpt = new ReferenceGPT(MODEL, params, { maxBatch: B, dtype });
      const loss = gpt.forward(inputs, targets, B, 5);
      gpt.backward(1);
      return { loss, grads: gpt.grads };
    };
    const a = run('f32');
    const b = run('f64');
    expectClose([a.loss], [b.loss], { rtol: 1e-6 }, 'loss');
    expectClose(a.grads, b.grads, { rtol: 1e-4, atol: 1e-6 }, 'grads');
  });

  it('loss at GPT-2 init is close to ln(V)', () => {
    const model = { ...MODEL, vocabSize: 30 };
    const gpt = new ReferenceGPT(model, initParams(modelSpec(model), new Rng(4)), { maxBatch: 4 });
    const rng = new Rng(5);
    const loss = gpt.forward(randTokens(4 * 5, 30, rng), randTokens(4 * 5, 30, rng), 4, 5);
    expect(Math.abs(loss - Math.log(30))).toBeLessThan(0.02);
  });

  it('overfits a fixed batch with AdamW', () => {
    const spec = modelSpec(MODEL);
    const gpt = new ReferenceGPT(MODEL, initParams(spec, new Rng(6)), { maxBatch: B });
    const rng = new Rng(7);
    const inputs = randTokens(B * 5, 7, rng);
    const targets = randTokens(B * 5, 7, rng);
    const m = new Float32Array(spec.numParams);
    const v = new Float32Array(spec.numParams);
    const hp = { lr: 1e-2, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0 };
    const first = gpt.forward(inputs, targets, B, 5);
    let loss = first;
    for (let t = 1; t <= 60; t++) {
      gpt.zeroGrad();
      loss = gpt.forward(inputs, targets, B, 5);
      gpt.backward(1);
      adamwUpdate(gpt.params, gpt.grads, m, v, spec, hp, t, 1);
    }
    expect(first).toBeGreaterThan(1.8);
    expect(loss).toBeLessThan(0.1);
  });

  it('lastLogits equals the logits of a forward pass at the last position, and is causal', () => {
    const gpt = new ReferenceGPT(MODEL, testParams(MODEL, 8), { maxBatch: 2 });
    const ctx = Int32Array.from([3, 1, 4]);
    const a = gpt.lastLogits(ctx);
    expect(a.length).toBe(7);
    // the same context inside a longer batch of 2 gives the same logits at position 2
    const inputs = Int32Array.from([0, 0, 0, 0, 0, 3, 1, 4, 6, 6]);
    gpt.forward(inputs, null, 2, 5);
    const b = gpt.lastLogits(Int32Array.from([3, 1, 4, 6, 6]));
    expect(b).not.toEqual(a);
    const c = gpt.lastLogits(Int32Array.from([3, 1, 4]));
    expectClose(c, a, { rtol: 0, atol: 0 }, 'repeatable');
    expect(() => gpt.lastLogits(new Int32Array(6))).toThrow(RangeError);
    expect(() => gpt.lastLogits(new Int32Array(0))).toThrow(RangeError);
    expect(() => gpt.forward(Int32Array.from([7]), null, 1, 1)).toThrow(/outside the vocabulary/);
  });
});
