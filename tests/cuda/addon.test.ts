// The CUDA addon as a Node module: both flavours build from one CMakeLists.txt and load
// side by side; every entry point registers; bad calls throw readable Errors; the Model's
// long operations run off the JS thread, one at a time; and without a GPU the cuda flavour
// still loads, says why it sees no device, and CudaBackend turns that into a device error.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CudaBackend } from '../../src/backends/cuda/backend.ts';
import { loadAddon, type CudaAddon, type NativeModelOptions } from '../../src/backends/cuda/addon.ts';
import { KilnError } from '../../src/core/errors.ts';
import { modelSpec, type ModelConfig } from '../../src/core/model-spec.ts';
import { initialState } from '../../src/train/prepare.ts';
import { REPO_ROOT } from '../helpers/cli.ts';
import { cudaFlavour, randomInts } from './helpers.ts';

const MODEL: ModelConfig = { vocabSize: 13, blockSize: 8, nLayer: 1, nHead: 2, nEmbd: 8 };
const F32: NativeModelOptions = { dtype: 'f32', maxBatch: 2, recompute: false, gemm: 'auto' };

function dims(m: ModelConfig) {
  return { vocab: m.vocabSize, block: m.blockSize, layers: m.nLayer, heads: m.nHead, embd: m.nEmbd };
}

function layout(m: ModelConfig) {
  return modelSpec(m).params.map((p) => ({ name: p.name, offset: p.offset, size: p.size, decay: p.decay }));
}

const HP = { lr: 1e-3, weightDecay: 0.1, beta1: 0.9, beta2: 0.95, eps: 1e-8, gradClip: 1, dropoutP: 0, dropoutSeed: 0 };

/** Every KILN_ENTRY(name) in native/cuda/entries/*.cu. */
function sourceEntries(): string[] {
  const dir = join(REPO_ROOT, 'native/cuda/entries');
  const names: string[] = [];
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.cu')))
    for (const m of readFileSync(join(dir, f), 'utf8').matchAll(/^KILN_ENTRY\((\w+)\)/gm)) names.push(m[1]);
  return names.sort();
}

const emu = cudaFlavour('emulation');
const emuOk = !('reason' in emu);

