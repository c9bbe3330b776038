// The one table that describes a GPT-2 model (as llm.c's fill_in_parameter_sizes):
// every parameter's Hugging Face name, shape, offset in one flat f32 array, and
// whether AdamW decays it. Checkpoints, the HF exporter, the backends' buffer plans,
// the memory estimate and the parameter count all iterate this table.
import type { RunConfig } from './config.ts';
import type { Rng } from './rng.ts';

/** The resolved model shape (vocabSize is the actual number of embedding rows). */
export interface ModelConfig {
  vocabSize: number;
  blockSize: number;
  nLayer: number;
  nHead: number;
  nEmbd: number;
}

export type ParamRole = 'wte' | 'wpe' | 'ln_weight' | 'ln_bias' | 'weight' | 'proj_weight' | 'bias';

export interface ParamSpec {
  name: string;
  shape: number[];
  size: number;
  /** Offset in floats into the flat parameter array. */
  offset: number;
  role: ParamRole;
  /** nanoGPT decays every parameter with two or more dimensions (weights and embeddings). */
  decay: boolean;
  /** Block index, or -1 outside the blocks. */
  layer: number;
}

export interface ModelSpec {
  model: ModelConfig;
  params: ParamSpec[];
  byName: Map<string, ParamSpec>;
  numParams: number;
}

/** The model shape a run config gives once the tokenizer's vocabulary size is known. */
export function resolveModel(config: RunConfig, tokenizerVocab: number): ModelConfig {
  return {
    vocabSize: config.vocabSize > 0 ? Math.max(config.vocabSize, tokenizerVocab) : tokenizerVocab,
    blockSize: config.blockSize,
    nLayer: config.nLayer,
    nHead: config.nHead,
    nEmbd: config.nEmbd,
  };
}

/** The per-block parameters in GPT-2's order, with their shapes for width C. */
export function blockParams(C: number): Array<[string, number[], ParamRole]> {
  return [
    ['ln_1.weight', [C], 'ln_weight'],
    ['ln_1.bias', [C], 'ln_bias'],
    ['attn.c_attn.weight', [C, 3 * C], 'weight'],
    ['attn.c_attn.bias', [3 * C], 'bias'],
    ['attn.c_proj.weight', [C, C], 'proj_weight'],
    ['attn.c_proj.bias', [C], 'bias'],
    ['ln_2.weight', [C], 'ln_weight'],
    ['ln_2.bias', [C], 'ln_bias'],
    ['mlp.c_fc.weight', [C, 4 * C], 'weight'],
    ['mlp.c_fc.bias', [4 * C], 'bias'],
    ['mlp.c_proj.weight', [4 * C, C], 'proj_weight'],
    ['mlp.c_proj.bias', [C], 'bias'],
  ];
}

export function modelSpec(model: ModelConfig): ModelSpec {
  const { vocabSize: V, blockSize: T, nLayer: L, nEmbd: C } = model;
  const params: ParamSpec[] = [];
  let offset = 0;
  const add = (name: string, shape: number[], role: ParamRole, layer: number) => {
    const size = shape.reduce((a, b) => a * b, 1);
    params.push({ name, shape, size, offset, role, decay: shape.length >= 2, layer });
    offset += size;
  };
  add('transformer.wte.weight', [V, C], 'wte', -1);
  add('transformer.wpe.weight', [T, C], 'wpe', -1);
  for (let l = 0; l < L; l++) {
    for (const [n, shape, role] of blockParams(C)) add(`transformer.h.${l}.${n}`, shape, role, l);
  }
  add('transformer.ln_f.weight', [C], 'ln_weight', -1);
  add('transformer.ln_f.bias', [C], 'ln_bias', -1);
  return { model, params, byName: new Map(params.map((p) => [p.name, p])), numParams: offset };
}

/**
 * modelSpec(model).numParams from plain numbers: the table's per-block rows times nLayer,
 * without building a row per parameter (src/core/budget.ts sizes a crafted shape before
 * anything is built from it).
 */
