// Hugging Face GPT-2 interop: a Kiln model <-> a `transformers` GPT2LMHeadModel
// folder (model.safetensors + config.json).
//
// Export names tensors as GPT2LMHeadModel's own state dict does
// (`transformer.wte.weight`, `transformer.h.0.ln_1.weight`, ...) and leaves out
// `lm_head.weight`: that is what `save_pretrained` itself writes for tied weights
// (it drops the duplicate of a tied pair before saving), and `from_pretrained`
// loads it without missing or unexpected keys (lm_head.weight is a tied key;
// the `attn.bias` causal mask is a buffer it rebuilds). The metadata carries
// `format: "pt"`: transformers refuses a safetensors file whose metadata lacks it
// (some versions read `metadata.get("format")` without a None check).
//
// Import also accepts the names without the `transformer.` prefix, as the official
// `gpt2` checkpoints on the Hub store them (they were saved from GPT2Model), and
// skips the mask buffers and the tied `lm_head.weight`.
import { checkTensorBytes } from './budget.ts';
import { FIELD_BY_KEY } from './config.ts';
import { parseTokenizerJSON, tokenizerVocab } from './checkpoint.ts';
import { KilnError } from './errors.ts';
import { modelSpec, paramCount, paramViews, type ModelConfig } from './model-spec.ts';
import { decodeSafetensors, encodeSafetensors, type TensorIn } from './safetensors.ts';
import type { TokenizerJSON } from './tokenizers/tokenizer.ts';

export const KILN_TOKENIZER_FILE = 'kiln_tokenizer.json';
const GPT2_EOT = 50256;
const PREFIX = 'transformer.';

export interface HFExport {
  modelSafetensors: Uint8Array;
  configJson: string;
  /** Other files for the folder, by file name (kiln_tokenizer.json). */
  extraFiles: Record<string, string>;
}

export interface HFFiles {
  modelSafetensors: Uint8Array;
  configJson: string;
  /** The text of kiln_tokenizer.json when the folder has one. */
  kilnTokenizer?: string;
}

function fail(message: string, hint = 'export the model again, or check that the folder holds a GPT-2 model'): never {
  throw new KilnError('checkpoint', message, hint);
}

/** config.json for transformers' GPT2Config, with Kiln's fixed architecture choices spelled out. */
export function hfConfig(model: ModelConfig, tokenizer: TokenizerJSON): Record<string, unknown> {
  // Only the GPT-2 tokenizer has an end-of-text token; for char/BPE models there is none.
  const eot = tokenizer.kind === 'gpt2' ? GPT2_EOT : null;
  return {
    model_type: 'gpt2',
    architectures: ['GPT2LMHeadModel'],
    vocab_size: model.vocabSize,
    n_positions: model.blockSize,
    n_ctx: model.blockSize,
    n_embd: model.nEmbd,
    n_layer: model.nLayer,
    n_head: model.nHead,
    n_inner: null,
    activation_function: 'gelu_new',
    layer_norm_epsilon: 1e-5,
    initializer_range: 0.02,
    scale_attn_weights: true,
    scale_attn_by_inverse_layer_idx: false,
    reorder_and_upcast_attn: false,
    tie_word_embeddings: true,
    resid_pdrop: 0,
    embd_pdrop: 0,
    attn_pdrop: 0,
    bos_token_id: eot,
    eos_token_id: eot,
    use_cache: true,
    torch_dtype: 'float32',
  };
}

export function exportHF(model: ModelConfig, params: Float32Array, tokenizer: TokenizerJSON): HFExport {
  const spec = modelSpec(model);
  if (params.length !== spec.numParams)
    throw new Error(`exportHF: params has ${params.length} values, the model needs ${spec.numParams}`);
  const views = paramViews(spec, params);
  const tensors: TensorIn[] = spec.params.map((p) => ({ name: p.name, dtype: 'F32', shape: p.shape, data: views.get(p.name)! }));
  return {
    modelSafetensors: encodeSafetensors(tensors, { format: 'pt' }),
    configJson: JSON.stringify(hfConfig(model, tokenizer), null, 2) + '\n',
    extraFiles: { [KILN_TOKENIZER_FILE]: JSON.stringify(tokenizer) + '\n' },
  };
}

/** Buffers and tied weights that are in HF files but not parameters of their own. */
function ignored(name: string): boolean {
  return /^(transformer\.)?h\.\d+\.attn\.(bias|masked_bias)$/.test(name) || name === 'lm_head.weight';
}

function intField(cfg: Record<string, unknown>, key: string, kilnKey: string): number {
  const v = cfg[key];
  const f = FIELD_BY_KEY.get(kilnKey)!;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1 || v > f.max!)
    fail(`config.json ${key} must be a whole number from 1 to ${f.max}, not ${JSON.stringify(v)?.slice(0, 40)}`);
  return v;
}

