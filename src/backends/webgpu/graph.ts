// The step graph: one optimizer step as one list of dispatches, recorded into ONE
// command encoder and ONE compute pass and submitted once (dispatch cost, not
// arithmetic, bounds small models: DESIGN.md "Notes on fast kernels"). For each
// micro-batch: forward (as src/reference/gpt.ts), the fused classifier with the
// gradient scale 1/(B*T*microBatches), backward in reverse accumulating into the
// parameter gradients; then the gradient norm, GPU-side clipping and AdamW over the
// decayed and the other range. Inputs, targets and the hyperparameters go up with
// queue.writeBuffer before the submit; the mean loss and the gradient norm come back
// with one small copy and one mapAsync after it. No per-kernel synchronisation.
//
// Dispatch lists (pipelines and bind groups) are built once per shape and reused.
import { dropoutKey, dropoutSites, SITE_EMBEDDING, siteAttention, siteAttnResidual, siteMlpResidual } from '../../core/dropout.ts';
import type { StepHyper, StepStats } from '../backend.ts';
import { recordPass, storageBuffer, type Bind, type Dispatch, type PipelineCache } from './kernel.ts';
import { adamw, adamwHyperBuffer, ADAMW_HYPER_BYTES, gradNorm } from './ops/adamw.ts';
import { attentionBackward, attentionForward } from './ops/attention.ts';
import { classifierForwardBackward, classifierLoss, classifierRowsPerChunk, lastLogits, meanLoss } from './ops/crossentropy.ts';
import { encoderBackward, encoderForward } from './ops/encoder.ts';
import { layernormBackward, layernormForward, layernormResidualForward } from './ops/layernorm.ts';
import { matmulBackward, matmulForward } from './ops/matmul.ts';
import { dropoutBackward, dropoutForward } from './ops/dropout.ts';
import { BIND_ALIGN, fill, slice } from './ops/util.ts';
import { BLOCK_ACTIVATIONS, bindingChunks, classifierChunkBytes, ioStrideBytes, type BlockActivation, type BufferPlan, type ParamLayout } from './plan.ts';

const MAP_READ = 0x01;
const COPY_DST = 0x08;
const MAP_MODE_READ = 0x01;

/** Byte offsets in the stats buffer: the mean loss and the gradient norm (each bindable, so 256 apart). */
const STATS_LOSS = 0;
const STATS_NORM = 256;
const STATS_BYTES = 512;

/** The four flat parameter-sized buffers, laid out by the plan's ParamLayout. */
export interface ParamBuffers {
  params: GPUBuffer;
  grads: GPUBuffer;
  m: GPUBuffer;
  v: GPUBuffer;
}

interface BlockWeights {
  ln1w: Bind; ln1b: Bind; qkvw: Bind; qkvb: Bind; attprojw: Bind; attprojb: Bind;
  ln2w: Bind; ln2b: Bind; fcw: Bind; fcb: Bind; fcprojw: Bind; fcprojb: Bind;
}

interface Weights {
  wte: Bind;
  wpe: Bind;
  blocks: BlockWeights[];
  lnfw: Bind;
  lnfb: Bind;
}

/** Every parameter (or gradient) of one flat buffer as a binding of its slice. */
function weights(buf: GPUBuffer, layout: ParamLayout, nLayer: number): Weights {
  const get = (name: string): GPUBufferBinding => {
    const s = layout.byName.get(name);
    if (!s) throw new Error(`buffer plan has no parameter ${name}`);
    return { buffer: buf, offset: s.offset * 4, size: s.size * 4 };
  };
  const blocks: BlockWeights[] = [];
  for (let l = 0; l < nLayer; l++) {
    const h = (n: string) => get(`transformer.h.${l}.${n}`);
    blocks.push({
      ln1w: h('ln_1.weight'), ln1b: h('ln_1.bias'), qkvw: h('attn.c_attn.weight'), qkvb: h('attn.c_attn.bias'),
      attprojw: h('attn.c_proj.weight'), attprojb: h('attn.c_proj.bias'), ln2w: h('ln_2.weight'), ln2b: h('ln_2.bias'),
      fcw: h('mlp.c_fc.weight'), fcb: h('mlp.c_fc.bias'), fcprojw: h('mlp.c_proj.weight'), fcprojb: h('mlp.c_proj.bias'),
    });
  }
  return { wte: get('transformer.wte.weight'), wpe: get('transformer.wpe.weight'), blocks, lnfw: get('transformer.ln_f.weight'), lnfb: get('transformer.ln_f.bias') };
}

