// The WebGPU buffer plan (llm.c's fill_in_parameter_sizes / fill_in_activation_sizes):
// computed once from the model spec and the micro-batch size B (T = blockSize), pure
// (no GPU needed: the lab's memory estimate calls planSummary), then allocated once.
//
// Parameters, gradients and AdamW's m and v are each ONE flat buffer. Every tensor starts
// at a multiple of minStorageBufferOffsetAlignment (256 bytes) so a kernel can bind it as
// a slice, and the tensors AdamW decays come first, then the others, so each group is one
// contiguous range (AdamW dispatches twice). The gaps between tensors stay zero: zero
// gradients and zero moments leave a zero parameter zero, so AdamW and the gradient norm
// may run over them. toPlanLayout / toSpecLayout move between this layout and the spec's
// (the checkpoint's).
//
// Activations get one GPUBuffer each, not slices of one arena: WebGPU rejects a dispatch
// that binds a buffer read-only and writable at once (even at disjoint ranges), and
// nearly every kernel reads one activation and writes another.
import { KilnError } from '../../core/errors.ts';
import { formatBytes, modelSpec, type ModelConfig, type ModelSpec } from '../../core/model-spec.ts';
import { gradNormScratch } from './ops/adamw.ts';
import { attentionScratch, MAX_FLASH_HS } from './ops/attention.ts';
import { classifierScratch } from './ops/crossentropy.ts';
import { encoderScratch } from './ops/encoder.ts';
import { layernormScratch } from './ops/layernorm.ts';
import { matmulScratch } from './ops/matmul.ts';

/** The device limits a plan must respect (WebGPU's defaults where the device says nothing). */
export interface PlanLimits {
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
  minStorageBufferOffsetAlignment: number;
}

/** WebGPU's guaranteed minimums: what a browser gives without requiredLimits. */
export const DEFAULT_PLAN_LIMITS: Readonly<PlanLimits> = Object.freeze({
  maxStorageBufferBindingSize: 128 * 1024 * 1024,
  maxBufferSize: 256 * 1024 * 1024,
  minStorageBufferOffsetAlignment: 256,
});

/** Reads the plan's limits from a device's limits (or any record of them), defaulting the absent ones. */
export function planLimits(limits?: Partial<Record<keyof PlanLimits, number>> | GPUSupportedLimits | null): PlanLimits {
  const l = (limits ?? {}) as Partial<Record<keyof PlanLimits, number>>;
  const pick = (k: keyof PlanLimits) => (typeof l[k] === 'number' && l[k]! > 0 ? l[k]! : DEFAULT_PLAN_LIMITS[k]);
  const align = pick('minStorageBufferOffsetAlignment');
  // The ops slice scratch at multiples of 256 bytes, so never align to less.
  return {
    maxStorageBufferBindingSize: pick('maxStorageBufferBindingSize'),
    maxBufferSize: pick('maxBufferSize'),
    minStorageBufferOffsetAlignment: Math.max(256, align),
  };
}

export interface FloatRange {
  /** Offset in floats. */
  offset: number;
  /** Length in floats. */
  size: number;
}

/** One parameter's place in the spec's flat array and in the plan's flat buffer. */
export interface ParamSlot {
  name: string;
  size: number;
  /** Offset in floats in the spec's (checkpoint's) flat layout. */
  specOffset: number;
  /** Offset in floats in the plan's buffer: a multiple of alignFloats. */
  offset: number;
  decay: boolean;
}

