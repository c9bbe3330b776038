// What an input may cost, decided before anything is allocated (issue 19). One place for
// the bounds the CLI, the lab (configFit) and `kiln serve` share, so their numbers and
// words agree:
//
//   checkModelCost / assertModelFits  a model's parameters and training memory against a
//                                     Budget: this machine's memory in Node, the adapter's
//                                     limits and a tab's share in the browser
//   checkTensorBytes                  a file must hold the parameters' bytes before its
//                                     tensors are gathered (checkpoints, HF imports)
//   checkBpeMerges                    BPE token lengths summed as numbers, capped before
//                                     the tables are built (re-exported from the tokenizer)
//
// Sizes are plain-number arithmetic over the model table's shapes: a crafted shape
// (vocabSize 2^52, 96 layers of width 8192) is sized and refused, never built.
import { KilnError } from './errors.ts';
import { activationFloats, paramCount, type ModelConfig } from './model-spec.ts';

export { BPE_MAX_TABLE_BYTES, BPE_MAX_TOKEN_BYTES, checkBpeMerges } from './tokenizers/bpe.ts';

/** Browsers rarely give one tab more memory than this (WebGPU cannot say how much there is). */
export const BROWSER_MEMORY_BUDGET = 4 * 1024 ** 3;

/** A suggestion must fit in this share of the budget: the rest is for everything else. */
const SUGGESTION_ROOM = 0.8;

/** What a run may use. */
export interface Budget {
  /** Bytes a training run may take in all. */
  memoryBytes: number;
  /** The largest tensor one binding may hold (WebGPU's maxStorageBufferBindingSize); unchecked when absent. */
  maxBinding?: number;
  /** The largest single buffer (WebGPU's maxBufferSize; the parameters are one buffer); unchecked when absent. */
  maxBuffer?: number;
  /** memoryBytes as a phrase: "the 12.3 GiB free on this machine (31.0 GiB in all)", "the 4.0 GiB a browser tab can count on". */
  where: string;
  /** What the memory is called in a message: "memory", "GPU memory", "memory on the cpu backend". */
  memoryName: string;
}

/** This machine's memory (Node passes os.totalmem() and os.freemem(), within a container's limit). */
export function nodeBudget(totalmem: number, freemem?: number): Budget {
  if (freemem === undefined) return { memoryBytes: totalmem, where: `this machine's ${formatSize(totalmem)}`, memoryName: 'memory' };
  const free = Math.min(freemem, totalmem);
  return { memoryBytes: free, where: `the ${formatSize(free)} free on this machine (${formatSize(totalmem)} in all)`, memoryName: 'memory' };
}

/** The limits an adapter reports that a plan must respect (any record with these names; GPUSupportedLimits is one). */
export interface AdapterLimits {
  maxStorageBufferBindingSize?: number;
  maxBufferSize?: number;
}

/**
 * A browser tab: WebGPU's adapter limits for single tensors and buffers, and a share of
 * memory it can count on (WebGPU cannot say how much there is). Limits null: the CPU
 * backend in the tab, bounded by memory alone.
 */
export function adapterBudget(limits: AdapterLimits | null, browserCap = BROWSER_MEMORY_BUDGET): Budget {
  const b: Budget = { memoryBytes: browserCap, where: `the ${formatSize(browserCap)} a browser tab can count on`, memoryName: limits ? 'GPU memory' : 'memory' };
  if (limits?.maxStorageBufferBindingSize) b.maxBinding = limits.maxStorageBufferBindingSize;
  if (limits?.maxBufferSize) b.maxBuffer = limits.maxBufferSize;
  return b;
}

/** One limit a run breaks. */
export interface CostProblem {
  /** The WebGPU limit's name, 'memory' for the whole run, or the backend's own (e.g. 'head size'). */
  limit: string;
  /** A sentence: what needs how much, against what is allowed. */
  message: string;
}

/** What a backend allocates for a model at a batch size. */
export interface MemoryPlan {
  /** Bytes in all. */
  total: number;
  /** The largest tensor one binding holds, and its name (the CPU reference's estimate when absent). */
  largest?: number;
  largestName?: string;
  /** Limits the backend's own plan breaks (the WebGPU plan's per-tensor and head-size checks). */
  problems?: CostProblem[];
}

