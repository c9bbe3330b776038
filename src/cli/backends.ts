// Backend by name for the CLI. GPU backends load lazily so `--backend cpu` never
// touches Dawn or a native addon. Every choice made for the user (a GPU passed over, a
// CPU emulation chosen) is said in one line on stderr.
import { freemem, totalmem } from 'node:os';
import type { Backend } from '../backends/backend.ts';
import { CpuBackend } from '../backends/cpu.ts';
import type { CudaBackend, CudaBackendOptions } from '../backends/cuda/backend.ts';
import type { WebGpuBackend } from '../backends/webgpu/backend.ts';
import { nodeBudget, type Budget } from '../core/budget.ts';
import { isKilnError, KilnError } from '../core/errors.ts';

export const BACKEND_NAMES = ['auto', 'cpu', 'webgpu', 'cuda'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

/**
 * KILN_VERBOSE=1 (what `--verbose` sets): Dawn's and the Vulkan loader's own messages and
 * how the driver was chosen, which are otherwise kept off the terminal.
 */
export const VERBOSE_ENV = 'KILN_VERBOSE';

export function isVerbose(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env[VERBOSE_ENV];
  return !!v && v !== '0';
}

/** Where the one-line notes go (stderr, unless a caller such as `kiln train` has its own). */
export type Note = (line: string) => void;

const toStderr: Note = (line) => process.stderr.write(`${line}\n`);

export function parseBackendName(s: string | undefined): BackendName {
  const name = s ?? 'auto';
  if (!(BACKEND_NAMES as readonly string[]).includes(name))
    throw new KilnError('usage', `unknown backend "${name}"`, `use one of: ${BACKEND_NAMES.join(', ')}`);
  return name as BackendName;
}

/** The WebGPU backend's device context, or null for another backend. */
function gpuOf(backend: Backend): WebGpuBackend['gpu'] | null {
  return backend.kind === 'webgpu' && 'gpu' in backend ? (backend as WebGpuBackend).gpu : null;
}

/** The device as a person names it: "CPU reference (f32)", "NVIDIA H100 80GB HBM3 (Vulkan)", "SwiftShader (a CPU emulation ...)". */
export function deviceLabel(backend: Backend): string {
  return gpuOf(backend)?.displayName ?? backend.info.device;
}

/**
 * Whether the backend computes on the CPU: the CPU reference, a software WebGPU adapter,
 * or the CUDA addon's SIMT emulation (whose memory is this machine's).
 */
export function runsOnCpu(backend: Backend): boolean {
  return backend.kind === 'cpu' || gpuOf(backend)?.isSoftware === true || (backend.kind === 'cuda' && (backend as CudaBackend).onCpu);
}

/** Memory this process can count on: what the system calls available, within a container's limit. */
export function availableMemory(): { free: number; total: number } {
  const limit = (process as { constrainedMemory?: () => number | undefined }).constrainedMemory?.() ?? 0;
  const total = limit > 0 && limit < totalmem() ? limit : totalmem();
  return { free: Math.min(freemem(), total), total };
}

/**
 * This machine's memory as the budget of a run on a backend that computes here (the CPU's
 * arrays, a software GPU's buffers): checkModelCost's words, naming the backend.
 */
export function machineBudget(backendName: string, mem = availableMemory()): Budget {
  return { ...nodeBudget(mem.total, mem.free), memoryName: `memory on the ${backendName} backend` };
}

async function webgpu(note: Note): Promise<WebGpuBackend> {
  const mod = await import('../backends/webgpu/backend.ts');
  const gpu = await mod.WebGpuBackend.create();
  if (isVerbose()) {
    for (const n of gpu.gpu.probeNotes) note(`kiln: verbose: ${n}`);
    note(`kiln: verbose: adapter ${JSON.stringify(gpu.gpu.adapterName)}`);
  }
  return gpu;
}

/** The CUDA backend, loaded only when asked for (its module loads the native addon). */
async function cuda(options: CudaBackendOptions): Promise<CudaBackend> {
  const mod = await import('../backends/cuda/backend.ts');
  return new mod.CudaBackend(options);
}

/**
 * The backend `name` stands for. `cuda` options (precision, recompute) go to the CUDA
 * backend, whether named or chosen by auto; the caller refuses them for another.
 */
export async function createBackend(name: BackendName, note: Note = toStderr, cudaOptions: CudaBackendOptions = {}): Promise<Backend> {
  switch (name) {
    case 'auto':
      return autoBackend(note, cudaOptions);
    case 'cpu':
      return new CpuBackend();
    case 'webgpu': {
      const gpu = await webgpu(note);
      if (gpu.gpu.isSoftware)
        note(`kiln: note: --backend webgpu runs on ${gpu.gpu.displayName.replace(/ \(.*$/, '')}, a CPU emulation of a GPU: correct, but slower than --backend cpu`);
      return gpu;
    }
    case 'cuda': {
      const b = await cuda(cudaOptions);
      if (b.onCpu) note(`kiln: note: --backend cuda runs on the SIMT emulation (KILN_CUDA_FLAVOUR=emulation): every CUDA kernel on the CPU, correct but far slower than --backend cpu`);
      return b;
    }
  }
}

/**
 * An NVIDIA GPU through the CUDA addon where it is built and sees one, else a hardware
 * GPU through WebGPU, else the CPU reference, said in one line. Never the CUDA emulation
 * or a software WebGPU adapter such as SwiftShader: both are slower than the CPU reference.
 */
async function autoBackend(note: Note, cudaOptions: CudaBackendOptions): Promise<Backend> {
  try {
    return await cuda({ ...cudaOptions, flavour: 'cuda' });
  } catch (e) {
    if (!isKilnError(e)) throw e;
    // Most machines have no NVIDIA GPU or no build of the addon: not worth a line each run.
    if (isVerbose()) note(`kiln: verbose: no CUDA backend: ${e.message}`);
  }
  try {
    const gpu = await webgpu(note);
    if (!gpu.gpu.isSoftware) return gpu;
    note(`kiln: no hardware GPU found (only ${gpu.gpu.displayName.replace(/ \(.*$/, '')}, a CPU emulation, slower than the CPU backend): using the CPU backend`);
    gpu.dispose();
  } catch (e) {
    // No adapter or no Dawn: the CPU always works.
    const why = isKilnError(e) ? e.message : (e as Error)?.message ?? String(e);
    note(`kiln: no GPU found through WebGPU (${why}): using the CPU backend`);
  }
  return new CpuBackend();
}
