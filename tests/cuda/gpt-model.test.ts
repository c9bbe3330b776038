// The CUDA runner's training graph (native/cuda/model/gpt.cu) against the CPU reference
// (src/backends/cpu.ts) through the Backend interface, on a tiny model whose shapes are
// no kernel's tile multiple: a 65-token vocabulary (padded to 128 rows on the device),
// nEmbd 24 over 3 heads of 8, block 11. On the emulation flavour (and a GPU where one
// is present), f32 mode follows the reference step for step: losses, gradient norms,
// every gradient (AdamW's m after one step), with micro-batches, dropout and recompute;
// save/load continues bit-exactly; bf16 mode stays within bf16's precision.
import { expect, it } from 'vitest';
import type { Batch, StepHyper, TrainState } from '../../src/backends/backend.ts';
import { CpuBackend } from '../../src/backends/cpu.ts';
import { CudaBackend } from '../../src/backends/cuda/backend.ts';
import type { CudaDtype, CudaFlavour } from '../../src/backends/cuda/addon.ts';
import { dropoutStepSeed } from '../../src/core/dropout.ts';
import { modelSpec, type ModelConfig } from '../../src/core/model-spec.ts';
import { Rng } from '../../src/core/rng.ts';
import { compareClose, expectClose } from '../helpers/expect-close.ts';
import { testParams } from '../helpers/gpt-params.ts';
import { describeCuda } from './helpers.ts';

const MODEL: ModelConfig = { vocabSize: 65, blockSize: 11, nLayer: 2, nHead: 3, nEmbd: 24 };
const HP: StepHyper = { lr: 1e-2, weightDecay: 0.1, beta1: 0.9, beta2: 0.95, eps: 1e-8, gradClip: 1 };
const STEPS = 3;

function initialState(seed = 1): TrainState {
  // testParams' weights are far from GPT-2's init, so every gradient term is large enough
  // to be compared; scaled down so that the logits stay in softmax's useful range.
  const p = testParams(MODEL, seed);
  return { params: Float32Array.from(p, (x) => x * 0.5), m: null, v: null, step: 0 };
}

/** Batches whose targets mostly follow from the inputs, so the loss moves when training works. */
function batches(n: number, B: number, T: number, microBatches: number, seed = 7): Batch[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => {
    const len = B * T * microBatches;
    const inputs = new Int32Array(len);
    const targets = new Int32Array(len);
    for (let i = 0; i < len; i++) {
      inputs[i] = rng.int(MODEL.vocabSize);
      targets[i] = rng.next() < 0.7 ? (inputs[i] * 7 + 3) % MODEL.vocabSize : rng.int(MODEL.vocabSize);
    }
    return { inputs, targets, B, T, microBatches };
  });
}

/**
 * The attention key biases apart from the other parameters. The loss does not depend on
 * them (q.b_k adds the same to every score of a row; softmax ignores it), so their true
 * gradient is zero and AdamW turns both backends' rounding noise into lr-sized steps of
 * either sign: they can only be bounded.
 */
function withoutKeyBias(params: Float32Array): { rest: Float32Array; keyBias: Float32Array } {
  const C = MODEL.nEmbd;
  const rest: number[] = [];
  const keyBias: number[] = [];
  for (const p of modelSpec(MODEL).params) {
    const v = params.subarray(p.offset, p.offset + p.size);
    if (p.name.endsWith('attn.c_attn.bias')) {
      rest.push(...v.subarray(0, C), ...v.subarray(2 * C));
      keyBias.push(...v.subarray(C, 2 * C));
    } else rest.push(...v);
  }
  return { rest: Float32Array.from(rest), keyBias: Float32Array.from(keyBias) };
}

const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-30);

async function cpuBackend(state: TrainState): Promise<CpuBackend> {
  const be = new CpuBackend();
  await be.load(MODEL, state);
  return be;
}

interface Trace {
  losses: number[];
  norms: number[];
  /** AdamW's m after the first step: (1 - beta1) * clip * the gradient, every element. */
  firstM: Float32Array;
  final: TrainState;
}

