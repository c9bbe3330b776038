// Learning rate: linear warmup, cosine decay to minLr at decaySteps, then minLr (nanoGPT's get_lr).
import type { RunConfig } from './config.ts';

/** The learning rate for 0-based optimizer step `it`. */
export function lrAt(it: number, c: Pick<RunConfig, 'lr' | 'minLr' | 'warmupSteps' | 'decaySteps'>): number {
  if (it < c.warmupSteps) return (c.lr * (it + 1)) / (c.warmupSteps + 1);
  if (it >= c.decaySteps) return c.minLr;
  const ratio = (it - c.warmupSteps) / Math.max(1, c.decaySteps - c.warmupSteps);
  const coeff = 0.5 * (1 + Math.cos(Math.PI * ratio));
  return c.minLr + coeff * (c.lr - c.minLr);
}