/** The model shape from config.json, refusing GPT-2 variants Kiln does not compute. */
export function parseHFConfig(text: string): { model: ModelConfig; tied: boolean } {
  let cfg: unknown;
  try {
    cfg = JSON.parse(text);
  } catch {
    fail('config.json is not valid JSON');
  }
  if (typeof cfg !== 'object' || cfg === null || Array.isArray(cfg)) fail('config.json is not a JSON object');
  const c = cfg as Record<string, unknown>;
  if (c.model_type !== undefined && c.model_type !== 'gpt2')
    fail(`config.json describes a ${JSON.stringify(c.model_type).slice(0, 40)} model; Kiln imports GPT-2 (model_type "gpt2")`);
  const model: ModelConfig = {
    vocabSize: intField(c, 'vocab_size', 'vocabSize'),
    blockSize: intField(c, c.n_positions !== undefined ? 'n_positions' : 'n_ctx', 'blockSize'),
    nLayer: intField(c, 'n_layer', 'nLayer'),
    nHead: intField(c, 'n_head', 'nHead'),
    nEmbd: intField(c, 'n_embd', 'nEmbd'),
  };
  if (model.nEmbd % model.nHead !== 0) fail(`config.json n_embd ${model.nEmbd} is not divisible by n_head ${model.nHead}`);
  const unsupported = (what: string) => fail(`config.json asks for ${what}, which Kiln's GPT-2 does not implement`);
  const act = c.activation_function ?? 'gelu_new';
  // gelu_pytorch_tanh is the same tanh approximation, computed by PyTorch's kernel.
  if (act !== 'gelu_new' && act !== 'gelu_pytorch_tanh') unsupported(`activation ${JSON.stringify(act).slice(0, 40)}`);
  if (c.n_inner !== undefined && c.n_inner !== null && c.n_inner !== 4 * model.nEmbd) unsupported(`an MLP width n_inner ${c.n_inner}`);
  const eps = c.layer_norm_epsilon ?? 1e-5;
  if (eps !== 1e-5) unsupported(`layer_norm_epsilon ${eps} (Kiln uses 1e-5)`);
  if (c.scale_attn_by_inverse_layer_idx === true) unsupported('scale_attn_by_inverse_layer_idx');
  if (c.scale_attn_weights === false) unsupported('unscaled attention (scale_attn_weights false)');
  if (c.add_cross_attention === true) unsupported('cross-attention');
  return { model, tied: c.tie_word_embeddings !== false };
}

function parseKilnTokenizer(text: string): TokenizerJSON {
  let x: unknown;
  try {
    x = JSON.parse(text);
  } catch {
    fail(`${KILN_TOKENIZER_FILE} is not valid JSON`);
  }
  return parseTokenizerJSON(x, KILN_TOKENIZER_FILE);
}

export function importHF(files: HFFiles): { model: ModelConfig; params: Float32Array; tokenizer: TokenizerJSON } {
  const { model, tied } = parseHFConfig(files.configJson);
  if (!tied) fail('config.json has tie_word_embeddings false: Kiln models share the LM head with the token embedding', 'only GPT-2 models with tied embeddings can be imported');

  let tokenizer: TokenizerJSON;
  if (files.kilnTokenizer !== undefined) tokenizer = parseKilnTokenizer(files.kilnTokenizer);
  else if (model.vocabSize >= 50257 && model.vocabSize <= 50304) tokenizer = { kind: 'gpt2' }; // GPT-2's, or nanoGPT's padding to 50304
  else if (model.vocabSize > 50304)
    fail(
      `the folder has no ${KILN_TOKENIZER_FILE} and vocab_size ${model.vocabSize} is not GPT-2's (50257, or up to 50304 padded), so its tokenizer is unknown`,
      `copy the ${KILN_TOKENIZER_FILE} that Kiln exported with this model into the folder`,
    );
  else
    fail(
      `the folder has no ${KILN_TOKENIZER_FILE} and vocab_size ${model.vocabSize} is smaller than GPT-2's 50257, so its tokenizer is unknown`,
      `copy the ${KILN_TOKENIZER_FILE} that Kiln exported with this model into the folder`,
    );
  if (tokenizerVocab(tokenizer) > model.vocabSize)
    fail(`the tokenizer has ${tokenizerVocab(tokenizer)} tokens but vocab_size is only ${model.vocabSize}`);

  // Bound the allocation by what the file can hold (2 bytes a parameter at the least, in
  // F16) before reading it: a 100-byte config.json can name a model of hundreds of GiB.
  // (Small models go on to the tensor-by-tensor checks, whose messages say more.)
  if (4 * paramCount(model) > 64 * 1024 * 1024)
    checkTensorBytes(model, files.modelSafetensors.length, {
      model: "config.json's model", file: 'model.safetensors', counted: 'in all', bytesPerParam: 2,
      hint: 'the folder\'s config.json and model.safetensors do not belong together',
    });
  const spec = modelSpec(model);
  const { tensors } = decodeSafetensors(files.modelSafetensors, { skip: ignored });
  const params = new Float32Array(spec.numParams);
  const found = new Set<string>();
  for (const [fileName, t] of tensors) {
    const name = fileName.startsWith(PREFIX) ? fileName : PREFIX + fileName;
    const p = spec.byName.get(name);
    if (!p) fail(`model.safetensors has a tensor Kiln's GPT-2 does not have: ${JSON.stringify(fileName.slice(0, 80))}`);
    if (found.has(name)) fail(`model.safetensors holds ${name} twice (with and without the "transformer." prefix)`);
    if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i]))
      fail(`model.safetensors ${fileName} has shape [${t.shape}] but config.json implies [${p.shape}]`);
    params.set(t.data, p.offset);
    found.add(name);
  }
  const missing = spec.params.find((p) => !found.has(p.name));
  if (missing) fail(`model.safetensors is missing ${missing.name} (${spec.params.length - found.size} of ${spec.params.length} tensors absent)`);
  return { model, params, tokenizer };
}