/** A backend's plan at any shape: suggestions are sized by the same numbers as the run. */
export type Planner = (model: ModelConfig, batchSize: number) => MemoryPlan;

/** A smaller run that fits: the batch lowered first, then the width, then the depth. */
export interface Suggestion {
  nLayer: number;
  nHead: number;
  nEmbd: number;
  batchSize: number;
  memoryBytes: number;
}

export interface ModelCost {
  fits: boolean;
  problems: CostProblem[];
  numParams: number;
  /** Bytes training allocates (the backend's plan, or the CPU reference's estimate). */
  memoryBytes: number;
  largest: number;
  largestName: string;
  /** When the run does not fit: the nearest smaller one that does, or null if none does. */
  suggestion: Suggestion | null;
}

export interface CostOptions {
  /** The model's shape cannot change (a resumed run, a fine-tune): suggest only a batch. */
  fixedShape?: boolean;
}

/** The largest single tensor of the CPU reference's estimate, by name (memoryEstimate's largestTensor). */
function largestTensor(model: ModelConfig, B: number): { bytes: number; name: string } {
  const { vocabSize: V, blockSize: T, nLayer: L, nHead: NH, nEmbd: C } = model;
  const candidates: Array<[number, string]> = [
    [V * C, 'transformer.wte.weight'],
    [T * C, 'transformer.wpe.weight'],
    [L > 0 ? 4 * C * C : 0, 'transformer.h.0.mlp.c_fc.weight'],
    [B * T * V, 'logits (B×T×V)'],
    [B * NH * T * T, 'attention scores (B×NH×T×T)'],
    [B * T * 4 * C, 'MLP activations (B×T×4C)'],
  ];
  let best = candidates[0];
  for (const c of candidates) if (c[0] > best[0]) best = c;
  return { bytes: best[0] * 4, name: best[1] };
}

/**
 * The CPU reference's estimate as a plan: parameters, gradients and AdamW's two moments
 * (f32), plus the activations kept for the backward pass. Equal to memoryEstimate().total,
 * from plain numbers.
 */
export const estimatePlan: Planner = (model, batchSize) => {
  const big = largestTensor(model, batchSize);
  return { total: 16 * paramCount(model) + 4 * activationFloats(model, batchSize), largest: big.bytes, largestName: big.name };
};

/** A plan whose largest tensor is known. */
type SizedPlan = MemoryPlan & { largest: number; largestName: string };

/** The plan's problems and the budget's, without saying one limit twice. */
function problemsOf(model: ModelConfig, plan: SizedPlan, budget: Budget): CostProblem[] {
  const problems = [...(plan.problems ?? [])];
  const said = (limit: string) => problems.some((p) => p.limit === limit);
  if (budget.maxBinding !== undefined && plan.largest > budget.maxBinding && !said('maxStorageBufferBindingSize')) {
    problems.push({
      limit: 'maxStorageBufferBindingSize',
      message: `the ${plan.largestName} tensor needs ${formatSize(plan.largest)}, ${formatSize(plan.largest - budget.maxBinding)} more than this GPU's maxStorageBufferBindingSize of ${formatSize(budget.maxBinding)}`,
    });
  }
  const paramBytes = 4 * paramCount(model);
  if (budget.maxBuffer !== undefined && paramBytes > budget.maxBuffer && !said('maxBufferSize')) {
    problems.push({
      limit: 'maxBufferSize',
      message: `the parameters need ${formatSize(paramBytes)} in one buffer, ${formatSize(paramBytes - budget.maxBuffer)} more than this GPU's maxBufferSize of ${formatSize(budget.maxBuffer)}`,
    });
  }
  return problems;
}

function withLargest(plan: MemoryPlan, model: ModelConfig, B: number): SizedPlan {
  if (plan.largest !== undefined && plan.largestName !== undefined) return { ...plan, largest: plan.largest, largestName: plan.largestName };
  const big = largestTensor(model, B);
  return { ...plan, largest: big.bytes, largestName: big.name };
}

/** The narrowest width a suggestion goes down to. */
const MIN_WIDTH = 16;

