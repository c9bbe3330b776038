// Autoregressive sampling from a backend: the context is cropped to the block size,
// one token at a time, each chosen by sampleToken.
import type { Backend } from '../backends/backend.ts';
import type { Tokenizer } from '../core/tokenizers/tokenizer.ts';
import type { Rng } from '../core/rng.ts';
import { sampleToken, type SamplingOptions } from '../core/sampling.ts';

export interface GenerateOptions extends SamplingOptions {
  maxNewTokens: number;
  blockSize: number;
  /** Rows of the logits that are real tokens (the rest is vocabulary padding). */
  vocab: number;
  onToken?(id: number): void | Promise<void>;
  signal?: AbortSignal;
}

export async function generate(backend: Backend, prompt: Int32Array, o: GenerateOptions, rng: Rng): Promise<Int32Array> {
  const ids = Array.from(prompt);
  for (let i = 0; i < o.maxNewTokens && !o.signal?.aborted; i++) {
    const context = Int32Array.from(ids.slice(-o.blockSize));
    const logits = await backend.logits(context);
    const next = sampleToken(logits, o, rng, o.vocab);
    ids.push(next);
    await o.onToken?.(next);
  }
  return Int32Array.from(ids.slice(prompt.length));
}

/** What an empty prompt starts from: a newline where the vocabulary has one (names, lines of text), else token 0. */
export function startTokens(tokenizer: Tokenizer): Int32Array {
  if (tokenizer.kind === 'gpt2') return Int32Array.of(50256); // <|endoftext|>
  try {
    const nl = tokenizer.encode('\n');
    if (nl.length > 0) return nl.slice(0, 1);
  } catch {
    // No newline in a char vocabulary.
  }
  return Int32Array.of(0);
}
