// Where the lab's backends come from, on the CPU backend: the environment is asked once;
// a model past the budget is refused before a backend is made, in the settings panel's
// words (configFit); a backend whose load fails is freed; the device and memory a run
// shows are the backend's own where it has them.
import { describe, expect, it } from 'vitest';
import type { Backend, TrainState } from '../../src/backends/backend.ts';
import { CpuBackend } from '../../src/backends/cpu.ts';
import type { Budget } from '../../src/core/budget.ts';
import { isKilnError } from '../../src/core/errors.ts';
import { memoryEstimate, resolveModel } from '../../src/core/model-spec.ts';
import { findPreset } from '../../src/core/presets.ts';
import { initialState } from '../../src/train/prepare.ts';
import type { LabBackendKind, LabEnvironment } from '../../src/worker/api.ts';
import { configFit } from '../../src/worker/config-fit.ts';
import { LabBackends, type BackendDeps } from '../../src/worker/lab-backends.ts';

const config = findPreset('tiny')!.config;
const model = resolveModel(config, 30);
const state = initialState(model, config.seed);
const environment: LabEnvironment = { webgpu: false, webgpuWhy: 'Node test', device: '', isSoftware: false, limits: { maxStorageBufferBindingSize: 0, maxBufferSize: 0 } };

function counted(over: Partial<BackendDeps> = {}) {
  const calls = { environment: 0, created: [] as LabBackendKind[], disposed: 0 };
  const deps: BackendDeps = {
    environment: async () => {
      calls.environment++;
      return environment;
    },
    createBackend: async (kind) => {
      calls.created.push(kind);
      const b = new CpuBackend();
      const dispose = b.dispose.bind(b);
      b.dispose = () => {
        calls.disposed++;
        dispose();
      };
      return b;
    },
    ...over,
  };
  return { backends: new LabBackends(deps), calls };
}

describe('LabBackends', () => {
  it('asks for the environment once', async () => {
    const { backends, calls } = counted();
    const [a, b] = await Promise.all([backends.environment(), backends.environment()]);
    expect(a).toBe(b);
    await backends.checkConfig(config, 30, 'webgpu');
    expect(calls.environment).toBe(1);
  });

  it('loads a backend of the kind asked for, after the budget says the model fits', async () => {
    const { backends, calls } = counted();
    const b = await backends.load('cpu', model, state, config.batchSize);
    expect(calls.created).toEqual(['cpu']);
    expect(backends.deviceName(b)).toBe(b.info.device);
    expect(backends.memoryBytes(b, model, config.batchSize)).toBe(b.memoryBytes!(model, config.batchSize));
    b.dispose();
  });

  it('refuses a model past the budget before making a backend, as the settings panel does', async () => {
    const small: Budget = { memoryBytes: 1000, where: 'a test budget of 1000 bytes', memoryName: 'memory' };
    const { backends, calls } = counted({ budget: () => small });
    const fit = await backends.checkConfig(config, 30, 'cpu');
    expect(fit).toEqual(configFit(config, 30, null, small));
    const e = await backends.load('cpu', model, state, config.batchSize).then(() => null, (err: unknown) => err);
    if (!isKilnError(e)) throw new Error(`expected a KilnError, got ${String(e)}`);
    expect(e.message).toContain('a test budget of 1000 bytes');
    expect(calls.created).toEqual([]);
  });

  it("uses a backend's own memory plan where it has one (kiln serve on CUDA), in the fit and before loading", async () => {
    const budget: Budget = { memoryBytes: 10_000, where: 'a test GPU of 10000 bytes', memoryName: 'GPU memory' };
    // The CPU reference's estimate of tiny is far above 10 kB; this plan (bytes per sequence) says 100 per sequence.
    const planned: Array<[number, number]> = [];
    const plan = (m: typeof model, b: number) => {
      planned.push([m.nLayer, b]);
      return { total: 100 * b };
    };
    const { backends, calls } = counted({ budget: () => budget, planner: (kind) => (kind === 'webgpu' ? plan : undefined) });
    const fit = await backends.checkConfig(config, 30, 'webgpu');
    expect(fit.fits).toBe(true);
    expect(fit.memoryBytes).toBe(100 * config.batchSize);
    expect(planned).toContainEqual([config.nLayer, config.batchSize]);
    // The CPU slot keeps the reference's estimate: tiny does not fit 10 kB there.
    expect((await backends.checkConfig(config, 30, 'cpu')).fits).toBe(false);
    const b = await backends.load('webgpu', model, state, config.batchSize);
    expect(calls.created).toEqual(['webgpu']);
    b.dispose();
  });

  it('frees a backend whose load fails', async () => {
    const { backends, calls } = counted();
    const wrong: TrainState = { ...state, params: new Float32Array(3) };
    await expect(backends.load('cpu', model, wrong, config.batchSize)).rejects.toThrow();
    expect(calls.disposed).toBe(1);
  });

  it('names the device as the environment reads it, and estimates the memory of a backend that does not say', () => {
    const { backends } = counted({ deviceName: (b: Backend) => `named ${b.kind}` });
    const bare: Backend = new CpuBackend();
    expect(backends.deviceName(bare)).toBe('named cpu');
    const silent = Object.assign(Object.create(bare) as Backend, { memoryBytes: undefined });
    expect(backends.memoryBytes(silent, model, 4)).toBe(memoryEstimate(model, 4).total);
  });
});
