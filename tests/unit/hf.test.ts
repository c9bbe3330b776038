import { describe, expect, it } from 'vitest';
import { KilnError } from '../../src/core/errors.ts';
import { exportHF, importHF, KILN_TOKENIZER_FILE, type HFFiles } from '../../src/core/hf.ts';
import { initParams, modelSpec, paramViews, type ModelConfig } from '../../src/core/model-spec.ts';
import { Rng } from '../../src/core/rng.ts';
import { decodeSafetensors } from '../../src/core/safetensors.ts';
import type { TokenizerJSON } from '../../src/core/tokenizers/tokenizer.ts';
import { expectKilnError } from '../helpers/kiln-error.ts';

const MODEL: ModelConfig = { vocabSize: 7, blockSize: 4, nLayer: 2, nHead: 2, nEmbd: 8 };
const CHARS: TokenizerJSON = { kind: 'char', chars: ['a', 'b', 'c', 'd', 'e', ' ', '\n'] };

function bits(a: Float32Array): number[] {
  return Array.from(new Uint32Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength)));
}

function params(model: ModelConfig, seed = 3): Float32Array {
  const p = initParams(modelSpec(model), new Rng(seed));
  for (let i = 0; i < p.length; i++) p[i] += i * 1e-4; // no zero biases: every tensor distinct
  return p;
}

/** An independent safetensors writer for hand-made HF files (any dtype, raw bytes). */
function writeRaw(tensors: Array<{ name: string; dtype: string; shape: number[]; bytes: Uint8Array }>, metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  let off = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.bytes.length] };
    off += t.bytes.length;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + off);
  new DataView(out.buffer).setUint32(0, json.length, true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const t of tensors) {
    out.set(t.bytes, at);
    at += t.bytes.length;
  }
  return out;
}

const f32bytes = (a: Float32Array) => new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));

/** The layout of the official `gpt2` files: no `transformer.` prefix, mask buffers, sometimes lm_head. */
function officialStyle(model: ModelConfig, flat: Float32Array): Uint8Array {
  const spec = modelSpec(model);
  const views = paramViews(spec, flat);
  const T = model.blockSize;
  const list = spec.params.map((p) => ({ name: p.name.replace(/^transformer\./, ''), dtype: 'F32', shape: p.shape, bytes: f32bytes(views.get(p.name)!) }));
  for (let l = 0; l < model.nLayer; l++) {
    list.push({ name: `h.${l}.attn.bias`, dtype: 'F32', shape: [1, 1, T, T], bytes: new Uint8Array(4 * T * T) });
    list.push({ name: `h.${l}.attn.masked_bias`, dtype: 'BOOL', shape: [], bytes: new Uint8Array(1) });
  }
  list.push({ name: 'lm_head.weight', dtype: 'F32', shape: [model.vocabSize, model.nEmbd], bytes: f32bytes(views.get('transformer.wte.weight')!) });
  return writeRaw(list, { format: 'pt' });
}

function expectImportError(files: HFFiles, match: RegExp): KilnError {
  return expectKilnError(() => importHF(files), 'checkpoint', match);
}

