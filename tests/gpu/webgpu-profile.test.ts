// WebGpuBackend.profileStep on a tiny model: the profile times every dispatch of the
// step exactly once, its families add up to its total, and a profiled step leaves the
// same state (bit for bit) as a normal one. Without 'timestamp-query' it refuses with
// a KilnError. Times themselves are not checked (SwiftShader's say nothing of a GPU's).
import { describe, expect, it } from 'vitest';
import type { Batch, StepHyper, TrainState } from '../../src/backends/backend.ts';
import { WebGpuBackend } from '../../src/backends/webgpu/backend.ts';
import { familyTotals, kernelFamily } from '../../src/backends/webgpu/profile.ts';
import { KilnError } from '../../src/core/errors.ts';
import { initParams, modelSpec, type ModelConfig } from '../../src/core/model-spec.ts';
import { Rng } from '../../src/core/rng.ts';
import { gpuHarness } from '../helpers/gpu.ts';

const model: ModelConfig = { vocabSize: 11, blockSize: 7, nLayer: 2, nHead: 2, nEmbd: 12 };
const B = 3;
const T = 7;
const hp: StepHyper = { lr: 3e-3, weightDecay: 0.1, beta1: 0.9, beta2: 0.95, eps: 1e-8, gradClip: 1.0 };

function initialState(): TrainState {
  return { params: initParams(modelSpec(model), new Rng(1)), m: null, v: null, step: 0 };
}

function batch(seed: number, microBatches = 1): Batch {
  const rng = new Rng(seed);
  const n = B * T * microBatches;
  return {
    inputs: Int32Array.from({ length: n }, () => rng.int(model.vocabSize)),
    targets: Int32Array.from({ length: n }, () => rng.int(model.vocabSize)),
    B, T, microBatches,
  };
}

describe('kernelFamily', () => {
  it('names a dispatch by the op its label starts with', () => {
    expect(kernelFamily('matmul_a4_b1')).toBe('matmul');
    expect(kernelFamily('matmul_a4_b4 split-K')).toBe('matmul');
    expect(kernelFamily('matmul_colsum partial')).toBe('matmul');
    expect(kernelFamily('attention_flash_backward_dkv')).toBe('attention');
    expect(kernelFamily('layernorm_backward_reduce')).toBe('layernorm');
    expect(kernelFamily('classifier_softmax')).toBe('classifier');
    expect(kernelFamily('grad_norm_partial')).toBe('grad_norm');
    expect(kernelFamily('mean_loss')).toBe('mean_loss');
    expect(kernelFamily('adamw_update')).toBe('adamw');
    expect(kernelFamily('fill')).toBe('fill');
  });

  it('totals add up per family, largest first', () => {
    const f = familyTotals([
      { label: 'fill', family: 'fill', ms: 1 },
      { label: 'matmul_a1_b1', family: 'matmul', ms: 2 },
      { label: 'matmul_a4_b4', family: 'matmul', ms: 3 },
    ]);
    expect(f).toEqual([
      { family: 'matmul', ms: 5, dispatches: 2, share: 5 / 6, flops: 0, countedMs: 0 },
      { family: 'fill', ms: 1, dispatches: 1, share: 1 / 6, flops: 0, countedMs: 0 },
    ]);
  });

  it('sums the flops of the dispatches that count them, and their time apart', () => {
    const f = familyTotals([
      { label: 'matmul_a4_b4', family: 'matmul', ms: 2, flops: 4e9 },
      { label: 'matmul_splitk_reduce', family: 'matmul', ms: 1 },
      { label: 'matmul_a1_b1', family: 'matmul', ms: 3, flops: 2e9 },
    ]);
    expect(f).toEqual([{ family: 'matmul', ms: 6, dispatches: 3, share: 1, flops: 6e9, countedMs: 5 }]);
  });
});

const h = await gpuHarness();

