// Run folders in `kiln serve --out` that the lab did not write, read as runs for its run
// list (fs-store.ts lists them beside its own): only reads here, nothing is written.
//
//   kiln train --out OUT/x     checkpoint.safetensors (kiln.config, kiln.model, kiln.step, ...
//                              in its metadata: src/core/checkpoint.ts), best.safetensors,
//                              metrics.jsonl (one StepMetrics a line)
//   kiln scale --out OUT/x     spec.json ({spec: RunSpec, model}), tokens.bin/.json, init/,
//   then run.sh (torchrun)     train_ddp.py, run.sh, slurm.sbatch; from train_ddp.py: metrics.jsonl
//                              (rank 0, Kiln's rows as Python's json.dumps writes them) and
//                              checkpoints/step_N/ (model.safetensors, config.json,
//                              kiln_tokenizer.json, train_state.pt; renamed into place whole)
//
// A `kiln train` folder is a run named after its folder, with the checkpoint's config and
// step; a lab may train it on (fs-store.ts then adds run.json: the folder becomes a lab
// run folder, which `kiln train --resume` still reads). A scaled folder is a run with
// spec.json's config, whose newest HF checkpoint opens for sampling through the HF import
// (src/core/hf.ts); torchrun trains it, so the lab does not (RunSource.readOnly).
//
// Listing reads only what is cheap: a checkpoint's safetensors header (not its tensors),
// config.json, and metrics.jsonl. Tensors are read when a run is opened, through the
// checkpoint decoder and the HF import, which both check the tensor bytes against the
// model a header names (budget.ts checkTensorBytes) before allocating for it; the listing
// applies the same check to the file sizes. A folder whose config cannot be known
// (garbage spec.json, a damaged header, no checkpoint yet) is skipped with a reason; one
// with a known config but something wrong (a cut-off metrics line, a truncated
// checkpoint) is listed with what is wrong (RunSource.problem).
import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, readSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { checkTensorBytes } from '../core/budget.ts';
import { CHECKPOINT_FORMAT, encodeCheckpoint } from '../core/checkpoint.ts';
import { validate, type RunConfig } from '../core/config.ts';
import { isKilnError, KilnError } from '../core/errors.ts';
import { importHF, KILN_TOKENIZER_FILE, parseHFConfig } from '../core/hf.ts';
import { formatBytes, paramCount, type ModelConfig } from '../core/model-spec.ts';
import type { CheckpointMeta, RunRecord, RunSource, SavedPhase } from '../core/run-record.ts';
import type { DatasetRef } from '../core/run-spec.ts';
import { readHeader } from '../core/safetensors.ts';
import { printable } from '../core/text.ts';
import type { StepMetrics } from '../train/trainer.ts';
import { nearestPreset } from '../worker/run-library.ts';
import { CHECKPOINT_FILE, messageOf, METRICS_FILE, readOwn } from './run-folder.ts';

export const SPEC_FILE = 'spec.json';
export const HF_CHECKPOINTS_DIR = 'checkpoints';
/** What a scaled run says when the lab is asked to train or change it. */
export const SCALE_READ_ONLY = 'trained by torchrun: continue it with run.sh --resume, or import its checkpoint';

/** The most of a checkpoint's header read to list it (a Kiln header is kilobytes; a BPE tokenizer's, about a megabyte). */
const MAX_LIST_HEADER = 16 * 1024 * 1024;
/** The most of metrics.jsonl read (about a million rows). */
const MAX_METRICS = 256 * 1024 * 1024;
/** spec.json, config.json, kiln_tokenizer.json: small files. */
const MAX_JSON = 16 * 1024 * 1024;
const NOFOLLOW = constants.O_NOFOLLOW ?? 0;
const STEP_DIR = /^step_(\d{1,15})$/;

/** A run folder the lab did not write, read. */
export interface ForeignRun {
  folder: string;
  rec: RunRecord & { source: RunSource };
  /** `kiln train`: the bytes of metrics.jsonl that hold rows up to the checkpoint's step (run.json's metricsBytes once adopted). */
  metricsBytes: number;
  /** Scaled: the HF checkpoint folder of rec.checkpoints' one (checkpoints/step_N), null when none opens. */
  hfDir: string | null;
}

