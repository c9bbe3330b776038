// The WebGPU backend against the CPU reference backend on a tiny model: the same
// initial parameters and batches give the same losses, gradient norms and parameters
// over 20 steps (with and without gradient accumulation), the same eval loss and
// logits; save -> load continues identically; two runs are bit-identical; a model
// that does not fit the device's limits fails with the plan's KilnError.
import { describe, expect, it } from 'vitest';
import type { Batch, StepHyper, TrainState } from '../../src/backends/backend.ts';
import { CpuBackend } from '../../src/backends/cpu.ts';
import { buildChecked, WebGpuBackend } from '../../src/backends/webgpu/backend.ts';
import { PipelineCache } from '../../src/backends/webgpu/kernel.ts';
import { planSummary } from '../../src/backends/webgpu/plan.ts';
import { requestGpu } from '../../src/backends/webgpu/device.ts';
import { dropoutStepSeed } from '../../src/core/dropout.ts';
import { KilnError } from '../../src/core/errors.ts';
import { initParams, modelSpec, type ModelConfig } from '../../src/core/model-spec.ts';
import { Rng } from '../../src/core/rng.ts';
import { compareClose, expectClose } from '../helpers/expect-close.ts';
import { gpuHarness } from '../helpers/gpu.ts';

const model: ModelConfig = { vocabSize: 11, blockSize: 7, nLayer: 2, nHead: 2, nEmbd: 12 };
const B = 3;
const T = 7;
const STEPS = 20;
const hp: StepHyper = { lr: 3e-3, weightDecay: 0.1, beta1: 0.9, beta2: 0.95, eps: 1e-8, gradClip: 1.0 };

function initialState(seed = 1): TrainState {
  return { params: initParams(modelSpec(model), new Rng(seed)), m: null, v: null, step: 0 };
}

/** Deterministic batches: the target is a simple function of the input so the loss falls. */
function batches(n: number, microBatches: number, seed = 7): Batch[] {
  const rng = new Rng(seed);
  const out: Batch[] = [];
  for (let s = 0; s < n; s++) {
    const len = B * T * microBatches;
    const inputs = new Int32Array(len);
    const targets = new Int32Array(len);
    for (let i = 0; i < len; i++) {
      inputs[i] = rng.int(model.vocabSize);
      targets[i] = rng.next() < 0.7 ? (inputs[i] + 1) % model.vocabSize : rng.int(model.vocabSize);
    }
    out.push({ inputs, targets, B, T, microBatches });
  }
  return out;
}

/**
 * Splits the parameters into the attention key biases and the rest. The loss does not
 * depend on the key bias (it adds q.b to every score of a row, and softmax ignores a
 * constant), so its true gradient is zero and both backends move it only by rounding
 * noise that AdamW's normalisation amplifies: it is compared with an absolute bound.
 */
function withoutKeyBias(params: Float32Array): { rest: Float32Array; keyBias: Float32Array } {
  const spec = modelSpec(model);
  const C = model.nEmbd;
  const rest: number[] = [];
  const keyBias: number[] = [];
  for (const p of spec.params) {
    const v = params.subarray(p.offset, p.offset + p.size);
    if (p.name.endsWith('attn.c_attn.bias')) {
      rest.push(...v.subarray(0, C), ...v.subarray(2 * C));
      keyBias.push(...v.subarray(C, 2 * C));
    } else rest.push(...v);
  }
  return { rest: Float32Array.from(rest), keyBias: Float32Array.from(keyBias) };
}

const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);

const h = await gpuHarness();

async function newGpuBackend(state: TrainState, opts: Parameters<typeof WebGpuBackend.create>[0] = {}): Promise<WebGpuBackend> {
  if (typeof h === 'string') throw new Error(h);
  const be = await WebGpuBackend.create({ gpu: h.gpu, ...opts });
  await be.load(model, state);
  return be;
}

