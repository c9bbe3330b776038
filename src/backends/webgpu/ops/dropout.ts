// Dropout on a tensor (shaders/dropout.wgsl). The mask's key is a one-u32 binding (a
// 256-byte slot of the step's key buffer), written before each step, so one recorded
// graph serves every step's masks; p is a pipeline constant.
import { dropoutScale, dropoutThreshold } from '../../../core/dropout.ts';
import type { Bind, Dispatch, PipelineCache } from '../kernel.ts';
import { grid1d } from './grid.ts';

const SHADER = 'dropout';
const WG = 256;

/** Dropout for an op that applies it inside (attention): probability p > 0 and the mask's key binding. */
export interface OpDropout {
  p: number;
  key: Bind;
}

/** The pipeline constants of dropout_mask.wgsl for probability p. */
export function dropoutConstants(p: number): Record<'DROP_THRESHOLD' | 'DROP_SCALE', number> {
  return { DROP_THRESHOLD: dropoutThreshold(p), DROP_SCALE: dropoutScale(p) };
}

// x is (n), in place; key is one u32. x[i] = x[i] / (1-p) where kept, else 0.
export function dropoutForward(k: PipelineCache, x: Bind, key: Bind, n: number, p: number): Dispatch[] {
  const c = { N: n, WG, ...dropoutConstants(p) };
  return [k.dispatch('dropout_forward', { shader: SHADER, entry: 'dropout_forward', constants: c }, [x, key], grid1d(n, WG))];
}

// dinp and dout are (n); key is one u32. dinp = dout / (1-p) where kept, else 0 (written, not added).
export function dropoutBackward(k: PipelineCache, dinp: Bind, dout: Bind, key: Bind, n: number, p: number): Dispatch[] {
  const c = { N: n, WG, ...dropoutConstants(p) };
  return [k.dispatch('dropout_backward', { shader: SHADER, entry: 'dropout_backward', constants: c }, [dinp, dout, key], grid1d(n, WG))];
}
