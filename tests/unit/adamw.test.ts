import { describe, expect, it } from 'vitest';
import { initParams, modelSpec, type ModelSpec, type ParamSpec } from '../../src/core/model-spec.ts';
import { adamwUpdate, clipScale, gradNorm } from '../../src/reference/adamw.ts';
import { expectClose } from '../helpers/expect-close.ts';
import { Rng } from '../helpers/finite-diff.ts';

/** A spec with one decayed 2x2 weight (offset 0) and one undecayed bias of 2 (offset 4). */
function twoParamSpec(): ModelSpec {
  const params: ParamSpec[] = [
    { name: 'w', shape: [2, 2], size: 4, offset: 0, role: 'weight', decay: true, layer: 0 },
    { name: 'b', shape: [2], size: 2, offset: 4, role: 'bias', decay: false, layer: 0 },
  ];
  return { model: { vocabSize: 1, blockSize: 1, nLayer: 1, nHead: 1, nEmbd: 1 }, params, byName: new Map(params.map((p) => [p.name, p])), numParams: 6 };
}

const HP = { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 };

describe('adamw', () => {
  it('one step and a second, against values computed by hand and in Python', () => {
    const spec = twoParamSpec();
    const params = Float64Array.from([1, -2, 0.5, 3, 1, -1]);
    const grads = Float64Array.from([0.5, -0.25, 0, 2, 0.5, 1e-3]);
    const m = new Float64Array(6);
    const v = new Float64Array(6);
    adamwUpdate(params, grads, m, v, spec, HP, 1, 1);
    // Step 1, by hand: m = 0.1 g, v = 0.001 g^2, bias-corrected m/sqrt(v) = g/|g|, so
    // p <- p*(1 - lr*wd) - lr * g/(|g| + 1e-8) for the weight, without the decay for the bias.
    // e.g. 1*0.99 - 0.1*0.5/0.50000001 = 0.890000002; a zero gradient only decays: 0.5*0.99.
    expectClose(params, [0.890000002, -1.880000004, 0.495, 2.8700000005, 0.900000002, -1.09999900001], { rtol: 1e-12 }, 'params after 1');
    expectClose(m, [0.05, -0.025, 0, 0.2, 0.05, 1e-4], { rtol: 1e-12 }, 'm after 1');
    expectClose(v, [2.5e-4, 6.25e-5, 0, 4e-3, 2.5e-4, 1e-9], { rtol: 1e-12 }, 'v after 1');
    // Step 2 with the gradients halved through gradScale (Python, the same update written out).
    adamwUpdate(params, grads, m, v, spec, HP, 2, 0.5);
    expectClose(params, [0.7878820404574624, -1.7679820447960648, 0.49005, 2.7480820372035097, 0.8067820404774624, -1.1932157846047236],
      { rtol: 1e-12 }, 'params after 2');
    expectClose(m, [0.07, -0.035, 0, 0.28, 0.07, 1.4e-4], { rtol: 1e-12 }, 'm after 2');
  });

  it('the f32 path agrees with the f64 one', () => {
    const spec = twoParamSpec();
    const p64 = Float64Array.from([1, -2, 0.5, 3, 1, -1]);
    const g = [0.5, -0.25, 0, 2, 0.5, 1e-3];
    const p32 = Float32Array.from(p64);
    const [m64, v64, m32, v32] = [new Float64Array(6), new Float64Array(6), new Float32Array(6), new Float32Array(6)];
    for (let t = 1; t <= 3; t++) {
      adamwUpdate(p64, Float64Array.from(g), m64, v64, spec, HP, t, 1);
      adamwUpdate(p32, Float32Array.from(g), m32, v32, spec, HP, t, 1);
    }
    expectClose(p32, p64, { rtol: 1e-6 }, 'f32 vs f64');
  });

  it('decays exactly the 2-D weights and embeddings of a GPT (not biases or LayerNorm)', () => {
    const spec = modelSpec({ vocabSize: 7, blockSize: 5, nLayer: 2, nHead: 2, nEmbd: 8 });
    const decayed = spec.params.filter((p) => p.decay).map((p) => p.name);
    expect(decayed).toEqual(spec.params.filter((p) => p.shape.length === 2).map((p) => p.name));
    expect(decayed).toContain('transformer.wte.weight');
    expect(decayed).toContain('transformer.wpe.weight');
    expect(decayed).toContain('transformer.h.1.mlp.c_proj.weight');
    const params = initParams(spec, new Rng(1));
    for (const p of spec.params) if (p.role === 'ln_bias' || p.role === 'bias') params.subarray(p.offset, p.offset + p.size).fill(0.5);
    const before = Float32Array.from(params);
    const n = spec.numParams;
    // zero gradients: Adam's term is 0/(0+eps) = 0, so only the decay moves anything
    adamwUpdate(params, new Float32Array(n), new Float32Array(n), new Float32Array(n), spec, { ...HP, lr: 0.5, weightDecay: 0.2 }, 1, 1);
    for (const p of spec.params) {
      const got = params.subarray(p.offset, p.offset + p.size);
      const exp = before.subarray(p.offset, p.offset + p.size).map((x) => (p.decay ? x * 0.9 : x));
      expectClose(got, exp, { rtol: 1e-6, atol: 0 }, p.name);
    }
  });

  it('gradNorm is the global L2 norm, accumulated in f64', () => {
    expect(gradNorm(Float32Array.from([3, 4]))).toBe(5);
    const g = new Float32Array(1_000_000).fill(1e-3); // f32 accumulation would drift
    expectClose([gradNorm(g)], [1], { rtol: 1e-6 }, 'norm of a million 1e-3');
  });

  it('clipping scales the gradient to the clip norm, as clip_grad_norm_', () => {
    expect(clipScale(5, 0)).toBe(1); // disabled
    expect(clipScale(0.5, 1)).toBe(1); // already inside
    expectClose([clipScale(5, 1)], [1 / (5 + 1e-6)], { rtol: 1e-15 }, 'scale');
    // the moments see the clipped gradient: after one step m = (1 - beta1) * g * scale
    const spec = twoParamSpec();
    const grads = Float64Array.from([3, 0, 0, 4, 0, 0]);
    const m = new Float64Array(6);
    const scale = clipScale(gradNorm(grads), 1);
    adamwUpdate(new Float64Array(6), grads, m, new Float64Array(6), spec, HP, 1, scale);
    expectClose([gradNorm(m.map((x) => x / (1 - HP.beta1)))], [1], { rtol: 1e-6 }, 'clipped norm');
  });
});
