// Dropout (nanoGPT's nn.Dropout, inverted: kept elements are scaled by 1/(1-p) so the
// expected value is unchanged). The mask is a pure function of a key and the element's
// index (src/core/dropout.ts), so backward recomputes it and nothing is stored.
import { dropoutKeep, dropoutScale, dropoutThreshold } from '../core/dropout.ts';
import type { Buf } from './buf.ts';

/** One mask: drop probability p and its key (dropoutKey of the step, micro-batch and site). */
export interface DropoutMask {
  p: number;
  key: number;
}

// The kernels multiply by a factor, 0 or 1/(1-p), and so does this (a dropped negative
// value is -0 on both sides, so they agree bit for bit).

// out and inp are (N); out may be inp. out[i] = inp[i] / (1-p) where kept, else 0.
export function dropoutForward(out: Buf, inp: Buf, N: number, mask: DropoutMask): void {
  const threshold = dropoutThreshold(mask.p);
  const scale = dropoutScale(mask.p);
  for (let i = 0; i < N; i++) out[i] = inp[i] * (dropoutKeep(mask.key, i, threshold) ? scale : 0);
}

// dinp and dout are (N). Accumulates (+=) dout / (1-p) where kept.
export function dropoutBackward(dinp: Buf, dout: Buf, N: number, mask: DropoutMask): void {
  const threshold = dropoutThreshold(mask.p);
  const scale = dropoutScale(mask.p);
  for (let i = 0; i < N; i++) dinp[i] += dout[i] * (dropoutKeep(mask.key, i, threshold) ? scale : 0);
}
