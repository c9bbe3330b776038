// The Kiln training checkpoint: one safetensors file (DESIGN.md, Checkpoints).
//
// Tensors: every parameter under its Hugging Face name from the model spec, in the
// spec's order, and for a training state also `optimizer.exp_avg.<name>` and
// `optimizer.exp_avg_sq.<name>` (AdamW's m and v). All f32.
//
// Metadata (strings): kiln.format, kiln.config, kiln.model, kiln.tokenizer,
// kiln.step, kiln.rng, kiln.sha256 (SHA-256 of the data section, so `tail -c` and
// `sha256sum` can check it by hand), kiln.header_sha256 (SHA-256 of the metadata
// and the tensor table, so that a damaged header, e.g. one digit of the learning
// rate, is caught too), plus any extra keys the caller adds (kiln.best_val_loss, ...).
import { FIELD_BY_KEY, validate, type RunConfig } from './config.ts';
import { KilnError } from './errors.ts';
import { modelSpec, paramViews, type ModelConfig } from './model-spec.ts';
import { dataSection, decodeSafetensors, encodeHeader, encodeSafetensors, type TensorIn, type TensorOut } from './safetensors.ts';
import { checkBpeMerges, checkTensorBytes } from './budget.ts';
import type { TokenizerJSON } from './tokenizers/tokenizer.ts';

/** Bumped whenever the layout or metadata change meaning; older readers refuse newer files. */
/**
 * 2: kiln.header_sha256 also covers each tensor's data_offsets (format 1's did not, so
 * swapping two same-sized tensors' offsets went unnoticed). Format 1 files still load.
 */
export const CHECKPOINT_FORMAT = 2;

/**
 * Parameters and AdamW moments in the model spec's flat layout. The same shape as
 * the backends' TrainState (src/backends/backend.ts), declared here because core
 * imports nothing outside core; a TrainState can be passed as it is.
 */
export interface CheckpointState {
  params: Float32Array;
  m: Float32Array | null;
  v: Float32Array | null;
  /** AdamW's t; must equal CheckpointData.step (one number is stored). */
  step: number;
}

export interface CheckpointData {
  config: RunConfig;
  model: ModelConfig;
  tokenizer: TokenizerJSON;
  /** Optimizer steps taken. */
  step: number;
  /** The data sampler's state (opaque JSON), so a resumed run sees the same batches. */
  rng: string;
  state: CheckpointState;
  /** Other metadata, e.g. kiln.best_val_loss, kiln.dataset. Always an object after decode. */
  extra?: Record<string, string>;
}

const RESERVED = new Set([
  'kiln.format', 'kiln.config', 'kiln.model', 'kiln.tokenizer', 'kiln.step', 'kiln.rng',
  'kiln.sha256', 'kiln.header_sha256',
]);

export const EXP_AVG = 'optimizer.exp_avg.';
export const EXP_AVG_SQ = 'optimizer.exp_avg_sq.';

const CORRUPT_HINT = 'the file was damaged after it was saved: use an earlier checkpoint (best.safetensors) or train again';

function fail(message: string, hint = CORRUPT_HINT): never {
  throw new KilnError('checkpoint', message, hint);
}

/** WebCrypto's digest takes less than 2^31 bytes at once (Node: "data must be less than 2147483648 bits"). */
const MAX_DIGEST_BYTES = 2 ** 31 - 1;

type NodeHash = { update(b: Uint8Array): NodeHash; digest(enc: 'hex'): string };

