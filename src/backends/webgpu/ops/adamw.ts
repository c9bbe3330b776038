// Global gradient norm and AdamW over the flat parameter buffers (shaders/adamw.wgsl).
// A step records: gradNorm(grads) -> norm buffer; then adamw() once per contiguous range
// (decayed tensors in one range, the rest in another). The clipping factor is computed
// on the GPU from the norm buffer, and the per-step values come from a small buffer the
// host fills with adamwHyperBuffer() and queue.writeBuffer before each submit, so a step
// never waits for a readback. The norm buffer can be read back with the loss afterwards.
//
// Bindings are split into pieces of at most MAX_PIECE elements (64 MiB, under WebGPU's
// default 128 MiB binding limit), so the flat buffers may be larger than one binding.
import type { Bind, Dispatch, PipelineCache } from '../kernel.ts';
import { grid1d } from './grid.ts';
import { slice } from './util.ts';

const SHADER = 'adamw';
const WG = 256;
const PER_THREAD = 16;
/** Elements summed into one partial of the gradient norm. */
const CHUNK = WG * PER_THREAD;
/** Elements per binding (a multiple of CHUNK and of 64: pieces start at aligned offsets). */
export const MAX_PIECE = 1 << 24;
/** Elements per 256 bytes: binding offsets are multiples of this. */
const ALIGN = 64;

export interface AdamWStepHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Clip the global gradient norm to this (PyTorch clip_grad_norm_); 0: no clipping. */
  gradClip: number;
  /** 1-based step number (bias correction). */
  t: number;
}

/** Float offsets in the hyperparameter buffer (struct Hyper in shaders/adamw.wgsl). */
export const HP_LR = 0;
export const HP_BETA1 = 1;
export const HP_BETA2 = 2;
export const HP_EPS = 3;
export const HP_WEIGHT_DECAY = 4;
export const HP_GRAD_CLIP = 5;
export const HP_STEP_SIZE = 6;
export const HP_SQRT_BC2 = 7;
export const HP_T = 8;
/** Bytes of the hyperparameter buffer (9 floats, padded to 16-byte multiples). */
export const ADAMW_HYPER_BYTES = 48;

/** The hyperparameter buffer's contents for one step; bias corrections are computed here in f64. */
export function adamwHyperBuffer(hp: AdamWStepHyper): Float32Array<ArrayBuffer> {
  if (!(hp.t >= 1)) throw new Error(`adamw: step t=${hp.t} must be >= 1`);
  const a = new Float32Array(ADAMW_HYPER_BYTES / 4);
  a[HP_LR] = hp.lr;
  a[HP_BETA1] = hp.beta1;
  a[HP_BETA2] = hp.beta2;
  a[HP_EPS] = hp.eps;
  a[HP_WEIGHT_DECAY] = hp.weightDecay;
  a[HP_GRAD_CLIP] = hp.gradClip;
  a[HP_STEP_SIZE] = hp.lr / (1 - hp.beta1 ** hp.t);
  a[HP_SQRT_BC2] = Math.sqrt(1 - hp.beta2 ** hp.t);
  a[HP_T] = hp.t;
  return a;
}

/** Bytes of gradNorm's partial sums for n gradient elements (shareable: only read inside gradNorm). */
export function gradNormScratch(n: number): Record<'partials', number> {
  return { partials: Math.max(1, Math.ceil(n / CHUNK)) * 4 };
}

// norm is (1) (written: ||grads[0:n]||_2); grads is (n); scratch is gradNormScratch(n).partials
// bytes. Deterministic: the same grads give the same bits.
export function gradNorm(k: PipelineCache, norm: Bind, grads: Bind, n: number, scratch: Bind): Dispatch[] {
  const out: Dispatch[] = [];
  for (let off = 0; off < n; off += MAX_PIECE) {
    const cnt = Math.min(MAX_PIECE, n - off);
    const parts = Math.ceil(cnt / CHUNK);
    const constants = { N: cnt, PER_THREAD, WG };
    const bufs = [slice(scratch, (off / CHUNK) * 4, parts * 4), slice(grads, off * 4, cnt * 4)];
    out.push(k.dispatch('grad_norm_partial', { shader: SHADER, entry: 'grad_norm_partial', constants }, bufs, grid1d(parts, 1)));
  }
  const constants = { NPART: Math.max(1, Math.ceil(n / CHUNK)), WG };
  out.push(k.dispatch('grad_norm_final', { shader: SHADER, entry: 'grad_norm_final', constants }, [norm, scratch], [1]));
  return out;
}

export interface ParamRange {
  /** First element (floats into the flat buffers). */
  offset: number;
  count: number;
}

/** How adamw() binds a range: pieces starting at 64-element-aligned `base`, updating elements base+offset..+count. */
export function rangePieces(range: ParamRange): Array<{ base: number; offset: number; count: number }> {
  const out: Array<{ base: number; offset: number; count: number }> = [];
  const end = range.offset + range.count;
  for (let s = range.offset; s < end;) {
    const base = Math.floor(s / ALIGN) * ALIGN;
    const offset = s - base;
    const count = Math.min(end - s, MAX_PIECE - offset);
    out.push({ base, offset, count });
    s += count;
  }
  return out;
}

// params, grads, m, v are the flat (numParams) buffers; hp is ADAMW_HYPER_BYTES written
// with adamwHyperBuffer(); norm is gradNorm's output. Updates params, m, v in place over
// range, with weight decay only if weightDecayOn.
export function adamw(
  k: PipelineCache, params: Bind, grads: Bind, m: Bind, v: Bind, hp: Bind, norm: Bind, range: ParamRange, weightDecayOn: boolean,
): Dispatch[] {
  return rangePieces(range).map(({ base, offset, count }) => {
    const constants = { N: count, OFFSET: offset, DECAY: +weightDecayOn, WG };
    const bufs = [params, m, v, grads].map((b) => slice(b, base * 4, (offset + count) * 4));
    return k.dispatch('adamw_update', { shader: SHADER, entry: 'adamw_update', constants }, [...bufs, hp, norm], grid1d(count, WG));
  });
}
