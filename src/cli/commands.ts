// `kiln eval`, `sample`, `export`, `import`: each reads a checkpoint (or an HF folder),
// does one thing and prints its result; numbers go to stdout as JSON.
import { randomInt } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { encodeCheckpoint } from '../core/checkpoint.ts';
import { DEFAULT_CONFIG, parseField, validate, type RunConfig } from '../core/config.ts';
import { findDataset } from '../core/datasets.ts';
import { KilnError } from '../core/errors.ts';
import { printable } from '../core/text.ts';
import { exportHF, importHF, KILN_TOKENIZER_FILE } from '../core/hf.ts';
import { Rng } from '../core/rng.ts';
import { splitTokens } from '../core/data.ts';
import { tokenizerFromJSON } from '../core/tokenizers/index.ts';
import { generate, startTokens } from '../train/generate.ts';
import { scoreTokens } from '../train/eval-split.ts';
import { createBackend, parseBackendName } from './backends.ts';
import { checkExportFolder, ensureDir, readCheckpointFile, readInputFile, writeFileAtomic } from './files.ts';
import { readTrainingData } from './train-command.ts';

function num(flag: string, text: string | undefined, fallback: number, min: number, max: number, integer = false): number {
  if (text === undefined) return fallback;
  const v = Number(text);
  if (!Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v)))
    throw new KilnError('usage', `${flag} ${text} is not valid`, `use ${integer ? 'a whole number' : 'a number'} from ${min} to ${max}`);
  return v;
}

export const EVAL_SPLITS = ['val', 'all'] as const;

export interface EvalFlags {
  checkpoint?: string;
  data?: string;
  backend?: string;
  /** val (the default): the held-out split of the text as training cut it; all: every token of the file. */
  split?: string;
}

/**
 * The loss of a checkpoint on a text: every non-overlapping window of the held-out split
 * (or of the whole file with --split all), not the sample training's evaluations take, so
 * the same weights give the same loss whatever batch settings their file carries.
 */
export async function evalCommand(flags: EvalFlags): Promise<number> {
  const which = flags.split ?? 'val';
  if (!(EVAL_SPLITS as readonly string[]).includes(which))
    throw new KilnError('usage', `--split ${JSON.stringify(which.slice(0, 40))} is not a split`, 'use --split val (the held-out part, as training cut it; the default) or --split all (the whole file)');
  const ckpt = await readCheckpointFile(flags.checkpoint);
  const { text } = readTrainingData(flags.data ?? checkpointData(ckpt.extra?.['kiln.dataset']), null);
  const tokenizer = await tokenizerFromJSON(ckpt.tokenizer);
  const all = tokenizer.encode(text);
  const tokens = which === 'all' ? all : splitTokens(all, ckpt.config.valFraction, ckpt.model.blockSize).val;
  const backend = await createBackend(parseBackendName(flags.backend));
  try {
    await backend.load(ckpt.model, { params: ckpt.state.params, m: null, v: null, step: ckpt.step });
    const score = await scoreTokens(backend, tokens, ckpt.model);
    process.stdout.write(JSON.stringify({ loss: score.loss, tokens: score.tokens, split: which, step: ckpt.step }) + '\n');
    return 0;
  } finally {
    backend.dispose();
  }
}

/**
 * Without --data, the text a checkpoint says it trained on: a bundled dataset by name;
 * a user's file only by its name, which must be given (its path is not in the file).
 */
function checkpointData(json: string | undefined): string | undefined {
  let ref: unknown;
  try {
    ref = json ? JSON.parse(json) : undefined;
  } catch {
    return undefined;
  }
  const r = ref as { kind?: unknown; id?: unknown; name?: unknown } | undefined;
  if (r?.kind === 'bundled' && typeof r.id === 'string' && findDataset(r.id)) return r.id;
  if (r?.kind === 'file' && typeof r.name === 'string')
    throw new KilnError('usage', `this checkpoint was trained on the file ${printable(r.name, 80)}, which is not bundled`, `add --data PATH to that file (or to another text to score it on)`);
  return undefined;
}

export interface SampleFlags {
  checkpoint?: string;
  prompt?: string;
  tokens?: string;
  temperature?: string;
  'top-k'?: string;
  'top-p'?: string;
  seed?: string;
  backend?: string;
}

