// `kiln train`: config + data -> trainer -> files (metrics.jsonl, checkpoint.safetensors,
// best.safetensors) and the terminal. Saves on Ctrl-C; --resume continues the same
// curve (same parameters, optimizer moments, data order and schedule).
import { existsSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Backend, TrainState } from '../backends/backend.ts';
import type { CheckpointData } from '../core/checkpoint.ts';
import type { FieldKey } from '../core/config.ts';
import { BUNDLED_DATASETS, findDataset, PRESET_DATASETS } from '../core/datasets.ts';
import { isKilnError, KilnError } from '../core/errors.ts';
import { formatBytes, memoryEstimate, modelSpec } from '../core/model-spec.ts';
import { Rng } from '../core/rng.ts';
import type { DatasetRef, RunSpec } from '../core/run-spec.ts';
import { decodeText } from '../core/text.ts';
import { checkpointBytes, readResumePoint, type ResumePoint, type RunIdentity } from '../train/checkpointing.ts';
import { generate, startTokens } from '../train/generate.ts';
import { fineTuneStart } from '../train/init-from.ts';
import { initialState, prepareData } from '../train/prepare.ts';
import { train } from '../train/trainer.ts';
import { createBackend, parseBackendName } from './backends.ts';
import { resolveRunSpec, type ConfigFlags } from './config-source.ts';
import { ensureDir, MetricsLog, readCheckpointFile, readInputFile, writeFileAtomic } from './files.ts';
import { Progress } from './progress.ts';

export interface TrainFlags extends ConfigFlags {
  data?: string;
  backend?: string;
  out?: string;
  resume?: boolean;
  /** A checkpoint whose weights start the run (fine-tuning). */
  init?: string;
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
function setKeys(set: string[] | undefined): Set<FieldKey> {
  return new Set((set ?? []).map((kv) => kv.slice(0, Math.max(0, kv.indexOf('='))) as FieldKey));
}

function loadResume(path: string): Promise<ResumePoint> {
  return readResumePoint(readInputFile(path, 'checkpoint', '--out'));
}

export async function trainCommand(flags: TrainFlags): Promise<number> {
  const backendName = parseBackendName(flags.backend);
  if (!flags.out) throw new KilnError('usage', 'no output folder given', 'add --out DIR (checkpoints and metrics go there)');
  const out = flags.out;
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

  let spec: RunSpec;
  let resume: ResumePoint | null = null;
  let init: CheckpointData | null = null;
  let initState: TrainState | null = null;
  if (flags.resume) {
    if (!existsSync(ckptPath)) throw new KilnError('usage', `nothing to resume: ${ckptPath} does not exist`, 'start the run without --resume');
    resume = await loadResume(ckptPath);
    const ignored = (['link', 'config', 'seed', 'init'] as const).filter((k) => flags[k] !== undefined);
    if (flags.set?.length) ignored.push('set' as never);
    if (ignored.length)
      process.stderr.write(`kiln: note: --resume continues the run saved in ${ckptPath} with its own config; ignoring ${ignored.map((k) => `--${k}`).join(', ')}\n`);
    const saved = resume.checkpoint.config;
    // The checkpoint's config wins (it is what was trained); only how far to go may change.
    spec = { preset: flags.preset ?? 'tiny', config: { ...saved }, data: resume.dataset };
    if (flags.steps !== undefined) spec.config.steps = resolveRunSpec({ preset: 'tiny', steps: flags.steps }).config.steps;
  } else {
    if (existsSync(ckptPath))
      throw new KilnError('usage', `${out} already holds a run (checkpoint.safetensors)`, 'add --resume to continue it, or choose another --out');
    if (flags.init !== undefined) {
      init = await readCheckpointFile(flags.init, '--init');
      // Without --preset/--config/--link the fine-tune trains as the checkpoint's own run did.
      spec = resolveRunSpec(flags, { preset: 'tiny', config: { ...init.config }, data: null });
      const start = fineTuneStart(init, spec.config, setKeys(flags.set));
      spec.config = start.config;
      initState = start.state;
      for (const note of start.notes) process.stderr.write(`kiln: --init: ${note}\n`);
    } else {
      spec = resolveRunSpec(flags);
    }
  }
  const config = spec.config;
  const { text, ref } = readTrainingData(flags.data, spec);
  const made = spec.data;
  if (made?.kind === 'file' && (ref.kind !== 'file' || made.sha256 !== ref.sha256)) {
    process.stderr.write(`warning: ${flags.data} differs from the data this run was made with (${made.name}, ${made.bytes} bytes)\n`);
  }

  const prepared = await prepareData(config, text, resume?.checkpoint.tokenizer ?? init?.tokenizer);
  const { tokenizer, model, split } = prepared;
  const nParams = modelSpec(model).numParams;
  const progress = new Progress(config.steps, resume?.checkpoint.step ?? 0);
  progress.message(
    `kiln: ${nParams.toLocaleString('en-US')} parameters, vocab ${model.vocabSize} (${tokenizer.kind}), ` +
      `${split.train.length.toLocaleString('en-US')} train / ${split.val.length.toLocaleString('en-US')} val tokens`,
  );

  const backend: Backend = await createBackend(backendName);
  // What this backend allocates: the WebGPU plan holds no T*T attention and no B*T*V logits.
  const bytes = backend.memoryBytes?.(model, config.batchSize) ?? memoryEstimate(model, config.batchSize).total;
  progress.message(`kiln: backend ${backend.kind} (${backend.info.device}), ~${formatBytes(bytes)} to train`);
  const startStep = resume?.checkpoint.step ?? 0;
  try {
    await backend.load(model, resume ? resume.checkpoint.state : initState ?? initialState(model, config.seed));
    ensureDir(out, '--out');
    if (resume) metrics.truncateAfter(startStep);
    else metrics.reset();
    if (startStep >= config.steps) {
      progress.message(`kiln: already at step ${startStep} of ${config.steps}; raise --steps to train further`);
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
    }
  } finally {
    backend.dispose();
  }
}
