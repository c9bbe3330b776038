// One WebGPU device per test file (Dawn on SwiftShader where there is no GPU), or a
// reason to skip that the test output shows.
import { requestGpu, type GpuContext } from '../../src/backends/webgpu/device.ts';
import { shaderSources } from '../../src/backends/webgpu/shader-source.ts';
import { PipelineCache } from '../../src/backends/webgpu/kernel.ts';

export interface GpuHarness {
  gpu: GpuContext;
  cache: PipelineCache;
}

let harness: Promise<GpuHarness | string> | null = null;

/**
 * The shared harness, or a string saying why no device is available (the tests then
 * show as skipped with that reason). In CI a missing device is a failure: .ci/run
 * installs SwiftShader, so its absence means the set-up broke, not that there is
 * nothing to test.
 */
export function gpuHarness(): Promise<GpuHarness | string> {
  if (!harness) {
    process.env.XDG_RUNTIME_DIR ??= '/tmp';
    harness = (async () => {
      try {
        const gpu = await requestGpu();
        gpu.device.addEventListener('uncapturederror', (e) => {
          console.error('WebGPU error:', (e as GPUUncapturedErrorEvent).error.message);
        });
        return { gpu, cache: new PipelineCache(gpu.device, await shaderSources()) };
      } catch (e) {
        const why = `no WebGPU device: ${(e as Error).message}`;
        if (process.env.CI) throw new Error(`${why} (CI must run the GPU tests: is chromium installed?)`);
        return why;
      }
    })();
  }
  return harness;
}
