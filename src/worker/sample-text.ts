// Text from a model for the lab: a sampling request checked field by field, the prompt
// encoded, and the new text streamed as it is generated.
import type { Backend } from '../backends/backend.ts';
import { isKilnError, KilnError } from '../core/errors.ts';
import { Rng } from '../core/rng.ts';
import type { Tokenizer } from '../core/tokenizers/index.ts';
import { generate, startTokens } from '../train/generate.ts';
import type { SampleRequest } from './api.ts';

export function checkSampleRequest(req: SampleRequest): void {
  const checks: Array<[boolean, string]> = [
    [Number.isInteger(req.maxTokens) && req.maxTokens >= 1 && req.maxTokens <= 4096, 'length must be 1 to 4096 tokens'],
    [Number.isFinite(req.temperature) && req.temperature >= 0 && req.temperature <= 10, 'temperature must be 0 to 10'],
    [Number.isInteger(req.topK) && req.topK >= 0, 'top-k must be a whole number (0 = off)'],
    [Number.isFinite(req.topP) && req.topP > 0 && req.topP <= 1, 'top-p must be above 0 and at most 1'],
    [Number.isInteger(req.seed) && req.seed >= 0 && req.seed <= 0xffffffff, 'seed must be a whole number from 0 to 4294967295'],
    [typeof req.prompt === 'string' && req.prompt.length <= 100_000, 'the prompt must be text of at most 100,000 characters'],
  ];
  for (const [ok, msg] of checks) if (!ok) throw new KilnError('usage', `sampling: ${msg}`, 'change the sampling field');
}

/**
 * Generates req.maxTokens tokens after the prompt and returns their text; onText gets
 * each new piece as it is decoded. A byte-level BPE token may end inside a UTF-8
 * character, which decodes as U+FFFD until the next token completes it: such a tail is
 * held back, so the pieces always add up to the final text.
 */
export async function sampleText(backend: Backend, tok: Tokenizer, blockSize: number, req: SampleRequest, onText?: (text: string) => void): Promise<string> {
  checkSampleRequest(req);
  let prompt: Int32Array;
  try {
    prompt = req.prompt ? tok.encode(req.prompt) : startTokens(tok);
  } catch (e) {
    throw isKilnError(e) ? e : new KilnError('usage', `the prompt cannot be encoded: ${(e as Error).message}`, 'use characters from the training text');
  }
  if (prompt.length === 0) prompt = startTokens(tok);
  let sent = '';
  const out: number[] = [];
  await generate(backend, prompt, {
    maxNewTokens: req.maxTokens, blockSize, vocab: tok.vocabSize, temperature: req.temperature, topK: req.topK, topP: req.topP,
    onToken: (id) => {
      out.push(id);
      const stable = tok.decode(Int32Array.from(out)).replace(/\uFFFD+$/, '');
      if (stable.length > sent.length && stable.startsWith(sent)) {
        onText?.(stable.slice(sent.length));
        sent = stable;
      }
    },
  }, new Rng(req.seed));
  const text = tok.decode(Int32Array.from(out));
  if (text.length > sent.length && text.startsWith(sent)) onText?.(text.slice(sent.length));
  return text;
}
