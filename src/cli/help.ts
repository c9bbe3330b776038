// What `kiln --help`, `kiln help <command>` and `kiln help settings` print, and the one
// table of each command's flags that the argument parser in main.ts reads too, so a
// flag cannot exist without its sentence of help. Settings come from config.ts's FIELDS.
import { readFileSync } from 'node:fs';
import { DEFAULT_CONFIG, FIELDS, NANOGPT_NAMES, type FieldSpec } from '../core/config.ts';
import { BUNDLED_DATASETS } from '../core/datasets.ts';
import { PRESETS } from '../core/presets.ts';

export interface FlagDoc {
  name: string;
  /** The value's placeholder (e.g. 'N'); absent for a flag that takes none. */
  value?: string;
  doc: string;
  /** A value to show in "needs a value (e.g. --steps 500)". */
  example?: string;
  multiple?: boolean;
  /** For a number: what it must be, said after the flag's name ("a whole number of at least 1"). */
  number?: string;
}

export interface CommandDoc {
  name: string;
  summary: string;
  /** The usage line after "kiln NAME ". */
  usage: string;
  /** A positional argument, for the commands that take one. */
  positional?: string;
  flags: FlagDoc[];
  examples: string[];
  /** More to say after the flags, one paragraph. */
  notes?: string;
}

const BACKEND: FlagDoc = {
  name: 'backend', value: 'B', example: 'cpu',
  doc: 'auto (default: an NVIDIA GPU through CUDA where the addon is built, else a hardware GPU through WebGPU, else the CPU), cpu, webgpu or cuda',
};
const CHECKPOINT: FlagDoc = { name: 'checkpoint', value: 'FILE', example: 'runs/names/checkpoint.safetensors', doc: 'a Kiln checkpoint (.safetensors) that kiln train saved' };
const SET: FlagDoc = {
  name: 'set', value: 'KEY=VALUE', example: 'nEmbd=128', multiple: true,
  doc: "change one setting (repeatable); kiln help settings lists them; nanoGPT's names such as n_embd work too",
};
const VERBOSE: FlagDoc = { name: 'verbose', doc: "also show Dawn's and the Vulkan loader's own messages and how the GPU driver was chosen" };
const datasets = BUNDLED_DATASETS.map((d) => d.id).join(', ');

