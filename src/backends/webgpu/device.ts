// Finds a WebGPU device: navigator.gpu in a browser or worker, the `webgpu` package
// (Dawn) in Node. Asks the adapter for its maxima on the limits a training run
// presses on (binding and buffer sizes, workgroup memory, bindings per stage), since
// the defaults (128 MiB bindings, 16 KiB workgroup memory) are far below most GPUs.
import { KilnError } from '../../core/errors.ts';

export interface GpuContext {
  device: GPUDevice;
  adapterName: string;
  features: ReadonlySet<string>;
  limits: Record<string, number>;
  hasF16: boolean;
  hasSubgroups: boolean;
  hasTimestamps: boolean;
  /** WGSL language features (navigator.gpu.wgslLanguageFeatures), e.g. subgroup_id. */
  wgslFeatures: ReadonlySet<string>;
  isSoftware: boolean;
  /** Dawn toggles enabled through KILN_DAWN_TOGGLES (Node only; empty otherwise). */
  dawnToggles: readonly string[];
}

const WANTED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxStorageBuffersPerShaderStage',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupsPerDimension',
] as const;

const OPTIONAL_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query'] as const;

// Dawn crashes the process if the object create() returned is garbage-collected while
// its devices live (DESIGN.md), so every one made is kept here for the process's life.
const keepAlive: unknown[] = [];

/** Debian's Chromium ships SwiftShader's Vulkan driver here: a CPU WebGPU for machines without a GPU. */
export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

function isNode(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return !!p?.versions?.node;
}

let enabledToggles: readonly string[] = [];

async function nodeGpu(): Promise<GPU> {
  const spec = 'webgpu';
  let mod: { create: (flags: string[]) => GPU; globals: Record<string, unknown> };
  try {
    mod = await import(/* @vite-ignore */ spec);
  } catch (e) {
    throw new KilnError('device', `cannot load the 'webgpu' package (Dawn): ${(e as Error).message}`, 'run `npm ci` in the Kiln folder');
  }
  // Dawn's Vulkan/Wayland probing complains on every start without XDG_RUNTIME_DIR.
  const env = (globalThis as unknown as { process: { env: Record<string, string | undefined> } }).process.env;
  env.XDG_RUNTIME_DIR ??= '/tmp';
  // Dawn's enums and classes (GPUBufferUsage, ...) become globals, as in a browser.
  for (const [k, v] of Object.entries(mod.globals)) {
    if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  }
  // Dawn quantizes timestamp queries to 65.5 us by default (a browser's timing-attack
  // guard); in Node they only serve profiling (WebGpuBackend.profileStep), which needs them exact.
  // KILN_DAWN_TOGGLES adds Dawn device toggles (comma-separated), for measuring
  // e.g. disable_robustness (Tint's bounds clamps) on a GPU; docs/GPU.md.
  const extra = (env.KILN_DAWN_TOGGLES ?? '').split(',').map((t) => t.trim()).filter(Boolean);
  if (extra.some((t) => !/^[a-z0-9_]+$/.test(t))) {
    throw new KilnError('usage', `KILN_DAWN_TOGGLES="${env.KILN_DAWN_TOGGLES}" is not a comma-separated list of Dawn toggle names`, 'e.g. KILN_DAWN_TOGGLES=disable_robustness');
  }
  const flags = ['disable-dawn-features=timestamp_quantization', ...(extra.length ? [`enable-dawn-features=${extra.join(',')}`] : [])];
  const gpu = mod.create(flags);
  enabledToggles = extra;
  keepAlive.push(gpu);
  return gpu;
}

async function findAdapter(powerPreference: GPUPowerPreference): Promise<{ adapter: GPUAdapter; gpu: GPU; toggles: readonly string[] } | null> {
  if (typeof navigator !== 'undefined' && navigator.gpu) {
    const adapter = await navigator.gpu.requestAdapter({ powerPreference });
    return adapter && { adapter, gpu: navigator.gpu, toggles: [] };
  }
  if (!isNode()) return null;
  let gpu = await nodeGpu();
  let adapter = await gpu.requestAdapter({ powerPreference });
  if (!adapter) {
    // No Vulkan driver found: fall back to SwiftShader where Chromium installed it.
    const env = (globalThis as unknown as { process: { env: Record<string, string | undefined> } }).process.env;
    const fs = await import(/* @vite-ignore */ 'node:fs' as string);
    if (!env.VK_ICD_FILENAMES && fs.existsSync(SWIFTSHADER_ICD)) {
      env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
      gpu = await nodeGpu();
      adapter = await gpu.requestAdapter({ powerPreference });
    }
  }
  return adapter && { adapter, gpu, toggles: enabledToggles };
}

export interface RequestOptions {
  powerPreference?: GPUPowerPreference;
  /** Ask for shader-f16 if present (off by default: the f32 path is the reference). */
  wantF16?: boolean;
}

export async function requestGpu(opts: RequestOptions = {}): Promise<GpuContext> {
  const found = await findAdapter(opts.powerPreference ?? 'high-performance');
  if (!found) {
    throw new KilnError(
      'device',
      'no WebGPU adapter found',
      isNode()
        ? 'install a Vulkan driver for your GPU and the Vulkan loader (Debian: apt-get install libvulkan1 mesa-vulkan-drivers), or `apt-get install chromium libvulkan1` for the SwiftShader CPU fallback; or use --backend cpu'
        : 'use a browser with WebGPU (Chrome/Edge 113+, Safari 26, Firefox 141 on Windows) and make sure hardware acceleration is on',
    );
  }
  const { adapter } = found;
  const requiredLimits: Record<string, number> = {};
  for (const k of WANTED_LIMITS) {
    const v = (adapter.limits as unknown as Record<string, number>)[k];
    if (typeof v === 'number') requiredLimits[k] = v;
  }
  const features = OPTIONAL_FEATURES.filter((f) => adapter.features.has(f) && (f !== 'shader-f16' || opts.wantF16));
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures: features as GPUFeatureName[] });
  const info = adapter.info;
  const adapterName = [info?.vendor, info?.architecture, info?.device, info?.description].filter(Boolean).join(' ') || 'WebGPU adapter';
  const limits: Record<string, number> = {};
  for (const k of WANTED_LIMITS) limits[k] = (device.limits as unknown as Record<string, number>)[k];
  const feats = new Set<string>(device.features as unknown as Iterable<string>);
  return {
    device,
    adapterName,
    features: feats,
    limits,
    hasF16: feats.has('shader-f16'),
    hasSubgroups: feats.has('subgroups'),
    hasTimestamps: feats.has('timestamp-query'),
    wgslFeatures: new Set<string>((found.gpu.wgslLanguageFeatures ?? []) as Iterable<string>),
    dawnToggles: found.toggles,
    isSoftware: /swiftshader|llvmpipe|lavapipe/i.test(adapterName) || (info as { isFallbackAdapter?: boolean })?.isFallbackAdapter === true,
  };
}
