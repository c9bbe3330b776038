// The `kiln` command: parses flags, runs one subcommand, and turns every KilnError
// into one readable message plus the exit code of the design (1 usage/config,
// 2 data/checkpoint, 3 no usable device, 4 numerical failure). The flags of each
// command, and their help, are help.ts's COMMAND_DOCS; mistyped names get "did you
// mean" (suggest.ts), and a flag's missing or negative value gets our own words
// rather than Node's parser's.
import { parseArgs } from 'node:util';
import { suggestSettings } from '../core/config.ts';
import { EXIT_CODES, isKilnError, KilnError } from '../core/errors.ts';
import { PRESET_NAMES } from '../core/presets.ts';
import { printable } from '../core/text.ts';
import { BACKEND_NAMES } from './backends.ts';
import { benchCommand } from './bench-command.ts';
import { evalCommand, exportCommand, importCommand, sampleCommand } from './commands.ts';
import { commandDoc, commandHelp, overview, settingsHelp, version, type CommandDoc, type FlagDoc } from './help.ts';
import { infoCommand } from './info-command.ts';
import { didYouMean, oneOfHint, settingName } from './suggest.ts';
import { scaleCommand } from './scale-command.ts';
import { tensorboardCommand } from './tensorboard-command.ts';
import { trainCommand } from './train-command.ts';

type Values = Record<string, unknown>;

const COMMANDS: Record<string, (v: Values, positionals: string[]) => Promise<number>> = {
  train: (v) => trainCommand(v),
  eval: (v) => evalCommand(v),
  sample: (v) => sampleCommand(v),
  info: (v, p) => infoCommand(v, p),
  export: (v) => exportCommand(v),
  import: (v) => importCommand(v),
  bench: (v) => benchCommand(v),
  tensorboard: (v) => tensorboardCommand(v),
  scale: (v) => scaleCommand(v),
  // Loaded when used: the server, the lab session and its run library are only for serve.
  serve: async (v) => (await import('./serve-command.ts')).serveCommand(v),
};

/** The commands main runs; each has its page in help.ts's COMMAND_DOCS. */
export const COMMAND_NAMES = Object.keys(COMMANDS);
const HELP_TOPICS = [...COMMAND_NAMES, 'settings'];

/**
 * Prints an error as one line (plus a hint) and returns its exit code. Messages carry
 * text from files and links, so message and hint go through printable(): no terminal
 * escape gets out. A stack trace only with KILN_DEBUG=1.
 */
export function report(e: unknown): number {
  // On a terminal, clear a progress line still being redrawn rather than print after it.
  const clear = process.stderr.isTTY ? '\r\x1b[2K' : '';
  if (isKilnError(e)) {
    process.stderr.write(`${clear}kiln: error: ${printable(e.message, 1000)}\n${e.hint ? `  hint: ${printable(e.hint, 1000)}\n` : ''}`);
    return EXIT_CODES[e.code];
  }
  const err = e instanceof Error ? e : null;
  const what = err ? `${printable(err.name, 80)}: ${printable(err.message, 1000)}` : printable(String(e), 1000);
  const trace = process.env.KILN_DEBUG === '1' && err?.stack ? `\n${printable(err.stack, 20000).replace(/\\x0a/g, '\n')}` : '';
  process.stderr.write(`${clear}kiln: internal error: ${what}${trace}\n  hint: this is a bug in Kiln; please report it with the command you ran${trace ? '' : ' (KILN_DEBUG=1 shows where it happened)'}\n`);
  return 1;
}

/** A word from the command line, quoted for a message: one line, cut short. */
function quote(s: string): string {
  return JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s);
}

const NEGATIVE = /^-\s*(\d|\.\d|inf)/i;

function flagList(doc: CommandDoc): string {
  return doc.flags.map((f) => `--${f.name}`).join(', ');
}

/**
 * `--name` that this command does not have. The likeliest meanings, in order: a setting
 * given as a flag (--lr 1e-3 is --set lr=1e-3; nanoGPT's --max_iters is --steps), a
 * mistyped flag (--step), a mistyped setting (--nembd).
 */
