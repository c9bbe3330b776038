// The reference GPT-2 (as llm.c's train_gpt2.c): forward and backward over one flat
// parameter array laid out by modelSpec(), in f32 by default or f64 for gradient tests.
// Pre-LN: x = wte[tok] + wpe[pos]; per block x += attn.c_proj(attn(ln_1(x))) and
// x += mlp.c_proj(gelu(mlp.c_fc(ln_2(x)))); logits = ln_f(x) @ wte^T. Dropout where
// nanoGPT has it (the embedding sum, the attention probabilities, each branch's output)
// when forward() is given one; masks are recomputed from their keys in backward().
import { dropoutKey, SITE_EMBEDDING, siteAttention, siteAttnResidual, siteMlpResidual } from '../core/dropout.ts';
import { KilnError } from '../core/errors.ts';
import { modelSpec, type ModelConfig, type ModelSpec } from '../core/model-spec.ts';
import { attentionBackward, attentionForward } from './attention.ts';
import type { Buf } from './buf.ts';
import { logitsBackward, logitsForward, softmaxCrossEntropyBackward, softmaxCrossEntropyForward } from './crossentropy.ts';
import { dropoutBackward, dropoutForward, type DropoutMask } from './dropout.ts';
import { encoderBackward, encoderForward } from './encoder.ts';
import { geluBackward, geluForward } from './gelu.ts';
import { layernormBackward, layernormForward } from './layernorm.ts';
import { matmulBackward, matmulForward } from './matmul.ts';
import { residualForward } from './residual.ts';

export type Dtype = 'f32' | 'f64';

/** Dropout for one training forward: probability p, the step's seed, which micro-batch. */
export interface GPTDropout {
  p: number;
  seed: number;
  microBatch: number;
}

export interface ReferenceGPTOptions {
  /** Sequences per forward the activations are first sized for; forward grows them for a larger B. */
  maxBatch?: number;
  /** 'f64' runs every op in double precision (for finite-difference tests). Default 'f32'. */
  dtype?: Dtype;
}

/** Views of one block's tensors (parameters or their gradients) inside a flat array. */
interface BlockTensors {
  ln1w: Buf; ln1b: Buf; qkvw: Buf; qkvb: Buf; attprojw: Buf; attprojb: Buf;
  ln2w: Buf; ln2b: Buf; fcw: Buf; fcb: Buf; fcprojw: Buf; fcprojb: Buf;
}

interface Tensors {
  wte: Buf;
  wpe: Buf;
  blocks: BlockTensors[];
  lnfw: Buf;
  lnfb: Buf;
}

/** What one block's forward pass saves for its backward pass (llm.c's ActivationTensors). */
interface BlockActs {
  ln1: Buf; ln1Mean: Buf; ln1Rstd: Buf; qkv: Buf; atty: Buf; preatt: Buf; att: Buf;
  residual2: Buf; ln2: Buf; ln2Mean: Buf; ln2Rstd: Buf; fch: Buf; fchGelu: Buf; residual3: Buf;
}

function views(spec: ModelSpec, flat: Buf): Tensors {
  const get = (name: string): Buf => {
    const p = spec.byName.get(name);
    if (!p) throw new Error(`model spec has no parameter ${name}`);
    return flat.subarray(p.offset, p.offset + p.size);
  };
  const blocks: BlockTensors[] = [];
  for (let l = 0; l < spec.model.nLayer; l++) {
    const h = (n: string) => get(`transformer.h.${l}.${n}`);
    blocks.push({
      ln1w: h('ln_1.weight'), ln1b: h('ln_1.bias'),
      qkvw: h('attn.c_attn.weight'), qkvb: h('attn.c_attn.bias'),
      attprojw: h('attn.c_proj.weight'), attprojb: h('attn.c_proj.bias'),
      ln2w: h('ln_2.weight'), ln2b: h('ln_2.bias'),
      fcw: h('mlp.c_fc.weight'), fcb: h('mlp.c_fc.bias'),
      fcprojw: h('mlp.c_proj.weight'), fcprojb: h('mlp.c_proj.bias'),
    });
  }
  return {
    wte: get('transformer.wte.weight'), wpe: get('transformer.wpe.weight'), blocks,
    lnfw: get('transformer.ln_f.weight'), lnfb: get('transformer.ln_f.bias'),
  };
}

