// The `webgpu` backend: hand-written WGSL kernels (src/backends/webgpu/ops) driven by
// the buffer plan (plan.ts) and the step graph (graph.ts). The same code runs in a
// browser worker (navigator.gpu) and in Node (Dawn): nothing here imports node:*.
//
// Buffers: params/grads/m/v are allocated at load(); the activations are sized for the
// largest micro-batch seen so far (the Backend interface tells B only with the first
// batch), so the first step() plans them, and a later, larger batch re-plans once.
// Calls are serialised: each waits for the one before it.
import { KilnError } from '../../core/errors.ts';
import { formatBytes, modelSpec, type ModelConfig } from '../../core/model-spec.ts';
import type { Backend, BackendInfo, Batch, StepHyper, StepStats, TrainState } from '../backend.ts';
import { requestGpu, type GpuContext, type RequestOptions } from './device.ts';
import {
  evalDispatches, hyperBytes, ioBuffers, logitsDispatches, readbackBuffer, readFloats, statsOf, STATS_READ_BYTES,
  dropKeyBytes, stepDispatches, submitGraph, Workspace, writeTokens, type GraphBuffers, type ParamBuffers, type Recorder,
} from './graph.ts';
import { PipelineCache, readBuffer, storageBuffer, type Dispatch } from './kernel.ts';
import {
  bufferPlan, ioStrideBytes, paramLayout, planLimits, planSummary, sharedScratchBytes, toPlanLayout, toSpecLayout,
  type BufferPlan, type ParamLayout, type PlanLimits,
} from './plan.ts';
import { fp32Peak } from './peaks.ts';
import { familyTotals, kernelFamily, PassTimer, type DispatchTime, type FamilyTime } from './profile.ts';
import { shaderSources } from './shader-source.ts';
import { shaderFeatures, variantKey, type ShaderVariantOptions } from './shader-variants.ts';

export interface WebGpuBackendOptions extends RequestOptions, ShaderVariantOptions {
  /** A device to use instead of requesting one (tests and the lab share one); dispose() leaves it alive. */
  gpu?: GpuContext;
  /** Plan activations for this micro-batch size at load(), so a model that cannot fit fails there. */
  batchSize?: number;
  /** Plan within these limits where they are below the device's (e.g. a browser's defaults, to check a model fits there). */
  limits?: Partial<PlanLimits>;
}

// Pipelines compile once per device and shader variant, whichever backend on it asks first.
const caches = new WeakMap<GPUDevice, Map<string, PipelineCache>>();

/** One optimizer step timed dispatch by dispatch (WebGpuBackend.profileStep). */
export interface StepProfile {
  /** The step's loss and gradient norm, as step() returns them. */
  stats: StepStats;
  /** Every dispatch of the step, in recording order, with its GPU time. */
  dispatches: DispatchTime[];
  /** Totals per kernel family, largest first; their ms add up to gpuMs. */
  families: FamilyTime[];
  /** The same per dispatch label (`family` holds the label), e.g. matmul_8x8_a4_b4_gelu apart from matmul_8x8_a4_b4. */
  labels: FamilyTime[];
  /** Sum of the dispatches' GPU times (an upper bound: see profile.ts). */
  gpuMs: number;
  /** Wall time of this profiled step, submit to readback (inflated by one pass per dispatch). */
  wallMs: number;
  /** Wall time of the last normal step() on this backend; null before the first. */
  stepWallMs: number | null;
  /** The timestamps' apparent resolution (PassTimer.read): 65536 means quantized, and small kernels read 0. */
  timerResolutionNs: number;
}

interface Loaded {
  model: ModelConfig;
  layout: ParamLayout;
  pb: ParamBuffers;
  /** Optimizer steps taken (AdamW's t before the next step). */
  t: number;
}

interface Graphs {
  plan: BufferPlan;
  /** Micro-batches the inputs/targets buffers hold. */
  microBatches: number;
  buffers: GraphBuffers;
  logitsRead: GPUBuffer;
  lists: Map<string, Dispatch[]>;
}