describe.skipIf(!emuOk)(`the emulation flavour${emuOk ? '' : `: ${'reason' in emu ? emu.reason : ''}`}`, () => {
  const addon = emu as CudaAddon;

  it('loads as flavour "emulation", with a device, a SIMT GEMM and our tensor-core GEMM', () => {
    expect(addon.flavour).toBe('emulation');
    expect(addon.devices()).toMatchObject({ count: 1, name: 'SIMT emulation (CPU)' });
    expect(addon.gemmImpls()).toEqual(expect.arrayContaining(['simt', 'tensor-core']));
  });

  it('registers every KILN_ENTRY of entries/*.cu (static constructors linked in, none dropped)', () => {
    const names = addon.kernelNames();
    expect(names.length).toBeGreaterThan(0);
    expect([...names].sort()).toEqual(sourceEntries());
  });

  it('turns a bad kernel call into a readable Error naming what is wrong', () => {
    const first = addon.kernelNames()[0];
    expect(() => addon.kernel('noSuchKernel', [], [])).toThrow(/no kernel entry point named 'noSuchKernel' \(this build has: .*\)/);
    // An entry reads its arguments through Args: the first access to a missing one says so.
    expect(() => addon.kernel(first, [], [])).toThrow(new RegExp(`^${first}: (array|number) 0 (is missing|must be)`));
    expect(() => addon.kernel(first, [new Float64Array(2) as unknown as Float32Array], [])).toThrow(
      /array 0 must be a Float32Array, Int32Array or Uint32Array/,
    );
    expect(() => addon.kernel(first, [], ['x' as unknown as number])).toThrow(/nums\[0\] must be a number/);
  });

  it('planBytes equals what a model of those dims allocates', () => {
    const m = new addon.Model(dims(MODEL), layout(MODEL), F32);
    try {
      expect(m.numParams()).toBe(modelSpec(MODEL).numParams);
      expect(m.deviceBytes()).toBeGreaterThan(modelSpec(MODEL).numParams * 4 * 4);
      expect(addon.planBytes(dims(MODEL), F32)).toBe(m.deviceBytes());
    } finally {
      m.dispose();
    }
  });

  it('refuses a malformed model with a TypeError naming the field', () => {
    expect(() => new addon.Model({ ...dims(MODEL), vocab: 0 }, layout(MODEL), F32)).toThrow(/dims\.vocab must be a positive integer/);
    expect(() => new addon.Model(dims(MODEL), layout(MODEL), { ...F32, dtype: 'f16' as 'f32' })).toThrow(/options\.dtype must be 'f32' or 'bf16'/);
    expect(() => new addon.Model(dims(MODEL), [{ name: 'x', offset: -1, size: 1, decay: true }], F32)).toThrow(/layout\[0\]: offset/);
  });

  it('runs a step off the JS thread, refuses a second operation meanwhile, and checks token ids', async () => {
    // Big enough that the emulated step takes a while.
    const big: ModelConfig = { vocabSize: 64, blockSize: 32, nLayer: 2, nHead: 2, nEmbd: 32 };
    const m = new addon.Model(dims(big), layout(big), { ...F32, maxBatch: 4 });
    try {
      const s = initialState(big, 3);
      m.load(s.params, null, null, 0);
      const B = 4, T = 32;
      const inputs = randomInts(B * T, big.vocabSize, 1);
      const targets = randomInts(B * T, big.vocabSize, 2);
      let ticks = 0;
      const timer = setInterval(() => ticks++, 0);
      const step = m.step(inputs, targets, B, T, 1, HP);
      // The inputs were copied when the call was made.
      inputs.fill(-5);
      await expect(m.loss(targets, targets, B, T, 1)).rejects.toThrow(/still running on this model; await it first/);
      expect(() => m.save()).toThrow(/still running on this model/);
      const r = await step;
      clearInterval(timer);
      expect(ticks, 'the JS thread ran timers while the step ran').toBeGreaterThan(0);
      expect(Number.isFinite(r.loss) && Number.isFinite(r.gradNorm)).toBe(true);
      expect(m.save().step).toBe(1);
      await expect(m.step(inputs, targets, B, T, 1, HP)).rejects.toThrow(/inputs\[0\] = -5 is outside the vocabulary \(64\)/);
      await expect(m.loss(targets, targets, B + 1, T, 1)).rejects.toThrow(/more than the model's maxBatch 4/);
      await expect(m.logits(new Int32Array(0))).rejects.toThrow(/context must hold 1 to 32 tokens/);
    } finally {
      m.dispose();
    }
    await expect(m.logits(new Int32Array([1]))).rejects.toThrow(/disposed/);
  });

  it('CudaBackend on the emulation rebuilds for a larger batch and keeps the state', async () => {
    const b = new CudaBackend({ flavour: 'emulation' });
    try {
      expect(b.info.device).toBe('SIMT emulation (CPU)');
      expect(b.info.peakFlops).toBeUndefined();
      const state = initialState(MODEL, 5);
      await b.load(MODEL, state);
      const batch = (B: number) => ({ inputs: randomInts(B * 8, MODEL.vocabSize, B), targets: randomInts(B * 8, MODEL.vocabSize, B + 1), B, T: 8, microBatches: 1 });
      const hp = { lr: 1e-2, weightDecay: 0, beta1: 0.9, beta2: 0.95, eps: 1e-8, gradClip: 0 };
      await b.step(batch(1), hp);
      const before = await b.save();
      expect(b.deviceBytes().total).toBeGreaterThan(0);
      const small = b.deviceBytes().total;
      await b.loss(batch(3)); // a larger batch: rebuilt
      expect(b.deviceBytes().total).toBeGreaterThan(small);
      const after = await b.save();
      expect(after.step).toBe(1);
      expect(after.params).toEqual(before.params);
      expect(after.m).toEqual(before.m);
    } finally {
      b.dispose();
    }
  });
});

// The cuda flavour: built here when nvcc is (the first build takes minutes on two cores).
const nvcc = ['nvcc', '/usr/local/cuda/bin/nvcc', process.env.CUDACXX].some((c) => c && !spawnSync(c, ['--version']).error);
const cmake = !spawnSync('cmake', ['--version']).error;

describe.skipIf(!nvcc || !cmake)(`the cuda flavour${!cmake ? ': no cmake' : !nvcc ? ': no nvcc (no CUDA toolkit)' : ''}`, () => {
  let cuda: CudaAddon;

  it('builds with nvcc and loads, even without a GPU', () => {
    const r = spawnSync(process.execPath, ['scripts/build-cuda.mjs', '--flavour', 'cuda', '--quiet'], { cwd: REPO_ROOT, encoding: 'utf8' });
    expect(r.status, `${r.stdout}\n${r.stderr.slice(-4000)}`).toBe(0);
    expect(r.stdout).toMatch(/cuda flavour: built build\/cuda\/kiln_cuda\.node/);
    cuda = loadAddon('cuda');
    expect(cuda.flavour).toBe('cuda');
    expect([...cuda.kernelNames()].sort()).toEqual(sourceEntries());
    expect(cuda.gemmImpls()).toEqual(expect.arrayContaining(['simt', 'tensor-core']));
  }, 900_000);

  it('reports the devices it sees; with none, CudaBackend fails as a device error saying why', () => {
    expect(cuda, 'built by the test before').toBeDefined();
    const d = cuda.devices();
    if (d.count > 0) {
      expect(d.name).toMatch(/\S/);
      expect(d.computeCapability).toMatch(/^\d+\.\d+$/);
      expect(new CudaBackend({ flavour: 'cuda' }).info.device).toBe(d.name);
      return;
    }
    expect(d.error).toMatch(/\S/);
    let err: unknown;
    try {
      new CudaBackend({ flavour: 'cuda' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KilnError);
    const k = err as KilnError;
    expect(k.code).toBe('device');
    expect(k.message).toMatch(/^no NVIDIA GPU (visible|usable): .*cudaGetDeviceCount said "/);
    expect(k.message).toContain(d.error);
    expect(k.message).not.toContain('\n');
    expect(k.hint).toMatch(/--backend (webgpu|cpu)/);
  });
});
