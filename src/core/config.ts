// RunConfig: every setting of a run, flat so that a share link, a config file, the
// CLI flags and the lab's form all name a field the same way. One table (FIELDS)
// gives each field's type, range and meaning; defaults, validation, parsing of
// untrusted input and the UI's form all read it.

import { preview, printable } from './text.ts';

export type TokenizerKind = 'char' | 'bpe' | 'gpt2';

export interface RunConfig {
  // model (nanoGPT's names)
  nLayer: number;
  nHead: number;
  nEmbd: number;
  blockSize: number;
  /** 0: the tokenizer's vocabulary size; larger pads the embedding (e.g. 50304 for GPT-2). */
  vocabSize: number;
  dropout: number;
  bias: boolean;
  // tokenizer
  tokenizer: TokenizerKind;
  /** Vocabulary size to train a byte-level BPE to (tokenizer 'bpe' only). */
  bpeVocab: number;
  // optimisation
  batchSize: number;
  gradAccum: number;
  /** Where training stops by default (the CLI's --steps overrides it). */
  steps: number;
  lr: number;
  minLr: number;
  warmupSteps: number;
  /**
   * Length of the cosine decay. Kept apart from `steps` (as nanoGPT's lr_decay_iters)
   * so that stopping early and resuming never changes the learning-rate curve.
   */
  decaySteps: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Clip the global gradient norm to this; 0 disables clipping. */
  gradClip: number;
  // cadence
  evalEvery: number;
  /** Validation batches per evaluation (taken in order, the same every time). */
  evalBatches: number;
  logEvery: number;
  checkpointEvery: number;
  /** 0: never sample during training. */
  sampleEvery: number;
  // data
  valFraction: number;
  seed: number;
}

export type FieldKey = keyof RunConfig;
type Kind = 'int' | 'float' | 'bool' | 'enum';

export interface FieldSpec {
  key: FieldKey;
  kind: Kind;
  group: 'model' | 'tokenizer' | 'optim' | 'cadence' | 'data';
  min?: number;
  max?: number;
  /** For 'enum'. */
  values?: readonly string[];
  doc: string;
}