export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  if (bytes.length > MAX_DIGEST_BYTES) {
    // A big model's checkpoint (params + AdamW moments past 2 GiB): WebCrypto cannot
    // hash it in one call and has no incremental digest; Node's crypto has.
    const isNode = !!(globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node;
    if (!isNode) throw new KilnError('storage', `a checkpoint of ${(bytes.length / 2 ** 30).toFixed(1)} GiB is too big to seal in a browser`, 'train this model with the kiln command in Node');
    const crypto = (await import(/* @vite-ignore */ 'node:crypto' as string)) as { createHash(alg: string): NodeHash };
    const h = crypto.createHash('sha256');
    for (let o = 0; o < bytes.length; o += 1 << 30) h.update(bytes.subarray(o, Math.min(bytes.length, o + (1 << 30))));
    return h.digest('hex');
  }
  const digest = await globalThis.crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** A tensor as kiln.header_sha256 sees it: name, dtype, shape and (format 2 on) its data offsets. */
type TableRow = [string, string, number[]] | [string, string, number[], [number, number]];

/** What kiln.header_sha256 hashes: the metadata but itself, and the tensor table, sorted. */
function canonicalHeader(metadata: Record<string, string>, tensors: TableRow[]): Uint8Array {
  const meta = Object.keys(metadata)
    .filter((k) => k !== 'kiln.header_sha256')
    .sort()
    .map((k) => [k, metadata[k]]);
  const table = [...tensors].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return new TextEncoder().encode(JSON.stringify([meta, table]));
}

function tensorList(c: CheckpointData): TensorIn[] {
  const spec = modelSpec(c.model);
  const { params, m, v } = c.state;
  if (params.length !== spec.numParams)
    throw new Error(`checkpoint: params has ${params.length} values, the model needs ${spec.numParams}`);
  if ((m === null) !== (v === null)) throw new Error('checkpoint: AdamW m and v must both be present or both null');
  const out: TensorIn[] = [];
  const add = (prefix: string, flat: Float32Array) => {
    if (flat.length !== spec.numParams) throw new Error(`checkpoint: ${prefix || 'params'} has the wrong length`);
    const views = paramViews(spec, flat);
    for (const p of spec.params) out.push({ name: prefix + p.name, dtype: 'F32', shape: p.shape, data: views.get(p.name)! });
  };
  add('', params);
  if (m && v) {
    add(EXP_AVG, m);
    add(EXP_AVG_SQ, v);
  }
  return out;
}

/** Serialises a checkpoint. Throws plain Errors for programming mistakes (wrong lengths). */
export async function encodeCheckpoint(c: CheckpointData): Promise<Uint8Array> {
  if (c.state.step !== c.step) throw new Error(`checkpoint: state.step ${c.state.step} differs from step ${c.step}`);
  if (!Number.isSafeInteger(c.step) || c.step < 0) throw new Error(`checkpoint: bad step ${c.step}`);
  const metadata: Record<string, string> = {
    'kiln.format': String(CHECKPOINT_FORMAT),
    'kiln.config': JSON.stringify(c.config),
    'kiln.model': JSON.stringify(c.model),
    'kiln.tokenizer': JSON.stringify(c.tokenizer),
    'kiln.step': String(c.step),
    'kiln.rng': c.rng,
  };
  for (const [k, v] of Object.entries(c.extra ?? {})) {
    if (RESERVED.has(k)) throw new Error(`checkpoint: extra metadata may not set ${k}`);
    if (typeof v !== 'string') throw new Error(`checkpoint: extra metadata ${k} must be a string`);
    metadata[k] = v;
  }
  return sealSafetensors(tensorList(c), metadata);
}

/**
 * Writes a safetensors file with kiln.sha256 and kiln.header_sha256 filled in over
 * the given tensors and metadata. encodeCheckpoint's last step; exported so tests
 * can build well-sealed files with arbitrary (wrong) contents.
 */
export async function sealSafetensors(tensors: TensorIn[], meta: Record<string, string>): Promise<Uint8Array> {
  // Write once with fixed-length placeholders, hash, then patch the header in place:
  // the hashes are as long as the placeholders, so the header keeps its length.
  const placeholder = '0'.repeat(64);
  const metadata = { ...meta, 'kiln.sha256': placeholder, 'kiln.header_sha256': placeholder };
  const bytes = encodeSafetensors(tensors, metadata);
  const data = dataSection(bytes);
  metadata['kiln.sha256'] = await sha256Hex(data);
  // The offsets encodeHeader gives: the tensors one after another, in list order.
  const withOffsets = Number(meta['kiln.format']) >= 2;
  let at = 0;
  const table = tensors.map((t): TableRow => {
    const row: TableRow = withOffsets ? [t.name, t.dtype, t.shape, [at, at + t.data.byteLength]] : [t.name, t.dtype, t.shape];
    at += t.data.byteLength;
    return row;
  });
  metadata['kiln.header_sha256'] = await sha256Hex(canonicalHeader(metadata, table));
  const header = encodeHeader(tensors, metadata);
  if (header.length !== data.byteOffset) throw new Error('checkpoint: header length changed');
  bytes.set(header, 0);
  return bytes;
}

function parseJSON(metadata: Record<string, string>, key: string): unknown {
  const text = metadata[key];
  if (text === undefined) fail(`checkpoint has no ${key} metadata`);
  try {
    return JSON.parse(text);
  } catch {
    fail(`checkpoint metadata ${key} is not valid JSON`);
  }
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function parseModel(x: unknown, config: RunConfig): ModelConfig {
  const keys = ['vocabSize', 'blockSize', 'nLayer', 'nHead', 'nEmbd'] as const;
  if (!isObject(x) || !keys.every((k) => Number.isSafeInteger(x[k]) && (x[k] as number) > 0))
    fail('checkpoint metadata kiln.model is not a model shape');
  const model = Object.fromEntries(keys.map((k) => [k, x[k] as number])) as unknown as ModelConfig;
  for (const k of ['blockSize', 'nLayer', 'nHead', 'nEmbd'] as const)
    if (model[k] !== config[k]) fail(`checkpoint model has ${k} ${model[k]} but its config says ${config[k]}`);
  const maxVocab = FIELD_BY_KEY.get('vocabSize')!.max!;
  if (model.vocabSize > maxVocab) fail(`checkpoint model has vocabSize ${model.vocabSize}, more than Kiln's ${maxVocab}`);
  if (config.vocabSize !== 0 && model.vocabSize !== config.vocabSize) fail(`checkpoint model has vocabSize ${model.vocabSize} but its config says ${config.vocabSize}`);
  return model;
}

/** Checks untrusted JSON for the shape of a TokenizerJSON; `where` names it in the message. */
export function parseTokenizerJSON(x: unknown, where: string): TokenizerJSON {
  const bad = (): never => fail(`${where} is not a Kiln tokenizer`, 'the file was edited by hand or made by another tool');
  if (!isObject(x)) return bad();
  let tok: TokenizerJSON;
  if (x.kind === 'char') {
    if (!Array.isArray(x.chars) || !x.chars.every((c) => typeof c === 'string')) bad();
    tok = { kind: 'char', chars: x.chars as string[] };
  } else if (x.kind === 'bpe') {
    const ok = (p: unknown) => Array.isArray(p) && p.length === 2 && p.every((i) => Number.isSafeInteger(i) && i >= 0);
    if (!Array.isArray(x.merges) || !x.merges.every(ok)) bad();
    // Token lengths summed as numbers before any table is built: a few KB of merges can
    // otherwise ask for gigabytes (each merge doubling the last token).
    checkBpeMerges(x.merges as unknown[]);
    tok = { kind: 'bpe', merges: x.merges as Array<[number, number]> };
  } else if (x.kind === 'gpt2') {
    tok = { kind: 'gpt2' };
  } else {
    return bad();
  }
  return tok;
}

/** Token ids a tokenizer can produce: the embedding needs at least this many rows. */
export function tokenizerVocab(tok: TokenizerJSON): number {
  if (tok.kind === 'char') return tok.chars.length;
  if (tok.kind === 'bpe') return 256 + tok.merges.length;
  return 50257;
}

function parseTokenizer(x: unknown, config: RunConfig, model: ModelConfig): TokenizerJSON {
  const tok = parseTokenizerJSON(x, 'checkpoint metadata kiln.tokenizer');
  if (tokenizerVocab(tok) > model.vocabSize)
    fail(`checkpoint tokenizer has ${tokenizerVocab(tok)} tokens but the model only ${model.vocabSize} embedding rows`);
  if (tok.kind !== config.tokenizer) fail(`checkpoint tokenizer is ${tok.kind} but its config says ${config.tokenizer}`);
  if (tok.kind === 'bpe' && 256 + tok.merges.length > config.bpeVocab)
    fail(`checkpoint bpe tokenizer has ${256 + tok.merges.length} tokens but its config's bpeVocab is ${config.bpeVocab}`);
  return tok;
}

/** Copies the tensors named prefix+<param> into one flat array in the spec's layout. */
function gather(tensors: Map<string, TensorOut>, spec: ReturnType<typeof modelSpec>, prefix: string): Float32Array {
  const flat = new Float32Array(spec.numParams);
  for (const p of spec.params) {
    const name = prefix + p.name;
    const t = tensors.get(name);
    if (!t) fail(`checkpoint is missing tensor ${name}`);
    if (t.dtype !== 'F32') fail(`checkpoint tensor ${name} is ${t.dtype}; a Kiln checkpoint stores F32`);
    if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i]))
      fail(`checkpoint tensor ${name} has shape [${t.shape}] but the model needs [${p.shape}]`);
    flat.set(t.data, p.offset);
  }
  return flat;
}

