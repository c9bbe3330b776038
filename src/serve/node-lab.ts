// The lab's LabSession in Node, for `kiln serve`: the same session the browser's worker
// runs (src/worker/lab-session.ts), with this machine's pieces injected: WebGPU through
// Dawn (or the CPU reference), the bundled texts read from public/datasets/, SHA-256 from
// node:crypto, and the run library as run folders in --out (src/store/fs-store.ts).
//
// The GPU is looked for once, at start, so the terminal can say which one the page will
// train on. The choice follows `kiln train --backend auto` (cli/backends.ts): a hardware
// adapter through Dawn, else the CPU; a software adapter (SwiftShader) is passed over,
// being slower than the CPU reference, unless --backend webgpu asks for it. An NVIDIA GPU
// through the CUDA addon comes first (auto, or --backend cuda, which alone may use the
// CUDA emulation, KILN_CUDA_FLAVOUR=emulation): the page's GPU slot then trains on
// CudaBackend, and environment() says so (gpuApi 'cuda').
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Backend } from '../backends/backend.ts';
import type { CudaBackend } from '../backends/cuda/backend.ts';
import type { GpuContext } from '../backends/webgpu/device.ts';
import { availableMemory, createBackend, deviceLabel, isVerbose, machineBudget } from '../cli/backends.ts';
import type { Budget, Planner } from '../core/budget.ts';
import { isKilnError, KilnError } from '../core/errors.ts';
import { printable } from '../core/text.ts';
import { openFsRunStore, type FsRunStore } from '../store/fs-store.ts';
import type { LabBackendKind, LabEnvironment } from '../worker/api.ts';
import { LabSession, type LabSessionDeps, type LabSessionOptions } from '../worker/lab-session.ts';
import { listTextFiles, readTextFileInside } from './safe-path.ts';
import { attachTensorBoard } from './serve-tensorboard.ts';

/** What `--backend` asks of kiln serve (auto: a CUDA GPU, else a hardware GPU through WebGPU, else the CPU). */
export type ServeBackend = 'auto' | 'webgpu' | 'cuda' | 'cpu';

export interface NodeLabOptions {
  /** The run library's folder (--out). */
  out: string;
  /** A folder of the user's texts (--data); checked to be a folder. */
  data?: string;
  backend?: ServeBackend;
  /** One line for the terminal (which adapter, why not a GPU). Default: stderr. */
  note?: (line: string) => void;
  /** Default: automatic samples every 10 steps of 80 tokens, as the browser's worker. */
  sessionOptions?: LabSessionOptions;
  /** A TensorBoard log in each run's folder (serve-tensorboard.ts); false: none (--no-tensorboard). Default true. */
  tensorboard?: boolean;
}

export interface NodeLab {
  session: LabSession;
  /** What environment() answers: the adapter found at start, or why runs go to the CPU. */
  environment: LabEnvironment;
  /** --data, resolved (null without it). */
  dataDir: string | null;
  /** The run library (opened on first use, by the session or by this call). */
  store(): Promise<FsRunStore>;
  /** The most recently saved run (its folder and step); null when none is, or the library was never opened (it is not opened for this). */
  lastSaved(): Promise<{ folder: string; step: number } | null>;
  /** Ends training (its checkpoint is saved first), frees the backend, gives up the run folders' locks. */
  close(): Promise<void>;
}

const CPU_LIMITS = { maxStorageBufferBindingSize: 0, maxBufferSize: 0 };

function noGpu(why: string): LabEnvironment {
  return { webgpu: false, webgpuWhy: why, device: '', isSoftware: false, limits: { ...CPU_LIMITS } };
}

/** The bundled text's path: KILN_DATA_DIR (as train-command.ts reads it), else the checkout's public/datasets/. */
function bundledPath(file: string): string {
  const dir = process.env.KILN_DATA_DIR;
  return dir ? join(dir, file) : fileURLToPath(new URL(`../../public/datasets/${file}`, import.meta.url));
}