/** The activation buffers of one plan, one GPUBuffer per tensor, allocated once. */
export class Workspace {
  private readonly buffers = new Map<string, GPUBuffer>();

  constructor(device: GPUDevice, readonly plan: BufferPlan) {
    for (const t of plan.tensors) this.buffers.set(t.name, storageBuffer(device, t.name, t.bytes));
  }

  get(name: string): GPUBuffer {
    const b = this.buffers.get(name);
    if (!b) throw new Error(`workspace has no tensor ${name}`);
    return b;
  }

  block(l: number): Record<BlockActivation, GPUBuffer> {
    const out = {} as Record<BlockActivation, GPUBuffer>;
    for (const n of BLOCK_ACTIVATIONS) out[n] = this.get(`h${l}.${n}`);
    return out;
  }

  destroy(): void {
    for (const b of this.buffers.values()) b.destroy();
    this.buffers.clear();
  }
}

/** What the dispatch builders read: the ops' cache, the plan, and the buffers. */
export interface GraphBuffers {
  k: PipelineCache;
  plan: BufferPlan;
  pb: ParamBuffers;
  ws: Workspace;
  /** Token ids: microBatches slices of ioStrideBytes(B,T) each. */
  inputs: GPUBuffer;
  targets: GPUBuffer;
  /** The mean loss at STATS_LOSS and the gradient norm at STATS_NORM. */
  stats: GPUBuffer;
  /** ADAMW_HYPER_BYTES, written before each step. */
  hyper: GPUBuffer;
  /** One u32: the row of ln_f's output whose logits sampling wants. */
  row: GPUBuffer;
  /** V floats: the sampled row's logits. */
  rowLogits: GPUBuffer;
  /** Dropout keys: one u32 per (micro-batch, site), each in its own 256-byte slot (dropKeyOffset), written before each step. */
  dropKeys: GPUBuffer;
}

/** Byte offset of the key of `site` in micro-batch mb (a binding needs a 256-byte aligned offset). */
export function dropKeyOffset(mb: number, site: number, sites: number): number {
  return (mb * sites + site) * BIND_ALIGN;
}

/** The step's dropout keys as dropKeys holds them (dropoutKey of the step's seed per micro-batch and site). */
export function dropKeyBytes(seed: number, microBatches: number, nLayer: number): Uint32Array<ArrayBuffer> {
  const sites = dropoutSites(nLayer);
  const out = new Uint32Array((microBatches * sites * BIND_ALIGN) / 4);
  for (let mb = 0; mb < microBatches; mb++) {
    for (let s = 0; s < sites; s++) out[dropKeyOffset(mb, s, sites) / 4] = dropoutKey(seed, mb, s);
  }
  return out;
}

/** Dropout in one micro-batch's training pass: probability p > 0 and the binding of each site's key. */
interface GraphDropout {
  p: number;
  key: (site: number) => Bind;
}