export class WebGpuBackend implements Backend {
  readonly kind = 'webgpu' as const;
  readonly info: BackendInfo;
  /** Dispatches in the last step() (one compute pass, one submit). */
  dispatchesPerStep = 0;
  /**
   * Wall time of the last step() to settle, from its token upload to its stats
   * readback; when steps are pipelined this includes the wait for the step before it.
   */
  lastStepMs: number | null = null;
  /** Host (CPU) time the last step, eval or logits graph took to encode and submit. */
  lastRecordMs: number | null = null;
  /** Two: step N+1 is recorded and submitted while step N runs and its stats come back. */
  readonly maxStepsInFlight = 2;
  private readonly device: GPUDevice;
  private readonly limits: PlanLimits;
  private loaded: Loaded | null = null;
  private graphs: Graphs | null = null;
  private lostMessage: string | null = null;
  private disposed = false;
  private queue: Promise<unknown> = Promise.resolve();
  /** Free stats readback buffers: one is mapped per step in flight, so pipelined steps need several. */
  private statsReads: GPUBuffer[] = [];

  private constructor(
    readonly gpu: GpuContext,
    private readonly k: PipelineCache,
    private readonly ownsDevice: boolean,
    private readonly opts: WebGpuBackendOptions,
  ) {
    this.device = gpu.device;
    const dev = planLimits(gpu.device.limits);
    const cap = opts.limits ?? {};
    this.limits = {
      maxStorageBufferBindingSize: Math.min(dev.maxStorageBufferBindingSize, cap.maxStorageBufferBindingSize ?? Infinity),
      maxBufferSize: Math.min(dev.maxBufferSize, cap.maxBufferSize ?? Infinity),
      minStorageBufferOffsetAlignment: Math.max(dev.minStorageBufferOffsetAlignment, cap.minStorageBufferOffsetAlignment ?? 0),
    };
    // MFU needs the FP32 peak: only where the adapter names one known configuration (peaks.ts).
    const peak = gpu.isSoftware ? null : fp32Peak(gpu.adapterName);
    this.info = { device: gpu.adapterName, features: [...gpu.features].sort(), limits: { ...gpu.limits }, ...(peak ? { peakFlops: peak.flops } : {}) };
    void this.device.lost.then((info) => {
      if (!this.disposed) this.lostMessage = info.message || String(info.reason);
    });
  }

  /** The shader variant this backend's kernels were compiled as: 'subgroups', or '' (the workgroup-memory fallback). */
  get shaderVariant(): string {
    return this.k.variant;
  }

  static async create(opts: WebGpuBackendOptions = {}): Promise<WebGpuBackend> {
    const gpu = opts.gpu ?? (await requestGpu(opts));
    const features = shaderFeatures(gpu, opts);
    let perDevice = caches.get(gpu.device);
    if (!perDevice) caches.set(gpu.device, (perDevice = new Map()));
    const variant = variantKey(features);
    let k = perDevice.get(variant);
    if (!k) {
      k = new PipelineCache(gpu.device, await shaderSources(), features);
      perDevice.set(variant, k);
    }
    return new WebGpuBackend(gpu, k, !opts.gpu, opts);
  }

  /** The buffer plan's total on this device (what load and the first steps allocate), fitting or not. */
  memoryBytes(model: ModelConfig, batchSize: number): number {
    return planSummary(model, batchSize, this.limits).totalBytes;
  }

  load(model: ModelConfig, state: TrainState): Promise<void> {
    return this.serial(async () => {
      if (model.nEmbd % model.nHead !== 0) {
        throw new KilnError('config', `nEmbd ${model.nEmbd} is not divisible by nHead ${model.nHead}`, 'choose nHead dividing nEmbd');
      }
      const spec = modelSpec(model);
      for (const [what, arr] of [['params', state.params], ['m', state.m], ['v', state.v]] as const) {
        if (arr && arr.length !== spec.numParams) {
          throw new KilnError('checkpoint', `${what} holds ${arr.length} values but this model has ${spec.numParams} parameters`,
            'the checkpoint belongs to a different model config');
        }
      }
      this.release();
      // Checks every tensor against the device before allocating anything.
      const plan = bufferPlan(model, this.opts.batchSize ?? 1, this.limits);
      const layout = paramLayout(spec, this.limits.minStorageBufferOffsetAlignment);
      const bytes = layout.floats * 4;
      // New buffers start zeroed (WebGPU guarantees it): fresh gradients and moments need no upload.
      const pb = await this.allocate(`the parameters, gradients and AdamW moments (${formatBytes(4 * bytes)})`, () => {
        const upload = (label: string, a: Float32Array | null) => storageBuffer(this.device, label, bytes, a ? toPlanLayout(layout, a) : undefined);
        return { params: upload('params', state.params), grads: upload('grads', null), m: upload('adam m', state.m), v: upload('adam v', state.v) };
      });
      this.loaded = { model: { ...model }, layout, pb, t: state.step };
      if (this.opts.batchSize) await this.ensureGraphs(plan.B, plan.T, 1, true);
    });
  }

