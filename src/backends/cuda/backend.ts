// The `cuda` backend: the native addon's GPT (native/cuda/model/) behind the Backend
// interface, with CpuBackend's semantics exactly: micro-batches averaged, the step's
// dropout seed, AdamW's t, global-norm clipping, the flat layout of src/core/model-spec.ts.
// The device model is sized for a batch, which is known only at the first step, so it is
// built lazily for the largest batch seen, and rebuilt (carrying the state) when a larger
// one arrives. Long work runs off the JS thread inside the addon.
import { KilnError } from '../../core/errors.ts';
import { modelSpec, type ModelConfig } from '../../core/model-spec.ts';
import type { Backend, BackendInfo, Batch, StepHyper, StepStats, TrainState } from '../backend.ts';
import {
  loadAddon, requestedFlavour, requireGpu, type CudaAddon, type CudaDtype, type CudaFlavour, type GemmImplName, type NativeDims,
  type NativeModel, type NativeModelOptions, type NativeSlot,
} from './addon.ts';
import { cudaPeak } from './peaks.ts';

export interface CudaBackendOptions {
  /** 'cuda' (a real GPU) or 'emulation' (every kernel on the CPU); default: KILN_CUDA_FLAVOUR, else 'cuda'. */
  flavour?: CudaFlavour;
  /** Activations' precision: 'bf16' (mixed precision, the default on a GPU) or 'f32' (parity; the emulation's default). */
  dtype?: CudaDtype;
  /** Recompute GELU inputs in the backward pass instead of storing them. */
  recompute?: boolean;
  gemm?: 'auto' | GemmImplName;
}

/** A state held on the host: before the device model exists, or while it is rebuilt. */
interface HostState {
  params: Float32Array;
  m: Float32Array | null;
  v: Float32Array | null;
  step: number;
}

export class CudaBackend implements Backend {
  readonly kind = 'cuda' as const;
  readonly info: BackendInfo;
  readonly flavour: CudaFlavour;
  readonly dtype: CudaDtype;
  readonly recompute: boolean;
  readonly gemm: 'auto' | GemmImplName;
  private readonly addon: CudaAddon;
  private config: ModelConfig | null = null;
  private layout: NativeSlot[] = [];
  private native: NativeModel | null = null;
  private maxBatch = 0;
  /** The state to load into the next device model; null once it is on the device. */
  private pending: HostState | null = null;

  /** Throws KilnError('device') saying what is missing: the build, the driver, the GPU. */
  constructor(options: CudaBackendOptions = {}) {
    this.flavour = requestedFlavour(options.flavour);
    this.addon = loadAddon(this.flavour);
    const gpu = requireGpu(this.addon);
    this.dtype = options.dtype ?? (this.flavour === 'cuda' ? 'bf16' : 'f32');
    this.recompute = options.recompute ?? false;
    this.gemm = options.gemm ?? 'auto';
    const impls = this.addon.gemmImpls();
    if (this.gemm !== 'auto' && !impls.includes(this.gemm))
      throw new KilnError('device', `the ${this.gemm} GEMM is not in this build of the CUDA addon (it has ${impls.join(', ')})`,
        this.gemm === 'cublaslt' ? 'rebuild with cuBLASLt: KILN_CUBLASLT_DIR=<dir with include/ and lib/> npm run build:cuda' : 'use gemm auto');
    // MFU is measured against the peak of the units the run's matrix products use.
    const peak = this.flavour === 'cuda' ? cudaPeak(gpu.name, this.dtype) : null;
    const limits: Record<string, number> = gpu.totalMemory ? { totalMemory: gpu.totalMemory } : {};
    this.info = {
      device: gpu.name,
      features: [this.flavour, this.dtype, ...(this.recompute ? ['recompute'] : []), ...impls.map((g) => `gemm:${g}`),
        ...(gpu.computeCapability ? [`sm_${gpu.computeCapability.replace('.', '')}`] : [])],
      limits,
      ...(peak ? { peakFlops: peak.flops } : {}),
    };
  }

  /** Whether this backend computes on the CPU (the emulation): its memory is this machine's. */
  get onCpu(): boolean {
    return this.flavour === 'emulation';
  }

  memoryBytes(model: ModelConfig, batchSize: number): number {
    return this.addon.planBytes(dims(model), this.options(batchSize));
  }

  /** Device bytes --recompute saves at this batch size (0 without it): the plan without it less the plan with it. */
  recomputeSavedBytes(model: ModelConfig, batchSize: number): number {
    if (!this.recompute) return 0;
    return this.addon.planBytes(dims(model), { ...this.options(batchSize), recompute: false }) - this.memoryBytes(model, batchSize);
  }

  async load(model: ModelConfig, state: TrainState): Promise<void> {
    const spec = modelSpec(model);
    const n = spec.numParams;
    for (const [what, arr] of [['params', state.params], ['m', state.m], ['v', state.v]] as const) {
      if (arr && arr.length !== n) {
        throw new KilnError('checkpoint', `${what} holds ${arr.length} values but this model has ${n} parameters`,
          'the checkpoint belongs to a different model config');
      }
    }
    const sameShape = this.config !== null && JSON.stringify(dims(this.config)) === JSON.stringify(dims(model));
    if (!sameShape) this.dropNative();
    this.config = { ...model };
    this.layout = spec.params.map((p) => ({ name: p.name, offset: p.offset, size: p.size, decay: p.decay }));
    if (this.native) {
      this.native.load(state.params, state.m, state.v, state.step);
      this.pending = null;
    } else {
      // Copied: the caller may change its arrays before the first step builds the model.
      this.pending = { params: state.params.slice(), m: state.m?.slice() ?? null, v: state.v?.slice() ?? null, step: state.step };
    }
  }

