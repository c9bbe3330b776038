// `kiln train`: config + data -> trainer -> files (metrics.jsonl, checkpoint.safetensors,
// best.safetensors) and the terminal. Saves on Ctrl-C; --resume continues the same
// curve (same parameters, optimizer moments, data order and schedule).
import { existsSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Backend, TrainState } from '../backends/backend.ts';
import type { CudaBackendOptions } from '../backends/cuda/backend.ts';
import type { CheckpointData } from '../core/checkpoint.ts';
import { FIELDS, type FieldKey, type RunConfig } from '../core/config.ts';
import { BUNDLED_DATASETS, findDataset, PRESET_DATASETS } from '../core/datasets.ts';
import { isKilnError, KilnError } from '../core/errors.ts';
import { checkModelCost, formatSize, type Suggestion } from '../core/budget.ts';
import { flopsPerToken, memoryEstimate, modelSpec, type ModelConfig } from '../core/model-spec.ts';
import { findPreset, PRESETS } from '../core/presets.ts';
import { Rng } from '../core/rng.ts';
import type { DatasetRef, RunSpec } from '../core/run-spec.ts';
import { describeResults } from '../core/share-link.ts';
import { decodeText, printable } from '../core/text.ts';
import { checkpointBytes, readResumePoint, type ResumePoint, type RunIdentity } from '../train/checkpointing.ts';
import { generate, startTokens } from '../train/generate.ts';
import { fineTuneStart } from '../train/init-from.ts';
import { initialState, prepareData } from '../train/prepare.ts';
import { train } from '../train/trainer.ts';
import { availableMemory, type BackendName, createBackend, deviceLabel, machineBudget, parseBackendName, runsOnCpu } from './backends.ts';
import { resolveRunSpec, type ConfigFlags } from './config-source.ts';
import { checkRunFolder, ensureDir, MetricsLog, readCheckpointFile, readInputFile, refuseLink, RUN_FILES, writeFileAtomic } from './files.ts';
import { fmtDuration, Progress } from './progress.ts';
import { acquireRunLock, type RunLock } from './run-lock.ts';
import { openRunLog } from './tensorboard.ts';

export interface TrainFlags extends ConfigFlags {
  data?: string;
  backend?: string;
  out?: string;
  resume?: boolean;
  /** A checkpoint whose weights start the run (fine-tuning). */
  init?: string;
  /** Start a run in a folder that holds files but no Kiln run. */
  force?: boolean;
  /** Also log the metrics (and the config) as TensorBoard event files in this folder. */
  tensorboard?: string;
  /** The CUDA backend's activation precision: bf16 (mixed precision) or f32. */
  precision?: string;
  /** The CUDA backend recomputes activations in the backward pass instead of storing them. */
  recompute?: boolean;
}

export const PRECISIONS = ['bf16', 'f32'] as const;

/**
 * The CUDA backend's options from --precision and --recompute, refused for a backend they
 * cannot apply to (auto may still choose another: checked again once it has chosen).
 */
export function cudaFlags(flags: Pick<TrainFlags, 'precision' | 'recompute'>, backendName: BackendName): CudaBackendOptions {
  const given = usedCudaFlags(flags);
  if (given.length && backendName !== 'cuda' && backendName !== 'auto')
    throw new KilnError('usage', `${given.join(' and ')} ${given.length > 1 ? 'apply' : 'applies'} only to the cuda backend, not ${backendName}`,
      `add --backend cuda, or drop ${given.join(' and ')}`);
  const options: CudaBackendOptions = {};
  if (flags.precision !== undefined) {
    if (!(PRECISIONS as readonly string[]).includes(flags.precision))
      throw new KilnError('usage', `--precision ${JSON.stringify(flags.precision.slice(0, 40))} is not a precision`,
        'use --precision bf16 (mixed precision, the default on a GPU) or --precision f32 (matches the CPU reference)');
    options.dtype = flags.precision as CudaBackendOptions['dtype'];
  }
  if (flags.recompute) options.recompute = true;
  return options;
}