  step(batch: Batch, hp: StepHyper): Promise<StepStats> {
    // The serial part ends once the step is submitted, so the next call can record and
    // submit its step while this one runs; its stats settle the returned promise later.
    const submitted = this.serial(async () => {
      const l = this.need();
      checkBatch(batch, l.model);
      const g = await this.ensureGraphs(batch.B, batch.T, batch.microBatches, true);
      const d = await this.stepList(g, batch, hp);
      const t0 = performance.now();
      const { stats } = await this.submitStep(l, g, d, batch, hp);
      this.dispatchesPerStep = d.length;
      return {
        stats: stats.then((s) => {
          this.lastStepMs = performance.now() - t0;
          return s;
        }),
      };
    });
    return submitted.then((s) => s.stats);
  }

  /**
   * One optimizer step exactly as step() takes it (same dispatches, same results), but
   * with every dispatch in its own compute pass between two timestamps, so the result
   * says where the step's GPU time goes. Needs the 'timestamp-query' feature. The
   * per-pass overhead makes the times upper bounds (profile.ts); compare gpuMs with
   * stepWallMs, the wall time of a normal step, to see what dispatch overhead costs.
   */
  profileStep(batch: Batch, hp: StepHyper): Promise<StepProfile> {
    return this.serial(async () => {
      if (!this.gpu.hasTimestamps) {
        throw new KilnError('device', `profiling needs the WebGPU feature 'timestamp-query', which ${this.info.device} does not offer`,
          'profile on a device that has it (Chrome needs chrome://flags/#enable-webgpu-developer-features), or leave out --profile');
      }
      const l = this.need();
      checkBatch(batch, l.model);
      const g = await this.ensureGraphs(batch.B, batch.T, batch.microBatches, true);
      const d = await this.stepList(g, batch, hp);
      const timer = await this.allocate(`the timestamp queries for ${d.length} dispatches`, () => new PassTimer(this.device, d.length));
      try {
        const t0 = performance.now();
        const stats = await (await this.submitStep(l, g, d, batch, hp, (enc, list, label) => timer.record(enc, list, label))).stats;
        const { ms, resolutionNs } = await this.guard(timer.read());
        const wallMs = performance.now() - t0;
        const dispatches = d.map((x, i) => ({ label: x.label, family: kernelFamily(x.label), ms: ms[i], ...(x.flops !== undefined ? { flops: x.flops } : {}) }));
        return {
          stats, dispatches, families: familyTotals(dispatches), labels: familyTotals(dispatches.map((x) => ({ ...x, family: x.label }))), gpuMs: ms.reduce((a, b) => a + b, 0), wallMs, stepWallMs: this.lastStepMs,
          timerResolutionNs: resolutionNs,
        };
      } finally {
        timer.destroy();
      }
    });
  }

  loss(batch: Batch): Promise<number> {
    return this.serial(async () => {
      const l = this.need();
      checkBatch(batch, l.model);
      const g = await this.ensureGraphs(batch.B, batch.T, batch.microBatches, false);
      const d = await this.list(g, `eval ${batch.microBatches}x${batch.B}x${batch.T}`, () => evalDispatches(g.buffers, batch.microBatches, batch.B, batch.T));
      writeTokens(this.device, g.buffers.inputs, batch.inputs, batch.microBatches, batch.B, batch.T);
      writeTokens(this.device, g.buffers.targets, batch.targets, batch.microBatches, batch.B, batch.T);
      return (await (await this.submitStats(d, 'eval', g)).stats).loss;
    });
  }

