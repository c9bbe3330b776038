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

/** The shared harness, or a string saying why no device is available. */
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
        return `no WebGPU device: ${(e as Error).message}`;
      }
    })();
  }
  return harness;
}