/**
 * The shapes a suggestion tries, largest first: [nLayer, nEmbd] as given, then the width
 * and the depth halved in turn (width first), so both shrink together, down to one layer
 * of width MIN_WIDTH.
 */
function smallerShapes(nLayer: number, nEmbd: number): Array<[number, number]> {
  const out: Array<[number, number]> = [[nLayer, nEmbd]];
  let [L, C] = [nLayer, nEmbd];
  for (let k = 0; ; k++) {
    const narrower = Math.floor(C / 2) >= MIN_WIDTH;
    if (narrower && (k % 2 === 0 || L === 1)) C = Math.floor(C / 2);
    else if (L > 1) L = Math.floor(L / 2);
    else break;
    out.push([L, C]);
  }
  return out;
}

/** The most heads, up to nHead, that divide width C. */
function headsFor(C: number, nHead: number): number {
  for (let h = Math.min(nHead, C); h > 1; h--) if (C % h === 0) return h;
  return 1;
}

/**
 * The nearest smaller run that fits in SUGGESTION_ROOM of the budget: for each shape of
 * smallerShapes (the width and the depth halved in turn), the largest divisor of the
 * batch that fits (a divisor, so gradAccum can keep the sequences per step). The batch
 * is lowered first, then the shape; deterministic.
 */
function suggest(model: ModelConfig, B: number, budget: Budget, planner: Planner, opts: CostOptions): { s: Suggestion | null; least: string } {
  const room = SUGGESTION_ROOM * budget.memoryBytes;
  const fitsAt = (m: ModelConfig, b: number): number | null => {
    const plan = withLargest(planner(m, b), m, b);
    return plan.total <= room && problemsOf(m, plan, budget).length === 0 ? plan.total : null;
  };
  const shapes = opts.fixedShape ? [[model.nLayer, model.nEmbd] as [number, number]] : smallerShapes(model.nLayer, model.nEmbd);
  const shape = ([L, C]: [number, number]): ModelConfig => ({ ...model, nLayer: L, nEmbd: C, nHead: C === model.nEmbd ? model.nHead : headsFor(C, model.nHead) });
  // Nothing fits if the smallest does not: said with its size, and the search skipped.
  const least = shape(shapes[shapes.length - 1]);
  if (fitsAt(least, 1) === null) {
    const what = opts.fixedShape ? 'batch 1' : `nLayer ${least.nLayer} × nEmbd ${least.nEmbd} at batch 1`;
    return { s: null, least: `even ${what} needs ${formatSize(planner(least, 1).total)}` };
  }
  const batches: number[] = [];
  for (let b = B; b >= 1; b--) if (B % b === 0) batches.push(b);
  for (const LC of shapes) {
    const m = shape(LC);
    if (fitsAt(m, 1) === null) continue; // a larger batch needs more
    for (const b of batches) {
      const total = fitsAt(m, b);
      if (total !== null) return { s: { nLayer: m.nLayer, nHead: m.nHead, nEmbd: m.nEmbd, batchSize: b, memoryBytes: total }, least: '' };
    }
  }
  return { s: null, least: '' };
}

/** How a suggestion reads: "batch 2 fits (~3.1 GiB)", "nLayer 6 × nEmbd 2048 at batch 8 fits (~15.0 GiB)". */
function suggestionText(model: ModelConfig, s: Suggestion): string {
  const size = `(~${formatSize(s.memoryBytes)})`;
  if (s.nLayer === model.nLayer && s.nEmbd === model.nEmbd) return `batch ${s.batchSize} fits ${size}`;
  const heads = s.nHead !== model.nHead ? ` (nHead ${s.nHead})` : '';
  return `nLayer ${s.nLayer} × nEmbd ${s.nEmbd}${heads} at batch ${s.batchSize} fits ${size}`;
}

/**
 * Whether training `model` at `batchSize` fits `budget`: the parameter count, the bytes
 * the backend's plan allocates (the CPU reference's estimate without a planner), every
 * limit broken with how big and by how much, and the nearest smaller run that fits.
 * With the default planner, plain numbers throughout: nothing is allocated for the model.
 */
