// The WebGPU buffer plan without a GPU: parameter layout (alignment, decay ranges,
// coverage, the spec <-> plan mapping) and planSummary's verdicts.
import { expectKilnError } from '../helpers/kiln-error.ts';
import { describe, expect, it } from 'vitest';
import { KilnError } from '../../src/core/errors.ts';
import { FIELD_BY_KEY } from '../../src/core/config.ts';
import { MAX_LAYERNORM_C } from '../../src/backends/webgpu/ops/layernorm.ts';
import { modelSpec, type ModelConfig } from '../../src/core/model-spec.ts';
import {
  bindingChunks, bufferPlan, DEFAULT_PLAN_LIMITS, paramLayout, planLimits, planSummary, toPlanLayout, toSpecLayout,
} from '../../src/backends/webgpu/plan.ts';

const tiny: ModelConfig = { vocabSize: 11, blockSize: 7, nLayer: 2, nHead: 2, nEmbd: 12 };
const gpt2: ModelConfig = { vocabSize: 50257, blockSize: 1024, nLayer: 12, nHead: 12, nEmbd: 768 };

describe('paramLayout', () => {
  for (const [label, model, align] of [['tiny', tiny, 256], ['gpt2', gpt2, 256], ['tiny align 512', tiny, 512]] as const) {
    it(`${label}: aligned, decay first and contiguous, every tensor exactly once`, () => {
      const spec = modelSpec(model);
      const layout = paramLayout(spec, align);
      const af = align / 4;
      expect(layout.alignFloats).toBe(af);
      expect(layout.slots.length).toBe(spec.params.length);
      expect(new Set(layout.slots.map((s) => s.name)).size).toBe(spec.params.length);
      for (const p of spec.params) {
        const s = layout.byName.get(p.name)!;
        expect(s.size).toBe(p.size);
        expect(s.specOffset).toBe(p.offset);
        expect(s.decay).toBe(p.decay);
        expect(s.offset % af).toBe(0);
      }
      // No overlaps, inside the buffer.
      const sorted = [...layout.slots].sort((a, b) => a.offset - b.offset);
      for (let i = 1; i < sorted.length; i++) expect(sorted[i].offset).toBeGreaterThanOrEqual(sorted[i - 1].offset + sorted[i - 1].size);
      expect(sorted.at(-1)!.offset + sorted.at(-1)!.size).toBeLessThanOrEqual(layout.floats);
      expect(layout.floats % af).toBe(0);
      // Each decay group lies inside its range, and the ranges are disjoint and aligned.
      const { decay, noDecay } = layout;
      expect(decay.offset).toBe(0);
      expect(noDecay.offset % af).toBe(0);
      expect(noDecay.offset).toBeGreaterThanOrEqual(decay.offset + decay.size);
      for (const s of layout.slots) {
        const r = s.decay ? decay : noDecay;
        expect(s.offset).toBeGreaterThanOrEqual(r.offset);
        expect(s.offset + s.size).toBeLessThanOrEqual(r.offset + r.size);
      }
      // The ranges hold nothing of the other group.
      for (const s of layout.slots) {
        const other = s.decay ? noDecay : decay;
        expect(s.offset + s.size <= other.offset || s.offset >= other.offset + other.size).toBe(true);
      }
      // Padding waste stays small: at most one alignment gap per tensor.
      expect(layout.floats).toBeLessThanOrEqual(spec.numParams + af * (spec.params.length + 2));
    });
  }

  it('toPlanLayout / toSpecLayout round-trip, zeros in the gaps', () => {
    const spec = modelSpec(tiny);
    const layout = paramLayout(spec);
    const flat = new Float32Array(spec.numParams).map((_, i) => i + 1);
    const planned = toPlanLayout(layout, flat);
    expect(planned.length).toBe(layout.floats);
    for (const p of spec.params) {
      const s = layout.byName.get(p.name)!;
      expect(Array.from(planned.subarray(s.offset, s.offset + s.size))).toEqual(Array.from(flat.subarray(p.offset, p.offset + p.size)));
    }
    // Every value lands once; the rest is zero.
    let nonzero = 0;
    for (const x of planned) if (x !== 0) nonzero++;
    expect(nonzero).toBe(spec.numParams);
    expect(Array.from(toSpecLayout(layout, planned))).toEqual(Array.from(flat));
  });
});