/** A folder read: a run; or why it is not listed (said once in the log); or null when it is no run of Kiln's at all. */
export type ForeignRead = { run: ForeignRun } | { skip: string } | null;

/** A listed folder's run id: stable for the folder's name, in the wire protocol's alphabet, never a lab run's (a UUID). */
export function foreignId(kind: RunSource['kind'], folder: string): string {
  return `${kind}-${createHash('sha256').update(folder).digest('hex').slice(0, 16)}`;
}

function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch {
    return null;
  }
}

/**
 * What changes when the files the listing reads change (their sizes, times and inodes;
 * checkpoints/ gets a new time when torchrun renames a step in): a read of the folder is
 * good while this stays the same.
 */
export function foreignSignature(dir: string): string {
  return [SPEC_FILE, CHECKPOINT_FILE, METRICS_FILE, HF_CHECKPOINTS_DIR, 'train_ddp.py']
    .map((name) => {
      const st = lstatOrNull(join(dir, name));
      return st ? `${st.size}:${st.mtimeMs}:${st.ino}` : '-';
    })
    .join('|');
}

// ---- small readers ----

/** A safetensors file's header (not its tensors): metadata, file size and tensor bytes; or what is wrong. */
interface Head {
  size: number;
  mtimeMs: number;
  /** Bytes after the header. */
  dataBytes: number;
  /** Where the header's tensors end in the data section (more than dataBytes: the file was cut short). */
  tensorBytes: number;
  metadata: Record<string, string>;
}

