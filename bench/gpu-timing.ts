// What the WebGPU kernel benchmarks (bench/matmul.ts, bench/attention.ts) share: their
// device, their command-line flags, timing a batch of dispatches, and catching a
// kernel's GPU errors.
import { requestGpu, type GpuContext } from '../src/backends/webgpu/device.ts';
import { PipelineCache, recordPass, type Dispatch } from '../src/backends/webgpu/kernel.ts';
import { shaderSources } from '../src/backends/webgpu/shader-source.ts';

/**
 * The adapter's device and a pipeline cache for it, and the label every line carries
 * when Dawn toggles were set through KILN_DAWN_TOGGLES (e.g. disable_robustness).
 */
export async function benchGpu(): Promise<{ gpu: GpuContext; device: GPUDevice; k: PipelineCache; toggles: { dawn_toggles?: string } }> {
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  const gpu = await requestGpu();
  const toggles = gpu.dawnToggles.length ? { dawn_toggles: gpu.dawnToggles.join(',') } : {};
  return { gpu, device: gpu.device, k: new PipelineCache(gpu.device, await shaderSources()), toggles };
}

/** The value after `--name` on the command line. */
export function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/**
 * Wall ms per repetition of `dispatches`: `iters` repetitions recorded into one command
 * buffer, submitted, and awaited with queue.onSubmittedWorkDone (so the host's share is
 * one submit and one round trip spread over all of them).
 */
export async function timeDispatches(device: GPUDevice, dispatches: Dispatch[], iters: number): Promise<number> {
  const enc = device.createCommandEncoder();
  for (let i = 0; i < iters; i++) recordPass(enc, dispatches, 'bench');
  const t0 = performance.now();
  device.queue.submit([enc.finish()]);
  await device.queue.onSubmittedWorkDone();
  return (performance.now() - t0) / iters;
}

/** Repetitions that take about `seconds`, given one took `onceMs` (2 to 200). */
export function itersFor(seconds: number, onceMs: number): number {
  return Math.max(2, Math.min(200, Math.round((seconds * 1000) / Math.max(onceMs, 0.01))));
}

/** The median and the smallest of some timings. */
export function medianMin(ms: number[]): { ms: number; ms_min: number } {
  const sorted = [...ms].sort((x, y) => x - y);
  return { ms: sorted[Math.floor(sorted.length / 2)], ms_min: sorted[0] };
}

/** Runs f inside validation and out-of-memory error scopes: the first error's message, or null. */
export async function scoped<T>(device: GPUDevice, f: () => Promise<T>): Promise<{ value?: T; error: string | null }> {
  device.pushErrorScope('validation');
  device.pushErrorScope('out-of-memory');
  let value: T | undefined;
  let thrown: string | null = null;
  try {
    value = await f();
  } catch (e) {
    thrown = (e as Error).message;
  }
  const oom = await device.popErrorScope();
  const invalid = await device.popErrorScope();
  return { value, error: thrown ?? invalid?.message ?? oom?.message ?? null };
}