// Forward through ln_f for B sequences of T tokens whose ids are in `inputs` (B*T i32).
// With dropout (training), nanoGPT's dropout modules: on the embedding sum, on the
// attention probabilities (inside the attention kernels) and on each branch's output
// before the residual add that the next LayerNorm fuses.
function forward(g: GraphBuffers, inputs: Bind, B: number, T: number, drop: GraphDropout | null = null): Dispatch[] {
  const { k, ws, plan } = g;
  const { nLayer: L, nHead: NH, nEmbd: C } = plan.model;
  const BT = B * T;
  const w = weights(g.pb.params, plan.params, L);
  const projOut = ws.get('projOut');
  const dropped = (x: Bind, site: number): Dispatch[] => (drop ? dropoutForward(k, x, drop.key(site), BT * C, drop.p) : []);
  const d: Dispatch[] = [...encoderForward(k, ws.get('encoded'), inputs, w.wte, w.wpe, B, T, C), ...dropped(ws.get('encoded'), SITE_EMBEDDING)];
  // Each residual add is fused into the LayerNorm that reads it (ln_2 of its block, or
  // ln_1 of the next block / ln_f): residual3 of block l is written by the LayerNorm
  // that opens block l + 1.
  for (let l = 0; l < L; l++) {
    const p = w.blocks[l];
    const a = ws.block(l);
    const prev = l > 0 ? ws.block(l - 1) : null;
    const x = prev ? prev.residual3 : ws.get('encoded'); // the block's input
    d.push(
      ...(prev
        ? layernormResidualForward(k, a.ln1, a.ln1Mean, a.ln1Rstd, x, prev.residual2, projOut, p.ln1w, p.ln1b, BT, C)
        : layernormForward(k, a.ln1, a.ln1Mean, a.ln1Rstd, x, p.ln1w, p.ln1b, BT, C)),
      ...matmulForward(k, a.qkv, a.ln1, p.qkvw, p.qkvb, BT, C, 3 * C),
      ...attentionForward(k, a.atty, a.qkv, a.attSaved, B, T, C, NH, 'flash', drop ? { p: drop.p, key: drop.key(siteAttention(l)) } : undefined),
      ...matmulForward(k, projOut, a.atty, p.attprojw, p.attprojb, BT, C, C),
      ...dropped(projOut, siteAttnResidual(l)),
      ...layernormResidualForward(k, a.ln2, a.ln2Mean, a.ln2Rstd, a.residual2, x, projOut, p.ln2w, p.ln2b, BT, C),
      ...matmulForward(k, a.fch, a.ln2, p.fcw, p.fcb, BT, C, 4 * C),
      // The GELU happens inside c_proj's tile loads (shaders/gelu.wgsl): gelu(fch) is never stored.
      ...matmulForward(k, projOut, a.fch, p.fcprojw, p.fcprojb, BT, 4 * C, C, { geluInput: true }),
      ...dropped(projOut, siteMlpResidual(l)),
    );
  }
  const last = ws.block(L - 1);
  d.push(...layernormResidualForward(k, ws.get('lnf'), ws.get('lnfMean'), ws.get('lnfRstd'), last.residual3, last.residual2, projOut, w.lnfw, w.lnfb, BT, C));
  return d;
}