  logits(context: Int32Array): Promise<Float32Array> {
    return this.serial(async () => {
      const l = this.need();
      const T = l.model.blockSize;
      if (context.length < 1 || context.length > T) {
        throw new RangeError(`logits: context of ${context.length} tokens; it must hold 1..${T}`);
      }
      checkTokens('context', context, l.model.vocabSize);
      const g = await this.ensureGraphs(1, T, 1, false);
      const d = await this.list(g, 'logits', () => logitsDispatches(g.buffers));
      const padded = new Int32Array(T);
      padded.set(context);
      writeTokens(this.device, g.buffers.inputs, padded, 1, 1, T);
      this.device.queue.writeBuffer(g.buffers.row, 0, new Uint32Array([context.length - 1]));
      return this.run(d, 'logits', g.buffers.rowLogits, g.logitsRead, l.model.vocabSize * 4);
    });
  }

  save(): Promise<TrainState> {
    return this.serial(async () => {
      const l = this.need();
      const read = async (b: GPUBuffer) => toSpecLayout(l.layout, new Float32Array(await this.guard(readBuffer(this.device, b, l.layout.floats * 4))));
      return { params: await read(l.pb.params), m: await read(l.pb.m), v: await read(l.pb.v), step: l.t };
    });
  }

  /** Dispatches one step records for this batch shape (builds and caches its graph; needs load()). */
  countDispatches(kind: 'step' | 'eval' | 'logits', B: number, microBatches = 1): Promise<number> {
    return this.serial(async () => {
      const l = this.need();
      const T = l.model.blockSize;
      const g = await this.ensureGraphs(kind === 'logits' ? 1 : B, T, microBatches, kind === 'step');
      const make = {
        step: () => stepDispatches(g.buffers, microBatches, B, T),
        eval: () => evalDispatches(g.buffers, microBatches, B, T),
        logits: () => logitsDispatches(g.buffers),
      }[kind];
      return (await this.list(g, kind === 'logits' ? 'logits' : `${kind} ${microBatches}x${B}x${T}`, make)).length;
    });
  }

  dispose(): void {
    this.disposed = true;
    this.release();
    if (this.ownsDevice) this.device.destroy();
  }

  // --- internals ---

  private serial<R>(f: () => Promise<R>): Promise<R> {
    const next = this.queue.then(() => {
      this.checkAlive();
      return f();
    });
    this.queue = next.catch(() => undefined);
    return next;
  }

  private checkAlive(): void {
    if (this.lostMessage !== null) throw lostError(this.lostMessage);
    if (this.disposed) throw new Error('WebGpuBackend: used after dispose()');
  }

  private need(): Loaded {
    if (!this.loaded) throw new Error('WebGpuBackend: call load() first');
    return this.loaded;
  }

  /** A promise that rejects with the device-lost error if the device goes while it waits. */
  private async guard<R>(p: Promise<R>): Promise<R> {
    try {
      return await p;
    } catch (e) {
      if (this.lostMessage !== null) throw lostError(this.lostMessage);
      throw e;
    }
  }

  /** Runs `make` (buffer creation) inside out-of-memory and validation error scopes. */
  private async allocate<R>(what: string, make: () => R): Promise<R> {
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('validation');
    const r = make();
    const invalid = await this.device.popErrorScope();
    const oom = await this.device.popErrorScope();
    if (oom || invalid) {
      throw new KilnError('device', `could not allocate ${what} on ${this.info.device}: ${(oom ?? invalid)!.message}`,
        'use a smaller model or batchSize, or train with `kiln train --backend cuda`');
    }
    return r;
  }

