// The Backend interface (DESIGN.md): one call of step() is one optimizer step over
// all micro-batches. Every backend agrees with src/reference on the same inputs.
import type { Batch } from '../core/data.ts';
import type { StepDropout } from '../core/dropout.ts';
import type { ModelConfig } from '../core/model-spec.ts';

export type { Batch };

export type BackendKind = 'webgpu' | 'cuda' | 'cpu';

export interface BackendInfo {
  /** Human-readable device, e.g. "SwiftShader (Vulkan)" or "CPU reference (f32)". */
  device: string;
  features: string[];
  limits: Record<string, number>;
  /** FP32 peak in FLOP/s where known, for MFU. */
  peakFlops?: number;
}

/** Parameters and AdamW state in the model spec's flat layout. */
export interface TrainState {
  params: Float32Array;
  /** AdamW first and second moments; null for a fresh or weights-only state. */
  m: Float32Array | null;
  v: Float32Array | null;
  /** Optimizer steps taken so far (AdamW's t before the next step). */
  step: number;
}

export interface StepHyper {
  lr: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Clip the global gradient norm to this; 0 disables. */
  gradClip: number;
  /** Dropout in this step's forward passes (absent or p 0: none); masks follow from its seed (src/core/dropout.ts). */
  dropout?: StepDropout;
}

export interface StepStats {
  /** Mean cross-entropy over every token of every micro-batch, before the update. */
  loss: number;
  /** Global L2 norm of the gradient before clipping. */
  gradNorm: number;
}

export interface Backend {
  readonly kind: BackendKind;
  readonly info: BackendInfo;
  /**
   * How many step() calls a caller may have made and not yet seen settle: 1 (the
   * default) unless the backend pipelines steps, as the WebGPU one does (it records and
   * submits the next step while the GPU still runs this one and its stats are on their
   * way back). Calls always take effect in call order, and loss, logits and save see
   * every step called before them.
   */
  readonly maxStepsInFlight?: number;
  /**
   * Bytes this backend allocates to train `model` at micro-batch size batchSize (its
   * own buffers: the CPU reference keeps llm.c's full list, the WebGPU one its plan,
   * without the T*T attention or the B*T*V logits). Absent: the generic estimate.
   */
  memoryBytes?(model: ModelConfig, batchSize: number): number;
  load(model: ModelConfig, state: TrainState): Promise<void>;
  step(batch: Batch, hp: StepHyper): Promise<StepStats>;
  /** Mean cross-entropy without gradients. */
  loss(batch: Batch): Promise<number>;
  /** Logits at the last position of `context` (at most blockSize tokens). */
  logits(context: Int32Array): Promise<Float32Array>;
  save(): Promise<TrainState>;
  dispose(): void;
}
