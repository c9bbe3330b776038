// Fine-tuning: a new run that starts from a trained model's weights (a Kiln checkpoint,
// or GPT-2 imported from Hugging Face) instead of a random initialisation, as nanoGPT's
// init_from. The checkpoint fixes the model's shape and tokenizer; the run's config
// gives everything else (learning rate, steps, batch, seed), and a shorter context
// crops the position embeddings (nanoGPT's crop_block_size). The optimizer starts
// afresh at step 0. The CLI's --init and the lab both start fine-tunes through here.
import type { TrainState } from '../backends/backend.ts';
import type { CheckpointData } from '../core/checkpoint.ts';
import { validate, type FieldKey, type RunConfig } from '../core/config.ts';
import { KilnError } from '../core/errors.ts';
import { modelSpec, paramViews, type ModelConfig } from '../core/model-spec.ts';

export interface FineTuneStart {
  /** The run's config with the checkpoint's model shape and tokenizer. */
  config: RunConfig;
  model: ModelConfig;
  /** The checkpoint's weights (position embeddings cropped to the run's context); no moments, step 0. */
  state: TrainState;
  /** What the checkpoint decided against the config, for the user to read. */
  notes: string[];
}

/** The fields a checkpoint decides: they describe the weights it holds. */
const SHAPE_KEYS = ['nLayer', 'nHead', 'nEmbd', 'vocabSize', 'tokenizer', 'bpeVocab'] as const;

/**
 * The start of a fine-tune of `ckpt` with `config`. `explicit` names the fields the user
 * set one by one (--set): asking for another shape than the checkpoint's is an error,
 * while a preset's or a link's shape simply gives way to the checkpoint's.
 */
export function fineTuneStart(ckpt: CheckpointData, config: RunConfig, explicit: ReadonlySet<FieldKey> = new Set()): FineTuneStart {
  const from = ckpt.model;
  const saved: Pick<RunConfig, (typeof SHAPE_KEYS)[number]> = {
    nLayer: from.nLayer,
    nHead: from.nHead,
    nEmbd: from.nEmbd,
    vocabSize: from.vocabSize,
    tokenizer: ckpt.tokenizer.kind,
    bpeVocab: ckpt.config.bpeVocab,
  };
  const notes: string[] = [];
  const replaced: string[] = [];
  for (const key of SHAPE_KEYS) {
    // vocabSize 0 means "the tokenizer's size", which is what the checkpoint holds.
    const same = config[key] === saved[key] || (key === 'vocabSize' && config.vocabSize === 0) || (key === 'bpeVocab' && saved.tokenizer !== 'bpe');
    if (same) continue;
    if (explicit.has(key)) {
      throw new KilnError('config', `--set ${key}=${String(config[key])}: the checkpoint to fine-tune has ${key} ${String(saved[key])}`,
        `a fine-tune keeps the model's shape and tokenizer: drop --set ${key}, or train a new model without --init`);
    }
    replaced.push(`${key} ${String(saved[key])} (not ${String(config[key])})`);
  }
  if (replaced.length) notes.push(`the model's shape comes from the checkpoint: ${replaced.join(', ')}`);

  let blockSize = config.blockSize;
  if (blockSize > from.blockSize) {
    if (explicit.has('blockSize')) {
      throw new KilnError('config', `--set blockSize=${blockSize}: the checkpoint to fine-tune has only ${from.blockSize} positions`,
        `set blockSize to at most ${from.blockSize}`);
    }
    notes.push(`blockSize ${from.blockSize} (the checkpoint's positions; the config asked for ${blockSize})`);
    blockSize = from.blockSize;
  } else if (blockSize < from.blockSize) {
    notes.push(`context cropped to ${blockSize} of the checkpoint's ${from.blockSize} positions`);
  }

  const out: RunConfig = { ...config, ...saved, blockSize };
  const issues = validate(out);
  if (issues.length) {
    throw new KilnError('config', `the fine-tune's config is invalid: ${issues.map((i) => i.message).join('; ')}`, 'fix the settings named above');
  }
  const model: ModelConfig = { ...from, blockSize };
  return { config: out, model, state: { params: cropPositions(from, ckpt.state.params, model), m: null, v: null, step: 0 }, notes };
}

/** The parameters of `from` laid out for `to`, which differs at most in fewer positions: wpe keeps its first rows. */
function cropPositions(from: ModelConfig, params: Float32Array, to: ModelConfig): Float32Array {
  const src = paramViews(modelSpec(from), params);
  const spec = modelSpec(to);
  const flat = new Float32Array(spec.numParams);
  for (const p of spec.params) {
    const s = src.get(p.name);
    if (!s) throw new Error(`fineTuneStart: ${p.name} missing from the checkpoint's layout`);
    flat.set(s.subarray(0, p.size), p.offset);
  }
  return flat;
}
