// The native CUDA addon (native/cuda/), typed, and the one place that finds and loads it.
// Two builds of the same sources exist: the cuda flavour (nvcc, a real GPU) and the
// emulation flavour (plain C++ on a SIMT emulation: every kernel runs on the CPU, for
// tests and for machines without a GPU). Every way loading can fail becomes a
// KilnError('device') that says what is missing and what to do.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KilnError } from '../../core/errors.ts';

export type CudaFlavour = 'cuda' | 'emulation';
export type GemmImplName = 'simt' | 'tensor-core' | 'cublaslt';
export type CudaDtype = 'f32' | 'bf16';

export interface CudaDevices {
  count: number;
  name?: string;
  totalMemory?: number;
  /** "9.0" for an H100. */
  computeCapability?: string;
  /** The CUDA runtime's text when it found no device (or failed to ask). */
  error?: string;
  /** cuda flavour: the driver's CUDA version as 1000 * major + 10 * minor (0: no driver), and the runtime's the addon was built with. */
  driverVersion?: number;
  runtimeVersion?: number;
}

export type KernelArray = Float32Array | Int32Array | Uint32Array;

export interface NativeDims {
  vocab: number;
  block: number;
  layers: number;
  heads: number;
  embd: number;
}

export interface NativeSlot {
  name: string;
  offset: number;
  size: number;
  decay: boolean;
}

export interface NativeModelOptions {
  dtype: CudaDtype;
  /** Sequences per micro-batch the device buffers are sized for. */
  maxBatch: number;
  recompute: boolean;
  gemm: 'auto' | GemmImplName;
}

export interface NativeHyper {
  lr: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  gradClip: number;
  dropoutP: number;
  dropoutSeed: number;
}

export interface NativeState {
  params: Float32Array;
  m: Float32Array;
  v: Float32Array;
  step: number;
}

/** model/gpt.h's GptModel. step, loss and logits run off the JS thread, one at a time per model. */
export interface NativeModel {
  numParams(): number;
  deviceBytes(): number;
  recomputeSavedBytes(): number;
  load(params: Float32Array, m: Float32Array | null, v: Float32Array | null, step: number): void;
  step(inputs: Int32Array, targets: Int32Array, B: number, T: number, microBatches: number, hp: NativeHyper): Promise<{ loss: number; gradNorm: number }>;
  loss(inputs: Int32Array, targets: Int32Array, B: number, T: number, microBatches: number): Promise<number>;
  logits(context: Int32Array): Promise<Float32Array>;
  save(): NativeState;
  dispose(): void;
}

export interface CudaAddon {
  readonly flavour: CudaFlavour;
  devices(): CudaDevices;
  gemmImpls(): GemmImplName[];
  kernelNames(): string[];
  /** Runs a test entry point (native/cuda/entries/) on host arrays, written back in place. */
  kernel(name: string, arrays: KernelArray[], nums: number[]): void;
  /** Device bytes a model of these dims would allocate (GptModel::plan_bytes). */
  planBytes(dims: NativeDims, options: NativeModelOptions): number;
  Model: new (dims: NativeDims, layout: NativeSlot[], options: NativeModelOptions) => NativeModel;
}

/** KILN_CUDA_FLAVOUR=emulation picks the emulation flavour where no option names one. */
export const FLAVOUR_ENV = 'KILN_CUDA_FLAVOUR';

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '../../..');

const FILES: Record<CudaFlavour, string> = {
  cuda: 'build/cuda/kiln_cuda.node',
  emulation: 'build/cuda-emu/kiln_cuda_emu.node',
};

/**
 * KILN_CUDA_ADDON=PATH: the cuda flavour's .node is there, not in the repository's build/.
 * The GPU visit (bench/gpu/visit.sh) builds it on the GPU machine and runs a bundled CLI,
 * whose own location says nothing about where the build is.
 */
export const ADDON_PATH_ENV = 'KILN_CUDA_ADDON';

/** Where a flavour's build lands (whether or not it exists). */
export function addonPath(flavour: CudaFlavour, root = REPO_ROOT, env: NodeJS.ProcessEnv = process.env): string {
  const override = env[ADDON_PATH_ENV];
  if (flavour === 'cuda' && override) return override;
  return join(root, FILES[flavour]);
}

/** The flavour asked for: the option, else KILN_CUDA_FLAVOUR, else the real GPU. */
export function requestedFlavour(option?: CudaFlavour, env: NodeJS.ProcessEnv = process.env): CudaFlavour {
  if (option) return option;
  const v = env[FLAVOUR_ENV];
  if (v === undefined || v === '' || v === 'cuda') return 'cuda';
  if (v === 'emulation' || v === 'emu') return 'emulation';
  throw new KilnError('usage', `${FLAVOUR_ENV}="${v}" is not a CUDA flavour`, `set ${FLAVOUR_ENV} to cuda or emulation, or unset it`);
}

const BUILD_HINT: Record<CudaFlavour, string> = {
  cuda: 'run npm run build:cuda (it needs CMake, a C++ compiler and the CUDA toolkit\'s nvcc), or use --backend webgpu or --backend cpu',
  emulation: 'run npm run build:cuda; the emulation flavour needs CMake and g++',
};

const loaded = new Map<string, CudaAddon>();
const require = createRequire(import.meta.url);

/**
 * The addon of `flavour`, loaded once per process. Throws KilnError('device') when it was
 * never built or does not load here. It does not check for a GPU: see requireGpu.
 */
export function loadAddon(flavour: CudaFlavour, root = REPO_ROOT): CudaAddon {
  const path = addonPath(flavour, root);
  const cached = loaded.get(path);
  if (cached) return cached;
  if (!existsSync(path))
    throw new KilnError('device', `the CUDA addon's ${flavour} flavour is not built (no ${FILES[flavour]})`, BUILD_HINT[flavour]);
  let addon: CudaAddon;
  try {
    addon = require(path) as CudaAddon;
  } catch (e) {
    const why = (e as Error).message.split('\n')[0];
    throw new KilnError('device', `the CUDA addon (${FILES[flavour]}) does not load: ${why}`, `rebuild it: ${BUILD_HINT[flavour]}`);
  }
  loaded.set(path, addon);
  return addon;
}

/** The first GPU the cuda flavour sees, or KilnError('device') saying why there is none. */
export function requireGpu(addon: CudaAddon): CudaDevices & { name: string } {
  if (addon.flavour === 'emulation') return { count: 1, name: 'SIMT emulation (CPU)' };
  const d = addon.devices();
  if (d.count >= 1 && d.name) return { ...d, name: d.name };
  const said = `cudaGetDeviceCount said "${d.error ?? `${d.count} devices`}"`;
  const other = 'or use --backend webgpu or --backend cpu';
  if (d.driverVersion === 0)
    throw new KilnError('device', `no NVIDIA GPU visible: no NVIDIA driver is loaded (${said})`, `install the NVIDIA driver and check nvidia-smi, ${other}`);
  if (d.driverVersion !== undefined && d.runtimeVersion !== undefined && d.driverVersion < d.runtimeVersion)
    throw new KilnError('device', `no NVIDIA GPU usable: the driver supports CUDA ${cudaVersion(d.driverVersion)}, older than the CUDA ${cudaVersion(d.runtimeVersion)} this addon was built with (${said})`,
      `update the NVIDIA driver, or rebuild with an older CUDA toolkit (npm run build:cuda), ${other}`);
  throw new KilnError('device', `no NVIDIA GPU visible: ${said}`, `check nvidia-smi and the driver, ${other}`);
}

function cudaVersion(v: number): string {
  return `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 10)}`;
}
