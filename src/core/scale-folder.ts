// The folder `kiln scale` hands to PyTorch's torchrun (issue 21), as a list of files: the
// RunSpec and the resolved model (spec.json), the tokenized text (tokens.bin, token ids
// as uint32 little-endian, train then val, and tokens.json), the starting weights as a
// Hugging Face GPT-2 folder (init/), our plain-PyTorch trainer (train_ddp.py, the text of
// scale/train_ddp.py), run.sh (torchrun) and slurm.sbatch. Pure: the CLI writes the list
// to disk (src/cli/scale-command.ts), the lab's worker zips it for a download (the same
// files, byte for byte, for the same RunSpec and text).
import type { HFExport } from './hf.ts';
import type { ModelConfig } from './model-spec.ts';
import type { DatasetRef, RunSpec } from './run-spec.ts';
import type { TokenizerJSON } from './tokenizers/index.ts';

/** One file of the folder: its '/'-separated path in it, its bytes and its Unix mode. */
export interface FolderFile {
  path: string;
  bytes: Uint8Array;
  mode: number;
}

export interface ScaleFolderInput {
  /** The run's settings; spec.json records it with `data` (the text the tokens are from). */
  spec: RunSpec;
  data: DatasetRef;
  /** The model resolved for the tokenizer's vocabulary. */
  model: ModelConfig;
  /** The tokenized text, split as the trainer splits it (src/train/prepare.ts prepareData). */
  split: { train: Int32Array; val: Int32Array };
  tokenizer: TokenizerJSON;
  /** The starting weights (exportHF of initialState's params, or of a fine-tune's start). */
  hf: HFExport;
  /** The text of scale/train_ddp.py. */
  trainerScript: string;
  /** A fine-tune's starting checkpoint, recorded in spec.json (kiln scale --init). */
  init?: { name: string; step: number };
}

/** Executables (train_ddp.py, run.sh, slurm.sbatch) and the rest. */
export const EXEC_MODE = 0o755;
export const FILE_MODE = 0o644;

/** Token ids as uint32 little-endian, train then val. */
export function tokenBytes(train: Int32Array, val: Int32Array): Uint8Array {
  const out = new Uint8Array(4 * (train.length + val.length));
  const dv = new DataView(out.buffer);
  let at = 0;
  for (const part of [train, val]) for (let i = 0; i < part.length; i++, at += 4) dv.setUint32(at, part[i], true);
  return out;
}

/**
 * The folder's files, in the order the CLI writes them. The token and weight bytes are the
 * inputs' own arrays where they can be (hf.modelSafetensors is not copied).
 */
export function scaleFolder(input: ScaleFolderInput): FolderFile[] {
  const { spec, data, model, split, tokenizer, hf } = input;
  const enc = new TextEncoder();
  const file = (path: string, body: Uint8Array | string, mode = FILE_MODE): FolderFile => ({
    path, bytes: typeof body === 'string' ? enc.encode(body) : body, mode,
  });
  const origin = input.init ? { init: { name: input.init.name, step: input.init.step } } : {};
  return [
    file('init/model.safetensors', hf.modelSafetensors),
    file('init/config.json', hf.configJson),
    ...Object.entries(hf.extraFiles).map(([name, body]) => file(`init/${name}`, body)),
    file('tokens.bin', tokenBytes(split.train, split.val)),
    file('tokens.json', JSON.stringify({ train: split.train.length, val: split.val.length, vocabSize: model.vocabSize, tokenizer }) + '\n'),
    file('spec.json', JSON.stringify({ spec: { ...spec, data }, model, ...origin }, null, 2) + '\n'),
    file('train_ddp.py', input.trainerScript, EXEC_MODE),
    file('run.sh', runScript(), EXEC_MODE),
    file('slurm.sbatch', slurmScript(), EXEC_MODE),
  ];
}

/** run.sh: torchrun on one machine, or on several (NNODES and RDZV_ENDPOINT). */
export function runScript(): string {
  return `#!/usr/bin/env bash
# Written by \`kiln scale\`: trains this folder's run with PyTorch through torchrun: DDP (a
# whole model per process), or FSDP with --fsdp (each process holds a shard of the weights,
# gradients and AdamW state: for a model that does not fit one GPU; torch >= 2.2).
#
# One machine, one process per GPU (or NPROC processes on the CPU, gloo backend):
#   NPROC=8 ./run.sh                 (default: every GPU, else 1 CPU process)
#   ./run.sh --fsdp
# Several machines: the same command on each, naming how many and where rendezvous is (any
# one of them, on a port it can open; they must share this folder's file system):
#   NNODES=4 RDZV_ENDPOINT=host0:29500 ./run.sh      (RDZV_ID names the job: default kiln-run)
# (slurm.sbatch does that for Slurm.)
# A run continues from the newest checkpoint in checkpoints/ when there is one (run it
# again after a stop; a fresh start wants a new --out). When a process dies, torchrun
# restarts them all, up to MAX_RESTARTS times (default 3), and they continue from there.
# (torch.distributed.run is torchrun.) Arguments after run.sh go to train_ddp.py
# (python3 train_ddp.py --help lists them:
# --out DIR, --device cpu|cuda, --precision fp32|bf16, --fsdp, --stop-after N).
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
if [ -n "\${RDZV_ENDPOINT:-}" ]; then
  RDZV=(--nnodes "\${NNODES:?RDZV_ENDPOINT is set: set NNODES too (the number of machines)}" --rdzv_endpoint "$RDZV_ENDPOINT" --rdzv_id "\${RDZV_ID:-kiln-run}")
else
  # One node, its rendezvous on a free port (torch 1.x's --standalone takes the fixed port
  # 29400: two jobs on one machine would share one rendezvous, and a restart fails once the
  # other job has ended).
  RDZV=(--nnodes 1 --rdzv_endpoint localhost:0 --rdzv_id "kiln-$$")
fi
exec "$PY" -m torch.distributed.run "\${RDZV[@]}" --rdzv_backend c10d \\
  --nproc_per_node "$NPROC" --max_restarts "\${MAX_RESTARTS:-3}" "\${EXTRA[@]}" train_ddp.py "$@"
`;
}

/** An example Slurm job: one task per node, each running run.sh (torchrun, one process per GPU). */
export function slurmScript(): string {
  return `#!/usr/bin/env bash
# Written by \`kiln scale\`: an example Slurm job for this folder's run (adapt the
# partition, the GPUs per node and the time to your cluster). Submit from this folder:
#   sbatch slurm.sbatch            (again after a stop: it continues from the newest checkpoint)
#   sbatch slurm.sbatch --fsdp     (arguments go to train_ddp.py)
# One task per node runs run.sh: torchrun there starts a process per GPU, and the nodes
# meet at the first node's port RDZV_PORT (default 29500).
#SBATCH --job-name=kiln-scale
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=16
#SBATCH --time=04:00:00
#SBATCH --output=slurm-%j.out
set -euo pipefail
cd "\${SLURM_SUBMIT_DIR:-$(dirname "$0")}"
HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
export NNODES=$SLURM_NNODES RDZV_ENDPOINT="$HEAD:\${RDZV_PORT:-29500}" RDZV_ID="kiln-$SLURM_JOB_ID"
srun --ntasks-per-node=1 bash ./run.sh "$@"
`;
}