describe('exportHF', () => {
  it('writes GPT2LMHeadModel names (transformer.*, no lm_head) with format=pt metadata', () => {
    const out = exportHF(MODEL, params(MODEL), CHARS);
    const { tensors, metadata } = decodeSafetensors(out.modelSafetensors);
    expect(metadata).toEqual({ format: 'pt' });
    const names = [...tensors.keys()];
    expect(names).toEqual(modelSpec(MODEL).params.map((p) => p.name));
    expect(names.every((n) => n.startsWith('transformer.'))).toBe(true);
    expect(names).not.toContain('lm_head.weight');
    expect(tensors.get('transformer.h.1.mlp.c_fc.weight')!.shape).toEqual([8, 32]);
    expect(out.extraFiles[KILN_TOKENIZER_FILE]).toBeDefined();
    expect(JSON.parse(out.extraFiles[KILN_TOKENIZER_FILE])).toEqual(CHARS);
  });

  it('writes a config.json that transformers reads as GPT-2', () => {
    const cfg = JSON.parse(exportHF(MODEL, params(MODEL), CHARS).configJson);
    expect(cfg).toMatchObject({
      model_type: 'gpt2',
      architectures: ['GPT2LMHeadModel'],
      vocab_size: 7,
      n_positions: 4,
      n_ctx: 4,
      n_embd: 8,
      n_layer: 2,
      n_head: 2,
      n_inner: null,
      activation_function: 'gelu_new',
      layer_norm_epsilon: 1e-5,
      tie_word_embeddings: true,
      resid_pdrop: 0,
      embd_pdrop: 0,
      attn_pdrop: 0,
      torch_dtype: 'float32',
      bos_token_id: null,
      eos_token_id: null,
    });
    const gpt2 = { ...MODEL, vocabSize: 50257 };
    const g = JSON.parse(exportHF(gpt2, new Float32Array(modelSpec(gpt2).numParams), { kind: 'gpt2' }).configJson);
    expect(g.bos_token_id).toBe(50256);
    expect(g.eos_token_id).toBe(50256);
  });
});

