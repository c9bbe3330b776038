// "Run on a cluster" in the lab (issue 21): the folder `kiln scale` writes, built in the
// worker from the page's RunSpec and its tokenized text, and zipped for a download. The
// files are src/core/scale-folder.ts's, the same bytes the CLI writes for the same
// RunSpec and text: Kiln's seeded initial weights as a Hugging Face folder, the tokens,
// train_ddp.py (scale/train_ddp.py's text, which the worker's bundle carries), run.sh and
// slurm.sbatch, under one top-level folder so that unzipping does not spill files.
import { BROWSER_MEMORY_BUDGET } from '../core/budget.ts';
import { KilnError } from '../core/errors.ts';
import { exportHF } from '../core/hf.ts';
import { formatBytes, modelSpec, resolveModel } from '../core/model-spec.ts';
import type { DatasetRef, RunSpec } from '../core/run-spec.ts';
import { scaleFolder } from '../core/scale-folder.ts';
import { zipParts } from '../core/zip.ts';
import { initialState, type PreparedData } from '../train/prepare.ts';
import type { ScaleDownload, ScaleProgress } from './api.ts';

const CLI_HINT = 'kiln scale writes the same folder from Node: the kiln command above with scale in place of train, and --out a new folder';

/** The zip's top-level folder: kiln-scale-<preset>, in characters every file system takes. */
export function scaleFolderName(preset: string): string {
  const safe = preset.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[-.]+|[-.]+$/g, '').slice(0, 60);
  return `kiln-scale-${safe || 'run'}`;
}

/**
 * Bytes building the zip holds at its peak: the parameters (float32) and their safetensors
 * copy, the token ids (int32) and tokens.bin, then the Blob's copy of the files.
 */
export function scaleZipMemory(numParams: number, tokens: number): number {
  return 2 * 4 * numParams + 3 * 4 * tokens;
}

export interface ScaleZipInput {
  spec: RunSpec;
  /** The text the tokens are from. */
  data: DatasetRef;
  /** The text tokenized with spec.config's tokenizer, split as the trainer splits it. */
  prepared: PreparedData;
  /** scale/train_ddp.py's text. */
  trainerScript: string;
  onProgress?(p: ScaleProgress): void;
  /** What the build may hold at once (default: what a browser tab can count on). */
  memoryBytes?: number;
  /** The files' time in the zip (default: now). */
  date?: Date;
}

/** The `kiln scale` folder of a run as a zip (a Blob, built from the files' own bytes). */
export function buildScaleZip(input: ScaleZipInput): ScaleDownload {
  const { spec, prepared } = input;
  const config = spec.config;
  const model = resolveModel(config, prepared.tokenizer.vocabSize);
  const numParams = modelSpec(model).numParams;
  const tokens = prepared.split.train.length + prepared.split.val.length;
  const need = scaleZipMemory(numParams, tokens);
  const budget = input.memoryBytes ?? BROWSER_MEMORY_BUDGET;
  if (need > budget) {
    throw new KilnError(
      'config',
      `building this folder in the browser needs about ${formatBytes(need)} (the starting weights of ${numParams.toLocaleString('en-US')} parameters, twice, and ${tokens.toLocaleString('en-US')} tokens), more than the ${formatBytes(budget)} a browser tab can count on`,
      CLI_HINT,
    );
  }
  input.onProgress?.({ stage: 'weights', done: 0, total: 1 });
  const tokenizer = prepared.tokenizer.toJSON();
  let hf;
  try {
    hf = exportHF(model, initialState(model, config.seed).params, tokenizer);
  } catch (e) {
    // An allocation the browser refused (RangeError: Array buffer allocation failed).
    if (e instanceof RangeError) throw new KilnError('config', `this browser could not hold the starting weights of ${numParams.toLocaleString('en-US')} parameters (${e.message})`, CLI_HINT);
    throw e;
  }
  input.onProgress?.({ stage: 'weights', done: 1, total: 1 });
  const files = scaleFolder({ spec, data: input.data, model, split: prepared.split, tokenizer, hf, trainerScript: input.trainerScript });
  const dir = scaleFolderName(spec.preset);
  const entries = files.map((f) => ({ path: `${dir}/${f.path}`, bytes: f.bytes, mode: f.mode }));
  const parts = zipParts(entries, {
    ...(input.date ? { date: input.date } : {}),
    onProgress: (done, total) => input.onProgress?.({ stage: 'zip', done, total }),
  });
  return { fileName: `${dir}.zip`, blob: new Blob(parts as Uint8Array<ArrayBuffer>[], { type: 'application/zip' }), files: entries.map((e) => e.path) };
}
