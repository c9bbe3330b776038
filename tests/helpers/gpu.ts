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
        return { gpu, cache: new PipelineCache(gpu.device, withNoopEntry(await shaderSources(), process.env.KILN_NOOP_ENTRY)) };
      } catch (e) {
        const why = `no WebGPU device: ${(e as Error).message}`;
        if (process.env.CI) throw new Error(`${why} (CI must run the GPU tests: is chromium installed?)`);
        return why;
      }
    })();
  }
  return harness;
}

/**
 * For the no-op mutation check (scripts/noop-mutation.sh): KILN_NOOP_ENTRY=file:entry
 * makes that entry point return at once, keeping its bindings, so the kernel's tests
 * can prove they notice a kernel that does nothing.
 */
export function withNoopEntry(sources: Record<string, string>, spec: string | undefined): Record<string, string> {
  if (!spec) return sources;
  const [file, entry] = spec.split(':');
  const src = sources[file];
  const at = src?.search(new RegExp(`fn\\s+${entry}\\s*\\(`));
  if (src === undefined || at === undefined || at < 0) throw new Error(`KILN_NOOP_ENTRY: no entry point ${entry} in ${file}.wgsl`);
  const brace = src.indexOf('{', src.indexOf(')', at));
  return { ...sources, [file]: `${src.slice(0, brace + 1)} return; ${src.slice(brace + 1)}` };
}
