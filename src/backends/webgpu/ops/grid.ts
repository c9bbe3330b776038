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
