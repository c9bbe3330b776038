// Causal self-attention over qkv (B,T,3C) (shaders/attention.wgsl): the fused flash
// path (default) and the multi-kernel path that materialises the (B,NH,T,T) matrix
// like src/reference/attention.ts (kept selectable as a GPU-side oracle and for tests).
//
// Scratch (attentionScratch): `saved` is written by the forward pass and read by the
// backward pass of the same layer, so the buffer plan needs one per layer; `temp` is
// used only inside attentionBackward and can be shared by all layers.
//   flash: saved = lse (B,NH,T) logsumexp per query row; temp = delta (B,NH,T)
//   naive: saved = att (B,NH,T,T) probabilities;          temp = ds (B,NH,T,T)
import type { Bind, Dispatch, PipelineCache } from '../kernel.ts';
import { dropoutConstants, type OpDropout } from './dropout.ts';
import { grid1d, pow2AtLeast } from './grid.ts';
import type { InputGradOptions } from './util.ts';

export type AttentionImpl = 'flash' | 'naive';

const WG = 64;
const SHADER = 'attention'; // the fused (flash) path
const NAIVE = 'attention_naive'; // the multi-kernel path, kept as the GPU-side oracle

/** Bytes of the scratch buffers: `saved` (one per layer) and `temp` (backward only, shareable). */
export function attentionScratch(B: number, T: number, C: number, NH: number, impl: AttentionImpl = 'flash'): Record<'saved' | 'temp', number> {
  void C;
  const n = impl === 'flash' ? B * NH * T : B * NH * T * T;
  return { saved: n * 4, temp: n * 4 };
}

function checkShape(T: number, C: number, NH: number): number {
  if (C % NH !== 0) throw new Error(`attention: C=${C} is not divisible by NH=${NH}`);
  if (T < 1) throw new Error(`attention: T=${T} must be at least 1`);
  return C / NH;
}

/** The largest head size the flash kernels take: the forward holds a q and an output row in registers (attention.wgsl MAX_HS4). */
export const MAX_FLASH_HS = 256;
/** vec4 accumulators per invocation the backward kernels may hold (attention.wgsl MAX_ACC). */
const MAX_ACC = 16;

function vec4s(HS: number): number {
  return Math.ceil(HS / 4);
}

/**
 * Workgroup-memory bytes of the flash forward with key tiles of n rows: key and value
 * tiles of vec4 rows padded to HS4 + 1 (attention.wgsl).
 */
export function flashForwardBytes(n: number, HS: number): number {
  return 2 * n * (vec4s(HS) + 1) * 16;
}

/**
 * Workgroup-memory bytes of the flash backward kernels with square tiles of n rows: four
 * q/k/dout/v tiles of vec4 rows padded to HS4 + 1, two score tiles with rows padded to
 * n + 1, two row vectors (attention.wgsl).
 */
export function flashBytes(n: number, HS: number): number {
  return 4 * n * (vec4s(HS) + 1) * 16 + 4 * (2 * n * (n + 1) + 2 * n);
}

function workgroupLimit(k: PipelineCache): number {
  return Math.min(k.device.limits.maxComputeWorkgroupStorageSize ?? 16384, 49152);
}

function tooLittleMemory(HS: number, limit: number): Error {
  return new Error(`attention: head size ${HS} needs more workgroup memory than the device has (${limit} bytes)`);
}

/** Key rows per tile of the flash forward: the most (up to 64) whose tiles fit the device's workgroup memory. */
export function flashForwardTile(k: PipelineCache, HS: number): number {
  const limit = workgroupLimit(k);
  for (const n of [64, 32, 16, 8, 4, 2, 1]) if (flashForwardBytes(n, HS) <= limit) return n;
  throw tooLittleMemory(HS, limit);
}

/**
 * The largest square tile (query and key rows per block, even) of the flash backward
 * whose tiles fit the device's workgroup memory and whose per-invocation share of a
 * block's gradient (n * HS4 / WG vec4s) fits the kernels' registers.
 */
export function flashTile(k: PipelineCache, HS: number): number {
  const limit = workgroupLimit(k);
  for (const n of [32, 16, 8, 4, 2]) if (flashBytes(n, HS) <= limit && accumulators(n, HS) <= MAX_ACC) return n;
  throw tooLittleMemory(HS, limit);
}

function accumulators(n: number, HS: number): number {
  return Math.ceil((n * vec4s(HS)) / WG);
}

function checkFlash(HS: number): void {
  if (HS > MAX_FLASH_HS) {
    throw new Error(`attention: head size ${HS} (n_embd / n_head) is over ${MAX_FLASH_HS}, the largest the WebGPU attention kernels take; use more heads`);
  }
}

/**
 * (query, key) pairs with key <= query over all rows and heads. Per pair of head size HS
 * the flash kernels do: forward q.k and p v (4 HS flops); backward dq kernel q.k, dout.v
 * and ds k (6 HS); dk/dv kernel q.k, dout.v, ds q and p dout (8 HS): the recomputation
 * counts, as it is work the GPU does.
 */