  async step(batch: Batch, hp: StepHyper): Promise<StepStats> {
    checkBatch(batch);
    const native = this.ready(batch.B);
    const dropout = hp.dropout && hp.dropout.p > 0 ? hp.dropout : null;
    const r = await this.device(native.step(batch.inputs, batch.targets, batch.B, batch.T, batch.microBatches, {
      lr: hp.lr, weightDecay: hp.weightDecay, beta1: hp.beta1, beta2: hp.beta2, eps: hp.eps, gradClip: hp.gradClip,
      dropoutP: dropout?.p ?? 0, dropoutSeed: (dropout?.seed ?? 0) >>> 0,
    }));
    return { loss: r.loss, gradNorm: r.gradNorm };
  }

  async loss(batch: Batch): Promise<number> {
    checkBatch(batch);
    const native = this.ready(batch.B);
    return this.device(native.loss(batch.inputs, batch.targets, batch.B, batch.T, batch.microBatches));
  }

  async logits(context: Int32Array): Promise<Float32Array> {
    const native = this.ready(1);
    return this.device(native.logits(context));
  }

  async save(): Promise<TrainState> {
    this.loadedConfig();
    if (this.native) return this.native.save();
    const p = this.pending!;
    const n = p.params.length;
    return { params: p.params.slice(), m: p.m?.slice() ?? new Float32Array(n), v: p.v?.slice() ?? new Float32Array(n), step: p.step };
  }

  dispose(): void {
    this.dropNative();
    this.config = null;
    this.pending = null;
  }

  /** Device bytes the model holds now (0 before the first step), and what recompute saved of them. */
  deviceBytes(): { total: number; recomputeSaved: number } {
    return this.native ? { total: this.native.deviceBytes(), recomputeSaved: this.native.recomputeSavedBytes() } : { total: 0, recomputeSaved: 0 };
  }

  /** The GEMMs of this build. */
  gemmImpls(): GemmImplName[] {
    return this.addon.gemmImpls();
  }

  /**
   * One GEMM C = A @ B (M x K by K x N, bf16 in, bf16 out) timed on the device over `iters`
   * calls after a warm-up (the matmulBench entry of native/cuda/entries/matmul.cu). Blocks
   * the JS thread: for benchmarks, not for training.
   */
  benchGemm(M: number, N: number, K: number, impl: GemmImplName, iters: number): { ms: number; tflops: number } {
    const out = new Float32Array(2);
    this.addon.kernel('matmulBench', [out], [M, N, K, 1, GEMM_IMPL[impl], iters]);
    return { ms: out[0], tflops: out[1] };
  }

  private options(maxBatch: number): NativeModelOptions {
    return { dtype: this.dtype, maxBatch, recompute: this.recompute, gemm: this.gemm };
  }

  private loadedConfig(): ModelConfig {
    if (!this.config) throw new Error('CudaBackend: call load() first');
    return this.config;
  }

  /** The device model, sized for at least `batch` sequences: built, or rebuilt larger, with the state carried over. */
  private ready(batch: number): NativeModel {
    const config = this.loadedConfig();
    if (this.native && batch <= this.maxBatch) return this.native;
    if (this.native) {
      this.pending = this.native.save();
      this.dropNative();
    }
    const state = this.pending!;
    const maxBatch = Math.max(batch, this.maxBatch);
    let native: NativeModel;
    try {
      native = new this.addon.Model(dims(config), this.layout, this.options(maxBatch));
    } catch (e) {
      throw this.deviceError(e, `building the model for batch ${maxBatch}`);
    }
    native.load(state.params, state.m, state.v, state.step);
    this.native = native;
    this.maxBatch = maxBatch;
    this.pending = null;
    return native;
  }

  private dropNative(): void {
    this.native?.dispose();
    this.native = null;
    this.maxBatch = 0;
  }

  /** The addon's promise, its failures as KilnError('device'); argument errors (TypeError) are bugs and stay as they are. */
  private async device<T>(p: Promise<T>): Promise<T> {
    try {
      return await p;
    } catch (e) {
      throw this.deviceError(e, 'running the model');
    }
  }

  private deviceError(e: unknown, doing: string): unknown {
    if (!(e instanceof Error) || e instanceof TypeError || e instanceof KilnError) return e;
    const oom = /out of memory/i.test(e.message);
    return new KilnError('device', `${this.info.device}: ${doing} failed: ${e.message}`,
      oom ? 'lower batchSize (with a larger gradAccum for the same sequences per step), or use --recompute or --precision bf16'
        : 'KILN_CUDA_FLAVOUR=emulation runs the same kernels on the CPU, to tell a device problem from a bug in Kiln');
  }
}

/** kernels.h's GemmImpl numbers. */
const GEMM_IMPL: Record<GemmImplName, number> = { simt: 1, 'tensor-core': 2, cublaslt: 3 };

function dims(model: ModelConfig): NativeDims {
  return { vocab: model.vocabSize, block: model.blockSize, layers: model.nLayer, heads: model.nHead, embd: model.nEmbd };
}

function checkBatch(batch: Batch): void {
  const n = batch.B * batch.T * batch.microBatches;
  if (!(batch.microBatches >= 1) || batch.inputs.length !== n || batch.targets.length !== n) {
    throw new RangeError(
      `batch of ${batch.microBatches} x ${batch.B} x ${batch.T} tokens has ${batch.inputs.length} inputs and ${batch.targets.length} targets`,
    );
  }
}