function usedCudaFlags(flags: Pick<TrainFlags, 'precision' | 'recompute'>): string[] {
  return [...(flags.precision !== undefined ? [`--precision ${flags.precision}`] : []), ...(flags.recompute ? ['--recompute'] : [])];
}

/**
 * The training text: --data FILE, or --data NAME of a bundled dataset (when no such
 * file exists here), or without --data the dataset the link names, else the preset's.
 */
export function readTrainingData(path: string | undefined, spec: Pick<RunSpec, 'data' | 'preset'> | null): { text: string; ref: DatasetRef } {
  const fromSpec = spec?.data?.kind === 'bundled' ? spec.data.id : spec && !spec.data ? PRESET_DATASETS[spec.preset] : undefined;
  const named = path ?? fromSpec;
  if (named !== undefined && !existsSync(named)) {
    const d = findDataset(named);
    if (d) {
      if (path === undefined) process.stderr.write(`kiln: data: the bundled ${d.id} dataset (${d.title}; --data FILE trains on your own text)\n`);
      const { text } = readDataFile(bundledPath(d.file));
      return { text, ref: { kind: 'bundled', id: d.id } };
    }
  }
  return readDataFile(named);
}

function bundledPath(file: string): string {
  const dir = process.env.KILN_DATA_DIR;
  return dir ? join(dir, file) : fileURLToPath(new URL(`../../public/datasets/${file}`, import.meta.url));
}

export function readDataFile(path: string | undefined): { text: string; ref: Extract<DatasetRef, { kind: 'file' }> } {
  if (!path) throw new KilnError('usage', 'no training data given', `add --data FILE (a UTF-8 text file) or --data NAME for a bundled text (${BUNDLED_DATASETS.map((d) => d.id).join(', ')})`);
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new KilnError('data', `cannot read ${path}: ${err.code === 'ENOENT' ? 'no such file' : err.code === 'EISDIR' ? 'it is a folder' : err.message}`,
      `check the path given to --data (or name a bundled text: ${BUNDLED_DATASETS.map((d) => d.id).join(', ')})`);
  }
  const text = decodeText(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length), path);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  return { text, ref: { kind: 'file', name: basename(path), bytes: bytes.length, sha256 } };
}

/** The fields named by --set key=value (checked and parsed later, by resolveRunSpec). */
export function setKeys(set: string[] | undefined): Set<FieldKey> {
  return new Set((set ?? []).map((kv) => kv.slice(0, Math.max(0, kv.indexOf('='))) as FieldKey));
}

function loadResume(path: string): Promise<ResumePoint> {
  return readResumePoint(readInputFile(path, 'checkpoint', '--out'));
}

/** A setting's value as `--set` takes it. */
function fmtValue(v: unknown): string {
  return typeof v === 'number' ? String(+v.toPrecision(6)) : String(v);
}

/** The settings of `config` that differ from `base`, as key=value, in the FIELDS table's order. */
export function configDiff(config: RunConfig, base: RunConfig, skip: readonly FieldKey[] = []): string[] {
  return FIELDS.filter((f) => !skip.includes(f.key) && config[f.key] !== base[f.key]).map((f) => `${f.key}=${fmtValue(config[f.key])}`);
}

/** The preset a config is closest to (fewest differing settings): what a checkpoint's run most likely started from. */
export function closestPreset(config: RunConfig): string {
  let best = PRESETS[0];
  let fewest = Infinity;
  for (const p of PRESETS) {
    const n = configDiff(config, p.config).length;
    if (n < fewest) [best, fewest] = [p, n];
  }
  return best.name;
}

/** One line: the effective config as its preset plus what differs (nanoGPT prints its overrides). */
export function configLine(config: RunConfig, presetName: string, closest = false): string {
  const preset = findPreset(presetName);
  if (!preset) return `kiln: config: ${presetName}`;
  const diff = configDiff(config, preset.config);
  if (!diff.length) return `kiln: config: ${preset.name}${closest ? "'s" : ''}, as it is`;
  return `kiln: config: ${closest ? `the nearest preset, ${preset.name}` : preset.name}, with ${diff.join(' ')}`;
}

