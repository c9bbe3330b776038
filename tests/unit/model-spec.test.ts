// The model table: Hugging Face names, shapes and order, contiguous offsets, weight
// decay on >= 2-D tensors, GPT-2 initialisation statistics, FLOPs and memory.
import { describe, expect, it } from 'vitest';
import {
  activationFloats,
  flopsPerToken,
  formatBytes,
  initParams,
  memoryEstimate,
  modelSpec,
  paramViews,
  type ModelConfig,
} from '../../src/core/model-spec.ts';
import { Rng } from '../../src/core/rng.ts';

const SMALL: ModelConfig = { vocabSize: 11, blockSize: 8, nLayer: 2, nHead: 2, nEmbd: 4 };
// Big enough for stable statistics (thousands of draws per tensor), still instant.
const STATS: ModelConfig = { vocabSize: 96, blockSize: 32, nLayer: 3, nHead: 4, nEmbd: 48 };
const GPT2: ModelConfig = { vocabSize: 50257, blockSize: 1024, nLayer: 12, nHead: 12, nEmbd: 768 };

function meanStd(a: ArrayLike<number>): { mean: number; std: number } {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i];
  const mean = s / a.length;
  let q = 0;
  for (let i = 0; i < a.length; i++) q += (a[i] - mean) ** 2;
  return { mean, std: Math.sqrt(q / a.length) };
}

