// The residual connection (shaders/residual.wgsl).
import type { Bind, Dispatch, PipelineCache } from '../kernel.ts';
import { grid1d } from './grid.ts';

const SHADER = 'residual';
const WG = 256;

// out, a and b are (N) (N = B*T*C). out = a + b.
export function residualForward(k: PipelineCache, out: Bind, a: Bind, b: Bind, N: number): Dispatch[] {
  return [k.dispatch('residual_forward', { shader: SHADER, entry: 'residual_forward', constants: { N, WG } }, [out, a, b], grid1d(N, WG))];
}

// da, db and dout are (N). Accumulates: da += dout, db += dout. da and db must live in
// different buffers (WebGPU forbids one buffer bound writable twice in a dispatch).
export function residualBackward(k: PipelineCache, da: Bind, db: Bind, dout: Bind, N: number): Dispatch[] {
  return [k.dispatch('residual_backward', { shader: SHADER, entry: 'residual_backward', constants: { N, WG } }, [da, db, dout], grid1d(N, WG))];
}