export function checkModelCost(model: ModelConfig, batchSize: number, budget: Budget, planner: Planner = estimatePlan, opts: CostOptions = {}): ModelCost {
  const numParams = paramCount(model);
  const plan = withLargest(planner(model, batchSize), model, batchSize);
  const problems = problemsOf(model, plan, budget);
  const overMemory = plan.total > budget.memoryBytes;
  const cost: ModelCost = { fits: true, problems, numParams, memoryBytes: plan.total, largest: plan.largest, largestName: plan.largestName, suggestion: null };
  if (!overMemory && problems.length === 0) return cost;
  cost.fits = false;
  const { s, least } = suggest(model, batchSize, budget, planner, opts);
  cost.suggestion = s;
  if (overMemory) {
    problems.push({
      limit: 'memory',
      message: `training needs ${formatSize(plan.total)} of ${budget.memoryName}, ${formatSize(plan.total - budget.memoryBytes)} more than ${budget.where}, ` +
        `for ${formatCount(numParams)} parameters at batch ${batchSize}; ${s ? suggestionText(model, s) : least}`,
    });
  }
  return cost;
}

/** checkModelCost, throwing KilnError('config') with every problem in one line when the run does not fit. */
export function assertModelFits(model: ModelConfig, batchSize: number, budget: Budget, planner: Planner = estimatePlan, opts: CostOptions = {}): ModelCost {
  const cost = checkModelCost(model, batchSize, budget, planner, opts);
  if (cost.fits) return cost;
  const s = cost.suggestion;
  const hint = opts.fixedShape
    ? s ? `lower batchSize to ${s.batchSize}, or use a machine with more memory` : 'use a machine with more memory'
    : !s ? 'lower vocabSize or blockSize, or use a machine with more memory'
    // The memory problem's message already says what fits.
    : cost.problems.some((p) => p.limit === 'memory') ? 'lower nLayer, nEmbd or batchSize' : `lower nLayer, nEmbd or batchSize: ${suggestionText(model, s)}`;
  throw new KilnError('config', cost.problems.map((p) => p.message).join('; '), hint);
}

/** Where a model's tensors come from, for checkTensorBytes' message. */
export interface TensorSource {
  /** Who names the model: "checkpoint's model", "config.json's model". */
  model: string;
  /** What holds the tensors: "the file", "model.safetensors". */
  file: string;
  /** What availableBytes counts: "of tensors" (the default: the data section), "in all" (the whole file). */
  counted?: string;
  /** The fewest bytes a parameter can be stored in: 4 (F32 only, the default) or 2 (F16 too). */
  bytesPerParam?: number;
  hint: string;
}

/**
 * Before gathering tensors: a file must hold at least the parameters' bytes. Refuses a
 * few bytes of metadata that name a huge model (KilnError('checkpoint')); returns the
 * parameter count.
 */
export function checkTensorBytes(model: ModelConfig, availableBytes: number, what: TensorSource): number {
  const numParams = paramCount(model);
  const per = what.bytesPerParam ?? 4;
  if (numParams * per > availableBytes) {
    const size = per === 4 ? formatSize(numParams * per) : `${formatSize(numParams * per)} even in ${per === 2 ? 'F16' : `${per}-byte values`}`;
    throw new KilnError('checkpoint',
      `${what.model} needs ${numParams.toLocaleString('en-US')} parameters (${size}) but ${what.file} holds ${formatSize(availableBytes)} ${what.counted ?? 'of tensors'}`,
      what.hint);
  }
  return numParams;
}

/** Bytes with one decimal in binary units: "512 B", "4.0 GiB", "1.2 TiB". */
export function formatSize(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB', 'ZiB', 'YiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${Math.round(n)} B` : `${n.toFixed(1)} ${units[i]}`;
}

/** A count as people say it: "850", "29.9 K", "124.4 M", "1.6 B", "77.3 T". */
export function formatCount(n: number): string {
  const steps: Array<[number, string]> = [[1e12, 'T'], [1e9, 'B'], [1e6, 'M'], [1e3, 'K']];
  for (const [v, s] of steps) if (n >= v) return `${(n / v).toFixed(1)} ${s}`;
  return String(n);
}