/** The note for a run that goes on past its decay: the last steps all train at minLr. */
export function decayNote(config: RunConfig, resumed: boolean): string | null {
  if (config.steps <= config.decaySteps) return null;
  const flat = config.steps - config.decaySteps;
  const fix = resumed
    ? `a run keeps its schedule when resumed; a new run with --set decaySteps=${config.steps} decays over all of it`
    : `--set decaySteps=${config.steps} decays over the whole run`;
  return `kiln: note: --steps ${config.steps} goes past decaySteps ${config.decaySteps}: the last ${flat === 1 ? 'step trains' : `${flat} steps train`} at minLr ${fmtValue(config.minLr)} (${fix})`;
}

/** What Kiln's CPU reference computes per second, roughly (one core; measured 1.8-4.5 GFLOP/s on the names and craft-1m presets). */
export const CPU_FLOPS = 2e9;

/** A run estimated past this on the CPU gets nanoGPT's "on CPU, try ..." advice. */
export const CPU_ADVICE_AFTER_S = 3600;

/** The time the advice's smaller run aims at. */
const CPU_TARGET_S = 10 * 60;

/** nanoGPT's README recipe for its Shakespeare model on a CPU (block 64, batch 12, 4 layers of 4 heads, 128 wide, no dropout). */
const NANOGPT_CPU = { nLayer: 4, nHead: 4, nEmbd: 128, blockSize: 64, batchSize: 12, gradAccum: 1, dropout: 0 } as const;

function flopsPerStep(model: ModelConfig, config: Pick<RunConfig, 'batchSize' | 'gradAccum'>): number {
  return flopsPerToken(model) * model.blockSize * config.batchSize * config.gradAccum;
}

/**
 * nanoGPT's advice for a run that would take hours on a CPU: its small CPU recipe (only
 * where it is smaller than this config) and as many steps as fit in about ten minutes at
 * `flops` FLOP/s, as flags; or only the estimate where the shape cannot change (a resume
 * or a fine-tune). Null when the run takes less than CPU_ADVICE_AFTER_S.
 */
export function cpuAdvice(config: RunConfig, model: ModelConfig, stepsLeft: number, flops: number, canReshape: boolean, measured: boolean): string[] | null {
  const seconds = (flopsPerStep(model, config) * stepsLeft) / flops;
  if (seconds < CPU_ADVICE_AFTER_S) return null;
  const rate = `${+(flops / 1e9).toPrecision(2)} GFLOP/s`;
  const lines = [`kiln: on the CPU this run takes ${measured ? 'about' : 'roughly'} ${fmtDuration(seconds)} (${(flopsPerStep(model, config) * stepsLeft).toExponential(1)} FLOPs at ${measured ? 'the measured' : 'about'} ${rate})`];
  if (!canReshape) {
    lines.push('kiln: on CPU, try fewer steps (--steps N), or a machine with a GPU (--backend webgpu)');
    return lines;
  }
  const c: RunConfig = { ...config };
  for (const [k, v] of Object.entries(NANOGPT_CPU) as Array<[keyof typeof NANOGPT_CPU, number]>) if (c[k] > v) c[k] = v;
  if (c.nEmbd % c.nHead !== 0) c.nHead = [4, 2, 1].find((h) => c.nEmbd % h === 0)!;
  const small: ModelConfig = { ...model, nLayer: c.nLayer, nHead: c.nHead, nEmbd: c.nEmbd, blockSize: c.blockSize };
  const perStep = flopsPerStep(small, c);
  const steps = Math.min(config.steps, Math.max(100, Math.floor((CPU_TARGET_S * flops) / perStep / 100) * 100));
  const flags = (Object.keys(NANOGPT_CPU) as Array<keyof typeof NANOGPT_CPU>).filter((k) => c[k] !== config[k]).map((k) => `--set ${k}=${c[k]}`);
  if (steps < config.steps) {
    flags.push(`--steps ${steps}`);
    if (config.decaySteps > steps) flags.push(`--set decaySteps=${steps}`);
    if (config.warmupSteps > steps / 10) flags.push(`--set warmupSteps=${Math.floor(steps / 10)}`);
  }
  if (!flags.length) return lines;
  lines.push(`kiln: on CPU, try ${flags.join(' ')} (about ${fmtDuration((perStep * steps) / flops)}), or a machine with a GPU (--backend webgpu)`);
  return lines;
}