export class ReferenceGPT {
  readonly model: ModelConfig;
  readonly spec: ModelSpec;
  readonly dtype: Dtype;
  /** Parameters in the spec's flat layout (a copy of the constructor's); update in place. */
  readonly params: Buf;
  /** Gradients in the same layout; backward() accumulates into them. */
  readonly grads: Buf;
  private readonly p: Tensors;
  private readonly g: Tensors;
  private maxBatch = 0;
  // Activations, sized for maxBatch * blockSize positions (see allocate()).
  private encoded!: Buf;
  private blocks!: BlockActs[];
  private lnf!: Buf;
  private lnfMean!: Buf;
  private lnfRstd!: Buf;
  private logits!: Buf;
  private probs!: Buf;
  private losses!: Buf;
  // Scratch for the backward pass, reused by every block.
  private dres!: Buf;
  private dln!: Buf;
  private datty!: Buf;
  private dqkv!: Buf;
  private dpreatt!: Buf;
  private datt!: Buf;
  private dfch!: Buf;
  private dfchGelu!: Buf;
  private dlogits!: Buf;
  private attproj!: Buf;
  private fcproj!: Buf;
  // The last forward pass that backward() differentiates.
  private last: { inputs: Int32Array; targets: Int32Array; B: number; T: number; dropout: GPTDropout | null } | null = null;

  constructor(model: ModelConfig, params: Float32Array | Float64Array, options: ReferenceGPTOptions = {}) {
    this.model = { ...model };
    this.spec = modelSpec(this.model);
    this.dtype = options.dtype ?? 'f32';
    if (this.model.nEmbd % this.model.nHead !== 0) {
      throw new KilnError('config', `nEmbd ${model.nEmbd} is not divisible by nHead ${model.nHead}`, 'choose nHead dividing nEmbd');
    }
    if (params.length !== this.spec.numParams) {
      throw new KilnError('checkpoint', `expected ${this.spec.numParams} parameters for this model, got ${params.length}`,
        'the checkpoint belongs to a different model config');
    }
    this.params = this.alloc(params.length);
    this.params.set(params);
    this.grads = this.alloc(params.length);
    this.p = views(this.spec, this.params);
    this.g = views(this.spec, this.grads);
    this.allocate(Math.max(1, options.maxBatch ?? 1));
  }

  private alloc(n: number): Buf {
    return this.dtype === 'f64' ? new Float64Array(n) : new Float32Array(n);
  }

  /** Sizes activations for B sequences of blockSize tokens (llm.c's fill_in_activation_sizes). */
  private allocate(B: number): void {
    const { blockSize: T, nLayer: L, nHead: NH, nEmbd: C, vocabSize: V } = this.model;
    const BT = B * T;
    const a = (n: number) => this.alloc(n);
    this.encoded = a(BT * C);
    this.blocks = [];
    for (let l = 0; l < L; l++) {
      this.blocks.push({
        ln1: a(BT * C), ln1Mean: a(BT), ln1Rstd: a(BT), qkv: a(BT * 3 * C), atty: a(BT * C),
        preatt: a(B * NH * T * T), att: a(B * NH * T * T), residual2: a(BT * C),
        ln2: a(BT * C), ln2Mean: a(BT), ln2Rstd: a(BT), fch: a(BT * 4 * C), fchGelu: a(BT * 4 * C),
        residual3: a(BT * C),
      });
    }
    this.lnf = a(BT * C);
    this.lnfMean = a(BT);
    this.lnfRstd = a(BT);
    this.logits = a(BT * V);
    this.probs = a(BT * V);
    this.losses = a(BT);
    this.dres = a(BT * C);
    this.dln = a(BT * C);
    this.datty = a(BT * C);
    this.dqkv = a(BT * 3 * C);
    this.dpreatt = a(B * NH * T * T);
    this.datt = a(B * NH * T * T);
    this.dfch = a(BT * 4 * C);
    this.dfchGelu = a(BT * 4 * C);
    this.dlogits = a(BT * V);
    this.attproj = a(BT * C);
    this.fcproj = a(BT * C);
    this.maxBatch = B;
    this.last = null;
  }

