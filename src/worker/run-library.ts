// The lab session's pure helpers for the run library: what a new run's record holds,
// which settings a branch may change, which preset an imported checkpoint is closest
// to, and the names of downloaded files. No storage and no GPU here.
import { diffConfig, FIELDS, type RunConfig } from '../core/config.ts';
import { KilnError } from '../core/errors.ts';
import { PRESETS } from '../core/presets.ts';
import type { RunRecord } from '../core/run-record.ts';
import type { RunSpec } from '../core/run-spec.ts';

/**
 * Settings a branch keeps from its parent: the model's shape (the weights must fit)
 * and what decides the tokens and the train/val split (the curve must stay comparable).
 */
export const BRANCH_FIXED_KEYS: ReadonlyArray<keyof RunConfig> = [
  ...FIELDS.filter((f) => f.group === 'model' && f.key !== 'dropout').map((f) => f.key),
  'tokenizer', 'bpeVocab', 'valFraction',
];

/** The fixed settings a branch's config changes (empty: it may branch). */
export function branchConflicts(parent: RunConfig, child: RunConfig): string[] {
  return BRANCH_FIXED_KEYS.filter((k) => parent[k] !== child[k]).map((k) => `${k} ${parent[k]} → ${child[k]}`);
}

export function assertBranchable(parent: RunConfig, child: RunConfig, step: number): void {
  const bad = branchConflicts(parent, child);
  if (bad.length) throw new KilnError('config', `a branch keeps the parent's model and data settings, but this one changes ${bad.join(', ')}`, 'change only training settings (learning rate, schedule, batch, cadence), or start a new run');
  if (child.steps <= step) throw new KilnError('config', `the branch starts at step ${step} and would stop at step ${child.steps}`, `set steps above ${step}`);
}

/** The preset an imported config is closest to (fewest differing fields): share links name one. */
export function nearestPreset(config: RunConfig): string {
  let best = PRESETS[0]!;
  let bestCount = Infinity;
  for (const p of PRESETS) {
    const n = Object.keys(diffConfig(config, p.config)).length;
    if (n < bestCount) {
      best = p;
      bestCount = n;
    }
  }
  return best.name;
}

/** A name no other run has: "names · US baby names", then "… 2", "… 3". */
export function uniqueName(base: string, taken: Iterable<string>): string {
  const names = new Set(taken);
  const clean = base.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ').trim().slice(0, 100) || 'run';
  if (!names.has(clean)) return clean;
  for (let i = 2; ; i++) if (!names.has(`${clean} ${i}`)) return `${clean} ${i}`;
}

/** A file name for a downloaded checkpoint: the run's name made safe for any file system, and the step. */
export function checkpointFileName(runName: string, step: number): string {
  const slug = runName.normalize('NFKD').replace(/[^\w.-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 60) || 'kiln-run';
  return `${slug}-step${step}.safetensors`;
}

/** A run's name from an imported file's name ("names-step300.safetensors" → "names-step300"). */
export function nameFromFile(fileName: string): string {
  return fileName.replace(/\.safetensors$/i, '').trim() || 'imported run';
}

export function newRunId(): string {
  return crypto.randomUUID();
}

export function newRecord(fields: {
  id: string; name: string; spec: RunSpec; backend: RunRecord['backend']; device: string; numParams: number;
  step?: number; parent?: RunRecord['parent']; imported?: RunRecord['imported'];
}): RunRecord {
  const now = Date.now();
  const rec: RunRecord = {
    id: fields.id, name: fields.name, createdAt: now, updatedAt: now, spec: fields.spec, backend: fields.backend, device: fields.device,
    numParams: fields.numParams, step: fields.step ?? 0, phase: 'ready', lastLoss: null, lastValLoss: null, bestValLoss: null, elapsedS: 0,
    checkpoints: [], bytesOnDisk: 0,
  };
  if (fields.parent) rec.parent = fields.parent;
  if (fields.imported) rec.imported = fields.imported;
  return rec;
}

/**
 * The refusal for a listed run the lab may not train or change (RunRecord.source.readOnly:
 * a scaled run, which torchrun continues): what it is, and what to do instead.
 */
export function readOnlyError(run: Pick<RunRecord, 'name' | 'source'>, action: 'train' | 'change' = 'train'): KilnError {
  const why = run.source?.readOnly ?? 'read-only here';
  const folder = run.source?.folder ?? 'its folder';
  return new KilnError('usage', `"${run.name}" is ${why}`,
    action === 'train'
      ? `in ${folder}, ./run.sh --resume trains it further; here it opens for sampling, and Download gives its checkpoint to import as a new run`
      : `the lab writes nothing into ${folder}: rename or delete that folder itself`);
}
