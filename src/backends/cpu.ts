// The `cpu` backend: the reference GPT in f32 on one core. Slow, but exact to read and
// always available; every other backend is tested against the same code. With
// { dtype: 'f64' } the same code trains in double precision (parameters, gradients and
// moments): the trajectory an independent f64 implementation (bench/gpu/torch_train.py,
// PyTorch) must reproduce to rounding, where f32 ones only agree to ~1e-4.
import { KilnError } from '../core/errors.ts';
import { memoryEstimate, modelSpec, type ModelConfig, type ModelSpec } from '../core/model-spec.ts';
import { adamwUpdate, clipScale, gradNorm } from '../reference/adamw.ts';
import type { Buf } from '../reference/buf.ts';
import { ReferenceGPT } from '../reference/gpt.ts';
import type { Backend, BackendInfo, Batch, StepHyper, StepStats, TrainState } from './backend.ts';

export interface CpuBackendOptions {
  /** Precision of every op and of the optimizer state: 'f32' (the default, what `kiln` runs) or 'f64'. */
  dtype?: 'f32' | 'f64';
}

export class CpuBackend implements Backend {
  readonly kind = 'cpu' as const;
  readonly info: BackendInfo;
  private readonly dtype: 'f32' | 'f64';
  private gpt: ReferenceGPT | null = null;
  private spec: ModelSpec | null = null;
  private m: Buf = new Float32Array(0);
  private v: Buf = new Float32Array(0);
  private stepCount = 0;

  constructor(options: CpuBackendOptions = {}) {
    this.dtype = options.dtype ?? 'f32';
    this.info = { device: `CPU reference (${this.dtype})`, features: [], limits: {} };
  }

  memoryBytes(model: ModelConfig, batchSize: number): number {
    return memoryEstimate(model, batchSize).total * (this.dtype === 'f64' ? 2 : 1);
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
    this.gpt = new ReferenceGPT(model, state.params, { dtype: this.dtype });
    this.spec = spec;
    const Arr = this.dtype === 'f64' ? Float64Array : Float32Array;
    this.m = state.m ? Arr.from(state.m) : new Arr(n);
    this.v = state.v ? Arr.from(state.v) : new Arr(n);
    this.stepCount = state.step;
  }

  async step(batch: Batch, hp: StepHyper): Promise<StepStats> {
    const gpt = this.loaded();
    const { B, T, microBatches } = batch;
    checkBatch(batch);
    const span = B * T;
    gpt.zeroGrad();
    let loss = 0;
    for (let k = 0; k < microBatches; k++) {
      const inputs = batch.inputs.subarray(k * span, (k + 1) * span);
      const targets = batch.targets.subarray(k * span, (k + 1) * span);
      const dropout = hp.dropout && hp.dropout.p > 0 ? { ...hp.dropout, microBatch: k } : null;
      loss += gpt.forward(inputs, targets, B, T, dropout);
      gpt.backward(1 / microBatches);
    }
    loss /= microBatches;
    const norm = gradNorm(gpt.grads);
    this.stepCount += 1;
    adamwUpdate(gpt.params, gpt.grads, this.m, this.v, this.spec!, hp, this.stepCount, clipScale(norm, hp.gradClip));
    return { loss, gradNorm: norm };
  }

  async loss(batch: Batch): Promise<number> {
    const gpt = this.loaded();
    const { B, T, microBatches } = batch;
    checkBatch(batch);
    const span = B * T;
    let loss = 0;
    for (let k = 0; k < microBatches; k++) {
      loss += gpt.forward(batch.inputs.subarray(k * span, (k + 1) * span), batch.targets.subarray(k * span, (k + 1) * span), B, T);
    }
    return loss / microBatches;
  }

  async logits(context: Int32Array): Promise<Float32Array> {
    return this.loaded().lastLogits(context);
  }

  /** The state as a checkpoint holds it: f32 (an f64 run's values rounded, so its resume is not bit-exact). */
  async save(): Promise<TrainState> {
    const gpt = this.loaded();
    return {
      params: Float32Array.from(gpt.params),
      m: Float32Array.from(this.m),
      v: Float32Array.from(this.v),
      step: this.stepCount,
    };
  }

  dispose(): void {
    this.gpt = null;
    this.spec = null;
    this.m = new Float32Array(0);
    this.v = new Float32Array(0);
  }

  private loaded(): ReferenceGPT {
    if (!this.gpt) throw new Error('CpuBackend: call load() first');
    return this.gpt;
  }
}

function checkBatch(batch: Batch): void {
  const n = batch.B * batch.T * batch.microBatches;
  if (!(batch.microBatches >= 1) || batch.inputs.length !== n || batch.targets.length !== n) {
    throw new RangeError(
      `batch of ${batch.microBatches} x ${batch.B} x ${batch.T} tokens has ${batch.inputs.length} inputs and ${batch.targets.length} targets`,
    );
  }
}
