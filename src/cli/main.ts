// The `kiln` command: parses flags, runs one subcommand, and turns every KilnError
// into one readable message plus the exit code of the design (1 usage/config,
// 2 data/checkpoint, 3 no usable device, 4 numerical failure).
import { parseArgs } from 'node:util';
import { EXIT_CODES, isKilnError, KilnError } from '../core/errors.ts';
import { PRESETS } from '../core/presets.ts';
import { benchCommand } from './bench-command.ts';
import { evalCommand, exportCommand, importCommand, sampleCommand } from './commands.ts';
import { trainCommand } from './train-command.ts';

const USAGE = `kiln: train small GPT models (CPU, WebGPU through Dawn, CUDA)

usage:
  kiln train  [--link URL | --config FILE | --preset NAME] --data FILE --out DIR
              [--backend auto|cpu|webgpu|cuda] [--steps N] [--seed N] [--set key=value]... [--resume]
              [--init CHECKPOINT]   fine-tune: start from a trained model's weights (its shape and tokenizer)
  kiln eval   --checkpoint FILE --data FILE [--backend B]      prints {"loss": ...}
  kiln sample --checkpoint FILE [--prompt S] [--tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed N]
  kiln export --checkpoint FILE --hf DIR                       Hugging Face GPT-2 folder
  kiln import --hf DIR --out FILE                              back to a Kiln checkpoint
  kiln bench  [--backend cpu,webgpu] [--preset tiny,names] [--steps N] [--profile]   JSON lines
              (--profile: GPU time per kernel family of one more step, where timestamp-query exists)

presets:
${PRESETS.map((p) => `  ${p.name.padEnd(17)} ${p.description}`).join('\n')}

--backend auto (the default) uses a hardware GPU through WebGPU when there is one, else the CPU.

exit codes: 0 done, 1 bad usage or config, 2 bad data or checkpoint, 3 no usable device,
            4 numerical failure (NaN/Inf loss), 130 stopped by Ctrl-C (checkpoint saved)
`;

type Opt = { type: 'string' | 'boolean'; multiple?: boolean };
const S: Opt = { type: 'string' };
const B: Opt = { type: 'boolean' };

const COMMANDS: Record<string, { options: Record<string, Opt>; run: (v: Record<string, unknown>) => Promise<number> }> = {
  train: {
    options: { link: S, config: S, preset: S, data: S, backend: S, steps: S, out: S, resume: B, init: S, seed: S, set: { type: 'string', multiple: true } },
    run: (v) => trainCommand(v),
  },
  eval: { options: { checkpoint: S, data: S, backend: S }, run: (v) => evalCommand(v) },
  sample: {
    options: { checkpoint: S, prompt: S, tokens: S, temperature: S, 'top-k': S, 'top-p': S, seed: S, backend: S },
    run: (v) => sampleCommand(v),
  },
  export: { options: { checkpoint: S, hf: S }, run: (v) => exportCommand(v) },
  import: { options: { hf: S, out: S, set: { type: 'string', multiple: true } }, run: (v) => importCommand(v) },
  bench: { options: { backend: S, preset: S, steps: S, vocab: S, profile: B }, run: (v) => benchCommand(v) },
};

function report(e: unknown): number {
  if (isKilnError(e)) {
    process.stderr.write(`\nkiln: error: ${e.message}\n${e.hint ? `  hint: ${e.hint}\n` : ''}`);
    return EXIT_CODES[e.code];
  }
  const err = e as Error;
  process.stderr.write(`\nkiln: internal error: ${err?.stack ?? String(e)}\n  hint: this is a bug in Kiln; please report it with the command you ran\n`);
  return 1;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(USAGE);
    return name ? 0 : 1;
  }
  const cmd = COMMANDS[name];
  if (!cmd) return report(new KilnError('usage', `unknown command "${name}"`, `use one of: ${Object.keys(COMMANDS).join(', ')} (kiln --help)`));
  try {
    let values: Record<string, unknown>;
    try {
      ({ values } = parseArgs({ args: rest, options: { ...cmd.options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false }));
    } catch (e) {
      throw new KilnError('usage', (e as Error).message.replace(/\. To specify.*$/s, ''), `see kiln --help`);
    }
    if (values.help) {
      process.stdout.write(USAGE);
      return 0;
    }
    return await cmd.run(values);
  } catch (e) {
    return report(e);
  }
}