/** Parses and verifies a checkpoint; every problem is a KilnError('checkpoint'). */
export async function decodeCheckpoint(bytes: Uint8Array): Promise<CheckpointData> {
  const { tensors, metadata } = decodeSafetensors(bytes);
  const format = metadata['kiln.format'];
  if (format === undefined)
    fail('this safetensors file is not a Kiln checkpoint (no kiln.format metadata)', 'to load a Hugging Face model, use import (kiln import --hf DIR)');
  if (!/^\d{1,6}$/.test(format)) fail(`checkpoint has a bad kiln.format ${JSON.stringify(format.slice(0, 20))}`);
  if (Number(format) > CHECKPOINT_FORMAT)
    fail(`checkpoint was made by a newer Kiln (format ${format}; this Kiln reads format ${CHECKPOINT_FORMAT})`, 'update Kiln to open it');
  if (Number(format) < 1) fail(`checkpoint has an unknown kiln.format ${format}`);

  const table = [...tensors].map(([name, t]): TableRow => (Number(format) >= 2 ? [name, t.dtype, t.shape, t.offsets] : [name, t.dtype, t.shape]));
  const headerHash = await sha256Hex(canonicalHeader(metadata, table));
  if (headerHash !== metadata['kiln.header_sha256'])
    fail('checkpoint is corrupt: its header does not match the hash it was saved with');
  if ((await sha256Hex(dataSection(bytes))) !== metadata['kiln.sha256'])
    fail('checkpoint is corrupt: its tensors do not match the hash it was saved with');

  const config = parseJSON(metadata, 'kiln.config');
  if (!isObject(config)) fail('checkpoint metadata kiln.config is not an object');
  const issues = validate(config as unknown as RunConfig);
  if (issues.length) fail(`checkpoint config is invalid: ${issues[0].message}`, 'the checkpoint was edited by hand or made by another tool');
  const runConfig = config as unknown as RunConfig;
  const model = parseModel(parseJSON(metadata, 'kiln.model'), runConfig);
  // Bound what the model's shape would make us allocate by what the file holds, before
  // building anything from it: a few bytes of crafted metadata can name a huge model.
  checkTensorBytes(model, dataSection(bytes).length, { model: "checkpoint's model", file: 'the file', hint: CORRUPT_HINT });
  const tokenizer = parseTokenizer(parseJSON(metadata, 'kiln.tokenizer'), runConfig, model);
  const stepText = metadata['kiln.step'] ?? fail('checkpoint has no kiln.step metadata');
  if (!/^\d{1,15}$/.test(stepText)) fail(`checkpoint has a bad kiln.step ${JSON.stringify(stepText.slice(0, 20))}`);
  const step = Number(stepText);
  const rng = metadata['kiln.rng'] ?? fail('checkpoint has no kiln.rng metadata');

  const spec = modelSpec(model);
  const hasM = [...tensors.keys()].some((k) => k.startsWith(EXP_AVG));
  const hasV = [...tensors.keys()].some((k) => k.startsWith(EXP_AVG_SQ));
  const expected = spec.params.length * (hasM || hasV ? 3 : 1);
  if (tensors.size > expected) {
    const known = new Set(spec.params.flatMap((p) => [p.name, EXP_AVG + p.name, EXP_AVG_SQ + p.name]));
    const stray = [...tensors.keys()].find((k) => !known.has(k));
    fail(`checkpoint has an unexpected tensor ${JSON.stringify(stray?.slice(0, 80))}`, 'the checkpoint was edited by hand or made by another tool');
  }
  const params = gather(tensors, spec, '');
  const m = hasM || hasV ? gather(tensors, spec, EXP_AVG) : null;
  const v = hasM || hasV ? gather(tensors, spec, EXP_AVG_SQ) : null;

  const extra: Record<string, string> = {};
  for (const [k, val] of Object.entries(metadata)) if (!RESERVED.has(k)) extra[k] = val;
  return { config: runConfig, model, tokenizer, step, rng, state: { params, m, v, step }, extra };
}