// Upper bounds keep an untrusted link or file from asking for absurd allocations;
// they are far above anything a browser (or one GPU) trains.
export const FIELDS: readonly FieldSpec[] = [
  { key: 'nLayer', kind: 'int', group: 'model', min: 1, max: 96, doc: 'transformer blocks' },
  { key: 'nHead', kind: 'int', group: 'model', min: 1, max: 128, doc: 'attention heads per block' },
  { key: 'nEmbd', kind: 'int', group: 'model', min: 1, max: 8192, doc: 'embedding width (channels)' },
  { key: 'blockSize', kind: 'int', group: 'model', min: 2, max: 8192, doc: 'context length in tokens' },
  { key: 'vocabSize', kind: 'int', group: 'model', min: 0, max: 262144, doc: "vocabulary rows (0 = the tokenizer's size)" },
  { key: 'dropout', kind: 'float', group: 'model', min: 0, max: 0.9, doc: "dropout probability in training (nanoGPT's places: embeddings, attention probabilities, branch outputs)" },
  { key: 'bias', kind: 'bool', group: 'model', doc: 'biases in linear layers and LayerNorm (GPT-2: true)' },
  { key: 'tokenizer', kind: 'enum', group: 'tokenizer', values: ['char', 'bpe', 'gpt2'], doc: 'char, byte-level BPE trained on the data, or GPT-2' },
  { key: 'bpeVocab', kind: 'int', group: 'tokenizer', min: 257, max: 65536, doc: 'vocabulary size for the BPE tokenizer' },
  { key: 'batchSize', kind: 'int', group: 'optim', min: 1, max: 4096, doc: 'sequences per micro-batch' },
  { key: 'gradAccum', kind: 'int', group: 'optim', min: 1, max: 1024, doc: 'micro-batches per optimizer step' },
  { key: 'steps', kind: 'int', group: 'optim', min: 1, max: 10_000_000, doc: 'optimizer steps to train' },
  { key: 'lr', kind: 'float', group: 'optim', min: 0, max: 10, doc: 'peak learning rate' },
  { key: 'minLr', kind: 'float', group: 'optim', min: 0, max: 10, doc: 'learning rate at the end of the decay' },
  { key: 'warmupSteps', kind: 'int', group: 'optim', min: 0, max: 10_000_000, doc: 'linear warmup steps' },
  { key: 'decaySteps', kind: 'int', group: 'optim', min: 1, max: 10_000_000, doc: 'step where the cosine decay reaches minLr' },
  { key: 'weightDecay', kind: 'float', group: 'optim', min: 0, max: 10, doc: 'AdamW weight decay (2-D weights only)' },
  { key: 'beta1', kind: 'float', group: 'optim', min: 0, max: 0.999999, doc: 'AdamW beta1' },
  { key: 'beta2', kind: 'float', group: 'optim', min: 0, max: 0.999999, doc: 'AdamW beta2' },
  { key: 'eps', kind: 'float', group: 'optim', min: 1e-30, max: 1, doc: 'AdamW epsilon' },
  { key: 'gradClip', kind: 'float', group: 'optim', min: 0, max: 1e6, doc: 'clip the gradient norm to this (0 = off)' },
  { key: 'evalEvery', kind: 'int', group: 'cadence', min: 1, max: 10_000_000, doc: 'steps between validation runs' },
  { key: 'evalBatches', kind: 'int', group: 'cadence', min: 1, max: 10_000, doc: 'validation batches per evaluation' },
  { key: 'logEvery', kind: 'int', group: 'cadence', min: 1, max: 10_000_000, doc: 'steps between metrics lines' },
  { key: 'checkpointEvery', kind: 'int', group: 'cadence', min: 1, max: 10_000_000, doc: 'steps between checkpoints' },
  { key: 'sampleEvery', kind: 'int', group: 'cadence', min: 0, max: 10_000_000, doc: 'steps between text samples (0 = never)' },
  { key: 'valFraction', kind: 'float', group: 'data', min: 0.001, max: 0.5, doc: 'share of the data held out for validation' },
  { key: 'seed', kind: 'int', group: 'data', min: 0, max: 4294967295, doc: 'seed for initialisation and data order' },
];

export const FIELD_BY_KEY: ReadonlyMap<string, FieldSpec> = new Map(FIELDS.map((f) => [f.key, f]));

export const DEFAULT_CONFIG: Readonly<RunConfig> = Object.freeze({
  nLayer: 4,
  nHead: 4,
  nEmbd: 128,
  blockSize: 64,
  vocabSize: 0,
  dropout: 0,
  bias: true,
  tokenizer: 'char',
  bpeVocab: 512,
  batchSize: 16,
  gradAccum: 1,
  steps: 1000,
  lr: 1e-3,
  minLr: 1e-4,
  warmupSteps: 50,
  decaySteps: 1000,
  weightDecay: 0.1,
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-8,
  gradClip: 1.0,
  evalEvery: 100,
  evalBatches: 8,
  logEvery: 1,
  checkpointEvery: 250,
  sampleEvery: 0,
  valFraction: 0.1,
  seed: 1337,
});

/** A readable problem with one field: what is wrong and how to fix it. */
export interface ConfigIssue {
  field: FieldKey;
  message: string;
}

/** A value quoted for an error message: escaped (one line, no control characters) and cut short. */
function show(v: unknown): string {
  // preview() walks a few levels at most: a value nested 100k deep must not overflow the stack here.
  if (typeof v !== 'string') return preview(v, 40);
  return printable(JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v), 400);
}

function describeRange(f: FieldSpec): string {
  return `${f.min} to ${f.max}`;
}

/** Checks types and ranges of one field's value. */
function checkField(f: FieldSpec, v: unknown): string | null {
  switch (f.kind) {
    case 'bool':
      return typeof v === 'boolean' ? null : `${f.key} must be true or false, not ${show(v)}`;
    case 'enum':
      return typeof v === 'string' && f.values!.includes(v)
        ? null
        : `${f.key} must be one of ${f.values!.join(', ')}, not ${show(v)}`;
    case 'int':
    case 'float': {
      if (typeof v !== 'number' || Number.isNaN(v)) return `${f.key} must be a number, not ${show(v)}`;
      if (!Number.isFinite(v)) return `${f.key} ${show(v)} is out of range: use ${describeRange(f)}`;
      if (f.kind === 'int' && !Number.isInteger(v)) return `${f.key} must be a whole number, not ${v}`;
      if ((f.min !== undefined && v < f.min) || (f.max !== undefined && v > f.max))
        return `${f.key} ${v} is out of range: use ${describeRange(f)}`;
      return null;
    }
  }
}

