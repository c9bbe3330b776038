// `kiln info CHECKPOINT`: what a checkpoint holds, without loading a backend: its
// config (grouped, and as the shortest --preset/--set line that rebuilds it), model
// shape and size, step, the data and tokenizer it was trained with, losses, time, and
// whether it can be resumed. --json prints the same as one object.
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { tokenizerVocab, type CheckpointData } from '../core/checkpoint.ts';
import { diffConfig, FIELDS, type RunConfig } from '../core/config.ts';
import { findDataset } from '../core/datasets.ts';
import { KilnError } from '../core/errors.ts';
import { modelSpec } from '../core/model-spec.ts';
import { PRESETS } from '../core/presets.ts';
import type { DatasetRef } from '../core/run-spec.ts';
import { readCheckpointFile } from './files.ts';
import { wrap } from './help.ts';

export interface InfoFlags {
  checkpoint?: string;
  json?: boolean;
}

/** The file to read: CHECKPOINT or --checkpoint; a run folder means its checkpoint.safetensors. */
function checkpointPath(flags: InfoFlags, positionals: string[]): string {
  if (positionals.length > 1) throw new KilnError('usage', `kiln info takes one checkpoint, not ${positionals.length}`, 'run kiln info once per checkpoint');
  if (positionals.length && flags.checkpoint !== undefined)
    throw new KilnError('usage', `two checkpoints given: ${positionals[0]} and --checkpoint ${flags.checkpoint}`, 'give one of them');
  const path = positionals[0] ?? flags.checkpoint;
  if (path === undefined) throw new KilnError('usage', 'no checkpoint given', 'kiln info CHECKPOINT (a .safetensors file, or a run folder given to kiln train --out)');
  if (!existsSync(path) || !statSync(path).isDirectory()) return path;
  const inside = join(path, 'checkpoint.safetensors');
  if (existsSync(inside)) return inside;
  const best = join(path, 'best.safetensors');
  throw new KilnError('checkpoint', `${path} is a folder without a checkpoint.safetensors`,
    existsSync(best) ? `give the file: kiln info ${best}` : 'give a .safetensors file that kiln train saved, or the --out folder of a run');
}

function num(extra: Record<string, string>, key: string): number | null {
  const v = extra[key];
  return v !== undefined && v.trim() !== '' && Number.isFinite(Number(v)) ? Number(v) : null;
}

function json<T>(extra: Record<string, string>, key: string, ok: (x: unknown) => boolean): T | null {
  try {
    const x: unknown = extra[key] === undefined ? null : JSON.parse(extra[key]);
    return x !== null && ok(x) ? (x as T) : null;
  } catch {
    return null;
  }
}

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/** The preset with the fewest differences, and those differences: `--preset P --set ...` rebuilds the config. */
export function nearestPreset(config: RunConfig): { preset: string; set: Partial<RunConfig> } {
  let best = { preset: PRESETS[0].name, set: diffConfig(config, PRESETS[0].config) };
  for (const p of PRESETS.slice(1)) {
    const set = diffConfig(config, p.config);
    if (Object.keys(set).length < Object.keys(best.set).length) best = { preset: p.name, set };
  }
  return best;
}

export interface CheckpointInfo {
  path: string;
  step: number;
  model: CheckpointData['model'];
  parameters: number;
  tokenizer: { kind: string; tokens: number };
  dataset: DatasetRef | null;
  bestValLoss: number | null;
  valLoss: number | null;
  elapsedS: number | null;
  backend: string | null;
  optimizerState: boolean;
  init: { name: string; step: number } | null;
  config: RunConfig;
  /** The shortest way to rebuild config: a preset and the settings that differ from it. */
  asPreset: { preset: string; set: Partial<RunConfig> };
}

