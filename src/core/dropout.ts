// Dropout masks as a pure function of (key, element index): a counter-based hash, so
// the forward and backward passes recompute a mask instead of storing it, and every
// backend (the CPU reference here, the WGSL kernels with shaders/dropout.wgsl) draws
// exactly the same mask bit for bit: parity tests hold with dropout on.
//
// Keys: one per (optimizer step, micro-batch, site). Sites follow nanoGPT's dropout
// modules: 0 is the embedding sum, then per layer l the attention probabilities
// (1 + 3l), the attention branch's output (2 + 3l) and the MLP branch's output (3 + 3l).

/** Chris Wellons' lowbias32 integer hash (the same in shaders/dropout.wgsl, where u32 products wrap). */
export function lowbias32(x: number): number {
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x = (x ^ (x >>> 15)) >>> 0;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

/** The seed of one optimizer step's masks, from the run's seed: a run reproduces its masks, and a resume continues them. */
export function dropoutStepSeed(runSeed: number, step: number): number {
  return lowbias32((lowbias32(runSeed >>> 0) ^ (step >>> 0)) >>> 0);
}

export const SITE_EMBEDDING = 0;
export function siteAttention(layer: number): number {
  return 1 + 3 * layer;
}
export function siteAttnResidual(layer: number): number {
  return 2 + 3 * layer;
}
export function siteMlpResidual(layer: number): number {
  return 3 + 3 * layer;
}
export function dropoutSites(nLayer: number): number {
  return 1 + 3 * nLayer;
}

/** The key of one site's mask in one micro-batch of a step. */
export function dropoutKey(stepSeed: number, microBatch: number, site: number): number {
  return lowbias32((stepSeed ^ lowbias32(((microBatch & 0xffff) << 16 | (site & 0xffff)) >>> 0)) >>> 0);
}

/** An element is kept when its hash is at least this: round(p * 2^32), so P(drop) = p to 2^-32. */
export function dropoutThreshold(p: number): number {
  return Math.min(0xffffffff, Math.round(p * 2 ** 32));
}

/** What a kept element is multiplied by (as an f32, the value every backend uses). */
export function dropoutScale(p: number): number {
  return Math.fround(1 / (1 - p));
}

/** Whether element `i` of the mask with `key` is kept, given dropoutThreshold(p). */
export function dropoutKeep(key: number, i: number, threshold: number): boolean {
  return lowbias32((lowbias32((i ^ key) >>> 0) + key) >>> 0) >= threshold;
}

/** One step's dropout, as a backend receives it: the probability and the step's seed. */
export interface StepDropout {
  p: number;
  seed: number;
}