/** How a run's model came: made here (any shape), from --init (shape fixed), from --resume (config fixed). */
export type RunOrigin = 'new' | 'init' | 'resume';

/**
 * Refuses a run whose memory exceeds what this machine has free (the CPU backend's
 * arrays, or a software GPU's buffers, live here), with checkModelCost's message (the
 * lab's words) and a hint as --set flags: a smaller batch with more accumulation (the
 * same sequences per step), else a smaller model.
 */
export function checkMemory(bytesAt: (batchSize: number, model: ModelConfig) => number, model: ModelConfig, config: RunConfig, backendName: string,
  mem: { free: number; total: number } = availableMemory(), origin: RunOrigin = 'new'): void {
  const cost = checkModelCost(model, config.batchSize, machineBudget(backendName, mem), (m, b) => ({ total: bytesAt(b, m) }), { fixedShape: origin !== 'new' });
  if (cost.fits) return;
  throw new KilnError('config', cost.problems.map((p) => p.message).join('; '), memoryHint(cost.suggestion, model, config, origin));
}

/** The --set flags of a suggestion that fits; gradAccum keeps the sequences per step where it can. */
function memoryHint(s: Suggestion | null, model: ModelConfig, config: RunConfig, origin: RunOrigin): string {
  if (origin === 'resume') return 'a resumed run keeps its config: continue it on a machine with more memory (or a GPU, --backend webgpu)';
  if (!s) return origin === 'init' ? 'a fine-tune keeps the model\'s shape: use a machine with more memory (or a GPU, --backend webgpu)'
    : 'choose a smaller vocabSize or blockSize, or a machine with more memory';
  const flags: string[] = [];
  if (s.nLayer !== model.nLayer) flags.push(`--set nLayer=${s.nLayer}`);
  if (s.nEmbd !== model.nEmbd) flags.push(`--set nEmbd=${s.nEmbd}`);
  if (s.nHead !== model.nHead) flags.push(`--set nHead=${s.nHead}`);
  const sequences = config.batchSize * config.gradAccum;
  const accum = sequences / s.batchSize;
  const maxAccum = FIELDS.find((f) => f.key === 'gradAccum')!.max!;
  let same = '';
  if (s.batchSize !== config.batchSize) {
    flags.push(`--set batchSize=${s.batchSize}`);
    if (accum <= maxAccum) {
      flags.push(`--set gradAccum=${accum}`);
      same = `; the same ${sequences} sequences per step`;
    } else same = '; fewer sequences per step';
  }
  const size = `~${formatSize(s.memoryBytes)}${same}`;
  if (s.nLayer === model.nLayer && s.nEmbd === model.nEmbd) return `lower the batch: ${flags.join(' ')} (${size})`;
  return `a smaller model fits: ${flags.join(' ')} (${size}), or use a machine with more memory`;
}

/** Whether a --config file names its preset (without one, its settings start from tiny's). */
function configNamesPreset(path: string): boolean {
  try {
    const raw = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    return typeof raw === 'object' && raw !== null && 'preset' in raw;
  } catch {
    return true;
  }
}

export async function trainCommand(flags: TrainFlags): Promise<number> {
  const backendName = parseBackendName(flags.backend);
  cudaFlags(flags, backendName);
  if (!flags.out) throw new KilnError('usage', 'no output folder given', 'add --out DIR (checkpoints and metrics go there)');
  // One writer per run folder, taken before anything in it is read as this run's or
  // written: a second kiln on this --out is refused now, naming the first, rather than
  // truncating its metrics.jsonl. Released on every way out; on a second Ctrl-C's
  // process.exit, proper-lockfile's exit handler removes it.
  const lock = await acquireRunLock(flags.out, { flag: '--out' });
  try {
    if (lock.tookOver) process.stderr.write(`kiln: note: took over ${flags.out} from a run that is gone (pid ${lock.tookOver.pid}, \`${printable(lock.tookOver.command, 100)}\`)\n`);
    return await trainLocked(flags, backendName, flags.out, lock);
  } finally {
    await lock.release();
  }
}