export interface ParamLayout {
  slots: ParamSlot[];
  byName: Map<string, ParamSlot>;
  /** Floats in each of the params, grads, m and v buffers (padding included). */
  floats: number;
  alignFloats: number;
  /** The decayed tensors (and the padding between them), then the others. */
  decay: FloatRange;
  noDecay: FloatRange;
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/** The parameters' layout in the plan's flat buffers: decayed tensors first, each at an aligned offset. */
export function paramLayout(spec: ModelSpec, alignBytes = 256): ParamLayout {
  const alignFloats = alignBytes / 4;
  const slots: ParamSlot[] = [];
  let at = 0;
  const range = (decay: boolean): FloatRange => {
    at = alignUp(at, alignFloats);
    const start = at;
    for (const p of spec.params) {
      if (p.decay !== decay) continue;
      at = alignUp(at, alignFloats);
      slots.push({ name: p.name, size: p.size, specOffset: p.offset, offset: at, decay });
      at += p.size;
    }
    return { offset: start, size: at - start };
  };
  const decay = range(true);
  const noDecay = range(false);
  return { slots, byName: new Map(slots.map((s) => [s.name, s])), floats: alignUp(at, alignFloats), alignFloats, decay, noDecay };
}

/** Spec layout (a checkpoint's flat array) -> plan layout, zeros in the gaps. */
export function toPlanLayout(layout: ParamLayout, specFlat: Float32Array): Float32Array {
  const out = new Float32Array(layout.floats);
  for (const s of layout.slots) out.set(specFlat.subarray(s.specOffset, s.specOffset + s.size), s.offset);
  return out;
}

/** Plan layout -> spec layout. */
export function toSpecLayout(layout: ParamLayout, planFlat: Float32Array): Float32Array {
  let n = 0;
  for (const s of layout.slots) n += s.size;
  const out = new Float32Array(n);
  for (const s of layout.slots) out.set(planFlat.subarray(s.offset, s.offset + s.size), s.specOffset);
  return out;
}

export type TensorGroup = 'activation' | 'gradient' | 'scratch';

/** One activation-sized GPU buffer. */
export interface TensorPlan {
  name: string;
  bytes: number;
  group: TensorGroup;
}

/** Names of one block's saved activations (the buffer names are `h{l}.{name}`). */
export const BLOCK_ACTIVATIONS = [
  'ln1', 'ln1Mean', 'ln1Rstd', 'qkv', 'atty', 'attSaved', 'residual2',
  'ln2', 'ln2Mean', 'ln2Rstd', 'fch', 'residual3',
] as const;
export type BlockActivation = (typeof BLOCK_ACTIVATIONS)[number];

/**
 * Bytes of the one scratch buffer that the ops' temporaries share: every op reads its
 * scratch only inside one call (matmul's split-K partials, layernorm's and the gradient
 * norm's partial sums, the encoder's radix sort, attention's backward temp), and the
 * dispatches of one compute pass run in order, so one buffer serves them all.
 */
export function sharedScratchBytes(model: ModelConfig, B: number, T: number, paramFloats: number): number {
  const { nHead: NH, nEmbd: C } = model;
  const BT = B * T;
  return Math.max(
    attentionScratch(B, T, C, NH).temp,
    ...[matmulScratch(BT, C, 3 * C), matmulScratch(BT, C, C), matmulScratch(BT, C, 4 * C), matmulScratch(BT, 4 * C, C)].map((s) => s.partials),
    layernormScratch(BT, C).partials,
    encoderScratch(B, T).sort,
    gradNormScratch(paramFloats).partials,
  );
}

/**
 * Every activation-sized buffer of a training step over micro-batches of B sequences of
 * T tokens (llm.c's list, less gelu(fch): c_proj recomputes it as it loads its tiles,
 * shaders/gelu.wgsl). Saved activations are per block; the gradients flowing down
 * the network and the scratch are shared by all blocks (the backward pass walks the
 * blocks one at a time).
 */
export function activationTensors(model: ModelConfig, B: number, T: number, classifierBytes: number, scratchBytes: number): TensorPlan[] {
  const { vocabSize: V, nLayer: L, nHead: NH, nEmbd: C } = model;
  const BT = B * T;
  const f = 4;
  const att = attentionScratch(B, T, C, NH);
  const out: TensorPlan[] = [];
  const add = (name: string, bytes: number, group: TensorGroup) => out.push({ name, bytes, group });
  add('encoded', BT * C * f, 'activation');
  for (let l = 0; l < L; l++) {
    const sizes: Record<BlockActivation, number> = {
      ln1: BT * C * f, ln1Mean: BT * f, ln1Rstd: BT * f, qkv: BT * 3 * C * f, atty: BT * C * f, attSaved: att.saved,
      residual2: BT * C * f, ln2: BT * C * f, ln2Mean: BT * f, ln2Rstd: BT * f, fch: BT * 4 * C * f,
      residual3: BT * C * f,
    };
    for (const n of BLOCK_ACTIVATIONS) add(`h${l}.${n}`, sizes[n], 'activation');
  }
  add('lnf', BT * C * f, 'activation');
  add('lnfMean', BT * f, 'activation');
  add('lnfRstd', BT * f, 'activation');
  add('losses', BT * f, 'activation');
  // Gradients of activations, shared by every block (as src/reference/gpt.ts): the
  // residual stream's gradient, one (B,T,C) buffer for d(ln output)/d(atty)/d(ln_f) (never
  // two of them live at once), and the MLP's and attention's wide ones.
  add('dresidual', BT * C * f, 'gradient');
  add('dbtc', BT * C * f, 'gradient');
  add('dqkv', BT * 3 * C * f, 'gradient');
  add('dfch', BT * 4 * C * f, 'gradient');
  // The projections' output before the residual add (the backward pass never reads it),
  // the classifier's logits chunk, and the ops' shared scratch.
  add('projOut', BT * C * f, 'scratch');
  add('logits', classifierScratch(BT, V, classifierBytes).logits, 'scratch');
  add('scratch', scratchBytes, 'scratch');
  return out;
}

export interface BufferPlan {
  model: ModelConfig;
  spec: ModelSpec;
  B: number;
  T: number;
  limits: PlanLimits;
  params: ParamLayout;
  /** Bytes of each of the params, grads, m and v buffers. */
  paramBytes: number;
  tensors: TensorPlan[];
  byName: Map<string, TensorPlan>;
  /** Every buffer together (params, grads, m, v and activations), inputs/targets of one micro-batch. */
  totalBytes: number;
  /** The largest single binding a step needs, and whose it is. */
  largestBinding: number;
  largestName: string;
}

/**
 * The most bytes the classifier's logits chunk may take. Its rows go in chunks that fit
 * one binding; capping the chunk below the device's binding limit keeps GPT-2 at B=8
 * from holding a 1 GiB logits buffer for a few fewer dispatches (4 per chunk).
 */
export const CLASSIFIER_CHUNK_CAP = 256 * 1024 * 1024;

export function classifierChunkBytes(limits: PlanLimits): number {
  return Math.min(limits.maxStorageBufferBindingSize, CLASSIFIER_CHUNK_CAP);
}

/** Bytes of one micro-batch's slice of the inputs/targets buffers (slices start at aligned offsets). */
export function ioStrideBytes(B: number, T: number, alignBytes = 256): number {
  return alignUp(B * T * 4, alignBytes);
}

interface Check {
  name: string;
  bytes: number;
  limit: number;
  limitName: string;
}

const HINT =
  'train this model with `kiln train --backend cuda` (or --backend cpu), or make it smaller (nEmbd, vocabSize, blockSize or batchSize); ' +
  'splitting large tensors across several bindings is a planned improvement';

/** The first tensor that does not fit the device, as a readable sentence, or null. */
function firstProblem(checks: Check[]): string | null {
  for (const c of checks) {
    if (c.bytes > c.limit) {
      return `the ${c.name} tensor needs ${formatBytes(c.bytes)} (${c.bytes} bytes), ${formatBytes(c.bytes - c.limit)} more than this GPU's ${c.limitName} of ${formatBytes(c.limit)} (${c.limit} bytes)`;
    }
  }
  return null;
}

export interface PlanOptions {
  /** Sequence length the activations are sized for (default and maximum: blockSize). */
  T?: number;
  /** Make the shared scratch at least this big (to serve smaller shapes, whose split-K may need more). */
  minScratchBytes?: number;
}

function buildPlan(model: ModelConfig, B: number, limits: PlanLimits, opts: PlanOptions = {}): { plan: BufferPlan; problem: string | null } {
  if (!(Number.isInteger(B) && B >= 1)) throw new RangeError(`buffer plan: B=${B} must be a positive integer`);
  const spec = modelSpec(model);
  const T = opts.T ?? model.blockSize;
  if (!(Number.isInteger(T) && T >= 1 && T <= model.blockSize)) throw new RangeError(`buffer plan: T=${T} must be 1..${model.blockSize}`);
  const params = paramLayout(spec, limits.minStorageBufferOffsetAlignment);
  const paramBytes = params.floats * 4;
  const scratch = Math.max(sharedScratchBytes(model, B, T, params.floats), opts.minScratchBytes ?? 0);
  const tensors = activationTensors(model, B, T, classifierChunkBytes(limits), scratch);
  const bind = limits.maxStorageBufferBindingSize;
  const checks: Check[] = [];
  // A buffer must fit maxBufferSize; everything a kernel binds at once must fit a binding.
  // AdamW, the gradient norm and the gradient fill walk the flat buffers in binding-sized
  // chunks, so only single parameters must fit a binding.
  for (const s of params.slots) checks.push({ name: s.name, bytes: s.size * 4, limit: bind, limitName: 'maxStorageBufferBindingSize' });
  checks.push({ name: 'parameters (all of them in one buffer)', bytes: paramBytes, limit: limits.maxBufferSize, limitName: 'maxBufferSize' });
  for (const t of tensors) {
    checks.push({ name: t.name, bytes: t.bytes, limit: bind, limitName: 'maxStorageBufferBindingSize' });
    checks.push({ name: t.name, bytes: t.bytes, limit: limits.maxBufferSize, limitName: 'maxBufferSize' });
  }
  const io = ioStrideBytes(B, T, limits.minStorageBufferOffsetAlignment);
  let largestBinding = 0;
  let largestName = '';
  for (const c of checks) {
    if (c.limitName === 'maxStorageBufferBindingSize' && c.bytes > largestBinding) {
      largestBinding = c.bytes;
      largestName = c.name;
    }
  }
  const totalBytes = 4 * paramBytes + tensors.reduce((a, t) => a + t.bytes, 0) + 2 * io;
  const plan: BufferPlan = {
    model, spec, B, T, limits, params, paramBytes, tensors, byName: new Map(tensors.map((t) => [t.name, t])),
    totalBytes, largestBinding, largestName,
  };
  return { plan, problem: headProblem(model) ?? firstProblem(checks) };
}

/** A head too large for the flash attention kernels, as a readable sentence, or null. */
function headProblem(model: ModelConfig): string | null {
  const HS = model.nEmbd / model.nHead;
  if (HS <= MAX_FLASH_HS) return null;
  return `the attention head size ${HS} (nEmbd ${model.nEmbd} / nHead ${model.nHead}) is over ${MAX_FLASH_HS}, the largest the WebGPU attention kernels take`;
}

/**
 * The buffer plan for `model` at micro-batch size B on a device with these limits.
 * Throws KilnError('device') naming the first tensor that does not fit.
 */
export function bufferPlan(model: ModelConfig, B: number, limits: PlanLimits = DEFAULT_PLAN_LIMITS, opts: PlanOptions = {}): BufferPlan {
  const { plan, problem } = buildPlan(model, B, limits, opts);
  if (problem) {
    const hint = headProblem(model) ? `set nHead so that nEmbd / nHead is at most ${MAX_FLASH_HS}, or train with \`kiln train --backend cpu\`` : HINT;
    throw new KilnError('device', `${problem}: this model does not fit the WebGPU backend`, hint);
  }
  return plan;
}

export interface PlanSummary {
  totalBytes: number;
  largestBinding: number;
  largestName: string;
  fits: boolean;
  problem?: string;
}

/** What a run would allocate on a device with these limits, and whether it fits (no GPU needed). */
export function planSummary(model: ModelConfig, B: number, limits: Partial<PlanLimits> = {}): PlanSummary {
  const { plan, problem } = buildPlan(model, B, planLimits(limits));
  const s: PlanSummary = { totalBytes: plan.totalBytes, largestBinding: plan.largestBinding, largestName: plan.largestName, fits: !problem };
  if (problem) s.problem = problem;
  return s;
}

/** Splits a float range of a flat buffer into pieces that each fit one binding, each starting at an aligned offset (the gradient fill). */
export function bindingChunks(range: FloatRange, maxBindingBytes: number, alignFloats: number): FloatRange[] {
  const maxFloats = Math.floor(maxBindingBytes / 4 / alignFloats) * alignFloats;
  const out: FloatRange[] = [];
  for (let o = range.offset; o < range.offset + range.size; o += maxFloats) {
    out.push({ offset: o, size: Math.min(maxFloats, range.offset + range.size - o) });
  }
  return out;
}
