// The loss of a model on a whole token sequence (`kiln eval`): every non-overlapping
// window of blockSize tokens, each predicting its next tokens, in batches; the mean over
// every scored token. Training's evaluate() judges a fixed sample of windows sized by the
// run's batch settings; this one scores them all, with a batch chosen from the model's
// shape alone, so the same weights give the same loss whatever batch settings their file
// carries (a Kiln checkpoint, or the same weights after a Hugging Face round trip).
import type { Backend, Batch } from '../backends/backend.ts';
import { KilnError } from '../core/errors.ts';
import type { ModelConfig } from '../core/model-spec.ts';

export interface SequenceScore {
  /** Mean cross-entropy over every scored token (nats). */
  loss: number;
  /** Tokens scored: windows x blockSize. */
  tokens: number;
  windows: number;
}

/** Windows per batch: up to 16k tokens and 64 Mi logits (B*T*V floats), 1 to 64 windows. */
export function scoreBatchSize(model: Pick<ModelConfig, 'blockSize' | 'vocabSize'>): number {
  const T = model.blockSize;
  const byTokens = Math.floor(16384 / T);
  const byLogits = Math.floor((64 * 1024 * 1024) / (T * Math.max(1, model.vocabSize)));
  return Math.max(1, Math.min(64, byTokens, byLogits));
}

/**
 * Scores `tokens` with the model loaded in `backend`: windows [i*T, (i+1)*T) predicting
 * [i*T+1, (i+1)*T+1) for every i that fits; the tail shorter than a window is left out.
 * Batches of `batchSize` windows (the last one smaller); the batch means are combined
 * weighted by their windows, in f64. Deterministic: no randomness, a fixed order.
 */
export async function scoreTokens(
  backend: Backend,
  tokens: Int32Array,
  model: Pick<ModelConfig, 'blockSize' | 'vocabSize'>,
  batchSize = scoreBatchSize(model),
): Promise<SequenceScore> {
  const T = model.blockSize;
  const windows = Math.floor((tokens.length - 1) / T);
  if (windows < 1)
    throw new KilnError('data', `the text is too short to score: ${tokens.length} tokens, but one window of ${T} needs ${T + 1}`, 'give more text');
  let sum = 0;
  for (let w0 = 0; w0 < windows; w0 += batchSize) {
    const B = Math.min(batchSize, windows - w0);
    const span = tokens.subarray(w0 * T, (w0 + B) * T + 1);
    const batch: Batch = { inputs: span.slice(0, B * T), targets: span.slice(1, B * T + 1), B, T, microBatches: 1 };
    sum += (await backend.loss(batch)) * B;
  }
  return { loss: sum / windows, tokens: windows * T, windows };
}