async function trainLocked(flags: TrainFlags, backendName: BackendName, out: string, lock: RunLock): Promise<number> {
  const ckptPath = join(out, 'checkpoint.safetensors');
  const bestPath = join(out, 'best.safetensors');
  // Checked when the disk fills or the GPU goes, not now: what can be resumed is what is
  // on disk then.
  const canResume = () => existsSync(ckptPath);
  const whenFull = () =>
    canResume()
      ? `free some space, then continue with the same command and --resume (${ckptPath} is intact)`
      : 'free some space, then run the same command again (no checkpoint had been saved yet)';
  const metrics = new MetricsLog(join(out, 'metrics.jsonl'), whenFull);
  // The run's files are written only as themselves, never through a link placed there.
  for (const f of RUN_FILES) refuseLink(join(out, f), '--out');

  let spec: RunSpec;
  let resume: ResumePoint | null = null;
  let init: CheckpointData | null = null;
  let initState: TrainState | null = null;
  /** The preset the config line compares with, and whether it is only the closest one (a checkpoint's config). */
  let base: { preset: string; closest: boolean };
  const notes: string[] = [];
  if (flags.resume) {
    if (!existsSync(ckptPath)) throw new KilnError('usage', `nothing to resume: ${ckptPath} does not exist`, 'start the run without --resume');
    resume = await loadResume(ckptPath);
    const saved = resume.checkpoint.config;
    const ignored: string[] = (['link', 'config', 'seed', 'init'] as const).filter((k) => flags[k] !== undefined).map((k) => `--${k}`);
    if (flags.set?.length) ignored.push('--set');
    // A --preset that matches the run (but for its length) changes nothing; any other is ignored, and said.
    const named = flags.preset !== undefined ? findPreset(flags.preset) : undefined;
    if (flags.preset !== undefined && (!named || configDiff(saved, named.config, ['steps']).length))
      ignored.push(`--preset ${flags.preset} (the run was not made with it)`);
    if (ignored.length)
      notes.push(`kiln: note: --resume continues the run saved in ${ckptPath} with its own config; ignoring ${ignored.join(', ')}`);
    // The checkpoint's config wins (it is what was trained); only how far to go may change.
    spec = { preset: flags.preset ?? 'tiny', config: { ...saved }, data: resume.dataset };
    if (flags.steps !== undefined) spec.config.steps = resolveRunSpec({ preset: 'tiny', steps: flags.steps }).config.steps;
    base = { preset: closestPreset(spec.config), closest: true };
    if (resume.checkpoint.step < spec.config.steps) notes.push(`kiln: resuming from step ${resume.checkpoint.step} of ${spec.config.steps} (${ckptPath})`);
  } else {
    if (existsSync(ckptPath))
      throw new KilnError('usage', `${out} already holds a run (checkpoint.safetensors)`, 'add --resume to continue it, or choose another --out');
    // A folder that held only the lock is empty; otherwise the lock is one more entry beside the run's files.
    if (!lock.wasEmpty) checkRunFolder(out, flags.force === true);
    const fromSource = flags.link !== undefined || flags.config !== undefined || flags.preset !== undefined;
    if (flags.init !== undefined) {
      init = await readCheckpointFile(flags.init, '--init');
      // Without --preset/--config/--link the fine-tune trains as the checkpoint's own run did.
      spec = resolveRunSpec(flags, { preset: 'tiny', config: { ...init.config }, data: null });
      const start = fineTuneStart(init, spec.config, setKeys(flags.set));
      spec.config = start.config;
      initState = start.state;
      for (const note of start.notes) notes.push(`kiln: --init: ${note}`);
    } else {
      spec = resolveRunSpec(flags);
    }
    if (flags.config !== undefined && !configNamesPreset(flags.config))
      notes.push(`kiln: note: ${flags.config} names no "preset": its settings start from tiny's (add "preset": "NAME" to start from another)`);
    base = fromSource ? { preset: spec.preset, closest: false } : { preset: closestPreset(spec.config), closest: true };
    // The sharer's results, to compare this run with (escaped: they come from the link).
    const shared = flags.link !== undefined ? describeResults(spec.results) : null;
    if (shared) notes.push(`kiln: ${shared}`);
  }
  const config = spec.config;
  notes.push(configLine(config, base.preset, base.closest));
  const decay = decayNote(config, resume !== null);
  if (decay) notes.push(decay);
  for (const n of notes) process.stderr.write(`${n}\n`);
  const { text, ref } = readTrainingData(flags.data, spec);
  const made = spec.data;
  if (made?.kind === 'file' && (ref.kind !== 'file' || made.sha256 !== ref.sha256)) {
    process.stderr.write(`warning: ${flags.data} differs from the data this run was made with (${made.name}, ${made.bytes} bytes)\n`);
  }

  const prepared = await prepareData(config, text, resume?.checkpoint.tokenizer ?? init?.tokenizer);
  const { tokenizer, model, split } = prepared;
  const nParams = modelSpec(model).numParams;
  const startStep = resume?.checkpoint.step ?? 0;
  const tokensPerStep = config.batchSize * config.blockSize * config.gradAccum;
  // Advice for a slow CPU run is given once: before the start from an assumed speed, or
  // after the first steps from the measured one.
  let advised = false;
  let isCpuBackend = false;
  const canReshape = !resume && !init;
  const progress = new Progress(config.steps, startStep, process.stderr, {
    onEstimate(e) {
      if (advised || !isCpuBackend) return;
      const measured = (flopsPerToken(model) * tokensPerStep) / e.secondsPerStep;
      const advice = cpuAdvice(config, model, Math.round(e.leftS / e.secondsPerStep), measured, canReshape, true);
      if (advice) advised = true;
      return advice ?? undefined;
    },
  });
  progress.message(
    `kiln: ${nParams.toLocaleString('en-US')} parameters, vocab ${model.vocabSize} (${tokenizer.kind}), ` +
      `${split.train.length.toLocaleString('en-US')} train / ${split.val.length.toLocaleString('en-US')} val tokens`,
  );

  const backend: Backend = await createBackend(backendName, (line) => progress.message(line), cudaFlags(flags, backendName));
  try {
    const unused = usedCudaFlags(flags);
    if (unused.length && backend.kind !== 'cuda')
      throw new KilnError('usage', `${unused.join(' and ')} ${unused.length > 1 ? 'apply' : 'applies'} only to the cuda backend, and --backend auto chose ${backend.kind}`,
        `drop ${unused.join(' and ')}, or run on a machine with an NVIDIA GPU and the CUDA addon built (npm run build:cuda)`);
    // What this backend allocates: the WebGPU plan holds no T*T attention and no B*T*V logits.
    const bytesAt = (b: number, m: ModelConfig) => backend.memoryBytes?.(m, b) ?? memoryEstimate(m, b).total;
    const bytes = bytesAt(config.batchSize, model);
    // --recompute trades a little time for memory: say how much, so the trade can be judged.
    const saved = 'recomputeSavedBytes' in backend && typeof backend.recomputeSavedBytes === 'function'
      ? (backend as Backend & { recomputeSavedBytes(m: ModelConfig, b: number): number }).recomputeSavedBytes(model, config.batchSize) : 0;
    progress.message(`kiln: backend ${backend.kind}: ${deviceLabel(backend)}; ~${formatSize(bytes)} to train${saved > 0 ? ` (--recompute saves ~${formatSize(saved)})` : ''}`);
    isCpuBackend = backend.kind === 'cpu';
    // The CPU's arrays and a software GPU's buffers are this machine's memory: a run that
    // cannot fit is refused now, not found out after minutes of swapping.
    if (runsOnCpu(backend)) checkMemory(bytesAt, model, config, backend.kind, availableMemory(), resume ? 'resume' : init ? 'init' : 'new');
    if (isCpuBackend && startStep < config.steps) {
      const advice = cpuAdvice(config, model, config.steps - startStep, CPU_FLOPS, canReshape, false);
      if (advice) {
        advised = true;
        for (const line of advice) progress.message(line);
      }
    }
    await backend.load(model, resume ? resume.checkpoint.state : initState ?? initialState(model, config.seed));
    ensureDir(out, '--out');
    // Before metrics.jsonl is cut: a resumed log catches up from its rows up to startStep.
    const tb = flags.tensorboard === undefined ? null
      : openRunLog(flags.tensorboard, { config, resumeStep: resume ? startStep : null, force: flags.force === true, metricsPath: join(out, 'metrics.jsonl'), whenFull });
    if (resume) metrics.truncateAfter(startStep);
    else metrics.reset();
    if (startStep >= config.steps) {
      progress.message(`kiln: already at step ${startStep} of ${config.steps}; raise --steps to train further`);
      tb?.close();
      return 0;
    }

    const run: RunIdentity = { config, model, tokenizer: tokenizer.toJSON(), dataset: ref };
    const origin = init && flags.init ? { name: basename(flags.init), step: init.step } : resume?.init;
    if (origin) run.init = origin;
    const controller = new AbortController();
    let interrupts = 0;
    const onSigint = () => {
      interrupts++;
      if (interrupts > 1) process.exit(130);
      progress.message('kiln: stopping after this step and saving (Ctrl-C again to quit without saving)');
      controller.abort();
    };
    process.on('SIGINT', onSigint);
    const runStart = performance.now() / 1000;
    try {
      const result = await train({
        config,
        model,
        backend,
        split,
        startStep,
        stopAt: config.steps,
        samplerState: resume?.samplerState ?? undefined,
        elapsedS: resume?.elapsedS,
        bestValLoss: resume?.bestValLoss,
        signal: controller.signal,
        events: {
          onMetrics(m) {
            metrics.append(m);
            tb?.scalars(m);
            progress.update(m, performance.now() / 1000 - runStart);
          },
          async onSample(step) {
            const rng = Rng.derive(config.seed ^ step, 'sample');
            const ids = await generate(backend, startTokens(tokenizer), {
              maxNewTokens: 100, blockSize: config.blockSize, vocab: tokenizer.vocabSize, temperature: 0.8, topK: 0, topP: 1,
            }, rng);
            progress.message(`--- sample at step ${step} ---\n${tokenizer.decode(ids)}\n---`);
          },
          async onCheckpoint(snap) {
            const bytes = await checkpointBytes(backend, run, snap);
            writeFileAtomic(snap.reason === 'best' ? bestPath : ckptPath, bytes, whenFull);
          },
        },
      });
      progress.end();
      const summary = { step: result.step, loss: result.lastLoss, val_loss: result.lastValLoss, best_val_loss: result.bestValLoss, out };
      if (result.stopped) {
        progress.message(`kiln: stopped at step ${result.step}; saved ${ckptPath}. Continue with the same command and --resume.`);
        process.stdout.write(JSON.stringify({ ...summary, stopped: true }) + '\n');
        return 130;
      }
      process.stdout.write(JSON.stringify(summary) + '\n');
      return 0;
    } catch (e) {
      // A lost GPU (driver reset, sleep, another process) loses only the steps since
      // the last checkpoint: say how to get them back from here.
      if (isKilnError(e) && e.code === 'device_lost') {
        throw new KilnError(
          'device_lost',
          e.message,
          canResume()
            ? `run the same command with --resume: it continues from the last checkpoint in ${ckptPath}`
            : 'run the same command again (no checkpoint had been saved yet; lower checkpointEvery to save more often)',
        );
      }
      throw e;
    } finally {
      process.off('SIGINT', onSigint);
      tb?.close();
    }
  } finally {
    backend.dispose();
  }
}