describe('webgpu backend', () => {
  if (typeof h === 'string') {
    it.skip(`webgpu backend: ${h}`, () => {});
    return;
  }
  const { gpu: harnessGpu } = h;

  it('memoryBytes is its buffer plan on this device: no T*T attention, no B*T*V logits', async () => {
    const gpu = await newGpuBackend(initialState());
    try {
      // GPT-2 small's shape at B 8: the reference's list holds 12 layers of (8,12,1024,1024) attention
      // and (8,1024,50257) logits; the plan holds neither.
      const gpt2: ModelConfig = { vocabSize: 50257, blockSize: 1024, nLayer: 12, nHead: 12, nEmbd: 768 };
      const bytes = gpu.memoryBytes(gpt2, 8);
      expect(bytes).toBe(planSummary(gpt2, 8, harnessGpu.device.limits).totalBytes);
      expect(bytes).toBeLessThan(0.5 * new CpuBackend().memoryBytes(gpt2, 8));
      expect(bytes).toBeGreaterThan(4 * 4 * 124e6); // params, grads and both moments at least
    } finally {
      gpu.dispose();
    }
  });

  describe('WebGpuBackend vs CpuBackend', () => {
    for (const microBatches of [1, 2]) {
      it(`${STEPS} steps with ${microBatches} micro-batch(es): losses, grad norms and parameters match`, async () => {
        const data = batches(STEPS, microBatches);
        const cpu = new CpuBackend();
        await cpu.load(model, initialState());
        const gpu = await newGpuBackend(initialState());
        let worstLoss = 0;
        let worstNorm = 0;
        for (let s = 0; s < STEPS; s++) {
          const want = await cpu.step(data[s], hp);
          const got = await gpu.step(data[s], hp);
          worstLoss = Math.max(worstLoss, rel(got.loss, want.loss));
          worstNorm = Math.max(worstNorm, rel(got.gradNorm, want.gradNorm));
          // ~1e-7 on SwiftShader; the design asks for 1e-3, checked tighter so that small
          // gradient errors (which the loss hides for a few steps) show.
          expect(rel(got.loss, want.loss), `loss at step ${s + 1}: ${got.loss} vs ${want.loss}`).toBeLessThan(1e-4);
          expect(rel(got.gradNorm, want.gradNorm), `grad norm at step ${s + 1}: ${got.gradNorm} vs ${want.gradNorm}`).toBeLessThan(1e-4);
          if (s === 0) {
            // After one step m = (1 - beta1) * clip * gradient: every gradient element, compared directly.
            const [g1, c1] = [await gpu.save(), await cpu.save()];
            expectClose(g1.m!, c1.m!, { rtol: 1e-4, atol: 1e-8 }, 'first-step gradients (adam m)');
          }
        }
        const [a, b] = [await gpu.save(), await cpu.save()];
        expect(a.step).toBe(STEPS);
        const [pa, pb] = [withoutKeyBias(a.params), withoutKeyBias(b.params)];
        const p = compareClose(pa.rest, pb.rest, { rtol: 1e-3, atol: 1e-5 });
        console.log(
          `microBatches ${microBatches} (shader variant '${gpu.shaderVariant}'): worst rel loss ${worstLoss.toExponential(2)}, grad norm ${worstNorm.toExponential(2)}, ` +
            `params worst abs ${p.absErr.toExponential(2)} rel ${p.relErr.toExponential(2)}; ${gpu.dispatchesPerStep} dispatches per step; ` +
            `loss ${(await cpu.loss(data[0])).toFixed(4)} after ${STEPS} steps`,
        );
        expectClose(pa.rest, pb.rest, { rtol: 1e-3, atol: 1e-5 }, 'params (without the key biases)');
        expectClose(pa.keyBias, pb.keyBias, { rtol: 0, atol: 1e-4 }, 'key biases');
        expectClose(a.m!, b.m!, { rtol: 1e-3, atol: 1e-6 }, 'adam m');
        expectClose(a.v!, b.v!, { rtol: 2e-3, atol: 1e-9 }, 'adam v');
        gpu.dispose();
      });
    }

    it('with dropout 0.25 (2 micro-batches, a new mask every step): losses, grad norms and parameters match', async () => {
      const steps = 8;
      const data = batches(steps, 2);
      const hpAt = (s: number): StepHyper => ({ ...hp, dropout: { p: 0.25, seed: dropoutStepSeed(5, s) } });
      const cpu = new CpuBackend();
      await cpu.load(model, initialState());
      const gpu = await newGpuBackend(initialState());
      const plain = new CpuBackend();
      await plain.load(model, initialState());
      for (let s = 0; s < steps; s++) {
        const want = await cpu.step(data[s], hpAt(s));
        const got = await gpu.step(data[s], hpAt(s));
        expect(rel(got.loss, want.loss), `loss at step ${s + 1}: ${got.loss} vs ${want.loss}`).toBeLessThan(1e-4);
        expect(rel(got.gradNorm, want.gradNorm), `grad norm at step ${s + 1}`).toBeLessThan(1e-4);
        // Dropout is on: the same step without it gives another loss.
        if (s === 0) expect(Math.abs((await plain.step(data[0], hp)).loss - want.loss)).toBeGreaterThan(1e-3);
      }
      const [a, b] = [await gpu.save(), await cpu.save()];
      const [pa, pb] = [withoutKeyBias(a.params), withoutKeyBias(b.params)];
      expectClose(pa.rest, pb.rest, { rtol: 1e-3, atol: 1e-5 }, 'params (without the key biases)');
      // Evaluation never drops: loss() agrees with the reference's plain forward.
      expect(rel(await gpu.loss(data[0]), await cpu.loss(data[0]))).toBeLessThan(1e-5);
      gpu.dispose();
    });

    it('eval loss() and logits() match, for every context length', async () => {
      const data = batches(4, 2, 11);
      const cpu = new CpuBackend();
      const gpu = await newGpuBackend(initialState(3));
      await cpu.load(model, initialState(3));
      for (const b of data.slice(0, 3)) {
        await cpu.step(b, hp);
        await gpu.step(b, hp);
      }
      for (const b of [data[3], { ...data[3], microBatches: 1, inputs: data[3].inputs.subarray(0, B * T), targets: data[3].targets.subarray(0, B * T) }]) {
        const want = await cpu.loss(b);
        const got = await gpu.loss(b);
        expect(rel(got, want), `eval loss ${got} vs ${want}`).toBeLessThan(1e-4);
      }
      for (let len = 1; len <= T; len++) {
        const context = data[3].inputs.slice(0, len);
        expectClose(await gpu.logits(context), await cpu.logits(context), { rtol: 1e-4, atol: 1e-5 }, `logits at length ${len}`);
      }
      // Smaller shapes than the activations were planned for (fewer sequences, shorter ones) reuse them.
      for (const [b2, t2] of [[2, 5], [1, 7], [3, 2]]) {
        const rng = new Rng(b2 * 10 + t2);
        const n = b2 * t2;
        const batch = { inputs: Int32Array.from({ length: n }, () => rng.int(model.vocabSize)), targets: Int32Array.from({ length: n }, () => rng.int(model.vocabSize)), B: b2, T: t2, microBatches: 1 };
        const want = await cpu.loss(batch);
        const got = await gpu.loss(batch);
        expect(rel(got, want), `eval loss at B=${b2} T=${t2}: ${got} vs ${want}`).toBeLessThan(1e-4);
        const ws = await cpu.step(batch, hp);
        const gs = await gpu.step(batch, hp);
        expect(rel(gs.loss, ws.loss), `step loss at B=${b2} T=${t2}`).toBeLessThan(1e-4);
        expect(rel(gs.gradNorm, ws.gradNorm), `grad norm at B=${b2} T=${t2}`).toBeLessThan(1e-4);
      }
      // Sampling between steps leaves training unchanged.
      const want = await cpu.step(data[0], hp);
      const got = await gpu.step(data[0], hp);
      expect(rel(got.loss, want.loss)).toBeLessThan(1e-3);
      gpu.dispose();
    });
  });

  describe('WebGpuBackend state and determinism', () => {
    it('save() -> load() into a fresh backend continues identically', async () => {
      const data = batches(8, 2, 5);
      const a = await newGpuBackend(initialState());
      for (const b of data.slice(0, 4)) await a.step(b, hp);
      const saved = await a.save();
      expect(saved.step).toBe(4);
      const b = await newGpuBackend(saved);
      for (const batch of data.slice(4)) {
        const x = await a.step(batch, hp);
        const y = await b.step(batch, hp);
        expect(y.loss).toBe(x.loss);
        expect(y.gradNorm).toBe(x.gradNorm);
      }
      const [sa, sb] = [await a.save(), await b.save()];
      expect(sb.step).toBe(8);
      expect(Buffer.from(sb.params.buffer).equals(Buffer.from(sa.params.buffer))).toBe(true);
      expect(Buffer.from(sb.m!.buffer).equals(Buffer.from(sa.m!.buffer))).toBe(true);
      a.dispose();
      b.dispose();
    });

    it('with 8 KiB bindings (the gradient fill walks the flat buffer in pieces) a run is bit-identical', async () => {
      const data = batches(3, 1, 13);
      const run = async (opts: Parameters<typeof WebGpuBackend.create>[0]) => {
        const be = await newGpuBackend(initialState(2), opts);
        const stats = [];
        for (const b of data) stats.push(await be.step(b, hp));
        be.dispose();
        return stats;
      };
      expect(await run({ limits: { maxStorageBufferBindingSize: 8192 } })).toEqual(await run({}));
    });

    it('compiles subgroups where the device has them; noSubgroups: true compiles the fallback, which trains alike', async () => {
      const data = batches(5, 2, 17);
      const run = async (opts: Parameters<typeof WebGpuBackend.create>[0]) => {
        const be = await newGpuBackend(initialState(5), opts);
        const stats = [];
        for (const b of data) stats.push(await be.step(b, hp));
        be.dispose();
        return { variant: be.shaderVariant, stats };
      };
      const [dflt, fallback] = [await run({}), await run({ noSubgroups: true })];
      expect(dflt.variant).toBe(h.noSubgroups ? '' : 'subgroups');
      expect(fallback.variant).toBe('');
      // Different summation orders: close, not bit-identical.
      for (const [s, x] of dflt.stats.entries()) {
        const y = fallback.stats[s];
        expect(rel(x.loss, y.loss), `loss at step ${s + 1}`).toBeLessThan(1e-5);
        expect(rel(x.gradNorm, y.gradNorm), `grad norm at step ${s + 1}`).toBeLessThan(1e-5);
      }
    });

    it('two runs with the same inputs give bit-identical losses and parameters', async () => {
      const data = batches(6, 2, 9);
      const run = async () => {
        const be = await newGpuBackend(initialState(4));
        const stats = [];
        for (const b of data) stats.push(await be.step(b, hp));
        const s = await be.save();
        be.dispose();
        return { stats, params: s.params };
      };
      const [x, y] = [await run(), await run()];
      expect(y.stats).toEqual(x.stats);
      expect(Buffer.from(y.params.buffer).equals(Buffer.from(x.params.buffer))).toBe(true);
    });

    it('steps issued before the previous one settles (pipelined) give the same stats and state, in call order', async () => {
      const data = batches(6, 1, 21);
      const seq = await newGpuBackend(initialState(6));
      const expected = [];
      for (const b of data) expected.push(await seq.step(b, hp));
      const expectedLoss = await seq.loss(data[0]);
      const expectedState = await seq.save();
      seq.dispose();

      const pipe = await newGpuBackend(initialState(6));
      expect(pipe.maxStepsInFlight).toBeGreaterThan(1);
      // All six at once: each records and submits while the ones before it still run,
      // and loss()/save() queued behind them see all six.
      const pending = data.map((b) => pipe.step(b, hp));
      const lossAfter = pipe.loss(data[0]);
      const stateAfter = pipe.save();
      expect(await Promise.all(pending)).toEqual(expected);
      expect(await lossAfter).toBe(expectedLoss);
      const st = await stateAfter;
      expect(st.step).toBe(6);
      expect(Buffer.from(st.params.buffer).equals(Buffer.from(expectedState.params.buffer))).toBe(true);
      expect(Buffer.from(st.v!.buffer).equals(Buffer.from(expectedState.v!.buffer))).toBe(true);
      pipe.dispose();
    });

    it('counts its dispatches: one compute pass per step', async () => {
      const be = await newGpuBackend(initialState());
      const one = await be.countDispatches('step', B, 1);
      const two = await be.countDispatches('step', B, 2);
      const evalOne = await be.countDispatches('eval', B, 1);
      const logits = await be.countDispatches('logits', 1);
      console.log(`tiny model dispatches: step ${one} (gradAccum 2: ${two}), eval ${evalOne}, logits ${logits}`);
      // Every micro-batch adds the same forward + classifier + backward; the fixed part is the optimizer.
      expect(two - one).toBeGreaterThan(evalOne);
      expect(one).toBeGreaterThan(two - one);
      be.dispose();
    });
  });

  describe('WebGpuBackend errors', () => {
    it('a model over the device limits fails at load() with the plan KilnError', async () => {
      const be = await WebGpuBackend.create({ gpu: harnessGpu, limits: { maxStorageBufferBindingSize: 1024 } });
      const err = await be.load(model, initialState()).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(KilnError);
      expect((err as KilnError).code).toBe('device');
      expect((err as KilnError).message).toMatch(/transformer\.h\.0\.attn\.c_attn\.weight.*1728 bytes.*maxStorageBufferBindingSize.*1024 bytes/);
      expect((err as KilnError).hint).toMatch(/--backend cuda/);
      be.dispose();
    });

    it('a pipeline that fails validation rejects with a device KilnError', async () => {
      const broken = new PipelineCache(harnessGpu.device, { bad: '@compute @workgroup_size(1) fn main() { let x: f32 = undefined_thing; }' });
      const err = await buildChecked(harnessGpu.device, 'a test graph', () => broken.pipeline({ shader: 'bad', entry: 'main' })).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(KilnError);
      expect((err as KilnError).code).toBe('device');
      expect((err as KilnError).message).toMatch(/building a test graph failed/);
    });

    it('tokens outside the vocabulary are a data error, not garbage', async () => {
      const be = await newGpuBackend(initialState());
      const [b] = batches(1, 1);
      const bad = { ...b, targets: Int32Array.from(b.targets, (t, i) => (i === 5 ? model.vocabSize : t)) };
      await expect(be.step(bad, hp)).rejects.toMatchObject({ code: 'data' });
      // The backend still works afterwards.
      expect(Number.isFinite((await be.step(b, hp)).loss)).toBe(true);
      be.dispose();
    });

    it('after the device is lost, the next call rejects with a device KilnError', async () => {
      const gpu = await requestGpu();
      const be = await WebGpuBackend.create({ gpu });
      await be.load(model, initialState());
      const [b] = batches(1, 1);
      await be.step(b, hp);
      gpu.device.destroy();
      await gpu.device.lost;
      const err = await be.step(b, hp).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(KilnError);
      expect((err as KilnError).code).toBe('device_lost');
      expect((err as KilnError).message).toMatch(/the GPU device was lost/);
      expect((err as KilnError).hint).toMatch(/resume from the last checkpoint/);
    });

    it('steps in flight when the device is lost reject with the device KilnError too', async () => {
      const gpu = await requestGpu();
      const be = await WebGpuBackend.create({ gpu });
      await be.load(model, initialState());
      const [b, c] = batches(2, 1);
      await be.step(b, hp);
      const pending = [be.step(b, hp), be.step(c, hp)].map((p) => p.then(() => null, (e: unknown) => e));
      gpu.device.destroy();
      const errs = (await Promise.all(pending)).filter((e) => e !== null);
      // Destroyed before either was even recorded (the calls queue behind each other).
      expect(errs).toHaveLength(2);
      for (const err of errs) {
        expect(err).toBeInstanceOf(KilnError);
        expect((err as KilnError).message).toMatch(/the GPU device was lost/);
      }
      const after = await be.step(b, hp).then(() => null, (e: unknown) => e);
      expect((after as KilnError).message).toMatch(/the GPU device was lost/);
    });

    it('KILN_DAWN_TOGGLES passes Dawn toggles (disable_robustness trains bit-identically) and refuses a malformed list', async () => {
      const data = batches(3, 1, 23);
      const run = async (toggles: string | undefined) => {
        const before = process.env.KILN_DAWN_TOGGLES;
        if (toggles === undefined) delete process.env.KILN_DAWN_TOGGLES;
        else process.env.KILN_DAWN_TOGGLES = toggles;
        try {
          const gpu = await requestGpu();
          const be = await WebGpuBackend.create({ gpu });
          await be.load(model, initialState(3));
          const stats = [];
          for (const x of data) stats.push(await be.step(x, hp));
          be.dispose();
          gpu.device.destroy();
          return { toggles: gpu.dawnToggles, stats };
        } finally {
          if (before === undefined) delete process.env.KILN_DAWN_TOGGLES;
          else process.env.KILN_DAWN_TOGGLES = before;
        }
      };
      const plain = await run(undefined);
      const unsafe = await run('disable_robustness');
      expect(plain.toggles).toEqual([]);
      expect(unsafe.toggles).toEqual(['disable_robustness']);
      // In-bounds indexes are what the clamps leave alone: the same numbers.
      expect(unsafe.stats).toEqual(plain.stats);
      await expect(run('disable_robustness; rm -rf')).rejects.toMatchObject({ code: 'usage' });
    });
  });
});