function nearbyDivisible(n: number, d: number): number[] {
  const down = Math.floor(n / d) * d;
  const up = down + d;
  return [down, up].filter((x) => x > 0);
}

function divisors(n: number, around: number): number[] {
  const ds: number[] = [];
  for (let d = 1; d <= n; d++) if (n % d === 0) ds.push(d);
  return ds.sort((a, b) => Math.abs(a - around) - Math.abs(b - around)).slice(0, 2).sort((a, b) => a - b);
}

/** Every problem with a config, as readable messages naming the field and the fix. Empty when valid. */
export function validate(config: RunConfig): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const rec = config as unknown as Record<string, unknown>;
  for (const f of FIELDS) {
    const msg = checkField(f, rec[f.key]);
    if (msg) issues.push({ field: f.key, message: msg });
  }
  for (const k of Object.keys(rec)) {
    if (!FIELD_BY_KEY.has(k)) issues.push({ field: k as FieldKey, message: `unknown setting ${show(k)}` });
  }
  if (issues.length) return issues;

  const c = config;
  if (c.nEmbd % c.nHead !== 0) {
    const heads = divisors(c.nEmbd, c.nHead).join(' or ');
    const widths = nearbyDivisible(c.nEmbd, c.nHead).join(' or ');
    issues.push({
      field: 'nEmbd',
      message: `nEmbd ${c.nEmbd} is not divisible by nHead ${c.nHead}: choose nHead ${heads}, or nEmbd ${widths}`,
    });
  }
  if (!c.bias) issues.push({ field: 'bias', message: 'bias=false is not implemented yet: use bias=true (GPT-2)' });
  if (c.minLr > c.lr) issues.push({ field: 'minLr', message: `minLr ${c.minLr} is above lr ${c.lr}: set minLr <= lr` });
  if (c.warmupSteps > c.decaySteps)
    issues.push({
      field: 'warmupSteps',
      message: `warmupSteps ${c.warmupSteps} is longer than decaySteps ${c.decaySteps}: shorten the warmup or lengthen the decay`,
    });
  if (c.tokenizer === 'gpt2' && c.vocabSize !== 0 && c.vocabSize < 50257)
    issues.push({ field: 'vocabSize', message: `vocabSize ${c.vocabSize} is below GPT-2's 50257 tokens: use 0 (auto), 50257 or 50304` });
  if (c.tokenizer === 'bpe' && c.vocabSize !== 0 && c.vocabSize < c.bpeVocab)
    issues.push({ field: 'vocabSize', message: `vocabSize ${c.vocabSize} is below bpeVocab ${c.bpeVocab}: use 0 (auto) or at least ${c.bpeVocab}` });
  return issues;
}

/** A full config from a partial one; unknown keys are kept so that validate() reports them. */
export function withDefaults(partial: Partial<RunConfig>, base: Readonly<RunConfig> = DEFAULT_CONFIG): RunConfig {
  return { ...base, ...partial };
}

/**
 * Parses one field from text (a link, a flag, a form input). Returns the value or a
 * readable error; never throws, because the text is untrusted.
 */
export function parseField(key: string, text: string): { value: RunConfig[FieldKey] } | { error: string } {
  const f = FIELD_BY_KEY.get(key);
  if (!f) return { error: `unknown setting ${show(key)}` };
  const t = text.trim();
  let value: RunConfig[FieldKey];
  switch (f.kind) {
    case 'bool':
      if (t === 'true' || t === '1') value = true;
      else if (t === 'false' || t === '0') value = false;
      else return { error: `${key} must be true or false, not ${show(t)}` };
      break;
    case 'enum':
      value = t as TokenizerKind;
      break;
    default:
      if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(t)) return { error: `${key} must be a number, not ${show(t)}` };
      value = Number(t);
  }
  const msg = checkField(f, value);
  return msg ? { error: msg } : { value };
}

