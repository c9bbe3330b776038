// A module web worker that trains a tiny GPT-2 for a few steps on WebGpuBackend
// (navigator.gpu inside the worker) and on CpuBackend with the same initial parameters
// and batches, and posts both sets of losses and gradient norms to the page.
import type { Batch, StepHyper, StepStats, TrainState } from '../../../src/backends/backend.ts';
import { CpuBackend } from '../../../src/backends/cpu.ts';
import { WebGpuBackend } from '../../../src/backends/webgpu/backend.ts';
import { initParams, modelSpec, type ModelConfig } from '../../../src/core/model-spec.ts';
import { Rng } from '../../../src/core/rng.ts';
import type { WorkerMessage, WorkerStepResult } from './webgpu-worker.protocol.ts';

const model: ModelConfig = { vocabSize: 11, blockSize: 7, nLayer: 2, nHead: 2, nEmbd: 12 };
const B = 3;
const T = 7;
const STEPS = 5;
const hp: StepHyper = { lr: 3e-3, weightDecay: 0.1, beta1: 0.9, beta2: 0.95, eps: 1e-8, gradClip: 1.0 };

const post = (m: WorkerMessage) => (self as unknown as DedicatedWorkerGlobalScope).postMessage(m);

function initialState(): TrainState {
  return { params: initParams(modelSpec(model), new Rng(1)), m: null, v: null, step: 0 };
}

/** Deterministic batches whose target is mostly input + 1, so the loss falls. */
function batches(n: number): Batch[] {
  const rng = new Rng(7);
  const out: Batch[] = [];
  for (let s = 0; s < n; s++) {
    const inputs = new Int32Array(B * T);
    const targets = new Int32Array(B * T);
    for (let i = 0; i < inputs.length; i++) {
      inputs[i] = rng.int(model.vocabSize);
      targets[i] = rng.next() < 0.7 ? (inputs[i] + 1) % model.vocabSize : rng.int(model.vocabSize);
    }
    out.push({ inputs, targets, B, T, microBatches: 1 });
  }
  return out;
}

async function run(): Promise<void> {
  const inWorker = typeof WorkerGlobalScope !== 'undefined' && self instanceof WorkerGlobalScope && typeof (self as { document?: unknown }).document === 'undefined';
  const data = batches(STEPS);
  let t0 = performance.now();
  const gpu = await WebGpuBackend.create();
  const uncapturedErrors: string[] = [];
  gpu.gpu.device.addEventListener('uncapturederror', (e) => {
    uncapturedErrors.push((e as GPUUncapturedErrorEvent).error.message);
  });
  await gpu.load(model, initialState());
  const create = performance.now() - t0;
  post({ type: 'log', text: `adapter: ${gpu.info.device}` });

  t0 = performance.now();
  // The first step compiles every pipeline (slow on SwiftShader); the others are issued
  // without waiting for each other (pipelined: each is submitted while the one before
  // runs and its stats are mapped), which must change nothing.
  const gpuStats: StepStats[] = [await gpu.step(data[0], hp)];
  const firstStep = performance.now() - t0;
  gpuStats.push(...(await Promise.all(data.slice(1).map((b) => gpu.step(b, hp)))));
  const webgpuMs = performance.now() - t0;

  t0 = performance.now();
  const cpu = new CpuBackend();
  await cpu.load(model, initialState());
  const cpuStats: StepStats[] = [];
  for (const b of data) cpuStats.push(await cpu.step(b, hp));
  const cpuMs = performance.now() - t0;

  const steps: WorkerStepResult[] = gpuStats.map((g, i) => ({ step: i + 1, webgpu: g, cpu: cpuStats[i] }));
  post({
    type: 'done',
    inWorker,
    isSecureContext: self.isSecureContext,
    userAgent: navigator.userAgent,
    adapter: { name: gpu.gpu.adapterName, isSoftware: gpu.gpu.isSoftware, features: gpu.info.features, limits: gpu.info.limits },
    model: { ...model, B },
    steps,
    dispatchesPerStep: gpu.dispatchesPerStep,
    uncapturedErrors,
    ms: { create, firstStep, webgpu: webgpuMs, cpu: cpuMs },
  });
  gpu.dispose();
  cpu.dispose();
}

run().catch((e: unknown) => {
  const err = e instanceof Error ? e : new Error(String(e));
  post({ type: 'error', message: `${err.name}: ${err.message}`, stack: err.stack });
});