export function paramCount(model: ModelConfig): number {
  const { vocabSize: V, blockSize: T, nLayer: L, nEmbd: C } = model;
  let perBlock = 0;
  for (const [, shape] of blockParams(C)) perBlock += shape.reduce((a, b) => a * b, 1);
  return V * C + T * C + L * perBlock + 2 * C; // wte, wpe, the blocks, ln_f
}

/** The views of each parameter inside one flat array laid out by the spec. */
export function paramViews(spec: ModelSpec, flat: Float32Array): Map<string, Float32Array> {
  const m = new Map<string, Float32Array>();
  for (const p of spec.params) m.set(p.name, flat.subarray(p.offset, p.offset + p.size));
  return m;
}

/**
 * GPT-2's initialisation (nanoGPT's _init_weights): N(0, 0.02) for weights and
 * embeddings, N(0, 0.02/sqrt(2L)) for the residual projections, LayerNorm 1/0, biases 0.
 */
export function initParams(spec: ModelSpec, rng: Rng): Float32Array {
  const flat = new Float32Array(spec.numParams);
  const projStd = 0.02 / Math.sqrt(2 * spec.model.nLayer);
  for (const p of spec.params) {
    const v = flat.subarray(p.offset, p.offset + p.size);
    switch (p.role) {
      case 'ln_weight':
        v.fill(1);
        break;
      case 'ln_bias':
      case 'bias':
        break;
      default: {
        const std = p.role === 'proj_weight' ? projStd : 0.02;
        for (let i = 0; i < v.length; i++) v[i] = rng.normal() * std;
      }
    }
  }
  return flat;
}

/**
 * Training FLOPs per token: 6 per weight multiply-add pass (forward 2, backward 4)
 * over the non-position parameters, plus attention's 12*L*C*T (PaLM appendix B, as
 * nanoGPT's estimate_mfu).
 */
export function flopsPerToken(model: ModelConfig): number {
  const spec = modelSpec(model);
  const nonPos = spec.numParams - model.blockSize * model.nEmbd;
  return 6 * nonPos + 12 * model.nLayer * model.nEmbd * model.blockSize;
}

/** Activations stored for the backward pass, in floats per micro-batch of B sequences (llm.c's list). */
export function activationFloats(model: ModelConfig, B: number): number {
  const { vocabSize: V, blockSize: T, nLayer: L, nHead: NH, nEmbd: C } = model;
  const BT = B * T;
  const perLayer =
    BT * C + // ln1
    2 * BT + // ln1 mean, rstd
    BT * 3 * C + // qkv
    BT * C + // attention output
    2 * B * NH * T * T + // pre-softmax and softmax scores
    BT * C + // residual after attention
    BT * C + // ln2
    2 * BT + // ln2 mean, rstd
    2 * BT * 4 * C + // fc and its GELU
    BT * C; // residual after MLP
  return BT * C /* embeddings */ + L * perLayer + BT * C + 2 * BT /* ln_f */ + 2 * BT * V /* logits, probs */ + BT;
}

export interface MemoryEstimate {
  params: number;
  grads: number;
  adam: number;
  activations: number;
  total: number;
  /** The largest single tensor in bytes: what a GPU binding must hold. */
  largestTensor: number;
}

/** Bytes a training run needs (f32 everywhere), for the warning before a run starts. */
export function memoryEstimate(model: ModelConfig, batchSize: number): MemoryEstimate {
  const spec = modelSpec(model);
  const p = spec.numParams * 4;
  const activations = activationFloats(model, batchSize) * 4;
  const largestParam = Math.max(...spec.params.map((x) => x.size)) * 4;
  const { blockSize: T, nHead: NH, vocabSize: V } = model;
  const largestAct = Math.max(batchSize * T * V, batchSize * NH * T * T, batchSize * T * 4 * model.nEmbd) * 4;
  return {
    params: p,
    grads: p,
    adam: 2 * p,
    activations,
    total: 4 * p + activations,
    largestTensor: Math.max(largestParam, largestAct),
  };
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n < 10 && i > 0 ? n.toFixed(1) : Math.round(n)} ${units[i]}`;
}
