// Named configs. Each is a complete RunConfig; a share link names one and lists only
// the fields that differ from it.
import { DEFAULT_CONFIG, type RunConfig } from './config.ts';

/** A loss level worth drawing on a preset's chart: what a known model reaches on its data. */
export interface ReferenceLine {
  value: number;
  label: string;
}

export interface Preset {
  name: string;
  description: string;
  config: RunConfig;
  /** Known loss levels on the preset's own dataset (chart reference lines). */
  references: readonly ReferenceLine[];
}

function preset(name: string, description: string, fields: Partial<RunConfig>, references: ReferenceLine[] = []): Preset {
  return { name, description, config: Object.freeze({ ...DEFAULT_CONFIG, ...fields }) as RunConfig, references: Object.freeze(references) };
}

export const PRESETS: readonly Preset[] = [
  preset('tiny', 'About 27,000 parameters: tests and quick checks on any device.', {
    nLayer: 2, nHead: 2, nEmbd: 32, blockSize: 16, tokenizer: 'char',
    batchSize: 4, steps: 50, lr: 3e-3, minLr: 3e-4, warmupSteps: 5, decaySteps: 200,
    weightDecay: 0.01, evalEvery: 25, evalBatches: 2, checkpointEvery: 25,
  }),
  preset('names', 'Character-level model of first names (makemore-sized): trains in a minute on a CPU.', {
    // One block and wider batches beat two blocks at equal cost over 300 steps on
    // names.txt (val 2.34 vs 2.38, measured 2026-11-30 with the validation pieces spread
    // over the sorted file); a bigram model reaches ~2.45.
    nLayer: 1, nHead: 4, nEmbd: 64, blockSize: 16, tokenizer: 'char',
    batchSize: 64, steps: 300, lr: 1e-2, minLr: 1e-3, warmupSteps: 20, decaySteps: 300,
    weightDecay: 0.01, beta2: 0.99, evalEvery: 50, evalBatches: 16, checkpointEvery: 100,
  }, [{ value: 2.45, label: 'bigram ~2.45' }]),
  preset('craft-1m', 'A 1M-parameter character model: 6 layers, 8 heads, 128 wide, 256 tokens of context; trains on consumer GPUs.', {
    nLayer: 6, nHead: 8, nEmbd: 128, blockSize: 256, tokenizer: 'char', dropout: 0.1,
    batchSize: 64, steps: 3000, lr: 2e-3, minLr: 2e-4, warmupSteps: 100, decaySteps: 3000,
    weightDecay: 0.1, beta2: 0.99, evalEvery: 100, evalBatches: 8, checkpointEvery: 250,
  }, [{ value: 1.4697, label: 'nanoGPT baby GPT 1.4697' }]),
  preset('char-shakespeare', "nanoGPT's baby GPT on characters: 6 layers, 6 heads, 384 wide, 256 tokens of context.", {
    // dropout 0.2 as nanoGPT's config: without it this model overfits 1 MB of text.
    nLayer: 6, nHead: 6, nEmbd: 384, blockSize: 256, tokenizer: 'char', dropout: 0.2,
    batchSize: 64, steps: 5000, lr: 1e-3, minLr: 1e-4, warmupSteps: 100, decaySteps: 5000,
    weightDecay: 0.1, beta2: 0.99, evalEvery: 250, evalBatches: 20, checkpointEvery: 500,
  }, [{ value: 1.4697, label: 'nanoGPT val 1.4697' }]),
  preset('bpe-small', 'A small word-piece model: byte-level BPE trained on your text, 4 layers.', {
    nLayer: 4, nHead: 4, nEmbd: 128, blockSize: 128, tokenizer: 'bpe', bpeVocab: 2048,
    batchSize: 16, steps: 2000, lr: 1e-3, minLr: 1e-4, warmupSteps: 100, decaySteps: 2000,
    evalEvery: 200, evalBatches: 10, checkpointEvery: 500,
  }),
  preset('gpt2-124m', 'GPT-2 small (124M parameters) with the GPT-2 tokenizer: a job for the kiln CLI on a big GPU.', {
    nLayer: 12, nHead: 12, nEmbd: 768, blockSize: 1024, tokenizer: 'gpt2', vocabSize: 50257,
    batchSize: 8, gradAccum: 8, steps: 5000, lr: 6e-4, minLr: 6e-5, warmupSteps: 700, decaySteps: 5000,
    weightDecay: 0.1, evalEvery: 250, evalBatches: 20, checkpointEvery: 500,
  }),
];

export const PRESET_NAMES: readonly string[] = PRESETS.map((p) => p.name);

export function findPreset(name: string): Preset | undefined {
  return PRESETS.find((p) => p.name === name);
}