  /** The graph buffers for batches of B x T (x microBatches), re-planned when they do not fit. */
  private async ensureGraphs(B: number, T: number, microBatches: number, backward: boolean): Promise<Graphs> {
    const l = this.need();
    const g = this.graphs;
    const scratch = backward ? sharedScratchBytes(l.model, B, T, l.layout.floats) : 0;
    const fits = (p: BufferPlan) => B <= p.B && T <= p.T && scratch <= p.byName.get('scratch')!.bytes;
    if (g && fits(g.plan) && microBatches * ioStrideBytes(B, T) <= g.buffers.inputs.size) return g;
    const plan = g && fits(g.plan)
      ? g.plan
      : bufferPlan(l.model, Math.max(B, g?.plan.B ?? 0), this.limits, {
        T: Math.max(T, g?.plan.T ?? 0),
        minScratchBytes: Math.max(scratch, g?.plan.byName.get('scratch')!.bytes ?? 0),
      });
    const mb = Math.max(microBatches, g?.microBatches ?? 0);
    this.releaseGraphs();
    this.graphs = await this.allocate(`the activations for batches of ${plan.B} x ${plan.T} tokens (${formatBytes(plan.totalBytes - 4 * plan.paramBytes)})`, () => {
      const ws = new Workspace(this.device, plan);
      return {
        plan,
        microBatches: mb,
        buffers: { k: this.k, plan, pb: l.pb, ws, ...ioBuffers(this.device, plan, mb) },
        logitsRead: readbackBuffer(this.device, 'logits readback', l.model.vocabSize * 4),
        lists: new Map(),
      };
    });
    return this.graphs;
  }

  /** The step graph for this batch shape and dropout probability (each its own list: p is a pipeline constant). */
  private stepList(g: Graphs, batch: Batch, hp: StepHyper): Promise<Dispatch[]> {
    const p = hp.dropout?.p ?? 0;
    const key = `step ${batch.microBatches}x${batch.B}x${batch.T}${p > 0 ? ` dropout ${p}` : ''}`;
    return this.list(g, key, () => stepDispatches(g.buffers, batch.microBatches, batch.B, batch.T, p));
  }

  /** A cached dispatch list; building one compiles pipelines, and their errors surface here. */
  private async list(g: Graphs, key: string, make: () => Dispatch[]): Promise<Dispatch[]> {
    const hit = g.lists.get(key);
    if (hit) return hit;
    const d = await buildChecked(this.device, `the WebGPU ${key} graph`, make);
    g.lists.set(key, d);
    return d;
  }

  /** Uploads the batch and the step's hyperparameters, submits the step graph and advances t; the stats come later. */
  private async submitStep(l: Loaded, g: Graphs, d: Dispatch[], batch: Batch, hp: StepHyper, record?: Recorder): Promise<{ stats: Promise<StepStats> }> {
    const t = l.t + 1;
    // queue.writeBuffer is ordered with submits: a step still running reads its own tokens.
    writeTokens(this.device, g.buffers.inputs, batch.inputs, batch.microBatches, batch.B, batch.T);
    writeTokens(this.device, g.buffers.targets, batch.targets, batch.microBatches, batch.B, batch.T);
    this.device.queue.writeBuffer(g.buffers.hyper, 0, hyperBytes(hp, t));
    if (hp.dropout && hp.dropout.p > 0) {
      this.device.queue.writeBuffer(g.buffers.dropKeys, 0, dropKeyBytes(hp.dropout.seed, batch.microBatches, l.model.nLayer));
    }
    const submitted = await this.submitStats(d, 'step', g, record);
    l.t = t;
    return submitted;
  }

  /** Submits `d` (a step or eval graph) with a copy of its stats into a free readback buffer. */
  private async submitStats(d: Dispatch[], label: string, g: Graphs, record?: Recorder): Promise<{ stats: Promise<StepStats> }> {
    const rb = this.statsReads.pop() ?? readbackBuffer(this.device, 'stats readback', STATS_READ_BYTES);
    let floats: Promise<Float32Array>;
    try {
      floats = (await this.submit(d, label, g.buffers.stats, rb, STATS_READ_BYTES, record)).floats;
    } catch (e) {
      this.statsReads.push(rb);
      throw e;
    }
    // A readback that fails (device lost, disposed) leaves its buffer out of the pool.
    return {
      stats: floats.then((f) => {
        if (this.disposed) rb.destroy();
        else this.statsReads.push(rb);
        return statsOf(f);
      }),
    };
  }