describe('WebGpuBackend.profileStep', () => {
  if (typeof h === 'string') {
    it.skip(`profileStep: ${h}`, () => {});
    return;
  }
  if (!h.gpu.hasTimestamps) {
    it.skip(`profileStep: this device (${h.gpu.adapterName}) has no timestamp-query`, () => {});
    return;
  }

  const harnessGpu = h.gpu;
  async function backend(gpu = harnessGpu): Promise<WebGpuBackend> {
    const be = await WebGpuBackend.create({ gpu });
    await be.load(model, initialState());
    return be;
  }

  for (const microBatches of [1, 2]) {
    it(`times every dispatch once and changes nothing (${microBatches} micro-batch(es))`, async () => {
      const plain = await backend();
      const profiled = await backend();
      const [b1, b2, b3] = [batch(1, microBatches), batch(2, microBatches), batch(3, microBatches)];
      const s1 = [await plain.step(b1, hp), await profiled.step(b1, hp)];
      expect(s1[1]).toEqual(s1[0]);
      const want = await plain.step(b2, hp);
      const p = await profiled.profileStep(b2, hp);
      expect(p.stats).toEqual(want);

      // Every dispatch of the step, once each, in order.
      const n = await profiled.countDispatches('step', B, microBatches);
      expect(p.dispatches.length).toBe(n);
      expect(plain.dispatchesPerStep).toBe(n);
      for (const d of p.dispatches) {
        expect(Number.isFinite(d.ms) && d.ms >= 0, `${d.label}: ${d.ms} ms`).toBe(true);
        expect(d.family).toBe(kernelFamily(d.label));
      }
      expect(p.dispatches.filter((d) => d.label === 'adamw_update').length).toBe(2);
      expect(p.dispatches.filter((d) => d.label === 'encoder_forward').length).toBe(microBatches);
      expect(p.dispatches.filter((d) => d.label === 'classifier_softmax').length).toBe(microBatches);

      // Families partition the dispatches and add up to the total.
      expect(p.families.reduce((s, f) => s + f.dispatches, 0)).toBe(n);
      expect(new Set(p.families.map((f) => f.family)).size).toBe(p.families.length);
      expect(p.families.reduce((s, f) => s + f.ms, 0)).toBeCloseTo(p.gpuMs, 9);
      expect(p.gpuMs).toBeCloseTo(p.dispatches.reduce((s, d) => s + d.ms, 0), 9);
      expect(p.families.reduce((s, f) => s + f.share, 0)).toBeCloseTo(p.gpuMs > 0 ? 1 : 0, 9);
      for (const f of ['matmul', 'attention', 'layernorm', 'classifier', 'adamw', 'encoder']) {
        expect(p.families.map((x) => x.family), f).toContain(f);
      }
      // Counted flops: every matmul of the step (forward, and dinp + dweight backward: 3x
      // the forward's 2 N (12 L C^2 + C V)) and the flash attention kernels (4, 6 and 8 HS
      // per causal (query, key) pair).
      const { nLayer: L, nEmbd: C, vocabSize: V, nHead: NH } = model;
      const flopsOf = (family: string) => p.families.find((f) => f.family === family)!.flops;
      expect(flopsOf('matmul')).toBe(microBatches * 3 * 2 * B * T * (12 * L * C * C + C * V));
      expect(flopsOf('attention')).toBe(microBatches * L * (4 + 6 + 8) * (C / NH) * (B * NH * T * (T + 1)) / 2);
      expect(flopsOf('layernorm')).toBe(0);
      expect(p.gpuMs).toBeGreaterThan(0);
      expect(p.wallMs).toBeGreaterThan(0);
      expect(p.stepWallMs).toBeGreaterThan(0);
      // device.ts turns Dawn's 65.5 us quantization off, so short kernels are not read as 0.
      expect(p.timerResolutionNs).toBeLessThan(65536);
      console.log(`profile (${microBatches} micro-batch(es), ${n} dispatches): GPU ${p.gpuMs.toFixed(2)} ms, profiled wall ${p.wallMs.toFixed(1)} ms, ` +
        `normal step wall ${p.stepWallMs!.toFixed(1)} ms, timer resolution ${p.timerResolutionNs} ns; ` + p.families.map((f) => `${f.family} ${f.ms.toFixed(2)} (${f.dispatches})`).join(', '));

      // A profiled step leaves the state a normal step leaves, and the next steps agree.
      expect(await profiled.save()).toEqual(await plain.save());
      expect(await profiled.step(b3, hp)).toEqual(await plain.step(b3, hp));
      expect(await profiled.save()).toEqual(await plain.save());
      plain.dispose();
      profiled.dispose();
    });
  }

  it('refuses with a KilnError where the device has no timestamp-query', async () => {
    const be = await backend({ ...harnessGpu, hasTimestamps: false });
    const err = await be.profileStep(batch(1), hp).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KilnError);
    expect((err as KilnError).message).toMatch(/timestamp-query/);
    // The refusal leaves the backend usable.
    expect(Number.isFinite((await be.step(batch(1), hp)).loss)).toBe(true);
    be.dispose();
  });
});
