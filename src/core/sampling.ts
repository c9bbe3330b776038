// Choosing the next token from logits: temperature, then top-k, then top-p (nucleus).
import type { Rng } from './rng.ts';

export interface SamplingOptions {
  /** 0 picks the most likely token. */
  temperature: number;
  /** Keep the k most likely tokens; 0 keeps all. */
  topK: number;
  /** Keep the smallest set whose probability reaches p; 1 keeps all. */
  topP: number;
}

export const DEFAULT_SAMPLING: SamplingOptions = { temperature: 0.8, topK: 0, topP: 1 };

/** Samples one token id from `logits` (length >= vocab; rows past `vocab` are padding and never chosen). */
export function sampleToken(logits: ArrayLike<number>, opts: SamplingOptions, rng: Rng, vocab = logits.length): number {
  let best = 0;
  for (let i = 1; i < vocab; i++) if (logits[i] > logits[best]) best = i;
  if (opts.temperature <= 0) return best;

  let ids = Array.from({ length: vocab }, (_, i) => i);
  if ((opts.topK > 0 && opts.topK < vocab) || opts.topP < 1) ids.sort((a, b) => logits[b] - logits[a] || a - b);
  if (opts.topK > 0 && opts.topK < vocab) ids = ids.slice(0, opts.topK);
  const max = logits[best];
  let probs = ids.map((i) => Math.exp((logits[i] - max) / opts.temperature));
  let sum = probs.reduce((a, b) => a + b, 0);
  if (opts.topP < 1) {
    let acc = 0;
    let keep = 0;
    while (keep < probs.length) {
      acc += probs[keep] / sum;
      keep++;
      if (acc >= opts.topP) break;
    }
    ids = ids.slice(0, keep);
    probs = probs.slice(0, keep);
    sum = probs.reduce((a, b) => a + b, 0);
  }
  let r = rng.next() * sum;
  for (let j = 0; j < ids.length; j++) {
    r -= probs[j];
    if (r < 0) return ids[j];
  }
  return ids[ids.length - 1];
}