// Backward from d(ln_f output) (in dbtc, written by the classifier) down to the
// embeddings, accumulating into the gradient buffer. dresidual carries the residual
// stream's gradient: a residual add passes its gradient unchanged to both inputs, so each
// branch reads dresidual as its dout and each LayerNorm backward adds into it. Every
// other activation gradient (and dresidual's first value, from ln_f) is written fresh by
// the op that produces it (fresh: { accumulate: false }), so none needs a zero-fill.
// With dropout, a dropped tensor's gradient is dresidual through the forward's mask,
// written into a buffer that is free at that point (dbtc, or dqkv's first B*T*C floats
// before the attention backward writes it) and read by the branch in dresidual's place.
function backward(g: GraphBuffers, inputs: Bind, B: number, T: number, drop: GraphDropout | null = null): Dispatch[] {
  const { k, ws, plan } = g;
  const { nLayer: L, nHead: NH, nEmbd: C, vocabSize: V } = plan.model;
  const BT = B * T;
  const w = weights(g.pb.params, plan.params, L);
  const dw = weights(g.pb.grads, plan.params, L);
  const [dres, dbtc, dqkv, dfch, scratch] = ['dresidual', 'dbtc', 'dqkv', 'dfch', 'scratch'].map((n) => ws.get(n));
  const fresh = { accumulate: false };
  // [dispatches, what the branch reads as its output gradient]
  const through = (site: number, into: Bind): [Dispatch[], Bind] =>
    drop ? [dropoutBackward(k, into, dres, drop.key(site), BT * C, drop.p), into] : [[], dres];
  const xOf = (l: number) => (l > 0 ? ws.get(`h${l - 1}.residual3`) : ws.get('encoded'));
  const d: Dispatch[] = [
    ...layernormBackward(k, dres, dw.lnfw, dw.lnfb, dbtc, xOf(L), w.lnfw, ws.get('lnfMean'), ws.get('lnfRstd'), BT, C, scratch, fresh),
  ];
  for (let l = L - 1; l >= 0; l--) {
    const p = w.blocks[l];
    const gp = dw.blocks[l];
    const a = ws.block(l);
    const [mlpDrop, mlpDout] = through(siteMlpResidual(l), dbtc);
    const [attDrop, attDout] = through(siteAttnResidual(l), slice(dqkv, 0, BT * C * 4));
    d.push(
      // MLP: residual3 = residual2 + c_proj(gelu(c_fc(ln_2(residual2)))); c_proj's backward
      // goes through the GELU too, writing d(fch) (gelu.wgsl).
      ...mlpDrop,
      ...matmulBackward(k, dfch, gp.fcprojw, gp.fcprojb, mlpDout, a.fch, p.fcprojw, BT, 4 * C, C, scratch, { ...fresh, geluInput: true }),
      ...matmulBackward(k, dbtc, gp.fcw, gp.fcb, dfch, a.ln2, p.fcw, BT, C, 4 * C, scratch, fresh),
      ...layernormBackward(k, dres, gp.ln2w, gp.ln2b, dbtc, a.residual2, p.ln2w, a.ln2Mean, a.ln2Rstd, BT, C, scratch),
      // attention: residual2 = x + c_proj(attn(c_attn(ln_1(x))))
      ...attDrop,
      ...matmulBackward(k, dbtc, gp.attprojw, gp.attprojb, attDout, a.atty, p.attprojw, BT, C, C, scratch, fresh),
      ...attentionBackward(k, dqkv, dbtc, a.qkv, a.atty, a.attSaved, scratch, B, T, C, NH, 'flash',
        { ...fresh, ...(drop ? { dropout: { p: drop.p, key: drop.key(siteAttention(l)) } } : {}) }),
      ...matmulBackward(k, dbtc, gp.qkvw, gp.qkvb, dqkv, a.ln1, p.qkvw, BT, C, 3 * C, scratch, fresh),
      ...layernormBackward(k, dres, gp.ln1w, gp.ln1b, dbtc, xOf(l), p.ln1w, a.ln1Mean, a.ln1Rstd, BT, C, scratch),
    );
  }
  const [embDrop, embDout] = through(SITE_EMBEDDING, dbtc);
  d.push(...embDrop, ...encoderBackward(k, dw.wte, dw.wpe, embDout, inputs, B, T, C, V, scratch));
  return d;
}

function ioSlice(buf: GPUBuffer, mb: number, B: number, T: number): GPUBufferBinding {
  return slice(buf, mb * ioStrideBytes(B, T), B * T * 4);
}

const statsLoss = (g: GraphBuffers) => slice(g.stats, STATS_LOSS, 4);
const statsNorm = (g: GraphBuffers) => slice(g.stats, STATS_NORM, 4);

/**
 * One optimizer step over `microBatches` micro-batches of B sequences of T tokens, with
 * dropout p (0: none; the masks' keys come from dropKeys, written per step).
 */