/** Runs the steps on one backend, recording what the comparisons need. */
async function trace(be: CpuBackend | CudaBackend, data: Batch[], hp: (step: number) => StepHyper): Promise<Trace> {
  const t: Trace = { losses: [], norms: [], firstM: new Float32Array(0), final: null as unknown as TrainState };
  for (let s = 0; s < data.length; s++) {
    const r = await be.step(data[s], hp(s));
    t.losses.push(r.loss);
    t.norms.push(r.gradNorm);
    if (s === 0) t.firstM = (await be.save()).m!;
  }
  t.final = await be.save();
  return t;
}

describeCuda('GptModel', (h) => {
  const flavour: CudaFlavour = h.flavour;
  async function cudaBackend(state: TrainState, dtype: CudaDtype = 'f32', recompute = false): Promise<CudaBackend> {
    const be = new CudaBackend({ flavour, dtype, recompute });
    await be.load(MODEL, state);
    return be;
  }

  /** CUDA f32 against the CPU reference on the same state, batches and hyperparameters. */
  async function parity(data: Batch[], hp: (step: number) => StepHyper, recompute = false): Promise<Trace> {
    const want = await trace(await cpuBackend(initialState()), data, hp);
    const cuda = await cudaBackend(initialState(), 'f32', recompute);
    const got = await trace(cuda, data, hp);
    cuda.dispose();
    for (let s = 0; s < data.length; s++) {
      expect(rel(got.losses[s], want.losses[s]), `loss at step ${s + 1}: ${got.losses[s]} vs ${want.losses[s]}`).toBeLessThan(1e-5);
      expect(rel(got.norms[s], want.norms[s]), `grad norm at step ${s + 1}: ${got.norms[s]} vs ${want.norms[s]}`).toBeLessThan(1e-5);
    }
    // Every gradient element of the first step; atol covers elements whose true value is
    // ~0 (the key biases' gradient is exactly zero in exact arithmetic).
    const maxM = want.firstM.reduce((a, x) => Math.max(a, Math.abs(x)), 0);
    expectClose(got.firstM, want.firstM, { rtol: 1e-4, atol: 1e-5 * maxM }, 'first-step gradients (adam m)');
    expect(got.final.step).toBe(data.length);
    const [pg, pw] = [withoutKeyBias(got.final.params), withoutKeyBias(want.final.params)];
    const p = compareClose(pg.rest, pw.rest, { rtol: 1e-4, atol: 1e-6 });
    console.log(
      `[${flavour}] losses ${got.losses.map((x) => x.toFixed(6)).join(' ')}; worst rel loss ${Math.max(...got.losses.map((x, i) => rel(x, want.losses[i]))).toExponential(2)}, ` +
        `grad norm ${Math.max(...got.norms.map((x, i) => rel(x, want.norms[i]))).toExponential(2)}; params worst abs ${p.absErr.toExponential(2)} rel ${p.relErr.toExponential(2)}`,
    );
    expectClose(pg.rest, pw.rest, { rtol: 1e-4, atol: 1e-6 }, 'parameters (without the key biases)');
    expectClose(pg.keyBias, pw.keyBias, { rtol: 0, atol: 3 * data.length * HP.lr }, 'key biases');
    return got;
  }

  it(`f32: ${STEPS} steps match the reference (losses and grad norms to 1e-5, every gradient, the parameters)`, async () => {
    // One batch, three times: the loss must fall, so the trajectory compared is training.
    const batch = batches(1, 2, 11, 1)[0];
    const got = await parity(Array.from({ length: STEPS }, () => batch), () => HP);
    expect(got.losses[1]).toBeLessThan(got.losses[0]);
    expect(got.losses[2]).toBeLessThan(got.losses[1]);
  });

  it('f32: 2 micro-batches of B 3 at T 7 < blockSize match the reference', async () => {
    await parity(batches(STEPS, 3, 7, 2), () => HP);
  });

  it('f32: dropout 0.1 draws the reference\'s masks (every site, every micro-batch)', async () => {
    const dropHp = (s: number): StepHyper => ({ ...HP, dropout: { p: 0.1, seed: dropoutStepSeed(1234, s) } });
    const data = batches(STEPS, 2, 11, 2);
    const got = await parity(data, dropHp);
    // The masks matter: without dropout the same steps give other losses.
    const plain = await trace(await cpuBackend(initialState()), data, () => HP);
    expect(rel(got.losses[1], plain.losses[1])).toBeGreaterThan(1e-3);
  });

  it('f32: 132 positions take two classifier chunks and still match', async () => {
    // Chunks are 128 rows here (min(B*T, 128) at least): rows 128..131 are a partial chunk.
    await parity(batches(1, 12, 11, 1), () => HP);
  });

  it('recompute: the same bits as storing GELU\'s output, and the memory it saves', async () => {
    const data = batches(2, 2, 11, 1);
    const stored = await trace(await cudaBackend(initialState()), data, () => HP);
    const recomputed = await trace(await cudaBackend(initialState(), 'f32', true), data, () => HP);
    expect(recomputed.losses).toEqual(stored.losses);
    expect(recomputed.norms).toEqual(stored.norms);
    expect(Buffer.from(recomputed.final.params.buffer).equals(Buffer.from(stored.final.params.buffer))).toBe(true);

    const dims = { vocab: MODEL.vocabSize, block: MODEL.blockSize, layers: MODEL.nLayer, heads: MODEL.nHead, embd: MODEL.nEmbd };
    const layout = modelSpec(MODEL).params.map((p) => ({ name: p.name, offset: p.offset, size: p.size, decay: p.decay }));
    const options = { dtype: 'f32' as const, maxBatch: 4, recompute: false, gemm: 'auto' as const };
    const plain = new h.addon.Model(dims, layout, options);
    const rec = new h.addon.Model(dims, layout, { ...options, recompute: true });
    try {
      // Every layer's (B*T, 4C) GELU output, in f32
      const saved = MODEL.nLayer * 4 * MODEL.blockSize * 4 * MODEL.nEmbd * 4;
      expect(plain.recomputeSavedBytes()).toBe(0);
      expect(rec.recomputeSavedBytes()).toBe(saved);
      expect(rec.deviceBytes() + saved).toBe(plain.deviceBytes());
      expect(plain.deviceBytes()).toBe(h.addon.planBytes(dims, options));
      expect(rec.deviceBytes()).toBe(h.addon.planBytes(dims, { ...options, recompute: true }));
      // bf16 halves the activations and adds a bf16 copy of the parameters
      expect(h.addon.planBytes(dims, { ...options, dtype: 'bf16' })).toBeLessThan(plain.deviceBytes());
    } finally {
      plain.dispose();
      rec.dispose();
    }
  });

  it('save() then load() into a fresh backend continues exactly like an uninterrupted run', async () => {
    const data = batches(4, 2, 11, 1);
    const hp = (s: number): StepHyper => ({ ...HP, dropout: { p: 0.1, seed: dropoutStepSeed(9, s) } });
    const straight = await trace(await cudaBackend(initialState()), data, hp);
    const first = await cudaBackend(initialState());
    const before = await trace(first, data.slice(0, 2), hp);
    first.dispose();
    // The state a checkpoint holds has the flat layout's size: the padding rows are invisible.
    expect(before.final.params.length).toBe(modelSpec(MODEL).numParams);
    const second = await cudaBackend(before.final);
    const reloaded = await second.save();
    for (const k of ['params', 'm', 'v'] as const) expect(Buffer.from(reloaded[k]!.buffer).equals(Buffer.from(before.final[k]!.buffer))).toBe(true);
    const rest: number[] = [];
    for (let s = 2; s < data.length; s++) rest.push((await second.step(data[s], hp(s))).loss);
    expect([...before.losses, ...rest]).toEqual(straight.losses);
    const end = await second.save();
    expect(end.step).toBe(straight.final.step);
    expect(Buffer.from(end.params.buffer).equals(Buffer.from(straight.final.params.buffer))).toBe(true);
    second.dispose();
  });

  it('loss() and logits() match the reference and leave the state alone', async () => {
    const cpu = await cpuBackend(initialState());
    const cuda = await cudaBackend(initialState());
    const data = batches(2, 2, 11, 1);
    await cpu.step(data[0], HP);
    await cuda.step(data[0], HP);
    const evalBatch = batches(1, 3, 9, 2, 11)[0];
    const [lc, lg] = [await cpu.loss(evalBatch), await cuda.loss(evalBatch)];
    expect(rel(lg, lc), `loss ${lg} vs ${lc}`).toBeLessThan(1e-5);
    for (const context of [Int32Array.from([5, 64, 0, 17, 33]), Int32Array.from({ length: 11 }, (_, i) => (i * 13) % 65), Int32Array.of(3)]) {
      const [want, got] = [await cpu.logits(context), await cuda.logits(context)];
      expect(got.length).toBe(MODEL.vocabSize);
      const scale = want.reduce((a, x) => Math.max(a, Math.abs(x)), 0);
      expectClose(got, want, { rtol: 1e-5, atol: 1e-5 * scale }, `logits after ${context.length} tokens`);
    }
    // Neither call moved anything: the next step still matches.
    const [sc, sg] = [await cpu.step(data[1], HP), await cuda.step(data[1], HP)];
    expect(rel(sg.loss, sc.loss)).toBeLessThan(1e-5);
    cuda.dispose();
  });

  it('bf16: within bf16 precision of the f32 reference; the bf16 weights follow every update', async () => {
    const data = batches(STEPS, 2, 11, 2);
    const hp = { ...HP, lr: 3e-2 };
    const want = await trace(await cpuBackend(initialState()), data, () => hp);
    const cuda = await cudaBackend(initialState(), 'bf16');
    const got = await trace(cuda, data, () => hp);
    console.log(
      `[${flavour}] bf16 losses ${got.losses.map((x) => x.toFixed(4)).join(' ')} vs ${want.losses.map((x) => x.toFixed(4)).join(' ')}; ` +
        `norms ${got.norms.map((x) => x.toFixed(4)).join(' ')} vs ${want.norms.map((x) => x.toFixed(4)).join(' ')}`,
    );
    for (let s = 0; s < STEPS; s++) {
      expect(rel(got.losses[s], want.losses[s]), `loss at step ${s + 1}: ${got.losses[s]} vs ${want.losses[s]}`).toBeLessThan(1e-2);
      expect(rel(got.norms[s], want.norms[s]), `grad norm at step ${s + 1}: ${got.norms[s]} vs ${want.norms[s]}`).toBeLessThan(3e-2);
    }
    // The forward reads the bf16 copies, so its loss on the trained state shows whether
    // adamw_update refreshed them: stale (initial) weights would be off by the training's
    // whole effect, several times bf16's error here.
    const evalBatch = batches(1, 2, 11, 1, 21)[0];
    const onTrained = await cpuBackend(got.final);
    const [lg, lc, l0] = [await cuda.loss(evalBatch), await onTrained.loss(evalBatch), await (await cpuBackend(initialState())).loss(evalBatch)];
    expect(rel(l0, lc), `training moved the eval loss: ${l0} -> ${lc}`).toBeGreaterThan(2e-2);
    expect(rel(lg, lc), `bf16 eval loss ${lg} vs the reference on the same weights ${lc}`).toBeLessThan(5e-3);
    // and load() refreshes them too: a fresh bf16 model loaded with the trained state agrees.
    const reloaded = await cudaBackend(got.final, 'bf16');
    expect(await reloaded.loss(evalBatch)).toBe(lg);
    reloaded.dispose();
    cuda.dispose();
    // save() returns the f32 master weights, not their bf16 copies (whose low 16 bits
    // would all be zero).
    const bits = new Uint32Array(got.final.params.buffer);
    expect(bits.filter((u) => (u & 0xffff) !== 0).length).toBeGreaterThan(0.9 * bits.length);
  });
});