function readHead(path: string): Head | { why: string } {
  let fd = -1;
  try {
    fd = openSync(path, constants.O_RDONLY | NOFOLLOW);
    const st = fstatSync(fd);
    if (!st.isFile()) return { why: 'is not a file' };
    const len = new Uint8Array(8);
    const got = readSync(fd, len, 0, 8, 0);
    const view = new DataView(len.buffer);
    const n = got === 8 ? view.getUint32(0, true) + view.getUint32(4, true) * 2 ** 32 : 0;
    if (n > MAX_LIST_HEADER && 8 + n <= st.size) return { why: `has a header of ${formatBytes(n)}, more than the ${formatBytes(MAX_LIST_HEADER)} a Kiln checkpoint has` };
    const buf = new Uint8Array(Math.min(st.size, 8 + Math.min(n, MAX_LIST_HEADER)));
    let off = 0;
    while (off < buf.length) {
      const k = readSync(fd, buf, off, buf.length - off, off);
      if (k === 0) break;
      off += k;
    }
    // readHeader's checks: the length, the size against the file, UTF-8, a JSON object.
    const { dataStart, header } = readHeader(off === buf.length ? buf : buf.subarray(0, off));
    const metadata: Record<string, string> = {};
    let tensorBytes = 0;
    for (const [name, raw] of Object.entries(header)) {
      if (!isObject(raw)) continue;
      if (name === '__metadata__') {
        for (const [k, v] of Object.entries(raw)) if (typeof v === 'string') metadata[k] = v;
      } else if (Array.isArray(raw.data_offsets) && Number.isSafeInteger(raw.data_offsets[1])) {
        tensorBytes = Math.max(tensorBytes, raw.data_offsets[1] as number);
      }
    }
    return { size: st.size, mtimeMs: st.mtimeMs, dataBytes: st.size - dataStart, tensorBytes, metadata };
  } catch (e) {
    if (isKilnError(e)) return { why: `is damaged (${e.message.replace(/^checkpoint /, '')})` };
    const code = (e as NodeJS.ErrnoException).code;
    return { why: code === 'ENOENT' ? 'is missing' : code === 'ELOOP' ? 'is a symbolic link' : `cannot be read (${messageOf(e)})` };
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/**
 * What is wrong with the tensors of a file whose header was read, or null: cut short (the
 * header names more than the file holds), or fewer bytes than the model's parameters
 * need (budget.ts's check, as the decoder and the HF import make it before reading).
 */
function tensorProblem(head: Head, file: string, model: ModelConfig, hf: boolean): string | null {
  if (head.tensorBytes > head.dataBytes) return `is damaged (cut short: its header names ${formatBytes(head.tensorBytes)} of tensors, the file holds ${formatBytes(head.dataBytes)})`;
  try {
    if (hf) checkTensorBytes(model, head.size, { model: "config.json's model", file, counted: 'in all', bytesPerParam: 2, hint: '' });
    else checkTensorBytes(model, head.dataBytes, { model: "the checkpoint's model", file, hint: '' });
  } catch (e) {
    return `is damaged (${isKilnError(e) ? e.message : messageOf(e)})`;
  }
  return null;
}

/** A small text file (never through a link), or why not. */
function readText(path: string, max = MAX_JSON): { text: string } | { why: string } {
  const st = lstatOrNull(path);
  if (st?.isFile() && st.size > max) return { why: `is ${formatBytes(st.size)}, more than the ${formatBytes(max)} expected` };
  const got = readOwn(path);
  return 'bytes' in got ? { text: Buffer.from(got.bytes).toString('utf8') } : got;
}

function jsonOf(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** A config that validate() accepts, or what is wrong with it. */
function configOf(x: unknown): RunConfig | { why: string } {
  if (!isObject(x)) return { why: 'is not a config object' };
  const issues = validate(x as unknown as RunConfig);
  return issues.length ? { why: `is not a valid config (${printable(issues[0].message, 120)})` } : (x as unknown as RunConfig);
}

const MODEL_KEYS = ['vocabSize', 'blockSize', 'nLayer', 'nHead', 'nEmbd'] as const;

/** A model shape that agrees with its config (as the checkpoint decoder requires), or what is wrong. */
function modelOf(x: unknown, config: RunConfig): ModelConfig | { why: string } {
  if (!isObject(x) || !MODEL_KEYS.every((k) => Number.isSafeInteger(x[k]) && (x[k] as number) > 0)) return { why: 'is not a model shape' };
  const model = Object.fromEntries(MODEL_KEYS.map((k) => [k, x[k] as number])) as unknown as ModelConfig;
  for (const k of ['blockSize', 'nLayer', 'nHead', 'nEmbd'] as const) if (model[k] !== config[k]) return { why: `has ${k} ${model[k]} but the config says ${config[k]}` };
  if (config.vocabSize !== 0 && model.vocabSize !== config.vocabSize) return { why: `has vocabSize ${model.vocabSize} but the config says ${config.vocabSize}` };
  return model;
}

function sameShape(a: ModelConfig, b: ModelConfig): boolean {
  return MODEL_KEYS.every((k) => a[k] === b[k]);
}

/** A dataset reference in the shape the lab writes, else null (a run opened without its text samples all the same). */
function datasetOf(x: unknown): DatasetRef | null {
  if (!isObject(x)) return null;
  if (x.kind === 'bundled' && typeof x.id === 'string' && x.id.length <= 100) return { kind: 'bundled', id: x.id };
  if (x.kind === 'file' && typeof x.name === 'string' && Number.isSafeInteger(x.bytes) && typeof x.sha256 === 'string' && /^[0-9a-f]{64}$/.test(x.sha256))
    return { kind: 'file', name: x.name.slice(0, 200), bytes: x.bytes as number, sha256: x.sha256 };
  return null;
}

function finite(x: string | undefined): number | null {
  const n = x === undefined ? NaN : Number(x);
  return Number.isFinite(n) ? n : null;
}

// ---- metrics.jsonl ----

interface MetricsScan {
  rows: StepMetrics[];
  /** End of the last whole line that holds a row up to `upTo`, before any row past it. */
  upToBytes: number;
  size: number;
  problem: string | null;
}

function parseRow(text: string): StepMetrics | null {
  const r = jsonOf(text);
  if (!isObject(r) || !Number.isSafeInteger(r.step) || (r.step as number) < 0 || typeof r.loss !== 'number') return null;
  if (r.val_loss !== undefined && typeof r.val_loss !== 'number') return null;
  return r as unknown as StepMetrics;
}

/** The rows of metrics.jsonl in file order; lines that are not rows are skipped and said once. */
function scanMetrics(dir: string, upTo: number): MetricsScan {
  const none: MetricsScan = { rows: [], upToBytes: 0, size: 0, problem: null };
  const path = join(dir, METRICS_FILE);
  const st = lstatOrNull(path);
  if (!st) return none;
  if (st.isFile() && st.size > MAX_METRICS) return { ...none, size: st.size, problem: `${METRICS_FILE} is ${formatBytes(st.size)}, more than the ${formatBytes(MAX_METRICS)} the lab reads: no curve shown` };
  const got = readOwn(path);
  if (!('bytes' in got)) return { ...none, problem: `${METRICS_FILE} ${got.why}` };
  const bytes = got.bytes;
  const rows: StepMetrics[] = [];
  let bad = 0;
  let firstBad = 0;
  let cutOff = false;
  let upToBytes = 0;
  let past = false;
  for (let start = 0, line = 1; start < bytes.length; line++) {
    let end = bytes.indexOf(0x0a, start);
    const whole = end >= 0;
    if (!whole) end = bytes.length;
    const text = Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start).toString('utf8');
    if (text.trim()) {
      const row = parseRow(text);
      if (row) {
        rows.push(row);
        if (row.step > upTo) past = true;
        else if (!past && whole) upToBytes = end + 1;
      } else if (!whole) {
        cutOff = true;
      } else if (bad++ === 0) {
        firstBad = line;
      }
    }
    start = end + 1;
  }
  const problems: string[] = [];
  if (bad) problems.push(`${METRICS_FILE} line ${firstBad} is not a metrics row${bad > 1 ? ` (nor are ${bad - 1} more)` : ''}, skipped`);
  if (cutOff) problems.push(`${METRICS_FILE} ends in a cut-off line, skipped`);
  return { rows, upToBytes, size: bytes.length, problem: problems.length ? problems.join('; ') : null };
}

/** Rows by step, a later one for a step replacing an earlier (a resumed run re-ran it). */
function byStep(rows: StepMetrics[]): StepMetrics[] {
  const m = new Map<number, StepMetrics>();
  for (const r of rows) m.set(r.step, r);
  return [...m.values()].sort((a, b) => a.step - b.step);
}

/** The curve of a listed run: every row of its metrics.jsonl, by step. */
export function foreignRows(dir: string): StepMetrics[] {
  return byStep(scanMetrics(dir, Infinity).rows);
}

function lastVal(rows: StepMetrics[]): number | null {
  for (let i = rows.length - 1; i >= 0; i--) if (typeof rows[i].val_loss === 'number') return rows[i].val_loss!;
  return null;
}

function bestVal(rows: StepMetrics[]): number | null {
  let best: number | null = null;
  for (const r of rows) if (typeof r.val_loss === 'number' && Number.isFinite(r.val_loss) && (best === null || r.val_loss < best)) best = r.val_loss;
  return best;
}

function joinProblems(...ps: Array<string | null>): string | null {
  const kept = ps.filter((p): p is string => !!p);
  return kept.length ? kept.join('; ') : null;
}

function timesOf(dir: string, ...names: string[]): { createdAt: number; updatedAt: number } {
  const folder = lstatOrNull(dir);
  let updatedAt = 0;
  for (const n of names) updatedAt = Math.max(updatedAt, lstatOrNull(join(dir, n))?.mtimeMs ?? 0);
  const createdAt = folder ? folder.birthtimeMs || folder.mtimeMs : updatedAt;
  return { createdAt: Math.round(Math.min(createdAt || updatedAt, updatedAt || createdAt)), updatedAt: Math.round(updatedAt || createdAt) };
}

// ---- a kiln train folder ----

function readTrainFolder(dir: string, folder: string): ForeignRead {
  const head = readHead(join(dir, CHECKPOINT_FILE));
  if ('why' in head) {
    if (head.why === 'is missing') return { skip: `${METRICS_FILE} but no ${CHECKPOINT_FILE} yet, so its config is unknown (kiln train saves one every checkpointEvery steps)` };
    return { skip: `${CHECKPOINT_FILE} ${head.why}, so its config is unknown` };
  }
  const meta = head.metadata;
  const format = meta['kiln.format'];
  if (format === undefined) return { skip: `${CHECKPOINT_FILE} is not a Kiln checkpoint (no kiln.format metadata)` };
  if (!/^\d{1,6}$/.test(format) || Number(format) < 1 || Number(format) > CHECKPOINT_FORMAT)
    return { skip: `${CHECKPOINT_FILE} has kiln.format ${printable(format, 20)}, which this Kiln does not read` };
  const config = configOf(jsonOf(meta['kiln.config'] ?? ''));
  if ('why' in config) return { skip: `${CHECKPOINT_FILE}'s kiln.config ${config.why}` };
  const model = modelOf(jsonOf(meta['kiln.model'] ?? ''), config);
  if ('why' in model) return { skip: `${CHECKPOINT_FILE}'s kiln.model ${model.why}` };
  const stepText = meta['kiln.step'] ?? '';
  if (!/^\d{1,15}$/.test(stepText)) return { skip: `${CHECKPOINT_FILE} has no valid kiln.step` };
  const step = Number(stepText);

  // The tensors the header names must be in the file (as the decoder checks before reading them).
  const bad = tensorProblem(head, CHECKPOINT_FILE, model, false);
  const damaged = bad ? `${CHECKPOINT_FILE} ${bad}` : null;
  const id = foreignId('train', folder);
  const metrics = scanMetrics(dir, step);
  const upTo = metrics.rows.filter((r) => r.step <= step);
  const valLoss = finite(meta['kiln.val_loss']);
  const backend = meta['kiln.backend'];
  const checkpoint: CheckpointMeta = { id: `${id}@${step}`, step, bytes: head.size, sha256: '', chunks: 1, savedAt: Math.round(head.mtimeMs), valLoss };
  const problem = joinProblems(damaged, metrics.problem);
  const phase: SavedPhase = step >= config.steps ? 'done' : 'paused';
  const rec: ForeignRun['rec'] = {
    id, name: printable(folder, 120), ...timesOf(dir, CHECKPOINT_FILE, METRICS_FILE),
    spec: { preset: nearestPreset(config), config, data: datasetOf(jsonOf(meta['kiln.dataset'] ?? '')) },
    backend: backend === 'cpu' ? 'cpu' : 'webgpu', device: backend ? `kiln train (${printable(backend, 20)})` : 'kiln train',
    numParams: paramCount(model), step, phase,
    lastLoss: byStep(upTo).at(-1)?.loss ?? null,
    lastValLoss: valLoss ?? lastVal(byStep(upTo)),
    bestValLoss: finite(meta['kiln.best_val_loss']) ?? bestVal(upTo),
    elapsedS: finite(meta['kiln.elapsed_s']) ?? byStep(upTo).at(-1)?.elapsed_s ?? 0,
    checkpoints: damaged ? [] : [checkpoint],
    bytesOnDisk: head.size + metrics.size,
    source: { kind: 'train', folder, ...(problem ? { problem } : {}) },
  };
  return { run: { folder, rec, metricsBytes: metrics.upToBytes, hfDir: null } };
}

// ---- a kiln scale folder ----

/** Whether checkpoints/step_N is a whole HF checkpoint of `model` (cheap checks; the import checks the rest); or what is wrong. */
function checkHF(dir: string, model: ModelConfig): { size: number; mtimeMs: number } | { why: string } {
  if (!lstatOrNull(join(dir, 'train_state.pt'))?.isFile()) return { why: 'has no train_state.pt (train_ddp.py writes it last)' };
  const cfg = readText(join(dir, 'config.json'));
  if ('why' in cfg) return { why: `config.json ${cfg.why}` };
  let hfModel: ModelConfig;
  try {
    hfModel = parseHFConfig(cfg.text).model;
  } catch (e) {
    return { why: isKilnError(e) ? e.message : `config.json cannot be read (${messageOf(e)})` };
  }
  if (!sameShape(hfModel, model)) return { why: "holds a model of another shape than spec.json's" };
  if (!lstatOrNull(join(dir, KILN_TOKENIZER_FILE))?.isFile()) return { why: `has no ${KILN_TOKENIZER_FILE}` };
  const head = readHead(join(dir, 'model.safetensors'));
  if ('why' in head) return { why: `model.safetensors ${head.why}` };
  // As importHF bounds it: at least 2 bytes a parameter (F16) in the whole file.
  const bad = tensorProblem(head, 'model.safetensors', model, true);
  if (bad) return { why: `model.safetensors ${bad}` };
  return { size: head.size, mtimeMs: head.mtimeMs };
}

/** The newest whole HF checkpoint (as train_ddp.py's latest_checkpoint picks it), and what is wrong with newer ones. */
function latestHF(dir: string, model: ModelConfig): { step: number; rel: string; size: number; mtimeMs: number } | { problem: string | null } {
  let names: string[];
  try {
    names = readdirSync(join(dir, HF_CHECKPOINTS_DIR));
  } catch {
    return { problem: null };
  }
  const steps = names.map((n) => STEP_DIR.exec(n)).filter((m): m is RegExpExecArray => m !== null).map((m) => Number(m[1])).sort((a, b) => b - a);
  const problems: string[] = [];
  for (const step of steps) {
    const rel = `${HF_CHECKPOINTS_DIR}/step_${step}`;
    // A link is not followed (it could lead anywhere).
    if (!lstatOrNull(join(dir, rel))?.isDirectory()) continue;
    const ok = checkHF(join(dir, rel), model);
    if ('why' in ok) {
      problems.push(`${rel} ${ok.why}`);
      continue;
    }
    return { step, rel, ...ok, ...(problems.length ? { problem: problems[0] } : {}) };
  }
  return { problem: problems.length ? `${problems[0]}${problems.length > 1 ? ` (and ${problems.length - 1} older)` : ''}: no checkpoint opens` : null };
}

function readScaleFolder(dir: string, folder: string): ForeignRead {
  const got = readText(join(dir, SPEC_FILE));
  if ('why' in got) return { skip: got.why === 'is missing' ? `it has train_ddp.py or ${HF_CHECKPOINTS_DIR}/ of kiln scale but no ${SPEC_FILE}, so its config is unknown` : `${SPEC_FILE} ${got.why}` };
  const file = jsonOf(got.text);
  if (!isObject(file) || !isObject(file.spec)) return { skip: `${SPEC_FILE} is not the file kiln scale writes (no "spec" object)` };
  const config = configOf(file.spec.config);
  if ('why' in config) return { skip: `${SPEC_FILE}'s spec.config ${config.why}` };
  const model = modelOf(file.model, config);
  if ('why' in model) return { skip: `${SPEC_FILE}'s model ${model.why}` };
  const preset = typeof file.spec.preset === 'string' && /^[\w.-]{1,40}$/.test(file.spec.preset) ? file.spec.preset : nearestPreset(config);

  const id = foreignId('scale', folder);
  const metrics = scanMetrics(dir, Infinity);
  const rows = byStep(metrics.rows);
  const hf = latestHF(dir, model);
  const ck = 'step' in hf ? hf : null;
  const problem = joinProblems('problem' in hf ? (hf.problem ?? null) : null, metrics.problem);
  const upTo = ck ? rows.filter((r) => r.step <= ck.step) : rows;
  const valAt = ck ? rows.find((r) => r.step === ck.step)?.val_loss ?? null : null;
  const phase: SavedPhase = ck && ck.step >= config.steps ? 'done' : ck || rows.length ? 'paused' : 'ready';
  const rec: ForeignRun['rec'] = {
    id, name: printable(folder, 120), ...timesOf(dir, SPEC_FILE, METRICS_FILE, HF_CHECKPOINTS_DIR),
    spec: { preset, config, data: datasetOf(file.spec.data) },
    backend: 'cpu', device: 'torchrun', numParams: paramCount(model), step: ck?.step ?? 0, phase,
    lastLoss: upTo.at(-1)?.loss ?? null, lastValLoss: lastVal(upTo), bestValLoss: bestVal(upTo), elapsedS: upTo.at(-1)?.elapsed_s ?? 0,
    checkpoints: ck ? [{ id: `${id}@${ck.step}`, step: ck.step, bytes: ck.size, sha256: '', chunks: 1, savedAt: Math.round(ck.mtimeMs), valLoss: valAt }] : [],
    bytesOnDisk: (ck?.size ?? 0) + metrics.size,
    source: { kind: 'scale', folder, readOnly: SCALE_READ_ONLY, ...(problem ? { problem } : {}) },
  };
  return { run: { folder, rec, metricsBytes: metrics.size, hfDir: ck?.rel ?? null } };
}

// ---- the folder ----

/**
 * Reads folder `folder` of OUT (at `dir`) as a run the lab did not write: a `kiln scale`
 * folder (spec.json, train_ddp.py or checkpoints/), else a `kiln train` folder
 * (checkpoint.safetensors or metrics.jsonl). Never throws: what cannot be read is a skip.
 */
export function readForeignFolder(dir: string, folder: string): ForeignRead {
  const has = (name: string) => lstatOrNull(join(dir, name)) !== null;
  try {
    if (has(SPEC_FILE) || has('train_ddp.py') || lstatOrNull(join(dir, HF_CHECKPOINTS_DIR))?.isDirectory()) return readScaleFolder(dir, folder);
    if (has(CHECKPOINT_FILE) || has(METRICS_FILE)) return readTrainFolder(dir, folder);
    return null;
  } catch (e) {
    return { skip: `it cannot be read (${printable(messageOf(e), 200)})` };
  }
}

/**
 * A listed run's checkpoint as Kiln checkpoint bytes, for the lab to open: a `kiln
 * train` folder's file as it is (the decoder checks it whole); a scaled run's HF folder
 * through the HF import, with spec.json's config, as `kiln import --hf` makes one (no
 * optimizer moments: it samples, and a branch or an import of it trains afresh).
 */
export async function foreignCheckpoint(dir: string, run: ForeignRun, meta: CheckpointMeta): Promise<Uint8Array> {
  const rec = run.rec;
  const changed = (now: string) => new KilnError('checkpoint', `"${rec.name}" changed since the run list was read (${now})`, 'reload the run list and open it again');
  if (rec.source.kind === 'train') {
    const got = readOwn(join(dir, CHECKPOINT_FILE));
    if (!('bytes' in got)) throw new KilnError('checkpoint', `${CHECKPOINT_FILE} of "${rec.name}" ${got.why}`, 'kiln train writes it: run it again with --resume, or open another run');
    let step: string | undefined;
    try {
      const md = readHeader(got.bytes).header.__metadata__;
      step = isObject(md) && typeof md['kiln.step'] === 'string' ? md['kiln.step'] : undefined;
    } catch {
      step = undefined; // the decoder says what is wrong
    }
    if (step !== undefined && step !== String(meta.step)) throw changed(`its checkpoint is now at step ${printable(step, 20)}`);
    return got.bytes;
  }
  if (!run.hfDir || !rec.checkpoints.some((c) => c.step === meta.step)) throw changed(`it has no checkpoint at step ${meta.step} now`);
  const hf = join(dir, run.hfDir);
  const fail = (what: string) => new KilnError('checkpoint', `${run.hfDir}/${what} of "${rec.name}"`, 'torchrun writes it: run.sh --resume saves the next one, or open another run');
  const weights = readOwn(join(hf, 'model.safetensors'));
  if (!('bytes' in weights)) throw fail(`model.safetensors ${weights.why}`);
  const cfg = readText(join(hf, 'config.json'));
  if ('why' in cfg) throw fail(`config.json ${cfg.why}`);
  const tok = readText(join(hf, KILN_TOKENIZER_FILE));
  if ('why' in tok) throw fail(`${KILN_TOKENIZER_FILE} ${tok.why}`);
  // The HF import checks the tensor bytes against config.json's model before gathering them.
  const { model, params, tokenizer } = importHF({ modelSafetensors: weights.bytes, configJson: cfg.text, kilnTokenizer: tok.text });
  if (model.vocabSize !== (rec.spec.config.vocabSize || model.vocabSize) || !['blockSize', 'nLayer', 'nHead', 'nEmbd'].every((k) => model[k as keyof ModelConfig] === rec.spec.config[k as keyof RunConfig]))
    throw fail("model.safetensors holds a model of another shape than spec.json's");
  const extra: Record<string, string> = { 'kiln.elapsed_s': String(rec.elapsedS), 'kiln.backend': 'torchrun' };
  if (meta.valLoss !== null) extra['kiln.val_loss'] = String(meta.valLoss);
  if (rec.bestValLoss !== null) extra['kiln.best_val_loss'] = String(rec.bestValLoss);
  if (rec.spec.data) extra['kiln.dataset'] = JSON.stringify(rec.spec.data);
  return encodeCheckpoint({ config: { ...rec.spec.config }, model, tokenizer, step: meta.step, rng: '{}', state: { params, m: null, v: null, step: meta.step }, extra });
}