/** The fields where `config` differs from `base`, in table order. */
export function diffConfig(config: RunConfig, base: RunConfig): Partial<RunConfig> {
  const out: Record<string, unknown> = {};
  for (const f of FIELDS) if (config[f.key] !== base[f.key]) out[f.key] = config[f.key];
  return out as Partial<RunConfig>;
}

/**
 * nanoGPT's names (train.py's globals) for Kiln's settings, the words its users type.
 * The CLI accepts them in --set and config files (saying the Kiln name); a share link
 * only suggests them, so that a link stays in one vocabulary. Names nanoGPT shares
 * with Kiln (dropout, bias, beta1, beta2, seed) need no entry.
 */
export const NANOGPT_NAMES: Readonly<Record<string, FieldKey>> = Object.freeze({
  n_embd: 'nEmbd',
  n_layer: 'nLayer',
  n_head: 'nHead',
  block_size: 'blockSize',
  batch_size: 'batchSize',
  learning_rate: 'lr',
  max_iters: 'steps',
  min_lr: 'minLr',
  warmup_iters: 'warmupSteps',
  lr_decay_iters: 'decaySteps',
  weight_decay: 'weightDecay',
  grad_clip: 'gradClip',
  eval_interval: 'evalEvery',
  eval_iters: 'evalBatches',
  gradient_accumulation_steps: 'gradAccum',
  vocab_size: 'vocabSize',
});

/** The Kiln setting a nanoGPT name stands for, or null (own keys only: "__proto__" is no name). */
export function nanoGptName(name: string): FieldKey | null {
  return Object.prototype.hasOwnProperty.call(NANOGPT_NAMES, name) ? NANOGPT_NAMES[name] : null;
}

function fold(s: string): string {
  return s.toLowerCase().replace(/[-_\s]/g, '');
}

/**
 * Edit distance between two names as a typist sees them: Damerau-Levenshtein (optimal
 * string alignment: insert, delete, substitute, swap two neighbours), ignoring case,
 * '-' and '_', so that "n_embd", "nembd" and "nEmbd" are the same name.
 */
export function nameDistance(a: string, b: string): number {
  const s = fold(a);
  const t = fold(b);
  const d: number[][] = Array.from({ length: s.length + 1 }, (_, i) => [i, ...new Array<number>(t.length).fill(0)]);
  for (let j = 0; j <= t.length; j++) d[0][j] = j;
  for (let i = 1; i <= s.length; i++) {
    for (let j = 1; j <= t.length; j++) {
      const cost = s[i - 1] === t[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && s[i - 1] === t[j - 2] && s[i - 2] === t[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[s.length][t.length];
}

/**
 * The candidates `word` most likely meant (at most three, in the candidates' order), or
 * none when nothing is close. Close: one edit per three letters typed (at least one),
 * or one name containing the other ("gpu" in "webgpu", "name" in "names"), which ranks
 * above a mere edit so that "gpu" means webgpu rather than cpu.
 */
export function nearestNames(word: string, candidates: readonly string[]): string[] {
  const w = fold(word);
  if (!w) return [];
  const limit = Math.max(1, Math.floor(w.length / 3));
  let best = Infinity;
  let found: string[] = [];
  for (const c of candidates) {
    const f = fold(c);
    const d = nameDistance(w, f);
    const contains = d > 0 && Math.min(w.length, f.length) >= 3 && (f.includes(w) || w.includes(f));
    const score = d === 0 ? 0 : contains ? 0.5 : d <= limit ? d : Infinity;
    if (score < best) [best, found] = [score, [c]];
    else if (score === best && score !== Infinity) found.push(c);
  }
  return best === Infinity ? [] : found.slice(0, 3);
}

/** The settings a mistyped name likely means: its nanoGPT name's, else the nearest Kiln or nanoGPT names'. */
export function suggestSettings(word: string): FieldKey[] {
  const alias = nanoGptName(word);
  if (alias) return [alias];
  const near = nearestNames(word, [...FIELDS.map((f) => f.key), ...Object.keys(NANOGPT_NAMES)]);
  return [...new Set(near.map((n) => nanoGptName(n) ?? (n as FieldKey)))];
}
