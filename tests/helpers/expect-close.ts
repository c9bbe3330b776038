// One comparison for every kernel and gradient test (as tinygrad's helper_test_op):
// on failure it names the worst element, both values and the error, so a mismatch
// reads as a diagnosis rather than a boolean.
import { expect } from 'vitest';

export interface Tolerance {
  rtol?: number;
  atol?: number;
}

export interface CloseReport {
  ok: boolean;
  worstIndex: number;
  actual: number;
  expected: number;
  absErr: number;
  relErr: number;
}

export function compareClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance = {}): CloseReport {
  const rtol = tol.rtol ?? 1e-4;
  const atol = tol.atol ?? 1e-5;
  let worst = -1;
  let worstExcess = -Infinity;
  let ok = actual.length === expected.length;
  const n = Math.min(actual.length, expected.length);
  for (let i = 0; i < n; i++) {
    const a = actual[i];
    const e = expected[i];
    const err = Math.abs(a - e);
    const allowed = atol + rtol * Math.abs(e);
    const excess = Number.isNaN(err) ? Infinity : err - allowed;
    if (excess > worstExcess) {
      worstExcess = excess;
      worst = i;
    }
    if (!(err <= allowed)) ok = false;
  }
  const a = worst >= 0 ? actual[worst] : NaN;
  const e = worst >= 0 ? expected[worst] : NaN;
  return { ok, worstIndex: worst, actual: a, expected: e, absErr: Math.abs(a - e), relErr: Math.abs(a - e) / Math.max(Math.abs(e), 1e-30) };
}

export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance = {}, label = ''): void {
  if (actual.length !== expected.length) {
    expect.fail(`${label} length ${actual.length} != expected ${expected.length}`);
  }
  const r = compareClose(actual, expected, tol);
  if (!r.ok) {
    expect.fail(
      `${label} mismatch at [${r.worstIndex}]: got ${r.actual}, expected ${r.expected} ` +
        `(abs ${r.absErr.toExponential(2)}, rel ${r.relErr.toExponential(2)}; rtol ${tol.rtol ?? 1e-4}, atol ${tol.atol ?? 1e-5})`,
    );
  }
}
