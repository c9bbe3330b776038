import { describe, expect, it } from 'vitest';
import type { Batch, StepHyper, TrainState } from '../../src/backends/backend.ts';
import { CpuBackend } from '../../src/backends/cpu.ts';
import { KilnError } from '../../src/core/errors.ts';
import { initParams, memoryEstimate, modelSpec, type ModelConfig } from '../../src/core/model-spec.ts';
import { adamwUpdate, clipScale, gradNorm } from '../../src/reference/adamw.ts';
import { ReferenceGPT } from '../../src/reference/gpt.ts';
import { expectClose } from '../helpers/expect-close.ts';
import { randTokens, Rng } from '../helpers/finite-diff.ts';

const MODEL: ModelConfig = { vocabSize: 11, blockSize: 8, nLayer: 2, nHead: 2, nEmbd: 16 };
const HP: StepHyper = { lr: 3e-3, weightDecay: 0.1, beta1: 0.9, beta2: 0.95, eps: 1e-8, gradClip: 1 };

function freshState(seed = 1): TrainState {
  return { params: initParams(modelSpec(MODEL), new Rng(seed)), m: null, v: null, step: 0 };
}

function batches(n: number, B: number, T: number, microBatches: number, seed = 2): Batch[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => {
    const len = B * T * microBatches;
    return { inputs: randTokens(len, MODEL.vocabSize, rng), targets: randTokens(len, MODEL.vocabSize, rng), B, T, microBatches };
  });
}

async function loaded(state: TrainState): Promise<CpuBackend> {
  const be = new CpuBackend();
  await be.load(MODEL, state);
  return be;
}