function unknownFlag(doc: CommandDoc, raw: string, name: string, given: string | undefined): KilnError {
  const value = given === undefined ? undefined : quote(given).slice(1, -1);
  const message = `kiln ${doc.name} has no flag ${quote(raw).slice(1, -1)}`;
  const help = `kiln ${doc.name} --help lists every flag`;
  const has = (n: string) => doc.flags.find((f) => f.name === n);
  const withValue = (f: FlagDoc) => `--${f.name}${f.value ? ` ${value ?? f.example ?? f.value}` : ''}`;
  const setting = raw.startsWith('--') ? settingName(name) : null;
  if (setting) {
    const flag = has(setting.key);
    if (flag) return new KilnError('usage', message, `did you mean ${withValue(flag)}? (${name} is ${setting.key} in Kiln; ${help})`);
    if (has('set')) return new KilnError('usage', message, `${name} is a setting, not a flag: use --set ${setting.key}=${value ?? 'VALUE'} (kiln help settings lists them)`);
  }
  const near = didYouMean(name, doc.flags.map((f) => f.name), (n) => withValue(has(n)!));
  if (near) return new KilnError('usage', message, `${near} (${help})`);
  const settings = has('set') && raw.startsWith('--') ? suggestSettings(name) : [];
  if (settings.length)
    return new KilnError('usage', message, `did you mean ${settings.map((k) => `--set ${k}=${value ?? 'VALUE'}`).join(' or ')}? (kiln help settings lists every setting)`);
  return new KilnError('usage', message, `kiln ${doc.name} takes ${flagList(doc)}; kiln ${doc.name} --help says what each does`);
}

/**
 * Checks argv before Node's parseArgs sees it, so that every mistake reads in Kiln's
 * words: unknown flags (with "did you mean"), a missing value (`--steps` at the end or
 * before another flag), a negative number (`--steps -5`, which parseArgs calls
 * "ambiguous"), a value given to a switch. Returns argv with each value attached
 * (`--steps=5`), which parseArgs then reads without guessing, and the positionals.
 */
export function scanArgs(doc: CommandDoc, args: string[]): { args: string[]; positionals: string[] } {
  const out: string[] = [];
  const positionals: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (!a.startsWith('-') || a === '-' || NEGATIVE.test(a)) {
      positionals.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const raw = eq < 0 ? a : a.slice(0, eq);
    const name = raw.replace(/^--?/, '');
    const flag = raw.startsWith('--') ? doc.flags.find((f) => f.name === name) : undefined;
    const next = args[i + 1];
    const nextIsValue = next !== undefined && !next.startsWith('--') && next !== '-h';
    if (!flag) throw unknownFlag(doc, raw, name, eq >= 0 ? a.slice(eq + 1) : nextIsValue ? next : undefined);
    if (!flag.value) {
      if (eq >= 0) throw new KilnError('usage', `--${name} takes no value (it was given ${quote(a.slice(eq + 1))})`, `write --${name} alone`);
      out.push(a);
      continue;
    }
    let value: string;
    if (eq >= 0) value = a.slice(eq + 1);
    else if (nextIsValue) value = args[++i];
    else throw new KilnError('usage', `--${name} needs a value (e.g. --${name} ${flag.example ?? flag.value})`, `kiln ${doc.name} --help says what --${name} takes`);
    if (flag.number && NEGATIVE.test(value))
      throw new KilnError('usage', `--${name} ${value.slice(0, 20)}: ${name} must be ${flag.number}`, `e.g. --${name} ${flag.example ?? flag.value}`);
    out.push(`--${name}=${value}`);
  }
  return { args: out, positionals };
}

/** A positional word where the command takes none: most often a flag's value without its flag. */
function unexpected(doc: CommandDoc, word: string): KilnError {
  const checkpoint = doc.flags.some((f) => f.name === 'checkpoint') && /\.safetensors$/.test(word);
  return new KilnError('usage', `unexpected argument ${quote(word)}`,
    checkpoint ? `write --checkpoint ${word}` : `kiln ${doc.name} takes flags (${flagList(doc)}); kiln ${doc.name} --help says what each does`);
}

