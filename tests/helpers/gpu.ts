// One WebGPU device per test file (Dawn on SwiftShader where there is no GPU), or a
// reason to skip that the test output shows.
import { requestGpu, type GpuContext } from '../../src/backends/webgpu/device.ts';
import { shaderSources } from '../../src/backends/webgpu/shader-source.ts';
import { PipelineCache } from '../../src/backends/webgpu/kernel.ts';
import { shaderFeatures } from '../../src/backends/webgpu/shader-variants.ts';

/** A shader variant (src/backends/webgpu/shader-variants.ts) and a cache compiling it. */
export interface GpuVariant {
  /** 'subgroups', or 'fallback' (no optional features). */
  name: string;
  cache: PipelineCache;
}

export interface GpuHarness {
  gpu: GpuContext;
  /** The default variant: what WebGpuBackend uses on this device (subgroups unless KILN_NO_SUBGROUPS=1). */
  cache: PipelineCache;
  /** Every variant to test: the fallback always, subgroups where the device has them (and KILN_NO_SUBGROUPS is unset). */
  variants: GpuVariant[];
  /** Why there is no subgroups variant (for an it.skip), or null when there is one. */
  noSubgroups: string | null;
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
        const sources = withNoopEntry(await shaderSources(), process.env.KILN_NOOP_ENTRY);
        const variants: GpuVariant[] = [{ name: 'fallback', cache: new PipelineCache(gpu.device, sources) }];
        const features = shaderFeatures(gpu);
        if (features.size) variants.push({ name: [...features].sort().join('+'), cache: new PipelineCache(gpu.device, sources, features) });
        const noSubgroups = features.has('subgroups') ? null
          : !gpu.hasSubgroups ? 'subgroups: the device has no subgroups feature'
            : !gpu.wgslFeatures.has('subgroup_id') ? 'subgroups: no WGSL subgroup_id language feature'
              : 'subgroups: turned off (KILN_NO_SUBGROUPS)';
        return { gpu, cache: variants[variants.length - 1].cache, variants, noSubgroups };
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