export const COMMAND_DOCS: readonly CommandDoc[] = [
  {
    name: 'train', summary: 'train a model on a text file or a bundled dataset',
    usage: '[--preset NAME | --config FILE | --link URL] [--data FILE|NAME] --out DIR [flags]',
    flags: [
      { name: 'preset', value: 'NAME', example: 'names', doc: `start from a named config: ${PRESETS.map((p) => p.name).join(', ')}` },
      { name: 'config', value: 'FILE', example: 'run.json', doc: 'start from a JSON file of settings, e.g. {"preset": "names", "nEmbd": 128}' },
      { name: 'link', value: 'URL', example: "'https://…/#v=1&preset=names'", doc: "start from a lab share link (quote it for the shell)" },
      { name: 'data', value: 'FILE|NAME', example: 'names', doc: `a UTF-8 text file, or a bundled text (${datasets}); default: the link's or the preset's` },
      { name: 'out', value: 'DIR', example: 'runs/names', doc: 'folder for metrics.jsonl, checkpoint.safetensors and best.safetensors (created if missing)' },
      BACKEND,
      { name: 'steps', value: 'N', example: '500', number: 'a whole number of at least 1', doc: 'optimizer steps to train to (the setting steps)' },
      { name: 'seed', value: 'N', example: '7', number: 'a whole number of at least 0', doc: 'seed for initialisation and data order (the setting seed)' },
      SET,
      { name: 'resume', doc: "continue the run saved in --out with its own config (--steps may extend it)" },
      { name: 'init', value: 'CHECKPOINT', example: 'runs/names/best.safetensors', doc: "fine-tune: start from a trained model's weights, shape and tokenizer" },
      { name: 'force', doc: 'use an --out folder that holds other files but no Kiln run (metrics.jsonl there is replaced; so are event files in the --tensorboard folder)' },
      { name: 'tensorboard', value: 'DIR', example: 'runs/names/tb', doc: 'also log to TensorBoard in DIR: loss, val loss, lr, grad norm, tokens/s and MFU by step, the config as text; --resume continues the same log' },
      { name: 'precision', value: 'bf16|f32', example: 'f32', doc: 'cuda backend only: bf16 activations and tensor-core matrix products with f32 master weights (default on a GPU), or f32 throughout (matches the CPU reference)' },
      { name: 'recompute', doc: 'cuda backend only: recompute activations in the backward pass instead of storing them (less GPU memory, a little more time)' },
      VERBOSE,
    ],
    examples: ['kiln train --preset names --out runs/names', 'kiln train --preset craft-1m --set dropout=0.2 --steps 2000 --out runs/craft', 'kiln train --out runs/names --resume --steps 600'],
    notes: 'Ctrl-C saves a checkpoint and exits 130; the same command with --resume continues it.',
  },
  {
    name: 'eval', summary: 'the loss of a checkpoint on a text (JSON on stdout)',
    usage: '--checkpoint FILE [--data FILE|NAME] [--split val|all] [--backend B] [--verbose]',
    flags: [
      CHECKPOINT,
      { name: 'data', value: 'FILE', example: 'names.txt', doc: 'the text to score (or a bundled dataset: names, shakespeare), split as in training; default: the bundled dataset the checkpoint trained on' },
      { name: 'split', value: 'val|all', example: 'all', doc: 'val (default): every window of the held-out part, as training cut it; all: the whole file' },
      BACKEND, VERBOSE,
    ],
    examples: ['kiln eval --checkpoint runs/names/best.safetensors --data names', 'kiln eval --checkpoint model.safetensors --data mine.txt --split all'],
  },
  {
    name: 'sample', summary: 'generate text from a checkpoint',
    usage: '--checkpoint FILE [--prompt S] [--tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed N] [--backend B] [--verbose]',
    flags: [
      CHECKPOINT,
      { name: 'prompt', value: 'S', example: '"ROMEO:"', doc: 'text to continue (default: start of a line)' },
      { name: 'tokens', value: 'N', example: '200', number: 'a whole number of at least 1', doc: 'tokens to generate (default 200)' },
      { name: 'temperature', value: 'T', example: '0.8', number: 'a number of at least 0', doc: 'randomness: 0 always picks the likeliest token (default 0.8)' },
      { name: 'top-k', value: 'K', example: '40', number: 'a whole number of at least 0', doc: 'sample only from the K likeliest tokens (default 0: all)' },
      { name: 'top-p', value: 'P', example: '0.9', number: 'a number above 0, at most 1', doc: 'sample only from the likeliest tokens that together have probability P (default 1)' },
      { name: 'seed', value: 'N', example: '7', number: 'a whole number of at least 0', doc: 'seed for the sampling' },
      BACKEND,
      VERBOSE,
    ],
    examples: ['kiln sample --checkpoint runs/names/best.safetensors --tokens 100', 'kiln sample --checkpoint runs/craft/best.safetensors --prompt "ROMEO:" --top-k 9'],
  },
  {
    name: 'info', summary: 'what a checkpoint holds: config, shape, step, data, tokenizer',
    usage: 'CHECKPOINT [--json]', positional: 'CHECKPOINT',
    flags: [
      { name: 'json', doc: 'print one JSON object instead of text' },
      { ...CHECKPOINT, doc: 'the same as CHECKPOINT, given as a flag' },
    ],
    notes: 'CHECKPOINT is a .safetensors file, or the folder of a run (what kiln train got as --out), which means its checkpoint.safetensors.',
    examples: ['kiln info runs/names', 'kiln info runs/names/best.safetensors --json'],
  },
  {
    name: 'export', summary: 'a checkpoint as a Hugging Face GPT-2 folder',
    usage: '--checkpoint FILE --hf DIR',
    flags: [
      CHECKPOINT,
      { name: 'hf', value: 'DIR', example: 'hf/names', doc: 'the folder to write (config.json, model.safetensors, tokenizer); a new or empty folder, or an earlier export' },
      { name: 'force', doc: 'write into a folder that holds other files (its config.json and model.safetensors are replaced)' },
    ],
    examples: ['kiln export --checkpoint runs/names/best.safetensors --hf hf/names'],
  },
  {
    name: 'import', summary: 'a Hugging Face GPT-2 folder as a Kiln checkpoint',
    usage: '--hf DIR --out FILE [--set KEY=VALUE]...',
    flags: [
      { name: 'hf', value: 'DIR', example: 'hf/names', doc: 'a GPT-2 folder (config.json and model.safetensors)' },
      { name: 'out', value: 'FILE', example: 'names.safetensors', doc: 'the Kiln checkpoint to write' },
      { ...SET, doc: 'a training setting to store with it (for a later --init); kiln help settings lists them' },
    ],
    examples: ['kiln import --hf hf/names --out names.safetensors'],
  },
  {
    name: 'tensorboard', summary: "a run's metrics.jsonl as a TensorBoard event file",
    usage: '--from FILE --out DIR [--force]',
    flags: [
      { name: 'from', value: 'FILE', example: 'runs/names/metrics.jsonl', doc: 'the metrics.jsonl that kiln train wrote' },
      { name: 'out', value: 'DIR', example: 'tb/names', doc: 'the folder to write the event file to (created if missing); give it to tensorboard --logdir' },
      { name: 'force', doc: 'replace the event files already in --out (a folder is one run to TensorBoard)' },
    ],
    notes: "The scalars are those kiln train --tensorboard writes (loss/train, loss/val, lr, grad_norm, tokens_per_s, mfu, by step); the config is added as text when the run's checkpoint.safetensors is next to the metrics.",
    examples: ['kiln tensorboard --from runs/names/metrics.jsonl --out tb/names'],
  },
  {
    name: 'scale', summary: 'a run as a PyTorch DDP job for torchrun (many GPUs or machines)',
    usage: '[--preset NAME | --config FILE | --link URL] [--set KEY=VALUE] [--data FILE|NAME] [--init FILE] --out DIR [--force]',
    flags: [
      { name: 'preset', value: 'NAME', example: 'gpt2-124m', doc: `start from a named config: ${PRESETS.map((p) => p.name).join(', ')}` },
      { name: 'config', value: 'FILE', example: 'run.json', doc: 'start from a JSON file of settings, as kiln train --config' },
      { name: 'link', value: 'URL', example: "'https://…/#v=1&preset=names'", doc: 'start from a lab share link (quote it for the shell)' },
      { name: 'data', value: 'FILE|NAME', example: 'names', doc: `a UTF-8 text file, or a bundled text (${datasets}); default: the link's or the preset's` },
      { name: 'init', value: 'FILE', example: 'runs/names/best.safetensors', doc: "start from a checkpoint's weights (a fine-tune, as kiln train --init); default: Kiln's initialisation from the seed" },
      { name: 'out', value: 'DIR', example: 'scale/names', doc: 'the folder to write (created if missing; must be empty)' },
      { name: 'steps', value: 'N', example: '5000', number: 'a whole number of at least 1', doc: 'optimizer steps to train to (the setting steps)' },
      { name: 'seed', value: 'N', example: '7', number: 'a whole number of at least 0', doc: 'seed for initialisation and data order (the setting seed)' },
      SET,
      { name: 'force', doc: 'write into an --out folder that already holds files' },
    ],
    notes: 'The folder holds spec.json (the RunSpec and the model shape), tokens.bin and tokens.json (the tokenized text, train then val, uint32 little-endian), init/ (the starting weights as a Hugging Face GPT-2 folder), train_ddp.py (plain PyTorch: the same model, AdamW, schedule, clipping and batch order as kiln train), run.sh (torchrun: on one machine, or on several with NNODES and RDZV_ENDPOINT set; --fsdp shards the model, gradients and AdamW state over the processes, torch >= 2.2) and slurm.sbatch (an example that runs run.sh on each node). Copy it to the cluster and run ./run.sh (NPROC=N for N processes). The global batch stays batchSize x gradAccum sequences whatever the number of processes. Rank 0 writes metrics.jsonl and checkpoints/step_N/ (Hugging Face folders: kiln import --hf brings one back); a run continues from the newest when there is one (./run.sh again after a stop; torchrun restarts the job when a process dies, up to MAX_RESTARTS=3 times). Needs Python 3 with PyTorch (1.13 or later; 2.2 or later for --fsdp); the safetensors package is optional.',
    examples: ['kiln scale --preset gpt2-124m --data corpus.txt --out scale/gpt2', 'NPROC=8 scale/gpt2/run.sh', 'NNODES=2 RDZV_ENDPOINT=node0:29500 scale/gpt2/run.sh --fsdp', 'kiln import --hf scale/gpt2/checkpoints/step_5000 --out gpt2.safetensors'],
  },
  {
    name: 'serve', summary: "the lab in your browser, training on this machine's GPU or CPU",
    usage: '[--port N] [--open] [--out DIR] [--data DIR] [--backend B] [--no-tensorboard] [--verbose]',
    flags: [
      { name: 'port', value: 'N', example: '8080', number: 'a whole number from 0 to 65535', doc: 'the port on 127.0.0.1 (default: a free one)' },
      { name: 'open', doc: 'open the lab in the default browser' },
      { name: 'out', value: 'DIR', example: 'runs', doc: 'folder for the runs the page trains, one folder each with checkpoint.safetensors and metrics.jsonl as kiln train writes them (default runs)' },
      { name: 'data', value: 'DIR', example: 'texts', doc: 'a folder of your .txt files; only files inside it are read' },
      { name: 'backend', value: 'B', example: 'cpu', doc: 'auto (default: an NVIDIA GPU through CUDA if the addon is built and sees one, else a hardware GPU through WebGPU, else the CPU), cuda (the page\'s GPU choice trains on the CUDA backend, bf16; exits 3 without a usable NVIDIA GPU), webgpu or cpu' },
      { name: 'no-tensorboard', doc: "write no TensorBoard logs (by default each run's folder gets one in tensorboard/, as kiln train --tensorboard writes it: tensorboard --logdir the --out folder shows every run)" },
      VERBOSE,
    ],
    notes: 'It prints one URL: open it in a browser on this machine. The token after # in it is what lets that page in (only pages served here may connect), so do not share it. Closing the page does not stop training; Ctrl-C saves the open run\'s checkpoint and exits 130. A run\'s folder works with kiln eval, sample and info, and kiln train --resume --out continues it.',
    examples: ['kiln serve --open', 'kiln serve --out runs --backend cpu --port 8080'],
  },
  {
    name: 'bench', summary: 'training speed per backend and preset (JSON lines)',
    usage: '[--backend cpu,webgpu,cuda] [--preset tiny,names] [--steps N] [--profile] [--verbose]',
    flags: [
      { name: 'backend', value: 'LIST', example: 'cpu,webgpu', doc: 'backends to time, comma-separated (default cpu,webgpu); cuda times the CUDA addon (bf16) and adds its GEMMs at 4096^3 where it runs on a GPU' },
      { name: 'preset', value: 'LIST', example: 'tiny,names', doc: 'presets to time, comma-separated (default tiny,names)' },
      { name: 'steps', value: 'N', example: '5', number: 'a whole number of at least 1', doc: 'timed steps per measurement (default 5)' },
      { name: 'vocab', value: 'N', example: '65', number: 'a whole number of at least 1', doc: 'vocabulary size of the random tokens (default 65)' },
      { name: 'profile', doc: 'GPU time per kernel family of one more step, where timestamp-query exists' },
      VERBOSE,
    ],
    examples: ['kiln bench --backend cpu --preset names --steps 10'],
  },
];