/** Backend and preset names are checked here, where "did you mean" can be said for every command. */
function checkNames(doc: CommandDoc, values: Values): void {
  const list = (v: unknown) => (typeof v !== 'string' ? [] : doc.name === 'bench' ? v.split(',').map((s) => s.trim()) : [v]);
  for (const b of list(values.backend))
    if (!(BACKEND_NAMES as readonly string[]).includes(b)) throw new KilnError('usage', `unknown backend ${quote(b)}`, oneOfHint(b, BACKEND_NAMES));
  // kiln train's --preset is checked where its config is built (config-source.ts).
  if (doc.name === 'bench')
    for (const p of list(values.preset))
      if (!PRESET_NAMES.includes(p)) throw new KilnError('usage', `unknown preset ${quote(p)}`, oneOfHint(p, PRESET_NAMES));
}

function parseCommand(doc: CommandDoc, rest: string[]): { values: Values; positionals: string[] } {
  const scanned = scanArgs(doc, rest);
  const options = Object.fromEntries(
    doc.flags.map((f) => [f.name, f.value ? { type: 'string' as const, ...(f.multiple ? { multiple: true } : {}) } : { type: 'boolean' as const }]),
  );
  let values: Values;
  try {
    ({ values } = parseArgs({ args: scanned.args, options, strict: true, allowPositionals: false }));
  } catch (e) {
    // scanArgs has caught what users do; this is the parser's word for anything else.
    throw new KilnError('usage', (e as Error).message.replace(/\. To specify.*$/s, ''), `kiln ${doc.name} --help lists every flag`);
  }
  if (!doc.positional && scanned.positionals.length) throw unexpected(doc, scanned.positionals[0]);
  checkNames(doc, values);
  return { values, positionals: scanned.positionals };
}

function help(topic: string | undefined): number {
  if (topic === undefined) {
    process.stdout.write(overview());
    return 0;
  }
  if (topic === 'settings') {
    process.stdout.write(settingsHelp());
    return 0;
  }
  const doc = commandDoc(topic);
  if (!doc) throw new KilnError('usage', `no help on ${quote(topic)}`, `${oneOfHint(topic, HELP_TOPICS)}; kiln --help for the overview`);
  process.stdout.write(commandHelp(doc));
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  // --debug, anywhere before a `--`: KILN_DEBUG=1 for this run (stack traces in reports).
  const stop = argv.indexOf('--');
  const debug = argv.findIndex((a, i) => a === '--debug' && (stop < 0 || i < stop));
  if (debug >= 0) {
    const before = process.env.KILN_DEBUG;
    process.env.KILN_DEBUG = '1';
    try {
      return await main([...argv.slice(0, debug), ...argv.slice(debug + 1)]);
    } finally {
      if (before === undefined) delete process.env.KILN_DEBUG;
      else process.env.KILN_DEBUG = before;
    }
  }
  const [name, ...rest] = argv;
  try {
    if (!name) {
      process.stdout.write(overview());
      return 1;
    }
    if (name === '--help' || name === '-h' || name === 'help') return help(rest[0]);
    if (name === '--version' || name === '-V' || name === 'version') {
      process.stdout.write(`kiln ${version()}\n`);
      return 0;
    }
    const run = COMMANDS[name];
    const doc = commandDoc(name);
    if (!run || !doc) {
      if (name.startsWith('-'))
        throw new KilnError('usage', `${quote(name).slice(1, -1)} comes before a command`, `put the command first, e.g. kiln train ${argv.join(' ').slice(0, 80)} (commands: ${COMMAND_NAMES.join(', ')})`);
      throw new KilnError('usage', `unknown command ${quote(name)}`, `${oneOfHint(name, COMMAND_NAMES)}; kiln --help says what each does`);
    }
    const end = rest.indexOf('--');
    if ((end < 0 ? rest : rest.slice(0, end)).some((a) => a === '--help' || a === '-h')) return help(name);
    const { values, positionals } = parseCommand(doc, rest);
    if (!values.verbose) return await run(values, positionals);
    // --verbose is KILN_VERBOSE=1 for the backends (backends.ts, webgpu/device.ts), for this run only.
    const before = process.env.KILN_VERBOSE;
    process.env.KILN_VERBOSE = '1';
    try {
      return await run(values, positionals);
    } finally {
      if (before === undefined) delete process.env.KILN_VERBOSE;
      else process.env.KILN_VERBOSE = before;
    }
  } catch (e) {
    return report(e);
  }
}