  /** Records, submits once and starts reading back `bytes` of `src`; validation errors become KilnErrors. */
  private async submit(d: Dispatch[], label: string, src: GPUBuffer, readback: GPUBuffer, bytes: number, record?: Recorder): Promise<{ floats: Promise<Float32Array> }> {
    this.device.pushErrorScope('validation');
    const t0 = performance.now();
    submitGraph(this.device, d, label, src, readback, bytes, record);
    this.lastRecordMs = performance.now() - t0;
    const invalid = await this.guard(this.device.popErrorScope());
    if (invalid) {
      throw new KilnError('device', `the WebGPU ${label} graph was rejected: ${invalid.message}`,
        'this is a bug in Kiln: please report it with the model config; meanwhile use --backend cpu');
    }
    return { floats: this.guard(readFloats(readback, bytes / 4)) };
  }

  /** As submit, and waits for the readback. */
  private async run(d: Dispatch[], label: string, src: GPUBuffer, readback: GPUBuffer, bytes: number): Promise<Float32Array> {
    return (await this.submit(d, label, src, readback, bytes)).floats;
  }

  private releaseGraphs(): void {
    const g = this.graphs;
    if (!g) return;
    g.buffers.ws.destroy();
    for (const b of [g.buffers.inputs, g.buffers.targets, g.buffers.stats, g.buffers.hyper, g.buffers.row, g.buffers.rowLogits, g.logitsRead]) b.destroy();
    this.graphs = null;
  }

  private release(): void {
    this.releaseGraphs();
    for (const b of this.statsReads) b.destroy();
    this.statsReads = [];
    const l = this.loaded;
    if (l) for (const b of [l.pb.params, l.pb.grads, l.pb.m, l.pb.v]) b.destroy();
    this.loaded = null;
  }
}

/**
 * Runs `make` (pipeline and bind-group creation) inside validation and internal error
 * scopes, so that a shader that does not compile or a binding that does not match
 * rejects here as a KilnError instead of surfacing later as an uncaptured error.
 */
export async function buildChecked<R>(device: GPUDevice, what: string, make: () => R): Promise<R> {
  device.pushErrorScope('internal');
  device.pushErrorScope('validation');
  let r: R | undefined;
  let thrown: unknown = null;
  try {
    r = make();
  } catch (e) {
    thrown = e;
  }
  const invalid = await device.popErrorScope();
  const internal = await device.popErrorScope();
  if (thrown) throw thrown;
  if (invalid || internal) {
    throw new KilnError('device', `building ${what} failed: ${(invalid ?? internal)!.message}`,
      'this is a bug in Kiln or the WebGPU implementation: please report it with the model config; meanwhile use --backend cpu');
  }
  return r as R;
}

function lostError(message: string): KilnError {
  return new KilnError('device_lost', `the GPU device was lost: ${message}`, 'resume from the last checkpoint');
}

function checkTokens(what: string, ids: Int32Array, V: number): void {
  for (let i = 0; i < ids.length; i++) {
    const t = ids[i];
    if (!(t >= 0 && t < V)) {
      throw new KilnError('data', `${what}[${i}] is token ${t}, outside the vocabulary of ${V}`,
        'the data was tokenized with a different tokenizer than the model was built for');
    }
  }
}

function checkBatch(batch: Batch, model: ModelConfig): void {
  const { B, T, microBatches } = batch;
  const n = B * T * microBatches;
  if (!(Number.isInteger(B) && B >= 1 && Number.isInteger(microBatches) && microBatches >= 1 && Number.isInteger(T) && T >= 1 && T <= model.blockSize)) {
    throw new RangeError(`batch of ${microBatches} x ${B} x ${T} tokens (blockSize ${model.blockSize})`);
  }
  if (batch.inputs.length !== n || batch.targets.length !== n) {
    throw new RangeError(`batch of ${microBatches} x ${B} x ${T} tokens has ${batch.inputs.length} inputs and ${batch.targets.length} targets`);
  }
  checkTokens('inputs', batch.inputs, model.vocabSize);
  checkTokens('targets', batch.targets, model.vocabSize);
}