describe('bindingChunks', () => {
  it('covers the range in aligned pieces no bigger than a binding', () => {
    const r = { offset: 128, size: 10_000 };
    const chunks = bindingChunks(r, 4096, 64);
    expect(chunks[0].offset).toBe(128);
    let at = 128;
    for (const c of chunks) {
      expect(c.offset).toBe(at);
      expect(c.offset % 64).toBe(0);
      expect(c.size * 4).toBeLessThanOrEqual(4096);
      at += c.size;
    }
    expect(at).toBe(128 + 10_000);
  });
});

describe('planSummary', () => {
  it('a tiny model fits the WebGPU defaults', () => {
    const s = planSummary(tiny, 3, {});
    expect(s.fits).toBe(true);
    expect(s.problem).toBeUndefined();
    const plan = bufferPlan(tiny, 3);
    expect(s.totalBytes).toBe(plan.totalBytes);
    expect(s.totalBytes).toBeGreaterThan(4 * modelSpec(tiny).numParams * 4);
    expect(s.largestBinding).toBeGreaterThan(0);
  });

  it('GPT-2 124M at B=4 fits 1 GiB bindings but not the 128 MiB default (wte names itself)', () => {
    const big = planSummary(gpt2, 4, { maxStorageBufferBindingSize: 1 << 30, maxBufferSize: 1 << 30 });
    expect(big.fits).toBe(true);
    const small = planSummary(gpt2, 4, DEFAULT_PLAN_LIMITS);
    expect(small.fits).toBe(false);
    expect(small.problem).toMatch(/transformer\.wte\.weight/);
    expect(small.problem).toMatch(/maxStorageBufferBindingSize/);
    expect(small.largestName).toBe('transformer.wte.weight');
    expect(small.largestBinding).toBe(50257 * 768 * 4);
  });

  it('a head larger than the attention kernels take does not fit, and the hint says to use more heads', () => {
    const wide = { ...tiny, nEmbd: 2 * 264, nHead: 2 };
    const s = planSummary(wide, 1, {});
    expect(s.fits).toBe(false);
    expect(s.problem).toMatch(/head size 264 \(nEmbd 528 \/ nHead 2\) is over 256/);
    expect(planSummary({ ...tiny, nEmbd: 2 * 256, nHead: 2 }, 1, {}).fits).toBe(true);
    expect(expectKilnError(() => bufferPlan(wide, 1), 'device', /head size 264/).hint).toMatch(/nHead so that nEmbd \/ nHead is at most 256/);
  });

  it('every nEmbd the config allows fits the LayerNorm forward kernels (rows held in registers)', () => {
    expect(FIELD_BY_KEY.get('nEmbd')!.max).toBeLessThanOrEqual(MAX_LAYERNORM_C);
  });

  it('the buffer holding all parameters must fit maxBufferSize', () => {
    const s = planSummary(gpt2, 1, { maxStorageBufferBindingSize: 1 << 30, maxBufferSize: 300 << 20 });
    expect(s.fits).toBe(false);
    expect(s.problem).toMatch(/parameters/);
    expect(s.problem).toMatch(/maxBufferSize/);
  });

  it('bufferPlan throws a device KilnError that names the tensor, its size, the limit and the way out', () => {
    try {
      bufferPlan(gpt2, 4, planLimits({}));
      expect.fail('expected a KilnError');
    } catch (e) {
      expect(e).toBeInstanceOf(KilnError);
      const k = e as KilnError;
      expect(k.code).toBe('device');
      expect(k.message).toMatch(/transformer\.wte\.weight/);
      expect(k.message).toMatch(/154389504 bytes/);
      expect(k.message).toMatch(/134217728 bytes/);
      expect(k.hint).toMatch(/--backend cuda/);
    }
  });

  it('planLimits defaults what the device leaves out and never aligns below 256', () => {
    expect(planLimits(undefined)).toEqual(DEFAULT_PLAN_LIMITS);
    expect(planLimits({ minStorageBufferOffsetAlignment: 32, maxBufferSize: 1 << 30 })).toEqual({
      ...DEFAULT_PLAN_LIMITS,
      maxBufferSize: 1 << 30,
    });
  });
});