function causalPairs(B: number, T: number, NH: number): number {
  return (B * NH * T * (T + 1)) / 2;
}

function constants(B: number, T: number, C: number, NH: number, extra: Record<string, number> = {}): Record<string, number> {
  return { B, T, C, NH, HS: C / NH, WG, ...extra };
}

/** The switches, constants and extra binding of a flash kernel with or without dropout. */
function withDropout(dropout: OpDropout | undefined): { switches: string[]; constants: Record<string, number>; key: Bind[] } {
  if (!dropout || dropout.p === 0) return { switches: [], constants: {}, key: [] };
  return { switches: ['dropout'], constants: dropoutConstants(dropout.p), key: [dropout.key] };
}

function noNaiveDropout(dropout: OpDropout | undefined): void {
  if (dropout && dropout.p > 0) throw new Error('attention: dropout runs in the flash kernels only');
}

// out is (B,T,C); qkv is (B,T,3C); saved is lse (B,NH,T) for flash, att (B,NH,T,T) for naive.
// out[b,t,h] = softmax over t2 <= t of (q_t . k_t2 / sqrt(HS)) applied to v_t2; with
// dropout (flash only) the probabilities are dropped on their way to the values.
export function attentionForward(
  k: PipelineCache, out: Bind, qkv: Bind, saved: Bind, B: number, T: number, C: number, NH: number, impl: AttentionImpl = 'flash',
  dropout?: OpDropout,
): Dispatch[] {
  const HS = checkShape(T, C, NH);
  if (impl === 'flash') {
    checkFlash(HS);
    const drop = withDropout(dropout);
    // One invocation per query row: short sequences get smaller workgroups rather than idle invocations.
    const rows = Math.max(16, Math.min(WG, pow2AtLeast(T)));
    const c = constants(B, T, C, NH, { BC: flashForwardTile(k, HS), WG: rows, ...drop.constants });
    const d = k.dispatch('attention_flash_forward', { shader: SHADER, entry: 'attention_flash_forward', constants: c, switches: drop.switches },
      [out, saved, qkv, ...drop.key], [Math.ceil(T / rows), B * NH]);
    return [{ ...d, flops: causalPairs(B, T, NH) * 4 * HS }];
  }
  noNaiveDropout(dropout);
  const c = constants(B, T, C, NH);
  return [
    k.dispatch('attention_softmax_forward', { shader: NAIVE, entry: 'attention_softmax_forward', constants: c }, [saved, qkv], [T, B * NH]),
    k.dispatch('attention_value_forward', { shader: NAIVE, entry: 'attention_value_forward', constants: c }, [out, saved, qkv], grid1d(B * T * C, WG)),
  ];
}

// dqkv and qkv are (B,T,3C); dout and out (the forward's output) are (B,T,C); saved as the
// forward wrote it; temp is attentionScratch().temp bytes. Accumulates (+=) into dqkv
// (overwrites it with accumulate: false). With dropout: the forward's (same p and key).
export function attentionBackward(
  k: PipelineCache, dqkv: Bind, dout: Bind, qkv: Bind, out: Bind, saved: Bind, temp: Bind,
  B: number, T: number, C: number, NH: number, impl: AttentionImpl = 'flash', o: InputGradOptions & { dropout?: OpDropout } = {},
): Dispatch[] {
  const HS = checkShape(T, C, NH);
  const ACCUMULATE = +(o.accumulate ?? true);
  if (impl === 'flash') {
    checkFlash(HS);
    const drop = withDropout(o.dropout);
    const n = Math.min(flashTile(k, HS), Math.max(2, pow2AtLeast(T)));
    const c = constants(B, T, C, NH, { BR: n, BC: n, NACC: accumulators(n, HS), ACCUMULATE, ...drop.constants });
    const grid: [number, number] = [Math.ceil(T / n), B * NH];
    const bufs = [dqkv, dout, qkv, saved, temp, ...drop.key];
    const desc = (entry: string) => ({ shader: SHADER, entry, constants: c, switches: drop.switches });
    return [
      k.dispatch('attention_flash_delta', { shader: SHADER, entry: 'attention_flash_delta', constants: constants(B, T, C, NH) }, [temp, out, dout], grid1d(B * NH * T, WG)),
      { ...k.dispatch('attention_flash_backward_dq', desc('attention_flash_backward_dq'), bufs, grid), flops: causalPairs(B, T, NH) * 6 * HS },
      { ...k.dispatch('attention_flash_backward_dkv', desc('attention_flash_backward_dkv'), bufs, grid), flops: causalPairs(B, T, NH) * 8 * HS },
    ];
  }
  noNaiveDropout(o.dropout);
  const c = constants(B, T, C, NH);
  return [
    k.dispatch('attention_softmax_backward', { shader: NAIVE, entry: 'attention_softmax_backward', constants: c }, [temp, saved, dout, qkv], [T, B * NH]),
    k.dispatch('attention_qkv_backward', { shader: NAIVE, entry: 'attention_qkv_backward', constants: { ...c, ACCUMULATE } }, [dqkv, temp, saved, dout, qkv], grid1d(B * T * C, WG)),
  ];
}