export function stepDispatches(g: GraphBuffers, microBatches: number, B: number, T: number, dropout = 0): Dispatch[] {
  const { k, ws, plan, pb } = g;
  const { nEmbd: C, vocabSize: V } = plan.model;
  const BT = B * T;
  const layout = plan.params;
  const wte = weights(pb.params, layout, plan.model.nLayer).wte;
  const dwte = weights(pb.grads, layout, plan.model.nLayer).wte;
  const rows = classifierRowsPerChunk(BT, V, classifierChunkBytes(plan.limits));
  const scale = 1 / (BT * microBatches);
  const d: Dispatch[] = [];
  for (const c of bindingChunks({ offset: 0, size: layout.floats }, plan.limits.maxStorageBufferBindingSize, layout.alignFloats)) {
    d.push(...fill(k, slice(pb.grads, c.offset * 4, c.size * 4), c.size, 0));
  }
  for (let mb = 0; mb < microBatches; mb++) {
    const inputs = ioSlice(g.inputs, mb, B, T);
    const targets = ioSlice(g.targets, mb, B, T);
    const dlnf = ws.get('dbtc');
    const sites = dropoutSites(plan.model.nLayer);
    const drop: GraphDropout | null = dropout > 0 ? { p: dropout, key: (site) => slice(g.dropKeys, dropKeyOffset(mb, site, sites), 4) } : null;
    d.push(
      ...forward(g, inputs, B, T, drop),
      // dlnf is written fresh (no zero-fill); dwte accumulates onto the zeroed gradients.
      ...classifierForwardBackward(k, ws.get('losses'), dlnf, dwte, ws.get('lnf'), wte, targets, ws.get('logits'), BT, C, V, scale, rows, { accumulate: false }),
      ...meanLoss(k, statsLoss(g), ws.get('losses'), BT, scale, mb > 0),
      ...backward(g, inputs, B, T, drop),
    );
  }
  d.push(
    ...gradNorm(k, statsNorm(g), pb.grads, layout.floats, ws.get('scratch')),
    ...adamw(k, pb.params, pb.grads, pb.m, pb.v, g.hyper, statsNorm(g), { offset: layout.decay.offset, count: layout.decay.size }, true),
    ...adamw(k, pb.params, pb.grads, pb.m, pb.v, g.hyper, statsNorm(g), { offset: layout.noDecay.offset, count: layout.noDecay.size }, false),
  );
  return d;
}

/** The mean loss over `microBatches` micro-batches, without gradients. */
export function evalDispatches(g: GraphBuffers, microBatches: number, B: number, T: number): Dispatch[] {
  const { k, ws, plan, pb } = g;
  const { nEmbd: C, vocabSize: V } = plan.model;
  const BT = B * T;
  const wte = weights(pb.params, plan.params, plan.model.nLayer).wte;
  const rows = classifierRowsPerChunk(BT, V, classifierChunkBytes(plan.limits));
  const d: Dispatch[] = [];
  for (let mb = 0; mb < microBatches; mb++) {
    d.push(
      ...forward(g, ioSlice(g.inputs, mb, B, T), B, T),
      ...classifierLoss(k, ws.get('losses'), ws.get('lnf'), wte, ioSlice(g.targets, mb, B, T), ws.get('logits'), BT, C, V, rows),
      ...meanLoss(k, statsLoss(g), ws.get('losses'), BT, 1 / (BT * microBatches), mb > 0),
    );
  }
  return d;
}

/**
 * Logits for sampling: one sequence at T = blockSize with the context left-aligned and
 * padded (causal attention keeps the padding from reaching earlier positions), then the
 * logits of the row written into `row`. The same pipelines serve every context length.
 */
export function logitsDispatches(g: GraphBuffers): Dispatch[] {
  const { k, ws, plan, pb } = g;
  const T = plan.model.blockSize;
  const wte = weights(pb.params, plan.params, plan.model.nLayer).wte;
  return [
    ...forward(g, ioSlice(g.inputs, 0, 1, T), 1, T),
    ...lastLogits(k, g.rowLogits, ws.get('lnf'), wte, g.row, plan.model.nEmbd, plan.model.vocabSize),
  ];
}