export async function sampleCommand(flags: SampleFlags): Promise<number> {
  const ckpt = await readCheckpointFile(flags.checkpoint);
  const tokenizer = await tokenizerFromJSON(ckpt.tokenizer);
  const n = num('--tokens', flags.tokens, 200, 1, 100_000, true);
  const opts = {
    temperature: num('--temperature', flags.temperature, 0.8, 0, 100),
    topK: num('--top-k', flags['top-k'], 0, 0, ckpt.model.vocabSize, true),
    topP: num('--top-p', flags['top-p'], 1, 0.0001, 1),
  };
  // A new text each call unless --seed is given; the seed used is said, so a text can be had again.
  const seed = flags.seed !== undefined ? num('--seed', flags.seed, 0, 0, 4294967295, true) : randomInt(0, 2 ** 32);
  if (flags.seed === undefined) process.stderr.write(`kiln: seed ${seed} (--seed ${seed} gives this text again)\n`);
  const prompt = flags.prompt ? tokenizer.encode(flags.prompt) : startTokens(tokenizer);
  const backend = await createBackend(parseBackendName(flags.backend));
  try {
    await backend.load(ckpt.model, { params: ckpt.state.params, m: null, v: null, step: ckpt.step });
    if (flags.prompt) process.stdout.write(flags.prompt);
    const ids: number[] = [];
    let printed = '';
    await generate(backend, prompt, {
      ...opts, maxNewTokens: n, blockSize: ckpt.model.blockSize, vocab: tokenizer.vocabSize,
      onToken(id) {
        // Decode the whole tail each time: a BPE token can end mid-character.
        ids.push(id);
        const text = tokenizer.decode(ids);
        const safe = text.endsWith('\uFFFD') ? text.slice(0, -1) : text;
        process.stdout.write(safe.slice(printed.length));
        printed = safe;
      },
    }, Rng.derive(seed, 'sample'));
    process.stdout.write(tokenizer.decode(ids).slice(printed.length) + '\n');
    return 0;
  } finally {
    backend.dispose();
  }
}

export async function exportCommand(flags: { checkpoint?: string; hf?: string; force?: boolean }): Promise<number> {
  const ckpt = await readCheckpointFile(flags.checkpoint);
  if (!flags.hf) throw new KilnError('usage', 'no output folder given', 'add --hf DIR');
  // Only a new or empty folder, or an earlier Kiln export, unless --force.
  checkExportFolder(flags.hf, KILN_TOKENIZER_FILE, flags.force === true);
  const files = exportHF(ckpt.model, ckpt.state.params, ckpt.tokenizer);
  ensureDir(flags.hf, '--hf');
  writeFileAtomic(join(flags.hf, 'model.safetensors'), files.modelSafetensors);
  writeFileAtomic(join(flags.hf, 'config.json'), files.configJson);
  for (const [name, content] of Object.entries(files.extraFiles)) writeFileAtomic(join(flags.hf, name), content);
  process.stdout.write(JSON.stringify({ out: flags.hf, files: ['model.safetensors', 'config.json', ...Object.keys(files.extraFiles)] }) + '\n');
  return 0;
}

export async function importCommand(flags: { hf?: string; out?: string; set?: string[] }): Promise<number> {
  if (!flags.hf) throw new KilnError('usage', 'no folder given', 'add --hf DIR (a folder with model.safetensors and config.json)');
  if (!flags.out) throw new KilnError('usage', 'no output file given', 'add --out FILE.safetensors');
  if (existsSync(flags.out)) throw new KilnError('usage', `${flags.out} already exists`, 'choose another --out; Kiln never overwrites a checkpoint');
  const modelSafetensors = readInputFile(join(flags.hf, 'model.safetensors'), 'model.safetensors', '--hf');
  let configJson: string;
  try {
    configJson = readFileSync(join(flags.hf, 'config.json'), 'utf8');
  } catch {
    throw new KilnError('checkpoint', `${flags.hf} has no config.json`, 'give a folder written by `kiln export --hf` or a Hugging Face GPT-2 model folder');
  }
  const tokPath = join(flags.hf, KILN_TOKENIZER_FILE);
  let kilnTokenizer: string | undefined;
  if (existsSync(tokPath)) {
    if (!statSync(tokPath).isFile()) throw new KilnError('checkpoint', `${tokPath} is not a file`, `remove it, or put the ${KILN_TOKENIZER_FILE} that kiln export wrote there`);
    kilnTokenizer = readFileSync(tokPath, 'utf8');
  }
  const { model, params, tokenizer } = importHF({ modelSafetensors, configJson, kilnTokenizer });
  if (kilnTokenizer === undefined)
    process.stderr.write(`kiln: note: ${flags.hf} has no ${KILN_TOKENIZER_FILE}: using GPT-2's tokenizer (vocab_size ${model.vocabSize})\n`);
  const config: RunConfig = {
    ...DEFAULT_CONFIG,
    nLayer: model.nLayer, nHead: model.nHead, nEmbd: model.nEmbd, blockSize: model.blockSize,
    vocabSize: model.vocabSize, tokenizer: tokenizer.kind,
  };
  for (const kv of flags.set ?? []) {
    const eq = kv.indexOf('=');
    const parsed = eq > 0 ? parseField(kv.slice(0, eq), kv.slice(eq + 1)) : { error: 'expected key=value' };
    if ('error' in parsed) throw new KilnError('usage', `--set ${kv}: ${parsed.error}`, 'e.g. --set lr=0.0003');
    (config as unknown as Record<string, unknown>)[kv.slice(0, eq)] = parsed.value;
  }
  const issues = validate(config);
  if (issues.length) throw new KilnError('config', `the imported model gives an invalid config: ${issues.map((i) => i.message).join('; ')}`, 'check config.json');
  const bytes = await encodeCheckpoint({ config, model, tokenizer, step: 0, rng: '{}', state: { params, m: null, v: null, step: 0 } });
  writeFileAtomic(flags.out, bytes);
  process.stdout.write(JSON.stringify({ out: flags.out, params: params.length }) + '\n');
  return 0;
}
