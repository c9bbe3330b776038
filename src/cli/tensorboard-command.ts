// `kiln tensorboard --from runs/x/metrics.jsonl --out DIR`: an existing run's metrics as
// a TensorBoard event file (the same scalars `kiln train --tensorboard` writes), with
// the run's config as text when its checkpoint is next to the metrics.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { KilnError } from '../core/errors.ts';
import { describeValue, printable } from '../core/text.ts';
import { readCheckpointFile } from './files.ts';
import { CONFIG_TAG, configMarkdown, SCALAR_TAGS, TensorBoardLog, type MetricsRow } from './tensorboard.ts';

export interface TensorBoardFlags {
  from?: string;
  out?: string;
  force?: boolean;
}

/**
 * The rows of a metrics.jsonl, one per step (a later line for the same step wins, as in
 * TensorBoard), in step order. A line that is not a metrics row is an error naming it;
 * only a last line cut short (a write a crash interrupted) is skipped, and said.
 */
export function parseMetrics(text: string, path: string, note: (line: string) => void): MetricsRow[] {
  const lines = text.split('\n');
  const byStep = new Map<number, MetricsRow>();
  const bad = (i: number, why: string) =>
    new KilnError('data', `${path} line ${i + 1} is not a metrics row: ${why}`, 'give --from the metrics.jsonl that kiln train wrote in its --out folder');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (!line.trim()) continue;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch {
      if (i === lines.length - 1) {
        note(`kiln: note: skipping the last line of ${path}, which is cut short`);
        continue;
      }
      throw bad(i, `not JSON (${printable(line, 40)})`);
    }
    if (typeof row !== 'object' || row === null || Array.isArray(row)) throw bad(i, `${describeValue(row)} is not an object`);
    const r = row as Record<string, unknown>;
    if (typeof r.step !== 'number' || !Number.isInteger(r.step) || r.step < 0) throw bad(i, `its "step" is ${describeValue(r.step)}, not a whole number`);
    for (const k of Object.keys(SCALAR_TAGS))
      if (r[k] !== undefined && r[k] !== null && typeof r[k] !== 'number') throw bad(i, `its "${k}" is ${describeValue(r[k])}, not a number`);
    if (!Object.keys(SCALAR_TAGS).some((k) => typeof r[k] === 'number')) throw bad(i, 'it holds none of loss, val_loss, lr, grad_norm, tokens_per_s, mfu');
    byStep.set(r.step, r as unknown as MetricsRow);
  }
  return [...byStep.keys()].sort((a, b) => a - b).map((s) => byStep.get(s)!);
}

export async function tensorboardCommand(flags: TensorBoardFlags): Promise<number> {
  if (!flags.from) throw new KilnError('usage', 'no metrics file given', 'add --from FILE (the metrics.jsonl in a kiln train --out folder)');
  if (!flags.out) throw new KilnError('usage', 'no output folder given', 'add --out DIR (the folder to give tensorboard --logdir)');
  const from = flags.from;
  let text: string;
  try {
    text = readFileSync(from, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOENT' ? 'no such file' : err.code === 'EISDIR' ? 'it is a folder' : err.message;
    throw new KilnError('data', `cannot read ${from}: ${why}`, 'check the path given to --from (the metrics.jsonl in a kiln train --out folder)');
  }
  const note = (line: string) => process.stderr.write(`${line}\n`);
  const rows = parseMetrics(text, from, note);
  if (!rows.length) throw new KilnError('data', `${from} holds no metrics rows`, 'give --from the metrics.jsonl of a run that trained at least one step');

  // The run's config, where its checkpoint sits next to the metrics.
  const ckpt = join(dirname(from), 'checkpoint.safetensors');
  let config: string | null = null;
  if (existsSync(ckpt)) {
    try {
      config = configMarkdown((await readCheckpointFile(ckpt)).config);
    } catch (e) {
      note(`kiln: note: no config in the log: ${ckpt} cannot be read (${e instanceof Error ? printable(e.message, 120) : 'unknown error'})`);
    }
  }

  const log = TensorBoardLog.open(flags.out, { resumeStep: null, force: flags.force === true, flag: '--out' });
  try {
    if (config !== null) log.text(CONFIG_TAG, 0, config);
    for (const r of rows) log.scalars(r);
  } finally {
    log.close();
  }
  note(`kiln: wrote steps ${rows[0].step} to ${rows[rows.length - 1].step} to ${log.file}; view with: tensorboard --logdir ${flags.out}`);
  process.stdout.write(JSON.stringify({ file: log.file, steps: rows.length, first_step: rows[0].step, last_step: rows[rows.length - 1].step, config: config !== null }) + '\n');
  return 0;
}
