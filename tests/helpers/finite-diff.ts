// Gradient checks by central finite differences (as llm.c's test_gpt2.c checks its
// gradients against PyTorch's, but against the forward pass itself): run in f64, so
// a tight tolerance catches any wrong term in a backward pass.
import { Rng } from '../../src/core/rng.ts';
import { expectClose, type Tolerance } from './expect-close.ts';

/** n normal draws times std (f64), from a fixed seed unless an Rng is given. */
export function randn(n: number, rng: Rng, std = 1): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal() * std;
  return a;
}

/** n token ids uniform in [0, V). */
export function randTokens(n: number, V: number, rng: Rng): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.int(V);
  return a;
}

/** sum(out * w): a scalar whose gradient with respect to out is w. */
export function weightedSum(out: ArrayLike<number>, w: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < w.length; i++) s += out[i] * w[i];
  return s;
}

/** d loss / d x[i] for every i (or only `indices`), by (loss(x+eps) - loss(x-eps)) / 2eps. */
export function numericGrad(x: Float32Array | Float64Array, loss: () => number, eps = 1e-6, indices?: number[]): Float64Array {
  const idx = indices ?? Array.from({ length: x.length }, (_, i) => i);
  const g = new Float64Array(idx.length);
  idx.forEach((i, j) => {
    const orig = x[i];
    x[i] = orig + eps;
    const up = loss();
    x[i] = orig - eps;
    const down = loss();
    x[i] = orig;
    g[j] = (up - down) / (2 * eps);
  });
  return g;
}

export interface GradCase {
  /** The inputs to differentiate with respect to, by name (perturbed in place). */
  inputs: Record<string, Float64Array>;
  /** Runs the forward pass on the current inputs and returns the scalar loss. */
  loss: () => number;
  /**
   * Runs the backward pass once and returns the analytic gradient of each input. The
   * helper calls it with gradient buffers pre-filled with `prior` and subtracts prior
   * back out, so a backward that overwrites instead of accumulating (+=) fails.
   */
  backward: (prior: number) => Record<string, Float64Array>;
}

export const PRIOR = 0.375;

/** Checks every element of every input's analytic gradient against finite differences. */
export function checkGradients(label: string, c: GradCase, tol: Tolerance = { rtol: 1e-6, atol: 1e-8 }, eps = 1e-5): void {
  const analytic = c.backward(PRIOR);
  for (const [name, x] of Object.entries(c.inputs)) {
    const a = analytic[name];
    if (!a) throw new Error(`${label}: backward returned no gradient for ${name}`);
    const got = a.map((v) => v - PRIOR);
    expectClose(got, numericGrad(x, c.loss, eps), tol, `${label} d/d${name}`);
  }
}

/** A buffer of n elements filled with v (a gradient buffer before accumulation). */
export function filled(n: number, v: number): Float64Array {
  return new Float64Array(n).fill(v);
}

export { Rng };
