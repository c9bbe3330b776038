// LayerNorm (shaders/layernorm.wgsl).
//
// Scratch (layernormScratch): `partials` holds per-row-chunk partial sums of dweight and
// dbias inside one layernormBackward call; every layer can share it.
import { ceilDiv, type Bind, type Dispatch, type PipelineCache } from '../kernel.ts';
import { grid1d, rowInvocations } from './grid.ts';
import type { InputGradOptions } from './util.ts';

const SHADER = 'layernorm';
const WG = 64;
const ROW_CHUNK = 64;

/** Bytes of layernormBackward's scratch (temporary: nothing in it outlives the call). */
export function layernormScratch(N: number, C: number): Record<'partials', number> {
  return { partials: 2 * ceilDiv(N, ROW_CHUNK) * C * 4 };
}

// out and inp are (N,C) (N = B*T); weight and bias are (C); mean and rstd are (N).
// out = layernorm(inp) * weight + bias; saves mean and rstd for the backward pass.
/** Invocations per row of the row kernels (forward, dinp): about 8 channels each (rowInvocations). */
export function rowWorkgroup(C: number): number {
  return rowInvocations(C, 8);
}

export function layernormForward(
  k: PipelineCache, out: Bind, mean: Bind, rstd: Bind, inp: Bind, weight: Bind, bias: Bind, N: number, C: number,
): Dispatch[] {
  return [k.dispatch('layernorm_forward', forwardDesc('layernorm_forward', N, C), [out, mean, rstd, inp, weight, bias], grid1d(N, 1))];
}

// res, a and b are (N,C); the rest as layernormForward. The residual connection res = a + b
// fused into the LayerNorm of res: writes res (the backward pass reads it) and
// out = layernorm(res) * weight + bias, saving mean and rstd.
export function layernormResidualForward(
  k: PipelineCache, out: Bind, mean: Bind, rstd: Bind, res: Bind, a: Bind, b: Bind, weight: Bind, bias: Bind, N: number, C: number,
): Dispatch[] {
  const entry = 'layernorm_residual_forward';
  return [k.dispatch(entry, forwardDesc(entry, N, C), [out, mean, rstd, a, weight, bias, res, b], grid1d(N, 1))];
}

/** The largest C the forward kernels take: each invocation holds at most 32 of a row's elements (layernorm.wgsl MAX_PER). */
export const MAX_LAYERNORM_C = 32 * 256;

function forwardDesc(entry: string, N: number, C: number) {
  if (C > MAX_LAYERNORM_C) throw new Error(`layernorm: C=${C} is over ${MAX_LAYERNORM_C}, the widest row the forward kernels hold`);
  const wg = rowWorkgroup(C);
  return { shader: SHADER, entry, constants: { N, C, WG: wg, PER: ceilDiv(C, wg) } };
}

// dinp, dout and inp are (N,C); dweight, dbias and weight are (C); mean and rstd are (N) from
// the forward pass; scratch is layernormScratch(N, C).partials bytes.
// Accumulates (+=) into dinp, dweight and dbias (overwrites dinp with accumulate: false).
export function layernormBackward(
  k: PipelineCache, dinp: Bind, dweight: Bind, dbias: Bind, dout: Bind, inp: Bind, weight: Bind, mean: Bind, rstd: Bind,
  N: number, C: number, scratch: Bind, o: InputGradOptions = {},
): Dispatch[] {
  const chunks = ceilDiv(N, ROW_CHUNK);
  const desc = (entry: string, extra = {}) => ({ shader: SHADER, entry, constants: { N, C, WG, ROW_CHUNK, CHUNKS: chunks, ...extra } });
  return [
    k.dispatch('layernorm_backward_dinp', desc('layernorm_backward_dinp', { WG: rowWorkgroup(C), ACCUMULATE: +(o.accumulate ?? true) }), [dinp, dout, inp, weight, mean, rstd], grid1d(N, 1)),
    k.dispatch('layernorm_backward_partial', desc('layernorm_backward_partial'), [scratch, dout, inp, mean, rstd], [ceilDiv(C, WG), chunks]),
    k.dispatch('layernorm_backward_reduce', desc('layernorm_backward_reduce'), [dweight, dbias, scratch], [ceilDiv(C, WG)]),
  ];
}
