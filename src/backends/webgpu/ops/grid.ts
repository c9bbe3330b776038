// Dispatch grids for one-invocation-per-element kernels: WebGPU allows at most 65535
// workgroups per dimension, so a long 1-D problem is laid over x*y workgroups and the
// shader recovers its index as (wid.y * num_workgroups.x + wid.x) * WG + local index.

const MAX_X = 32768;

/** Workgroups [x, y] covering n elements at wg invocations each (y > 1 only past MAX_X*wg). */
export function grid1d(n: number, wg: number): [number, number] {
  const groups = Math.max(1, Math.ceil(n / wg));
  if (groups <= MAX_X) return [groups, 1];
  return [MAX_X, Math.ceil(groups / MAX_X)];
}

/** The smallest power of two >= n (n >= 1). */
export function pow2AtLeast(n: number): number {
  return 2 ** Math.ceil(Math.log2(n));
}

/**
 * Invocations per workgroup for a kernel that reduces one row of n elements per
 * workgroup: about `per` elements each, a power of two from 32 to `max`, so short rows
 * do not pay for idle invocations in every reduction and long ones get more of them.
 */
export function rowInvocations(n: number, per: number, max = 256): number {
  return Math.min(max, Math.max(32, pow2AtLeast(Math.ceil(n / per))));
}
