// Finds a WebGPU device: navigator.gpu in a browser or worker, the `webgpu` package
// (Dawn) in Node. Asks the adapter for its maxima on the limits a training run
// presses on (binding and buffer sizes, workgroup memory, bindings per stage), since
// the defaults (128 MiB bindings, 16 KiB workgroup memory) are far below most GPUs.
import { KilnError } from '../../core/errors.ts';

export interface GpuContext {
  device: GPUDevice;
  /**
   * The adapter's vendor, architecture, device and description joined as Dawn gives them
   * (e.g. "nvidia hopper nvidia-h100-80gb-hbm3 NVIDIA 550.54"): what peaks.ts matches and
   * benchmarks record. For people, use displayName.
   */
  adapterName: string;
  /** The device as a person names it: "NVIDIA H100 80GB HBM3 (Vulkan)", or "SwiftShader (a CPU emulation of a GPU: correct but slow)". */
  displayName: string;
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
  /** How the Vulkan drivers were chosen (Node only), for --verbose; empty when left to the loader. */
  probeNotes: readonly string[];
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

type Env = Record<string, string | undefined>;

function nodeEnv(): Env {
  return (globalThis as unknown as { process: { env: Env } }).process.env;
}

/** KILN_VERBOSE=1 (the CLI's --verbose): Dawn's and the Vulkan loader's own messages are wanted. */
export function verbose(env: Env = nodeEnv()): boolean {
  return !!env.KILN_VERBOSE && env.KILN_VERBOSE !== '0';
}

/** Environment variables through which a user picks Vulkan drivers themselves: Kiln then leaves the choice to them. */
const DRIVER_CHOICE_VARS = ['VK_ICD_FILENAMES', 'VK_DRIVER_FILES', 'VK_ADD_DRIVER_FILES', 'VK_LOADER_DRIVERS_SELECT', 'VK_LOADER_DRIVERS_DISABLE'] as const;

/** Mesa's lavapipe (a CPU Vulkan driver) by its manifest's file name, e.g. lvp_icd.x86_64.json. */
export const LAVAPIPE_MANIFEST_GLOB = '*lvp_icd*';

/**
 * The Vulkan driver list Kiln asks the loader for, as environment variables to set (or
 * none). Where Chromium's SwiftShader is installed, it is added to the drivers the loader
 * finds and Mesa's lavapipe is left out: Kiln's one software adapter is SwiftShader, and
 * Debian 12's lavapipe is too old for Dawn, which says so in a multi-line warning on
 * stderr at every start ("Vulkan shaderUniform*ArrayDynamicIndexing required"). Hardware
 * drivers stay, and Dawn ranks them above a CPU adapter. A user who sets any of the
 * loader's driver variables keeps exactly that choice.
 */
export function vulkanDriverEnv(env: Env, swiftShaderInstalled: boolean): { set: Record<string, string>; notes: string[] } {
  const chosen = DRIVER_CHOICE_VARS.filter((k) => env[k]);
  if (chosen.length) return { set: {}, notes: [`Vulkan drivers as ${chosen.map((k) => `${k}=${env[k]}`).join(' ')} chooses`] };
  if (!swiftShaderInstalled) return { set: {}, notes: ['Vulkan drivers as the loader finds them (no SwiftShader at ' + SWIFTSHADER_ICD + ')'] };
  return {
    set: { VK_ADD_DRIVER_FILES: SWIFTSHADER_ICD, VK_LOADER_DRIVERS_DISABLE: LAVAPIPE_MANIFEST_GLOB },
    notes: [`Vulkan drivers: the loader's, plus SwiftShader (${SWIFTSHADER_ICD}), without Mesa's lavapipe (${LAVAPIPE_MANIFEST_GLOB})`],
  };
}

let probeNotes: string[] = [];
/** The loader variables the user had set to choose drivers ("NAME=value ..."), or '': named when no adapter is found. */
let userDriverChoice = '';
let driversChosen = false;

/**
 * Sets the Vulkan driver list once per process, before Dawn's first instance. With
 * KILN_VERBOSE, first lets Dawn probe every driver the loader finds, so its own messages
 * about each show on stderr (and probeNotes say which adapter it would pick among them);
 * the adapter used is the same either way.
 */
async function chooseVulkanDrivers(mod: { create: (flags: string[]) => GPU }): Promise<void> {
  if (driversChosen) return;
  driversChosen = true;
  const env = nodeEnv();
  if ((globalThis as unknown as { process: { platform: string } }).process.platform !== 'linux') return;
  const fs = await import(/* @vite-ignore */ 'node:fs' as string);
  const plan = vulkanDriverEnv(env, fs.existsSync(SWIFTSHADER_ICD));
  probeNotes = plan.notes;
  userDriverChoice = DRIVER_CHOICE_VARS.filter((k) => env[k]).map((k) => `${k}=${env[k]}`).join(' ');
  if (verbose(env) && Object.keys(plan.set).length) {
    const all = mod.create([]);
    keepAlive.push(all);
    const a = await all.requestAdapter({ powerPreference: 'high-performance' });
    const i = a?.info;
    probeNotes.push(`with every Vulkan driver the loader finds, Dawn picks ${i ? JSON.stringify([i.vendor, i.architecture, i.device, i.description].join(' ')) : 'no adapter'}`);
  }
  Object.assign(env, plan.set);
}

async function nodeGpu(): Promise<GPU> {
  const spec = 'webgpu';
  let mod: { create: (flags: string[]) => GPU; globals: Record<string, unknown> };
  try {
    mod = await import(/* @vite-ignore */ spec);
  } catch (e) {
    throw new KilnError('device', `cannot load the 'webgpu' package (Dawn): ${(e as Error).message}`, 'run `npm ci` in the Kiln folder');
  }
  // Dawn's Vulkan/Wayland probing complains on every start without XDG_RUNTIME_DIR.
  const env = nodeEnv();
  env.XDG_RUNTIME_DIR ??= '/tmp';
  await chooseVulkanDrivers(mod);
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
    const env = nodeEnv();
    const fs = await import(/* @vite-ignore */ 'node:fs' as string);
    if (!env.VK_ICD_FILENAMES && fs.existsSync(SWIFTSHADER_ICD)) {
      env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
      probeNotes = [...probeNotes, `no adapter among those drivers: retried with VK_ICD_FILENAMES=${SWIFTSHADER_ICD}`];
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
        ? (userDriverChoice ? `${userDriverChoice} limits the Vulkan drivers searched: unset it, or ` : '') +
          'install a Vulkan driver for your GPU and the Vulkan loader (Debian: apt-get install libvulkan1 mesa-vulkan-drivers), or `apt-get install chromium libvulkan1` for the SwiftShader CPU fallback; or use --backend cpu'
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
  const isSoftware = /swiftshader|llvmpipe|lavapipe/i.test(adapterName) || (info as { isFallbackAdapter?: boolean })?.isFallbackAdapter === true;
  const limits: Record<string, number> = {};
  for (const k of WANTED_LIMITS) limits[k] = (device.limits as unknown as Record<string, number>)[k];
  const feats = new Set<string>(device.features as unknown as Iterable<string>);
  return {
    device,
    adapterName,
    displayName: adapterDisplayName(info ?? {}, isSoftware, nativeApi()),
    features: feats,
    limits,
    hasF16: feats.has('shader-f16'),
    hasSubgroups: feats.has('subgroups'),
    hasTimestamps: feats.has('timestamp-query'),
    wgslFeatures: new Set<string>((found.gpu.wgslLanguageFeatures ?? []) as Iterable<string>),
    dawnToggles: found.toggles,
    probeNotes: isNode() ? probeNotes : [],
    isSoftware,
  };
}

/** The native API under Dawn in Node, by platform (Dawn's default backend there); unknown in a browser. */
function nativeApi(): string | undefined {
  if (!isNode()) return undefined;
  const platform = (globalThis as unknown as { process: { platform: string } }).process.platform;
  return platform === 'darwin' ? 'Metal' : platform === 'win32' ? 'D3D12' : 'Vulkan';
}

/** How vendors and common words of GPU names are written (the adapter's identifiers are lowercase). */
const NAME_WORDS: Record<string, string> = {
  nvidia: 'NVIDIA', amd: 'AMD', ati: 'ATI', intel: 'Intel', apple: 'Apple', qualcomm: 'Qualcomm', arm: 'Arm', mali: 'Mali',
  adreno: 'Adreno', geforce: 'GeForce', radeon: 'Radeon', quadro: 'Quadro', tesla: 'Tesla', rtx: 'RTX', gtx: 'GTX', pcie: 'PCIe',
  iris: 'Iris', xe: 'Xe', uhd: 'UHD', hd: 'HD', arc: 'Arc', ti: 'Ti', super: 'SUPER', nvl: 'NVL', sxm: 'SXM', gpu: 'GPU',
  mesa: 'Mesa', microsoft: 'Microsoft', google: 'Google', vulkan: 'Vulkan', rx: 'RX', xt: 'XT', xtx: 'XTX', radv: 'RADV', gb: 'GB',
};

/** "nvidia-h100-80gb-hbm3" (a WebGPU identifier: lowercase, digits, hyphens) as "NVIDIA H100 80GB HBM3". */
function fromIdentifier(id: string): string {
  return id
    .split(/[-_\s]+/)
    .filter(Boolean)
    .map((w) => NAME_WORDS[w] ?? (/\d/.test(w) ? w.toUpperCase() : w[0].toUpperCase() + w.slice(1)))
    .join(' ');
}

/**
 * The adapter as a person names it. Software adapters say what they are (a CPU
 * emulation, correct but slow); hardware ones give the product name (from the device
 * identifier, or a description that is not just a driver version), else the vendor and
 * architecture; then the native API where known: "NVIDIA H100 80GB HBM3 (Vulkan)".
 */
export function adapterDisplayName(
  info: { vendor?: string; architecture?: string; device?: string; description?: string },
  isSoftware: boolean,
  api?: string,
): string {
  const all = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ');
  if (isSoftware) {
    const name = /swiftshader/i.test(all) ? 'SwiftShader' : /lavapipe|llvmpipe/i.test(all) ? 'Mesa lavapipe' : 'A software adapter';
    return `${name} (a CPU emulation of a GPU: correct but slow)`;
  }
  const device = info.device?.trim() ?? '';
  const description = info.description?.trim() ?? '';
  const isId = (s: string) => /^(0x)?[0-9a-f]+$/i.test(s);
  const isDriver = (s: string) => /\bdriver\b|\bmesa\b|^\S+:? v?\d+(\.\d+)+/i.test(s) || /^[\d.\s]+$/.test(s);
  let name: string;
  if (device && !isId(device)) name = /[A-Z\s]/.test(device) ? device : fromIdentifier(device);
  else if (description && !isDriver(description)) name = description;
  else name = [info.vendor, info.architecture].filter(Boolean).map((s) => fromIdentifier(s!)).join(' ') + ' GPU';
  if (name === ' GPU' || name === 'GPU') name = 'A WebGPU adapter';
  const vendor = info.vendor ? fromIdentifier(info.vendor) : '';
  if (vendor && !name.toLowerCase().includes(vendor.toLowerCase())) name = `${vendor} ${name}`;
  return api ? `${name} (${api})` : name;
}