/** Bit-for-bit equality (toEqual on large typed arrays is slow). */
function sameBits(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

describe('modelSpec', () => {
  it('lists the Hugging Face GPT-2 names and Conv1D [in, out] shapes in GPT-2 order', () => {
    const spec = modelSpec(SMALL);
    const V = 11, T = 8, C = 4;
    const block = (i: number): Array<[string, number[]]> => [
      [`transformer.h.${i}.ln_1.weight`, [C]],
      [`transformer.h.${i}.ln_1.bias`, [C]],
      [`transformer.h.${i}.attn.c_attn.weight`, [C, 3 * C]],
      [`transformer.h.${i}.attn.c_attn.bias`, [3 * C]],
      [`transformer.h.${i}.attn.c_proj.weight`, [C, C]],
      [`transformer.h.${i}.attn.c_proj.bias`, [C]],
      [`transformer.h.${i}.ln_2.weight`, [C]],
      [`transformer.h.${i}.ln_2.bias`, [C]],
      [`transformer.h.${i}.mlp.c_fc.weight`, [C, 4 * C]],
      [`transformer.h.${i}.mlp.c_fc.bias`, [4 * C]],
      [`transformer.h.${i}.mlp.c_proj.weight`, [4 * C, C]],
      [`transformer.h.${i}.mlp.c_proj.bias`, [C]],
    ];
    const expected: Array<[string, number[]]> = [
      ['transformer.wte.weight', [V, C]],
      ['transformer.wpe.weight', [T, C]],
      ...block(0),
      ...block(1),
      ['transformer.ln_f.weight', [C]],
      ['transformer.ln_f.bias', [C]],
    ];
    expect(spec.params.map((p) => [p.name, p.shape])).toEqual(expected);
    // No lm_head: it is tied to wte.
    expect(spec.params.some((p) => p.name.includes('lm_head'))).toBe(false);
    expect(spec.params.map((p) => p.layer)).toEqual([-1, -1, ...Array(12).fill(0), ...Array(12).fill(1), -1, -1]);
    for (const p of spec.params) expect(spec.byName.get(p.name)).toBe(p);
    expect(spec.byName.size).toBe(spec.params.length);
    expect(spec.model).toEqual(SMALL);
  });

  it('packs parameters contiguously: offsets run back to back from 0 to numParams', () => {
    for (const model of [SMALL, STATS, GPT2]) {
      const spec = modelSpec(model);
      let at = 0;
      for (const p of spec.params) {
        expect(p.offset, p.name).toBe(at);
        expect(p.size, p.name).toBe(p.shape.reduce((a, b) => a * b, 1));
        expect(p.size, p.name).toBeGreaterThan(0);
        at += p.size;
      }
      expect(spec.numParams).toBe(at);
    }
  });

  it('counts parameters by the closed form V*C + T*C + L*(12C^2 + 13C) + 2C', () => {
    for (const m of [SMALL, STATS, GPT2]) {
      const { vocabSize: V, blockSize: T, nLayer: L, nEmbd: C } = m;
      expect(modelSpec(m).numParams).toBe(V * C + T * C + L * (12 * C * C + 13 * C) + 2 * C);
    }
    expect(modelSpec(GPT2).numParams).toBe(124_439_808);
  });

  it('decays exactly the tensors with two or more dimensions (weights and embeddings)', () => {
    const spec = modelSpec(SMALL);
    for (const p of spec.params) {
      expect(p.decay, p.name).toBe(p.shape.length >= 2);
      const isLnOrBias = /\.(bias|ln_\d\.weight|ln_f\.weight)$/.test(p.name);
      expect(p.decay, p.name).toBe(!isLnOrBias);
    }
    const decayed = spec.params.filter((p) => p.decay).reduce((a, p) => a + p.size, 0);
    const C = 4, L = 2;
    expect(decayed).toBe(11 * C + 8 * C + L * 12 * C * C);
  });

  it('gives each parameter the role its initialisation needs', () => {
    const spec = modelSpec(SMALL);
    const role = (n: string) => spec.byName.get(n)!.role;
    expect(role('transformer.wte.weight')).toBe('wte');
    expect(role('transformer.wpe.weight')).toBe('wpe');
    expect(role('transformer.h.1.ln_1.weight')).toBe('ln_weight');
    expect(role('transformer.ln_f.bias')).toBe('ln_bias');
    expect(role('transformer.h.0.attn.c_attn.weight')).toBe('weight');
    expect(role('transformer.h.0.mlp.c_fc.weight')).toBe('weight');
    expect(role('transformer.h.0.attn.c_proj.weight')).toBe('proj_weight');
    expect(role('transformer.h.1.mlp.c_proj.weight')).toBe('proj_weight');
    expect(role('transformer.h.1.mlp.c_proj.bias')).toBe('bias');
  });

  it('paramViews are views into the flat array (writes show through)', () => {
    const spec = modelSpec(SMALL);
    const flat = new Float32Array(spec.numParams);
    const views = paramViews(spec, flat);
    expect([...views.keys()]).toEqual(spec.params.map((p) => p.name));
    const wpe = views.get('transformer.wpe.weight')!;
    expect(wpe.length).toBe(8 * 4);
    wpe[3] = 42;
    expect(flat[spec.byName.get('transformer.wpe.weight')!.offset + 3]).toBe(42);
    expect(wpe.buffer).toBe(flat.buffer);
  });
});

describe('initParams', () => {
  const spec = modelSpec(STATS);
  const flat = initParams(spec, new Rng(1234));
  const views = paramViews(spec, flat);

  it('sets LayerNorm weights to 1 and every bias to 0', () => {
    for (const p of spec.params) {
      const v = views.get(p.name)!;
      if (p.role === 'ln_weight') expect(v.every((x) => x === 1), p.name).toBe(true);
      if (p.role === 'ln_bias' || p.role === 'bias') expect(v.every((x) => x === 0), p.name).toBe(true);
    }
  });

  it('draws weights and embeddings from N(0, 0.02) and residual projections from N(0, 0.02/sqrt(2L))', () => {
    const projStd = 0.02 / Math.sqrt(2 * STATS.nLayer);
    for (const p of spec.params) {
      if (p.role === 'ln_weight' || p.role === 'ln_bias' || p.role === 'bias') continue;
      const want = p.role === 'proj_weight' ? projStd : 0.02;
      const { mean, std } = meanStd(views.get(p.name)!);
      // Standard error of the std is want/sqrt(2n) (< 1% here); of the mean want/sqrt(n).
      expect(Math.abs(std / want - 1), `${p.name} std ${std}`).toBeLessThan(0.06);
      expect(Math.abs(mean), `${p.name} mean ${mean}`).toBeLessThan((5 * want) / Math.sqrt(p.size));
    }
    // The two groups, pooled: tight agreement.
    const pool = (r: string) => spec.params.filter((p) => p.role === r).flatMap((p) => Array.from(views.get(p.name)!));
    expect(meanStd(pool('weight')).std).toBeCloseTo(0.02, 3);
    expect(meanStd(pool('proj_weight')).std).toBeCloseTo(projStd, 3);
  });

  it('looks Gaussian: about 68% within one std, about 95% within two, nothing past 6', () => {
    const w = views.get('transformer.h.0.mlp.c_fc.weight')!;
    let in1 = 0, in2 = 0, far = 0;
    for (const x of w) {
      const z = Math.abs(x) / 0.02;
      if (z < 1) in1++;
      if (z < 2) in2++;
      if (z > 6) far++;
    }
    expect(in1 / w.length).toBeGreaterThan(0.66);
    expect(in1 / w.length).toBeLessThan(0.70);
    expect(in2 / w.length).toBeGreaterThan(0.94);
    expect(in2 / w.length).toBeLessThan(0.965);
    expect(far).toBe(0);
  });

  it('is a deterministic function of the seed', () => {
    expect(sameBits(initParams(spec, new Rng(1234)), flat)).toBe(true);
    const other = initParams(spec, new Rng(1235));
    let same = 0;
    for (let i = 0; i < flat.length; i++) if (flat[i] !== 0 && flat[i] !== 1 && flat[i] === other[i]) same++;
    expect(same).toBe(0);
    // Derived streams (as prepare.ts uses) are deterministic too.
    expect(sameBits(initParams(spec, Rng.derive(7, 'init')), initParams(spec, Rng.derive(7, 'init')))).toBe(true);
    expect(sameBits(initParams(spec, Rng.derive(7, 'init')), initParams(spec, Rng.derive(8, 'init')))).toBe(false);
  });

  it('every value is finite', () => {
    expect(flat.length).toBe(spec.numParams);
    expect(flat.every((x) => Number.isFinite(x))).toBe(true);
  });
});

describe('flopsPerToken', () => {
  it('is 6 x (params without wpe) + 12 L C T (nanoGPT estimate_mfu)', () => {
    // GPT-2 small: 6 * (124,439,808 - 1024*768) + 12*12*768*1024.
    expect(flopsPerToken(GPT2)).toBe(6 * (124_439_808 - 1024 * 768) + 12 * 12 * 768 * 1024);
    expect(flopsPerToken(GPT2)).toBe(855_166_464);
    const { vocabSize: V, nLayer: L, nEmbd: C, blockSize: T } = SMALL;
    expect(flopsPerToken(SMALL)).toBe(6 * (V * C + L * (12 * C * C + 13 * C) + 2 * C) + 12 * L * C * T);
  });

  it('grows with every dimension of the model', () => {
    const base = flopsPerToken(STATS);
    expect(base).toBeGreaterThan(0);
    for (const k of ['vocabSize', 'blockSize', 'nLayer', 'nEmbd'] as const) {
      expect(flopsPerToken({ ...STATS, [k]: STATS[k] * 2 }), k).toBeGreaterThan(base);
    }
    // Heads split the width: they do not change the FLOPs.
    expect(flopsPerToken({ ...STATS, nHead: 8 })).toBe(base);
  });
});

describe('memoryEstimate', () => {
  it('counts params + grads + AdamW m and v as 16 bytes per parameter', () => {
    for (const m of [SMALL, STATS, GPT2]) {
      const n = modelSpec(m).numParams;
      const e = memoryEstimate(m, 4);
      expect(e.params).toBe(4 * n);
      expect(e.grads).toBe(4 * n);
      expect(e.adam).toBe(8 * n);
      expect(e.params + e.grads + e.adam).toBe(16 * n);
      expect(e.total).toBe(16 * n + e.activations);
      expect(e.activations).toBe(activationFloats(m, 4) * 4);
    }
  });

  it('activations grow linearly with the batch; the parameter part does not', () => {
    const e1 = memoryEstimate(STATS, 1);
    const e8 = memoryEstimate(STATS, 8);
    expect(e8.activations).toBe(8 * e1.activations);
    expect(e8.params).toBe(e1.params);
    expect(e8.total).toBeGreaterThan(e1.total);
    let prev = 0;
    for (const B of [1, 2, 4, 16, 64]) {
      const t = memoryEstimate(STATS, B).total;
      expect(t).toBeGreaterThan(prev);
      prev = t;
    }
  });

  it('GPT-2 small: the logits dominate the largest tensor, and the total is in the expected range', () => {
    const e = memoryEstimate(GPT2, 8);
    // B*T*V floats of logits (8 * 1024 * 50257 * 4 bytes = 1.65 GB) beat the 154 MB of wte.
    expect(e.largestTensor).toBe(8 * 1024 * 50257 * 4);
    expect(memoryEstimate(GPT2, 1).largestTensor).toBe(Math.max(50257 * 768 * 4, 1024 * 50257 * 4));
    // About 2 GB of parameter state plus activations: well above 5 GB, well below 100 GB at B=8.
    expect(e.total).toBeGreaterThan(5e9);
    expect(e.total).toBeLessThan(100e9);
    // With one tiny sequence the largest tensor is a parameter (wte).
    const tiny = memoryEstimate({ vocabSize: 65, blockSize: 4, nLayer: 1, nHead: 1, nEmbd: 64 }, 1);
    expect(tiny.largestTensor).toBe(Math.max(65 * 64, 64 * 4 * 64) * 4);
  });

  it('formatBytes reads as a person would write it', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1024)).toBe('1.0 KiB');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(500 * 1024 * 1024)).toBe('500 MiB');
    expect(formatBytes(3 * 1024 ** 3)).toBe('3.0 GiB');
    expect(formatBytes(2 * 1024 ** 5)).toBe('2048 TiB');
  });
});
