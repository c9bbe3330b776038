// GELU, tanh approximation (shaders/gelu.wgsl).
import type { Bind, Dispatch, PipelineCache } from '../kernel.ts';
import { grid1d } from './grid.ts';
import type { InputGradOptions } from './util.ts';

const SHADER = 'gelu';
const WG = 256;

// out and inp are (N) (N = B*T*4C). out = gelu(inp).
export function geluForward(k: PipelineCache, out: Bind, inp: Bind, N: number): Dispatch[] {
  return [k.dispatch('gelu_forward', { shader: SHADER, entry: 'gelu_forward', constants: { N, WG } }, [out, inp], grid1d(N, WG))];
}

// dinp, inp and dout are (N). Accumulates: dinp += gelu'(inp) * dout (dinp = ... with accumulate: false).
export function geluBackward(k: PipelineCache, dinp: Bind, inp: Bind, dout: Bind, N: number, o: InputGradOptions = {}): Dispatch[] {
  const constants = { N, WG, ACCUMULATE: +(o.accumulate ?? true) };
  return [k.dispatch('gelu_backward', { shader: SHADER, entry: 'gelu_backward', constants }, [dinp, inp, dout], grid1d(N, WG))];
}
