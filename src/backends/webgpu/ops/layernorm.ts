// LayerNorm (shaders/layernorm.wgsl).
//
// Scratch (layernormScratch): `partials` holds per-row-chunk partial sums of dweight and
// dbias inside one layernormBackward call; every layer can share it.
import { ceilDiv, type Bind, type Dispatch, type PipelineCache } from '../kernel.ts';
import { grid1d } from './grid.ts';
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
/**
 * Invocations per row of the row kernels (forward, dinp): about 8 channels each, 32 to
 * 256 (a power of two), so narrow models do not pay for idle invocations in every
 * reduction and wide ones get more of them per row.
 */
export function rowWorkgroup(C: number): number {
  return Math.min(256, Math.max(32, 2 ** Math.ceil(Math.log2(Math.ceil(C / 8)))));
}

export function layernormForward(
  k: PipelineCache, out: Bind, mean: Bind, rstd: Bind, inp: Bind, weight: Bind, bias: Bind, N: number, C: number,
): Dispatch[] {
  const desc = { shader: SHADER, entry: 'layernorm_forward', constants: { N, C, WG: rowWorkgroup(C) } };
  return [k.dispatch('layernorm_forward', desc, [out, mean, rstd, inp, weight, bias], grid1d(N, 1))];
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