  /**
   * inputs and targets are (B,T) token ids (targets null: logits only). Returns the mean
   * cross-entropy over the B*T positions, or NaN without targets. With `dropout` (training
   * only; p > 0) nanoGPT's dropout modules are on.
   */
  forward(inputs: Int32Array, targets: Int32Array | null, B: number, T: number, dropout: GPTDropout | null = null): number {
    const { blockSize, nHead: NH, nEmbd: C, vocabSize: V } = this.model;
    if (!(T >= 1 && T <= blockSize) || !(B >= 1)) throw new RangeError(`forward: B=${B}, T=${T} (blockSize ${blockSize})`);
    const BT = B * T;
    checkTokens('inputs', inputs, BT, V);
    if (targets) checkTokens('targets', targets, BT, V);
    if (B > this.maxBatch) this.allocate(B);
    const p = this.p;
    const drop = dropout && dropout.p > 0 ? dropout : null;
    const mask = (site: number): DropoutMask | undefined => (drop ? maskOf(drop, site) : undefined);

    encoderForward(this.encoded, inputs, p.wte, p.wpe, B, T, C);
    if (drop) dropoutForward(this.encoded, this.encoded, BT * C, mask(SITE_EMBEDDING)!);
    let x = this.encoded;
    for (let l = 0; l < this.blocks.length; l++) {
      const w = p.blocks[l];
      const a = this.blocks[l];
      layernormForward(a.ln1, a.ln1Mean, a.ln1Rstd, x, w.ln1w, w.ln1b, BT, C);
      matmulForward(a.qkv, a.ln1, w.qkvw, w.qkvb, BT, C, 3 * C);
      attentionForward(a.atty, a.preatt, a.att, a.qkv, B, T, C, NH, mask(siteAttention(l)));
      matmulForward(this.attproj, a.atty, w.attprojw, w.attprojb, BT, C, C);
      if (drop) dropoutForward(this.attproj, this.attproj, BT * C, mask(siteAttnResidual(l))!);
      residualForward(a.residual2, x, this.attproj, BT * C);
      layernormForward(a.ln2, a.ln2Mean, a.ln2Rstd, a.residual2, w.ln2w, w.ln2b, BT, C);
      matmulForward(a.fch, a.ln2, w.fcw, w.fcb, BT, C, 4 * C);
      geluForward(a.fchGelu, a.fch, BT * 4 * C);
      matmulForward(this.fcproj, a.fchGelu, w.fcprojw, w.fcprojb, BT, 4 * C, C);
      if (drop) dropoutForward(this.fcproj, this.fcproj, BT * C, mask(siteMlpResidual(l))!);
      residualForward(a.residual3, a.residual2, this.fcproj, BT * C);
      x = a.residual3;
    }
    layernormForward(this.lnf, this.lnfMean, this.lnfRstd, x, p.lnfw, p.lnfb, BT, C);
    logitsForward(this.logits, this.lnf, p.wte, BT, C, V);
    if (!targets) {
      this.last = null;
      return NaN;
    }
    softmaxCrossEntropyForward(this.losses, this.probs, this.logits, targets, BT, V);
    let sum = 0;
    for (let i = 0; i < BT; i++) sum += this.losses[i];
    this.last = { inputs, targets, B, T, dropout: drop };
    return sum / BT;
  }

