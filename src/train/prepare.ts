// From a config and a text to everything a run needs: the tokenizer (trained on the
// text, or restored from a checkpoint), the token ids split into train/val, the
// resolved model shape and the initial parameters. The CLI and the lab's worker
// both start runs through here.
import type { TrainState } from '../backends/backend.ts';
import type { RunConfig } from '../core/config.ts';
import { splitTokens, type Split } from '../core/data.ts';
import { initParams, modelSpec, resolveModel, type ModelConfig } from '../core/model-spec.ts';
import { Rng } from '../core/rng.ts';
import { createTokenizer, tokenizerFromJSON, type Tokenizer, type TokenizerJSON } from '../core/tokenizers/index.ts';

export interface PreparedData {
  tokenizer: Tokenizer;
  model: ModelConfig;
  split: Split;
}

export async function prepareData(
  config: RunConfig,
  text: string,
  saved?: TokenizerJSON,
  onProgress?: (done: number, total: number) => void,
): Promise<PreparedData> {
  const tokenizer = saved
    ? await tokenizerFromJSON(saved)
    : await createTokenizer(config.tokenizer, text, { bpeVocab: config.bpeVocab, onProgress });
  const tokens = tokenizer.encode(text);
  const split = splitTokens(tokens, config.valFraction, config.blockSize);
  return { tokenizer, model: resolveModel(config, tokenizer.vocabSize), split };
}

/** A fresh model's state: GPT-2 initialisation from the run's seed, no optimizer moments yet. */
export function initialState(model: ModelConfig, seed: number): TrainState {
  return { params: initParams(modelSpec(model), Rng.derive(seed, 'init')), m: null, v: null, step: 0 };
}