export function commandDoc(name: string): CommandDoc | undefined {
  return COMMAND_DOCS.find((c) => c.name === name);
}

/** The version in package.json, read next to the sources (there is no build step). */
export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
  return pkg.version ?? 'unknown';
}

/** `text` (or these words) broken into lines of at most `width` characters, each after `indent`. */
export function wrap(text: string | readonly string[], indent: string, width = 80): string {
  const lines: string[] = [];
  let line = '';
  for (const word of typeof text === 'string' ? text.split(' ') : text) {
    if (line && indent.length + line.length + 1 + word.length > width) {
      lines.push(indent + line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(indent + line);
  return lines.join('\n');
}

/** `kiln --help`: short, and says where the rest is. */
export function overview(): string {
  return `kiln ${version()}: train small GPT models (CPU, WebGPU through Dawn, CUDA)

usage: kiln <command> [flags]

commands:
${COMMAND_DOCS.map((c) => `  ${c.name.padEnd(Math.max(...COMMAND_DOCS.map((d) => d.name.length)))} ${c.summary}`).join('\n')}

presets (kiln train --preset NAME):
${PRESETS.map((p) => `  ${p.name.padEnd(18)}${wrap(p.description, ' '.repeat(20)).trimStart()}`).join('\n')}

first run:  kiln train --preset names --out runs/names
more help:  kiln help <command>    every flag of a command, with examples
            kiln help settings     every --set key: meaning, range, default
            kiln --version
            --debug (with any command): where an internal error happened

exit codes: 0 done, 1 bad usage or config, 2 bad data or checkpoint, 3 no usable device,
            4 numerical failure (NaN/Inf loss), 130 stopped by Ctrl-C (checkpoint saved)
`;
}

/** `kiln help NAME` and `kiln NAME --help`. */
export function commandHelp(c: CommandDoc): string {
  const flagName = (f: FlagDoc) => `--${f.name}${f.value ? ` ${f.value}` : ''}`;
  const width = Math.max(...c.flags.map((f) => flagName(f).length)) + 2;
  const flags = c.flags.map((f) => `  ${flagName(f).padEnd(width)}${wrap(f.doc, ' '.repeat(width + 2)).trimStart()}`);
  return [
    `kiln ${c.name}: ${c.summary}`,
    '',
    // Wrapped between bracketed groups, never inside one.
    wrap(['usage:', 'kiln', c.name, ...(c.usage.match(/\[[^\]]*\]\.*|\S+/g) ?? [])], '       ').trimStart(),
    '',
    'flags:',
    ...flags,
    `  ${'--help'.padEnd(width)}this page`,
    ...(c.notes ? ['', wrap(c.notes, '')] : []),
    '',
    c.examples.length > 1 ? 'examples:' : 'example:',
    ...c.examples.map((e) => `  ${e}`),
    '',
  ].join('\n');
}

const GROUPS: Record<FieldSpec['group'], string> = {
  model: 'model', tokenizer: 'tokenizer', optim: 'optimisation', cadence: 'cadence (in steps)', data: 'data',
};

function rangeOf(f: FieldSpec): string {
  if (f.kind === 'bool') return 'true or false';
  if (f.kind === 'enum') return `one of ${f.values!.join(', ')}`;
  return `${f.kind === 'int' ? 'a whole number' : 'a number'} from ${f.min} to ${f.max}`;
}

/** `kiln help settings`: every field of FIELDS, grouped, with its meaning, range and default. */
export function settingsHelp(): string {
  const nano = new Map(Object.entries(NANOGPT_NAMES).map(([n, k]) => [k as string, n]));
  const out = [
    'kiln settings: the keys of --set KEY=VALUE, of --config files and of share links',
    '',
    wrap("A preset chooses some of them (the others keep the default shown here); --set changes one. nanoGPT's names (n_embd, learning_rate, max_iters, ...) work in --set and config files.", ''),
  ];
  for (const [group, title] of Object.entries(GROUPS)) {
    out.push('', `${title}:`);
    for (const f of FIELDS.filter((x) => x.group === group)) {
      const alias = nano.get(f.key);
      out.push(`  ${f.key.padEnd(16)}${wrap(f.doc, ' '.repeat(18)).trimStart()}`);
      out.push(wrap(`default ${String(DEFAULT_CONFIG[f.key])}; ${rangeOf(f)}${alias ? `; nanoGPT: ${alias}` : ''}`, ' '.repeat(18)));
    }
  }
  out.push('', 'example: kiln train --preset names --set nEmbd=128 --set lr=3e-3 --out runs/wide', '');
  return out.join('\n');
}