  /**
   * Backpropagates the last forward(with targets) and accumulates into grads. The loss
   * differentiated is lossScale * (mean loss of that forward): 1/microBatches makes the
   * micro-batches' gradients average.
   */
  backward(lossScale = 1): void {
    if (!this.last) throw new Error('backward() needs a forward() with targets first');
    const { inputs, targets, B, T, dropout: drop } = this.last;
    const { nHead: NH, nEmbd: C, vocabSize: V } = this.model;
    const BT = B * T;
    const p = this.p;
    const g = this.g;
    const zero = (buf: Buf, n: number) => buf.fill(0, 0, n);
    // The gradient that reaches a dropped tensor from the residual stream: dres itself, or
    // with dropout dres through the mask, in dln (free until the branch's next matmul).
    const throughDropout = (site: number): Buf => {
      if (!drop) return this.dres;
      zero(this.dln, BT * C);
      dropoutBackward(this.dln, this.dres, BT * C, maskOf(drop, site));
      return this.dln;
    };

    softmaxCrossEntropyBackward(this.dlogits, this.probs, targets, lossScale / BT, BT, V);
    zero(this.dln, BT * C);
    logitsBackward(this.dln, g.wte, this.dlogits, this.lnf, p.wte, BT, C, V);
    const L = this.blocks.length;
    // dres holds the gradient of the residual stream, walking down through the blocks.
    // A residual's backward passes its gradient unchanged to both inputs, so the stream
    // keeps accumulating into dres and each branch reads it as its dout (residualBackward
    // written out, without copies).
    zero(this.dres, BT * C);
    const xL = L > 0 ? this.blocks[L - 1].residual3 : this.encoded;
    layernormBackward(this.dres, g.lnfw, g.lnfb, this.dln, xL, p.lnfw, this.lnfMean, this.lnfRstd, BT, C);
    for (let l = L - 1; l >= 0; l--) {
      const w = p.blocks[l];
      const dw = g.blocks[l];
      const a = this.blocks[l];
      const x = l > 0 ? this.blocks[l - 1].residual3 : this.encoded;
      // MLP branch: residual3 = residual2 + c_proj(gelu(c_fc(ln_2(residual2))))
      zero(this.dfchGelu, BT * 4 * C);
      matmulBackward(this.dfchGelu, dw.fcprojw, dw.fcprojb, throughDropout(siteMlpResidual(l)), a.fchGelu, w.fcprojw, BT, 4 * C, C);
      zero(this.dfch, BT * 4 * C);
      geluBackward(this.dfch, a.fch, this.dfchGelu, BT * 4 * C);
      zero(this.dln, BT * C);
      matmulBackward(this.dln, dw.fcw, dw.fcb, this.dfch, a.ln2, w.fcw, BT, C, 4 * C);
      layernormBackward(this.dres, dw.ln2w, dw.ln2b, this.dln, a.residual2, w.ln2w, a.ln2Mean, a.ln2Rstd, BT, C);
      // attention branch: residual2 = x + c_proj(attn(c_attn(ln_1(x))))
      zero(this.datty, BT * C);
      matmulBackward(this.datty, dw.attprojw, dw.attprojb, throughDropout(siteAttnResidual(l)), a.atty, w.attprojw, BT, C, C);
      zero(this.dqkv, BT * 3 * C);
      zero(this.dpreatt, B * NH * T * T);
      zero(this.datt, B * NH * T * T);
      attentionBackward(this.dqkv, this.dpreatt, this.datt, this.datty, a.qkv, a.att, B, T, C, NH,
        drop ? maskOf(drop, siteAttention(l)) : undefined);
      zero(this.dln, BT * C);
      matmulBackward(this.dln, dw.qkvw, dw.qkvb, this.dqkv, a.ln1, w.qkvw, BT, C, 3 * C);
      layernormBackward(this.dres, dw.ln1w, dw.ln1b, this.dln, x, w.ln1w, a.ln1Mean, a.ln1Rstd, BT, C);
    }
    encoderBackward(g.wte, g.wpe, throughDropout(SITE_EMBEDDING), inputs, B, T, C);
  }

  zeroGrad(): void {
    this.grads.fill(0);
  }

  /** Logits (V) at the last position of `context` (1..blockSize tokens), for sampling. */
  lastLogits(context: Int32Array): Float32Array {
    const T = context.length;
    if (T < 1 || T > this.model.blockSize) {
      throw new RangeError(`lastLogits: context of ${T} tokens; it must hold 1..${this.model.blockSize}`);
    }
    this.forward(context, null, 1, T);
    const V = this.model.vocabSize;
    return Float32Array.from(this.logits.subarray((T - 1) * V, T * V));
  }
}

function maskOf(d: GPTDropout, site: number): DropoutMask {
  return { p: d.p, key: dropoutKey(d.seed, d.microBatch, site) };
}

function checkTokens(what: string, ids: Int32Array, n: number, V: number): void {
  if (ids.length < n) throw new RangeError(`${what}: ${ids.length} token ids for ${n} positions`);
  for (let i = 0; i < n; i++) {
    const t = ids[i];
    if (!(t >= 0 && t < V)) {
      throw new KilnError('data', `${what}[${i}] is token ${t}, outside the vocabulary of ${V}`,
        'the data was tokenized with a different tokenizer than the model was built for');
    }
  }
}