describe('CpuBackend', () => {
  it('memoryBytes is the reference\'s full buffer list, twice as large in f64', () => {
    expect(new CpuBackend().memoryBytes(MODEL, 4)).toBe(memoryEstimate(MODEL, 4).total);
    expect(new CpuBackend({ dtype: 'f64' }).memoryBytes(MODEL, 4)).toBe(2 * memoryEstimate(MODEL, 4).total);
    expect(new CpuBackend().memoryBytes(MODEL, 8)).toBeGreaterThan(new CpuBackend().memoryBytes(MODEL, 4));
  });

  it('save() then load() continues bit-identically (3 + 3 steps == 6 steps)', async () => {
    const data = batches(6, 3, 8, 1);
    const straight = await loaded(freshState());
    const straightStats = [];
    for (const b of data) straightStats.push(await straight.step(b, HP));
    const first = await loaded(freshState());
    const resumedStats = [];
    for (const b of data.slice(0, 3)) resumedStats.push(await first.step(b, HP));
    const saved = await first.save();
    expect(saved.step).toBe(3);
    first.dispose();
    const second = await loaded(saved);
    for (const b of data.slice(3)) resumedStats.push(await second.step(b, HP));
    expect(resumedStats).toEqual(straightStats);
    const a = await straight.save();
    const b = await second.save();
    expect(b.step).toBe(6);
    expect(Buffer.from(b.params.buffer).equals(Buffer.from(a.params.buffer))).toBe(true);
    expect(Buffer.from(b.m!.buffer).equals(Buffer.from(a.m!.buffer))).toBe(true);
    expect(Buffer.from(b.v!.buffer).equals(Buffer.from(a.v!.buffer))).toBe(true);
  });

  it('save() returns copies that later steps do not change', async () => {
    const be = await loaded(freshState());
    const s = await be.save();
    const before = Float32Array.from(s.params);
    await be.step(batches(1, 2, 8, 1)[0], HP);
    expect(s.params).toEqual(before);
  });

  it('2 micro-batches of B equal one batch of 2B (loss, grad norm, params)', async () => {
    const B = 3, T = 8;
    const hp = { ...HP, gradClip: 0 };
    const accum = await loaded(freshState());
    const whole = await loaded(freshState());
    for (const b of batches(3, B, T, 2)) {
      // the same tokens: micro-batches back to back are one batch of 2B sequences
      const s1 = await accum.step(b, hp);
      const s2 = await whole.step({ ...b, B: 2 * B, microBatches: 1 }, hp);
      expectClose([s1.loss, s1.gradNorm], [s2.loss, s2.gradNorm], { rtol: 1e-5 }, 'loss, grad norm');
    }
    expectClose((await accum.save()).params, (await whole.save()).params, { rtol: 1e-5, atol: 1e-5 }, 'params');
  });

  it('step returns the loss before the update and the grad norm before clipping', async () => {
    const state = freshState(3);
    const batch = batches(1, 4, 8, 1, 4)[0];
    const gpt = new ReferenceGPT(MODEL, state.params, { maxBatch: 4 });
    const expectedLoss = gpt.forward(batch.inputs, batch.targets, 4, 8);
    gpt.backward(1);
    let sq = 0;
    for (const g of gpt.grads) sq += g * g;
    const be = await loaded(state);
    const tiny = { ...HP, gradClip: 1e-6 }; // clipping on: the reported norm is still the raw one
    const s = await be.step(batch, tiny);
    expectClose([s.loss, s.gradNorm], [expectedLoss, Math.sqrt(sq)], { rtol: 1e-6 }, 'stats');
    // and the update is AdamW at t=1 on the clipped gradient, exactly
    const spec = modelSpec(MODEL);
    const n = spec.numParams;
    adamwUpdate(gpt.params, gpt.grads, new Float32Array(n), new Float32Array(n), spec, tiny, 1, clipScale(gradNorm(gpt.grads), 1e-6));
    const after = await be.save();
    expect(after.step).toBe(1);
    expectClose(after.params, gpt.params, { rtol: 0, atol: 0 }, 'params after one step');
  });

  it('loss() is the mean over micro-batches without touching the state; logits() is the last position', async () => {
    const state = freshState(5);
    const be = await loaded(state);
    const b = batches(1, 2, 8, 3, 6)[0];
    const gpt = new ReferenceGPT(MODEL, state.params, { maxBatch: 2 });
    let mean = 0;
    for (let k = 0; k < 3; k++) mean += gpt.forward(b.inputs.subarray(k * 16, (k + 1) * 16), b.targets.subarray(k * 16, (k + 1) * 16), 2, 8) / 3;
    expectClose([await be.loss(b)], [mean], { rtol: 1e-6 }, 'loss');
    expect((await be.save()).params).toEqual(state.params);
    const ctx = Int32Array.from([1, 2, 3]);
    expectClose(await be.logits(ctx), gpt.lastLogits(ctx), { rtol: 0, atol: 0 }, 'logits');
  });

  it('training on a fixed batch drives the loss down', async () => {
    const be = await loaded(freshState(7));
    const b = batches(1, 4, 8, 1, 8)[0];
    const hp = { ...HP, lr: 1e-2 };
    const first = (await be.step(b, hp)).loss;
    let last = first;
    for (let i = 0; i < 40; i++) last = (await be.step(b, hp)).loss;
    expect(first).toBeGreaterThan(2.2);
    expect(last).toBeLessThan(0.5 * first);
  });

  it('with dtype f64 runs the same step in double precision, moments included', async () => {
    const state = freshState(9);
    const data = batches(3, 2, 8, 2, 10);
    const be = new CpuBackend({ dtype: 'f64' });
    expect(be.info.device).toBe('CPU reference (f64)');
    await be.load(MODEL, state);
    // The same step spelled out in f64: ReferenceGPT f64, AdamW on Float64Array moments.
    const gpt = new ReferenceGPT(MODEL, state.params, { maxBatch: 2, dtype: 'f64' });
    const spec = modelSpec(MODEL);
    const [m, v] = [new Float64Array(spec.numParams), new Float64Array(spec.numParams)];
    const f32 = await loaded(state);
    for (const [t, b] of data.entries()) {
      gpt.zeroGrad();
      let loss = 0;
      for (let k = 0; k < 2; k++) {
        loss += gpt.forward(b.inputs.subarray(k * 16, (k + 1) * 16), b.targets.subarray(k * 16, (k + 1) * 16), 2, 8);
        gpt.backward(0.5);
      }
      const norm = gradNorm(gpt.grads);
      adamwUpdate(gpt.params, gpt.grads, m, v, spec, HP, t + 1, clipScale(norm, HP.gradClip));
      const s = await be.step(b, HP);
      expect([s.loss, s.gradNorm]).toEqual([loss / 2, norm]);
      // f32 agrees only to rounding: not the same numbers
      const s32 = await f32.step(b, HP);
      expectClose([s32.loss], [s.loss], { rtol: 1e-5 }, 'f32 vs f64 loss');
      expect(s32.loss).not.toBe(s.loss);
    }
    const saved = await be.save();
    expect(saved.params).toBeInstanceOf(Float32Array);
    expect(saved.params).toEqual(Float32Array.from(gpt.params));
    expect(saved.m).toEqual(Float32Array.from(m));
  });

  it('rejects a state of the wrong size with a checkpoint error', async () => {
    const be = new CpuBackend();
    await expect(be.load(MODEL, { params: new Float32Array(10), m: null, v: null, step: 0 })).rejects.toBeInstanceOf(KilnError);
    await expect(be.step(batches(1, 1, 8, 1)[0], HP)).rejects.toThrow(/load\(\) first/);
  });
});