export function describeCheckpoint(path: string, c: CheckpointData): CheckpointInfo {
  const extra = c.extra ?? {};
  const dataset = json<DatasetRef>(extra, 'kiln.dataset', (x) =>
    isObject(x) && ((x.kind === 'bundled' && typeof x.id === 'string') || (x.kind === 'file' && typeof x.name === 'string')));
  const init = json<{ name: string; step: number }>(extra, 'kiln.init', (x) => isObject(x) && typeof x.name === 'string' && typeof x.step === 'number');
  return {
    path,
    step: c.step,
    model: c.model,
    parameters: modelSpec(c.model).numParams,
    tokenizer: { kind: c.tokenizer.kind, tokens: tokenizerVocab(c.tokenizer) },
    dataset,
    bestValLoss: num(extra, 'kiln.best_val_loss'),
    valLoss: num(extra, 'kiln.val_loss'),
    elapsedS: num(extra, 'kiln.elapsed_s'),
    backend: extra['kiln.backend'] ?? null,
    optimizerState: c.state.m !== null,
    init,
    config: c.config,
    asPreset: nearestPreset(c.config),
  };
}

function duration(s: number): string {
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s - 60 * m)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

const count = (n: number) => n.toLocaleString('en-US');
const plural = (n: number, word: string) => `${count(n)} ${word}${n === 1 ? '' : 's'}`;
/** A value as --set takes it and a terminal shows it: plain text, control characters escaped. */
const shown = (v: unknown) => String(v).replace(/[\u0000-\u001f\u007f]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);

export function formatInfo(i: CheckpointInfo): string {
  const m = i.model;
  const d = i.dataset;
  const rows: Array<[string, string | string[]]> = [
    ['step', `${count(i.step)}${i.elapsedS !== null ? `, trained for ${duration(i.elapsedS)}` : ''}${i.backend ? ` on ${shown(i.backend)}` : ''}`],
    ['model', `${plural(m.nLayer, 'layer')}, ${plural(m.nHead, 'head')}, ${m.nEmbd} wide, ${m.blockSize} tokens of context, ${count(m.vocabSize)} vocabulary rows: ${count(i.parameters)} parameters`],
    ['tokenizer', `${i.tokenizer.kind}, ${count(i.tokenizer.tokens)} tokens`],
    ['data', !d ? 'not recorded' : d.kind === 'bundled' ? `bundled ${shown(d.id)}${findDataset(d.id) ? ` (${findDataset(d.id)!.title})` : ''}` : `${shown(d.name)}, ${count(d.bytes)} bytes`],
    ...(d?.kind === 'file' ? [['sha256', shown(d.sha256)] as [string, string]] : []),
    ['val loss', i.bestValLoss === null && i.valLoss === null ? 'not recorded'
      : [i.bestValLoss !== null ? `best ${i.bestValLoss.toFixed(4)}` : '', i.valLoss !== null ? `last ${i.valLoss.toFixed(4)}` : ''].filter(Boolean).join(', ')],
    ['optimizer', i.optimizerState ? 'AdamW moments saved: kiln train --resume can continue it' : 'weights only: kiln train --init can fine-tune from it, --resume cannot continue it'],
  ];
  if (i.init) rows.push(['fine-tuned', `from ${shown(i.init.name)} at step ${count(i.init.step)}`]);
  const sets = Object.entries(i.asPreset.set).map(([k, v]) => `--set ${k}=${shown(v)}`);
  rows.push(['config', ['as', '--preset', i.asPreset.preset, ...sets]]);
  const lines = [shown(i.path), ...rows.map(([k, v]) => `  ${k.padEnd(12)}${wrap(v, ' '.repeat(14)).trimStart()}`), '', 'settings:'];
  const groups = new Map<string, string[]>();
  for (const f of FIELDS) {
    const group = f.group === 'optim' ? 'training' : f.group;
    groups.set(group, [...(groups.get(group) ?? []), `${f.key}=${shown(i.config[f.key])}`]);
  }
  for (const [group, fields] of groups) lines.push(`  ${group.padEnd(12)}${wrap(fields.join(' '), ' '.repeat(14)).trimStart()}`);
  return lines.join('\n') + '\n';
}

export async function infoCommand(flags: InfoFlags, positionals: string[] = []): Promise<number> {
  const path = checkpointPath(flags, positionals);
  const ckpt = await readCheckpointFile(path, positionals.length ? 'kiln info' : '--checkpoint');
  const info = describeCheckpoint(path, ckpt);
  process.stdout.write(flags.json ? JSON.stringify(info) + '\n' : formatInfo(info));
  return 0;
}