describe('importHF', () => {
  it('round-trips an export bit-exactly, tokenizer included', () => {
    const p = params(MODEL);
    const out = exportHF(MODEL, p, CHARS);
    const back = importHF({ modelSafetensors: out.modelSafetensors, configJson: out.configJson, kilnTokenizer: out.extraFiles[KILN_TOKENIZER_FILE] });
    expect(back.model).toEqual(MODEL);
    expect(back.tokenizer).toEqual(CHARS);
    expect(bits(back.params)).toEqual(bits(p));
  });

  it('reads the official layout: names without the prefix, mask buffers and a tied lm_head', () => {
    const p = params(MODEL, 9);
    const configJson = exportHF(MODEL, p, CHARS).configJson;
    const back = importHF({ modelSafetensors: officialStyle(MODEL, p), configJson, kilnTokenizer: JSON.stringify(CHARS) });
    expect(bits(back.params)).toEqual(bits(p));
  });

  it('assumes the GPT-2 tokenizer without kiln_tokenizer.json when the vocabulary is big enough', () => {
    const model = { ...MODEL, nLayer: 1, vocabSize: 50257 };
    const p = params(model);
    const out = exportHF(model, p, { kind: 'gpt2' });
    const back = importHF({ modelSafetensors: officialStyle(model, p), configJson: out.configJson });
    expect(back.tokenizer).toEqual({ kind: 'gpt2' });
    expect(bits(back.params)).toEqual(bits(p));
  });

  it('refuses a small vocabulary without kiln_tokenizer.json', () => {
    const out = exportHF(MODEL, params(MODEL), CHARS);
    const e = expectImportError({ modelSafetensors: out.modelSafetensors, configJson: out.configJson }, /no kiln_tokenizer\.json and vocab_size 7 is smaller than GPT-2's 50257/);
    expect(e.hint).toMatch(/kiln_tokenizer\.json/);
  });

  it('reads BF16 weights, converting to f32', () => {
    const p = params(MODEL);
    const u = new Uint32Array(p.buffer);
    for (let i = 0; i < u.length; i++) u[i] &= 0xffff0000; // exactly representable in bf16
    const spec = modelSpec(MODEL);
    const list = spec.params.map((q) => {
      const bytes = new Uint8Array(q.size * 2);
      const dv = new DataView(bytes.buffer);
      for (let i = 0; i < q.size; i++) dv.setUint16(2 * i, u[q.offset + i] >>> 16, true);
      return { name: q.name, dtype: 'BF16', shape: q.shape, bytes };
    });
    const back = importHF({ modelSafetensors: writeRaw(list, { format: 'pt' }), configJson: exportHF(MODEL, p, CHARS).configJson, kilnTokenizer: JSON.stringify(CHARS) });
    expect(bits(back.params)).toEqual(bits(p));
  });

  describe('bad input', () => {
    const p = params(MODEL);
    const out = exportHF(MODEL, p, CHARS);
    const files = (over: Partial<HFFiles>): HFFiles => ({ modelSafetensors: out.modelSafetensors, configJson: out.configJson, kilnTokenizer: JSON.stringify(CHARS), ...over });
    const cfg = (edit: Record<string, unknown>) => JSON.stringify({ ...JSON.parse(out.configJson), ...edit });

    it('checks every tensor shape against config.json', () => {
      expectImportError(files({ configJson: cfg({ n_embd: 16, n_head: 2 }) }), /transformer\.wte\.weight has shape \[7,8\] but config\.json implies \[7,16\]/);
      expectImportError(files({ configJson: cfg({ n_layer: 3 }) }), /missing transformer\.h\.2\.ln_1\.weight/);
      expectImportError(files({ configJson: cfg({ n_layer: 1 }) }), /tensor Kiln's GPT-2 does not have: "transformer\.h\.1\.ln_1\.weight"/);
    });

    it('refuses configs Kiln cannot compute', () => {
      expectImportError(files({ configJson: '{nope' }), /config\.json is not valid JSON/);
      expectImportError(files({ configJson: '[]' }), /not a JSON object/);
      expectImportError(files({ configJson: cfg({ model_type: 'llama' }) }), /"llama" model/);
      expectImportError(files({ configJson: cfg({ activation_function: 'relu' }) }), /activation "relu"/);
      expectImportError(files({ configJson: cfg({ tie_word_embeddings: false }) }), /tie_word_embeddings false/);
      expectImportError(files({ configJson: cfg({ n_head: 3 }) }), /n_embd 8 is not divisible by n_head 3/);
      expectImportError(files({ configJson: cfg({ n_layer: 1e9 }) }), /n_layer must be a whole number from 1 to 96/);
      expectImportError(files({ configJson: cfg({ vocab_size: '7' }) }), /vocab_size must be a whole number/);
      expectImportError(files({ configJson: cfg({ scale_attn_by_inverse_layer_idx: true }) }), /scale_attn_by_inverse_layer_idx/);
    });

    it('refuses broken tokenizers and files', () => {
      expectImportError(files({ kilnTokenizer: '{"kind":"wordpiece"}' }), /kiln_tokenizer\.json is not a Kiln tokenizer/);
      expectImportError(files({ kilnTokenizer: 'nope' }), /kiln_tokenizer\.json is not valid JSON/);
      expectImportError(files({ kilnTokenizer: JSON.stringify({ kind: 'char', chars: 'abcdefghij'.split('') }) }), /10 tokens but vocab_size is only 7/);
      expectImportError(files({ modelSafetensors: out.modelSafetensors.subarray(0, out.modelSafetensors.length - 8) }), /truncated/);
      // A model far bigger than its file is refused on the sizes, before anything is allocated.
      expectImportError(files({ configJson: cfg({ n_layer: 96, n_embd: 8192, n_head: 128 }), modelSafetensors: new Uint8Array(100) }), /config\.json's model needs [\d,]+ parameters \([\d.]+ GiB even in F16\) but model\.safetensors holds 100 B in all/);
      // Without a tokenizer file only GPT-2's vocabulary (or nanoGPT's padding of it) means GPT-2's tokenizer.
      expectImportError(files({ configJson: cfg({ vocab_size: 60000 }), kilnTokenizer: undefined }), /vocab_size 60000 is not GPT-2's/);
      const twice = writeRaw([
        { name: 'wte.weight', dtype: 'F32', shape: [7, 8], bytes: new Uint8Array(224) },
        { name: 'transformer.wte.weight', dtype: 'F32', shape: [7, 8], bytes: new Uint8Array(224) },
      ]);
      expectImportError(files({ modelSafetensors: twice }), /holds transformer\.wte\.weight twice/);
    });
  });
});
