// `kiln scale`: hands a run to PyTorch DDP through `torchrun`. From the same config
// sources as `kiln train` (a preset, a JSON file, a share link, --set, --init), it writes a
// folder that a cluster can run without Kiln: the RunSpec and the resolved model
// (spec.json), the tokenized text (tokens.bin + tokens.json), the starting weights as a
// Hugging Face GPT-2 folder (init/; Kiln's own initialisation from the seed for a fresh
// model, so PyTorch starts where Kiln's CPU run starts), our plain-PyTorch trainer
// (train_ddp.py, from scale/), run.sh (torchrun) and slurm.sbatch. The script's
// checkpoints are HF folders again, which `kiln import --hf` reads back. The files
// themselves are src/core/scale-folder.ts's (the lab zips the same list for a download).
import { chmodSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CheckpointData } from '../core/checkpoint.ts';
import { KilnError } from '../core/errors.ts';
import { exportHF } from '../core/hf.ts';
import { modelSpec } from '../core/model-spec.ts';
import type { RunSpec } from '../core/run-spec.ts';
import { scaleFolder } from '../core/scale-folder.ts';
import { fineTuneStart } from '../train/init-from.ts';
import { initialState, prepareData } from '../train/prepare.ts';
import { resolveRunSpec, type ConfigFlags } from './config-source.ts';
import { ensureDir, readCheckpointFile, writeFileAtomic } from './files.ts';
import { readTrainingData, setKeys } from './train-command.ts';

export interface ScaleFlags extends ConfigFlags {
  data?: string;
  init?: string;
  out?: string;
  force?: boolean;
}

/** The files `kiln scale` writes into its folder (init/ is a folder). */
export const SCALE_FILES = ['spec.json', 'tokens.bin', 'tokens.json', 'init', 'train_ddp.py', 'run.sh', 'slurm.sbatch'] as const;

/** The trainer shipped with Kiln, copied into every scale folder. */
export function trainerScriptPath(): string {
  return fileURLToPath(new URL('../../scale/train_ddp.py', import.meta.url));
}

/** Refuses a folder that holds anything unless --force (a new or empty folder is fine). */
function checkScaleFolder(dir: string, force: boolean): void {
  let entries: string[];
  try {
    if (!statSync(dir).isDirectory()) return; // ensureDir says what is in the way
    entries = readdirSync(dir);
  } catch {
    return;
  }
  if (entries.length === 0 || force) return;
  const shown = entries.slice(0, 3).map((e) => JSON.stringify(e.slice(0, 40))).join(', ') + (entries.length > 3 ? `, ... (${entries.length} in all)` : '');
  throw new KilnError('usage', `${dir} is not empty (${shown})`,
    'choose another --out (a new or empty folder), or add --force to write the scale files there (files of the same names are replaced)');
}

export async function scaleCommand(flags: ScaleFlags): Promise<number> {
  const out = flags.out;
  if (!out) throw new KilnError('usage', 'no output folder given', 'add --out DIR (the folder to hand to torchrun)');
  checkScaleFolder(out, flags.force === true);

  let spec: RunSpec;
  let init: CheckpointData | null = null;
  let params: Float32Array | null = null;
  if (flags.init !== undefined) {
    init = await readCheckpointFile(flags.init, '--init');
    spec = resolveRunSpec(flags, { preset: 'tiny', config: { ...init.config }, data: null });
    const start = fineTuneStart(init, spec.config, setKeys(flags.set));
    spec.config = start.config;
    params = start.state.params;
    for (const note of start.notes) process.stderr.write(`kiln: --init: ${note}\n`);
  } else {
    spec = resolveRunSpec(flags);
  }
  const config = spec.config;
  const { text, ref } = readTrainingData(flags.data, spec);
  const { tokenizer, model, split } = await prepareData(config, text, init?.tokenizer);
  params ??= initialState(model, config.seed).params;
  const tok = tokenizer.toJSON();

  const origin = init && flags.init ? { init: { name: flags.init, step: init.step } } : {};
  const files = scaleFolder({
    spec, data: ref, model, split, tokenizer: tok, hf: exportHF(model, params, tok),
    trainerScript: readFileSync(trainerScriptPath(), 'utf8'), ...origin,
  });
  ensureDir(out, '--out');
  for (const f of files) {
    const path = join(out, ...f.path.split('/'));
    if (f.path.includes('/')) ensureDir(dirname(path), '--out');
    writeFileAtomic(path, f.bytes);
    // The scripts are made executable; the other files keep the mode the umask gives.
    if (f.mode & 0o111) chmodSync(path, f.mode);
  }
  const nParams = modelSpec(model).numParams;
  process.stderr.write(
    `kiln: ${nParams.toLocaleString('en-US')} parameters, vocab ${model.vocabSize} (${tokenizer.kind}), ` +
      `${split.train.length.toLocaleString('en-US')} train / ${split.val.length.toLocaleString('en-US')} val tokens\n` +
      `kiln: wrote ${out}: run it with ${join(out, 'run.sh')} (torchrun; see its comments for several machines and Slurm)\n`,
  );
  process.stdout.write(JSON.stringify({ out, params: nParams, train_tokens: split.train.length, val_tokens: split.val.length, steps: config.steps }) + '\n');
  return 0;
}