/** Buffers a GraphBuffers needs beyond the plan's, sized for `microBatches` micro-batches. */
export function ioBuffers(device: GPUDevice, plan: BufferPlan, microBatches: number): Omit<GraphBuffers, 'k' | 'plan' | 'pb' | 'ws'> {
  const io = microBatches * ioStrideBytes(plan.B, plan.T);
  return {
    inputs: storageBuffer(device, 'inputs', io),
    targets: storageBuffer(device, 'targets', io),
    stats: storageBuffer(device, 'stats', STATS_BYTES),
    hyper: storageBuffer(device, 'adamw hyper', ADAMW_HYPER_BYTES),
    row: storageBuffer(device, 'logits row', 4),
    rowLogits: storageBuffer(device, 'row logits', plan.model.vocabSize * 4),
    dropKeys: storageBuffer(device, 'dropout keys', microBatches * dropoutSites(plan.model.nLayer) * BIND_ALIGN),
  };
}

/** Writes each micro-batch's token ids at its aligned slice (one writeBuffer for all). */
export function writeTokens(device: GPUDevice, buf: GPUBuffer, ids: Int32Array, microBatches: number, B: number, T: number): void {
  const stride = ioStrideBytes(B, T) / 4;
  const span = B * T;
  if (stride === span) {
    device.queue.writeBuffer(buf, 0, ids.buffer, ids.byteOffset, microBatches * span * 4);
    return;
  }
  const staged = new Int32Array(microBatches * stride);
  for (let mb = 0; mb < microBatches; mb++) staged.set(ids.subarray(mb * span, (mb + 1) * span), mb * stride);
  device.queue.writeBuffer(buf, 0, staged.buffer, 0, staged.byteLength);
}

/** A small MAP_READ buffer reused for every readback. */
export function readbackBuffer(device: GPUDevice, label: string, bytes: number): GPUBuffer {
  return device.createBuffer({ label, size: Math.ceil(bytes / 4) * 4, usage: MAP_READ | COPY_DST });
}

/** Records dispatches into a command encoder: recordPass (one compute pass), or PassTimer.record when profiling. */
export type Recorder = (encoder: GPUCommandEncoder, dispatches: readonly Dispatch[], label: string) => void;

/** Encodes `dispatches` (in one compute pass unless `record` says otherwise), then copies `bytes` from `src` into `readback`; one submit. */
export function submitGraph(
  device: GPUDevice, dispatches: readonly Dispatch[], label: string, src: GPUBuffer, readback: GPUBuffer, bytes: number, record: Recorder = recordPass,
): void {
  const enc = device.createCommandEncoder({ label });
  record(enc, dispatches, label);
  enc.copyBufferToBuffer(src, 0, readback, 0, bytes);
  device.queue.submit([enc.finish()]);
}

/** Maps `readback` and returns a copy of its first `floats` floats. */
export async function readFloats(readback: GPUBuffer, floats: number): Promise<Float32Array> {
  await readback.mapAsync(MAP_MODE_READ, 0, floats * 4);
  const out = new Float32Array(readback.getMappedRange(0, floats * 4).slice(0));
  readback.unmap();
  return out;
}

export const STATS_READ_BYTES = STATS_NORM + 4;

/** The loss and the gradient norm from a stats readback. */
export function statsOf(floats: Float32Array): StepStats {
  return { loss: floats[STATS_LOSS / 4], gradNorm: floats[STATS_NORM / 4] };
}

/** The hyperparameter buffer's bytes for optimizer step t (1-based). */
export function hyperBytes(hp: StepHyper, t: number): Float32Array<ArrayBuffer> {
  return adamwHyperBuffer({ ...hp, t });
}