async function loadBundled(file: string): Promise<Uint8Array> {
  // The names come from core/datasets.ts's table, never from the page; checked anyway.
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(file)) throw new KilnError('data', `there is no bundled text ${printable(file, 60)}`, 'choose one from the list');
  try {
    const b = await readFile(bundledPath(file));
    return new Uint8Array(b.buffer, b.byteOffset, b.length);
  } catch (e) {
    throw new KilnError('data', `cannot read the bundled text ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      'run kiln serve from a complete Kiln checkout (its public/datasets/ folder), or open a text file of your own');
  }
}

/** The session's access to --data: its .txt files listed, and one read by its path inside the folder only (safe-path.ts). */
function dataFolderDeps(dir: string): Pick<LabSessionDeps, 'readDataFile' | 'dataFiles'> {
  return {
    readDataFile: (rel) => readTextFileInside(dir, rel),
    dataFiles: async () => (await listTextFiles(dir)).map(({ path, bytes }) => ({ path, bytes })),
  };
}

async function sha256(bytes: Uint8Array): Promise<string> {
  return createHash('sha256').update(bytes).digest('hex');
}

/** What the CUDA backend found at start: the GPU slot's backend is made with these options. */
interface CudaFound {
  flavour: CudaBackend['flavour'];
  /** The GPU as the CUDA runtime names it. */
  name: string;
  onCpu: boolean;
  /** The GPU's memory in bytes (absent on the emulation, whose memory is this machine's). */
  totalMemory?: number;
  /** The device bytes a run allocates (the addon's own plan: bf16, chunked classifier), for the page's fit. */
  plan: Planner;
}

/**
 * A CUDA GPU through the addon: --backend cuda takes whichever flavour KILN_CUDA_FLAVOUR
 * names (its failure is kiln serve's, exit 3); auto only a real GPU, never the emulation,
 * and null when there is none (said only with --verbose, as kiln train's auto does).
 */
async function findCuda(mode: ServeBackend, note: (line: string) => void): Promise<{ env: LabEnvironment; cuda: CudaFound } | null> {
  const { CudaBackend } = await import('../backends/cuda/backend.ts');
  let b: CudaBackend;
  try {
    b = new CudaBackend(mode === 'auto' ? { flavour: 'cuda' } : {});
  } catch (e) {
    if (mode === 'cuda' || !isKilnError(e)) throw e;
    if (isVerbose()) note(`kiln: verbose: no CUDA backend: ${e.message}`);
    return null;
  }
  const { info, flavour, onCpu } = b;
  // Kept for its plan (a calculation: it holds no device memory until a model loads).
  const plan: Planner = (model, batchSize) => ({ total: b.memoryBytes(model, batchSize) });
  const totalMemory = info.limits.totalMemory || undefined;
  // A CUDA GPU has no WebGPU binding limits: one buffer may take all of its memory (the emulation's: this machine's).
  const bytes = totalMemory ?? availableMemory().total;
  note(`kiln serve: GPU: ${info.device} (CUDA${onCpu ? ', every kernel on the CPU: correct but far slower than --backend cpu' : ''})`);
  return {
    env: {
      webgpu: true, gpuApi: 'cuda', device: `${info.device} (CUDA)`, isSoftware: onCpu,
      limits: { maxStorageBufferBindingSize: bytes, maxBufferSize: bytes },
      ...(info.peakFlops ? { peakFlops: info.peakFlops } : {}),
    },
    cuda: { flavour, name: info.device, onCpu, plan, ...(totalMemory ? { totalMemory } : {}) },
  };
}

/** Looks for the GPU once: the environment the page sees, and the device the first run may use. */
async function findGpu(mode: ServeBackend, note: (line: string) => void): Promise<{ env: LabEnvironment; gpu: GpuContext | null; cuda?: CudaFound }> {
  if (mode === 'cpu') return { env: noGpu('kiln serve was started with --backend cpu: runs train on this machine\'s CPU (start it without --backend cpu to use a GPU)'), gpu: null };
  if (mode === 'cuda' || mode === 'auto') {
    const found = await findCuda(mode, note);
    if (found) return { ...found, gpu: null };
  }
  const { requestGpu } = await import('../backends/webgpu/device.ts');
  let gpu: GpuContext;
  try {
    gpu = await requestGpu();
  } catch (e) {
    // --backend webgpu without an adapter is refused now, as `kiln train --backend webgpu` is.
    if (mode === 'webgpu') throw e;
    const why = isKilnError(e) ? e.message : (e as Error)?.message ?? String(e);
    note(`kiln serve: no GPU found through WebGPU (${printable(why, 200)}): runs train on the CPU`);
    return { env: noGpu(`kiln serve found no GPU through WebGPU on this machine (${printable(why, 200)}), so runs train on its CPU`), gpu: null };
  }
  if (isVerbose()) for (const n of gpu.probeNotes) note(`kiln: verbose: ${n}`);
  const short = gpu.displayName.replace(/ \(.*$/, '');
  if (gpu.isSoftware && mode === 'auto') {
    note(`kiln serve: no hardware GPU found (only ${short}, a CPU emulation, slower than the CPU backend): runs train on the CPU (--backend webgpu uses it anyway)`);
    gpu.device.destroy();
    return { env: noGpu(`kiln serve found only ${short} on this machine, a CPU emulation of a GPU that is slower than its CPU, so runs train on the CPU (start kiln serve with --backend webgpu to use it anyway)`), gpu: null };
  }
  note(`kiln serve: GPU: ${gpu.displayName}`);
  const { fp32Peak } = await import('../backends/webgpu/peaks.ts');
  const peak = gpu.isSoftware ? null : fp32Peak(gpu.adapterName);
  return {
    env: {
      webgpu: true, device: gpu.displayName, isSoftware: gpu.isSoftware,
      limits: { maxStorageBufferBindingSize: gpu.limits.maxStorageBufferBindingSize, maxBufferSize: gpu.limits.maxBufferSize },
      ...(peak ? { peakFlops: peak.flops } : {}),
    },
    gpu,
  };
}

async function isLost(gpu: GpuContext): Promise<boolean> {
  return Promise.race([gpu.device.lost.then(() => true), Promise.resolve(false)]);
}

export async function createNodeLab(opts: NodeLabOptions): Promise<NodeLab> {
  const note = opts.note ?? ((line: string) => process.stderr.write(`${line}\n`));
  let dataDir: string | null = null;
  if (opts.data !== undefined) {
    const st = await stat(opts.data).catch(() => null);
    if (!st?.isDirectory()) throw new KilnError('usage', `--data ${printable(opts.data, 200)} is not a folder`, 'give --data the folder that holds your .txt files');
    dataDir = opts.data;
  }
  const found = await findGpu(opts.backend ?? 'auto', note);
  const env = found.env;
  /** The adapter found at start: the first webgpu backend uses it rather than asking again. */
  let firstGpu = found.gpu;
  const cuda = found.cuda ?? null;

  let storePromise: Promise<FsRunStore> | null = null;
  const store = (): Promise<FsRunStore> => (storePromise ??= openFsRunStore(opts.out, { note }));

  async function makeBackend(kind: LabBackendKind): Promise<Backend> {
    if (kind === 'cpu') return createBackend('cpu');
    if (!env.webgpu) throw new KilnError('device', `this kiln serve trains on the CPU only: ${env.webgpuWhy}`, 'choose the CPU backend');
    if (cuda) {
      // CudaBackend's own defaults: bf16 on a GPU (as kiln train), f32 on the emulation.
      const { CudaBackend } = await import('../backends/cuda/backend.ts');
      return new CudaBackend({ flavour: cuda.flavour });
    }
    const gpu = firstGpu && !(await isLost(firstGpu)) ? firstGpu : null;
    firstGpu = null;
    if (gpu) {
      const { WebGpuBackend } = await import('../backends/webgpu/backend.ts');
      return WebGpuBackend.create({ gpu });
    }
    // A lost device cannot make buffers again: after the first backend, each gets its own.
    return createBackend('webgpu', () => {});
  }

  /**
   * As `kiln train` sizes a run: on the CPU or a software GPU (whose buffers are this
   * machine's memory) against the free memory here; a hardware GPU only against its
   * adapter's limits (WebGPU does not say how much memory a GPU has); a CUDA GPU against
   * its memory (the CUDA emulation computes here: this machine's).
   */
  function budget(kind: LabBackendKind, limits: LabEnvironment['limits'] | null): Budget {
    const onCpu = kind === 'cpu' || env.isSoftware;
    const gpuBytes = cuda?.totalMemory ?? Number.MAX_SAFE_INTEGER;
    const b: Budget = onCpu ? machineBudget(cuda && kind !== 'cpu' ? 'cuda' : kind) : { memoryBytes: gpuBytes, where: `the GPU (${cuda?.name ?? env.device})`, memoryName: 'GPU memory' };
    if (limits?.maxStorageBufferBindingSize) b.maxBinding = limits.maxStorageBufferBindingSize;
    if (limits?.maxBufferSize) b.maxBuffer = limits.maxBufferSize;
    return b;
  }

  const session = new LabSession(
    {
      environment: async () => env, createBackend: makeBackend, loadBundled, sha256, deviceName: deviceLabel, store, budget,
      planner: (kind) => (cuda && kind === 'webgpu' ? cuda.plan : undefined),
      ...(dataDir !== null ? dataFolderDeps(dataDir) : {}),
    },
    opts.sessionOptions ?? { autoSampleEvery: 10, autoSampleTokens: 80 },
  );
  // Closed with the session (its dispose): the logs are written before close() returns.
  if (opts.tensorboard !== false) attachTensorBoard(session, store, note);

  let closing: Promise<void> | null = null;
  return {
    session,
    environment: env,
    dataDir,
    store,
    async lastSaved() {
      const lib = await storePromise?.catch(() => null);
      // The lab's own runs: a folder it only lists (kiln train's, a scaled one) was not saved by it.
      const last = (await lib?.listRuns().catch(() => []))?.find((r) => r.checkpoints.length > 0 && !r.source);
      const folder = last ? await lib!.folderOf(last.id) : null;
      return last && folder ? { folder, step: last.step } : null;
    },
    close: () => (closing ??= (async () => {
      try {
        await session.dispose();
      } finally {
        if (storePromise) await (await storePromise.catch(() => null))?.release();
      }
    })()),
  };
}
