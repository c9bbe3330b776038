// `kiln scale`: hands a run to PyTorch DDP through `torchrun`. From the same config
// sources as `kiln train` (a preset, a JSON file, a share link, --set, --init), it writes a
// folder that a cluster can run without Kiln: the RunSpec and the resolved model
// (spec.json), the tokenized text (tokens.bin + tokens.json), the starting weights as a
// Hugging Face GPT-2 folder (init/; Kiln's own initialisation from the seed for a fresh
// model, so PyTorch starts where Kiln's CPU run starts), our plain-PyTorch trainer
// (train_ddp.py, from scale/), run.sh (torchrun) and slurm.sbatch. The script's
// checkpoints are HF folders again, which `kiln import --hf` reads back.
import { chmodSync, copyFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CheckpointData } from '../core/checkpoint.ts';
import { KilnError } from '../core/errors.ts';
import { exportHF } from '../core/hf.ts';
import { modelSpec } from '../core/model-spec.ts';
import type { RunSpec } from '../core/run-spec.ts';
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

/** Token ids as uint32 little-endian, train then val. */
function tokenBytes(train: Int32Array, val: Int32Array): Uint8Array {
  const out = new Uint8Array(4 * (train.length + val.length));
  const dv = new DataView(out.buffer);
  let at = 0;
  for (const part of [train, val]) for (let i = 0; i < part.length; i++, at += 4) dv.setUint32(at, part[i], true);
  return out;
}

/** run.sh: single-node torchrun; the multi-node form in a comment. */
export function runScript(): string {
  return `#!/usr/bin/env bash
# Written by \`kiln scale\`: trains this folder's run with PyTorch DDP through torchrun.
#
# One machine, one process per GPU (or NPROC processes on the CPU, gloo backend):
#   NPROC=8 ./run.sh                 (default: every GPU, else 1 CPU process)
#   ./run.sh --resume                continue from the last checkpoint in checkpoints/
# (torch.distributed.run is torchrun.) Arguments after run.sh go to train_ddp.py
# (python3 train_ddp.py --help lists them:
# --out DIR, --resume, --device cpu|cuda, --precision fp32|bf16, --stop-after N).
#
# Several machines (run the same command on each; RANK 0's host is the endpoint):
#   torchrun --nnodes 4 --nproc_per_node 8 --rdzv_backend c10d \\
#     --rdzv_endpoint HOST0:29500 --rdzv_id kiln-run train_ddp.py
# (slurm.sbatch is an example for Slurm.)
#
# The global batch is the RunSpec's (batchSize x gradAccum sequences per step) whatever
# the number of processes: each takes its share of the step's sequences. Rank 0 writes
# metrics.jsonl (Kiln's format) and checkpoints/step_N/ (Hugging Face GPT-2 folders:
# kiln import --hf checkpoints/step_N --out model.safetensors brings one back).
set -euo pipefail
cd "$(dirname "$0")"
PY=\${PYTHON:-python3}   # PYTHON=/usr/bin/python3 ./run.sh picks the Python that has torch
if [ -z "\${NPROC:-}" ]; then
  NPROC=$("$PY" -c 'import torch; print(max(1, torch.cuda.device_count()))')
fi
# torch 1.x on Python 3.11 or later (Debian 12's python3-torch) fails on torchrun's default
# --redirects/--tee ("'NoneType' object has no attribute 'get'"): name a rank that does not exist.
EXTRA=()
if "$PY" -c 'import sys, torch; sys.exit(0 if torch.__version__.startswith("1.") and sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
  EXTRA=(--redirects 9:0 --tee 9:0)
fi
exec "$PY" -m torch.distributed.run --standalone --nproc_per_node "$NPROC" "\${EXTRA[@]}" train_ddp.py "$@"
`;
}

/** An example Slurm job: one task per node, torchrun spawning one process per GPU. */
export function slurmScript(): string {
  return `#!/usr/bin/env bash
# Written by \`kiln scale\`: an example Slurm job for this folder's run (adapt the
# partition, the GPUs per node and the time to your cluster). Submit from this folder:
#   sbatch slurm.sbatch            and to continue after a stop:   sbatch slurm.sbatch --resume
#SBATCH --job-name=kiln-scale
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=16
#SBATCH --time=04:00:00
#SBATCH --output=slurm-%j.out
set -euo pipefail
HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun torchrun --nnodes "$SLURM_NNODES" --nproc_per_node "\${SLURM_GPUS_PER_NODE:-8}" \\
  --rdzv_backend c10d --rdzv_endpoint "$HEAD:29500" --rdzv_id "$SLURM_JOB_ID" \\
  train_ddp.py "$@"
`;
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

  ensureDir(out, '--out');
  ensureDir(join(out, 'init'), '--out');
  const hf = exportHF(model, params, tok);
  writeFileAtomic(join(out, 'init', 'model.safetensors'), hf.modelSafetensors);
  writeFileAtomic(join(out, 'init', 'config.json'), hf.configJson);
  for (const [name, body] of Object.entries(hf.extraFiles)) writeFileAtomic(join(out, 'init', name), body);
  writeFileAtomic(join(out, 'tokens.bin'), tokenBytes(split.train, split.val));
  writeFileAtomic(join(out, 'tokens.json'), JSON.stringify({ train: split.train.length, val: split.val.length, vocabSize: model.vocabSize, tokenizer: tok }) + '\n');
  const origin = init && flags.init ? { init: { name: flags.init, step: init.step } } : {};
  writeFileAtomic(join(out, 'spec.json'), JSON.stringify({ spec: { ...spec, data: ref }, model, ...origin }, null, 2) + '\n');
  copyFileSync(trainerScriptPath(), join(out, 'train_ddp.py'));
  writeFileAtomic(join(out, 'run.sh'), runScript());
  writeFileAtomic(join(out, 'slurm.sbatch'), slurmScript());
  for (const f of ['run.sh', 'slurm.sbatch', 'train_ddp.py']) chmodSync(join(out, f), 0o755);
  const nParams = modelSpec(model).numParams;
  process.stderr.write(
    `kiln: ${nParams.toLocaleString('en-US')} parameters, vocab ${model.vocabSize} (${tokenizer.kind}), ` +
      `${split.train.length.toLocaleString('en-US')} train / ${split.val.length.toLocaleString('en-US')} val tokens\n` +
      `kiln: wrote ${out}: run it with ${join(out, 'run.sh')} (torchrun; see its comments for several machines and Slurm)\n`,
  );
  process.stdout.write(JSON.stringify({ out, params: nParams, train_tokens: split.train.length, val_tokens: split.val.length, steps: config.steps }) + '\n');
  return 0;
}
