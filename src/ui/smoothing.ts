// Numbers for the charts, without any DOM: TensorBoard's smoothing and the axis ranges
// (log-safe) that uPlot's scales ask for.

/** The smoothing weights a slider may give (TensorBoard's range). */
export const MAX_SMOOTHING = 0.999;

/** Clamps a smoothing weight to [0, MAX_SMOOTHING]; anything not a number is 0 (off). */
export function clampSmoothing(w: number): number {
  return Number.isFinite(w) ? Math.min(Math.max(w, 0), MAX_SMOOTHING) : 0;
}

/**
 * TensorBoard's debiased exponential moving average, one point at a time (DESIGN.md,
 * "Facts for building the lab"): `last = last*w + (1-w)*x; n++; shown = last/(1 - w**n)`.
 * Dividing by 1 - w**n undoes the pull towards the 0 that `last` starts from, so the first
 * shown point is the first raw point. Non-finite points give NaN and leave the average alone.
 */
export class DebiasedEma {
  readonly w: number;
  private last = 0;
  /** w**n, kept as a running product (exact for w = 0, no pow per point). */
  private wn = 1;

  constructor(w: number) {
    this.w = clampSmoothing(w);
  }

  push(x: number): number {
    if (!Number.isFinite(x)) return NaN;
    if (this.w === 0) return x;
    this.last = this.last * this.w + (1 - this.w) * x;
    this.wn *= this.w;
    return this.last / (1 - this.wn);
  }
}

/** The whole series smoothed (NaN where a point is not finite). w = 0 gives the input back. */
export function debiasedEma(ys: ArrayLike<number>, w: number): Float64Array {
  const out = new Float64Array(ys.length);
  const ema = new DebiasedEma(w);
  for (let i = 0; i < ys.length; i++) out[i] = ema.push(ys[i]);
  return out;
}

/**
 * A displayable axis range around data that runs from min to max (either may be null, NaN
 * or, on a log axis, not positive: uPlot passes what it found), plus `extra` values that
 * must stay in view (reference lines). Pads by `pad` of the span; on a log axis the padding
 * is a ratio and both ends stay positive, so log10 never sees 0 or a negative.
 */
export function paddedRange(min: number | null, max: number | null, log: boolean, extra: readonly number[] = [], pad = 0.05): [number, number] {
  const ok = (v: number | null): v is number => v !== null && Number.isFinite(v) && (!log || v > 0);
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of [min, max, ...extra]) {
    if (!ok(v)) continue;
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  if (lo > hi) return log ? [1, 10] : [0, 1];
  if (log) {
    const r = hi / lo < 1.0001 ? 1.1 : Math.pow(hi / lo, pad);
    // uPlot's log ticks start at the scale's minimum: a minimum of two significant digits
    // (1.1, not 1.117) puts that first tick and its label on a round value.
    return [floorSignificant(lo / r, 2), hi * r];
  }
  if (hi - lo < 1e-12 * Math.max(1, Math.abs(hi))) {
    const d = Math.abs(hi) * 0.1 || 1;
    return [lo - d, hi + d];
  }
  const d = (hi - lo) * pad;
  return [lo - d, hi + d];
}

/** v rounded down to `digits` significant digits (v > 0). */
export function floorSignificant(v: number, digits: number): number {
  const step = Math.pow(10, Math.floor(Math.log10(v)) - digits + 1);
  const f = Math.floor(v / step + 1e-9) * step;
  return Number(f.toPrecision(digits));
}

/**
 * The x (step) range: the data's own ends, no padding (a curve starts at the left edge).
 * Before any data, or with one point: up to `planned` (the steps the settings ask for) when
 * that is further, else a span that still draws sensible ticks; on a log axis the left end
 * stays positive.
 */
export function stepRange(min: number | null, max: number | null, log: boolean, planned = 0): [number, number] {
  const lo = min !== null && Number.isFinite(min) && (!log || min > 0) ? min : log ? 1 : 0;
  const hi = max !== null && Number.isFinite(max) ? max : lo;
  if (hi > lo) return [lo, hi];
  if (planned > lo) return [lo, planned];
  return log ? [lo, lo * 10] : [lo, lo + 100];
}
