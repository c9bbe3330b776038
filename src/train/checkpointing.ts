// Between the trainer and checkpoint bytes: what a snapshot stores beyond the
// backend's tensors (sampler state, elapsed time, best val loss, the dataset), and
// reading it back for a resume. No file system here: the CLI writes files, the lab
// writes IndexedDB, both from these bytes.
import type { Backend, TrainState } from '../backends/backend.ts';
import { decodeCheckpoint, encodeCheckpoint, type CheckpointData } from '../core/checkpoint.ts';
import type { RunConfig } from '../core/config.ts';
import type { ModelConfig } from '../core/model-spec.ts';
import type { RngState } from '../core/rng.ts';
import type { DatasetRef } from '../core/run-spec.ts';
import type { TokenizerJSON } from '../core/tokenizers/tokenizer.ts';
import type { TrainerSnapshot } from './trainer.ts';

export interface RunIdentity {
  config: RunConfig;
  model: ModelConfig;
  tokenizer: TokenizerJSON;
  dataset: DatasetRef | null;
  /** A fine-tune's starting checkpoint (its file name and step), kept as provenance. */
  init?: { name: string; step: number };
}

export async function checkpointBytes(backend: Backend, run: RunIdentity, snap: TrainerSnapshot): Promise<Uint8Array> {
  return stateCheckpointBytes(await backend.save(), backend.kind, run, snap);
}

/** The checkpoint of a state saved earlier (the lab writes its in-memory snapshots while training goes on). */
export async function stateCheckpointBytes(
  state: TrainState,
  backendKind: string,
  run: RunIdentity,
  snap: Pick<TrainerSnapshot, 'step' | 'samplerState' | 'elapsedS' | 'bestValLoss' | 'lastValLoss'>,
): Promise<Uint8Array> {
  const extra: Record<string, string> = { 'kiln.elapsed_s': String(snap.elapsedS) };
  if (snap.bestValLoss !== null) extra['kiln.best_val_loss'] = String(snap.bestValLoss);
  if (snap.lastValLoss !== null) extra['kiln.val_loss'] = String(snap.lastValLoss);
  if (run.dataset) extra['kiln.dataset'] = JSON.stringify(run.dataset);
  if (run.init) extra['kiln.init'] = JSON.stringify(run.init);
  extra['kiln.backend'] = backendKind;
  const data: CheckpointData = {
    config: run.config,
    model: run.model,
    tokenizer: run.tokenizer,
    step: snap.step,
    rng: JSON.stringify({ data: snap.samplerState }),
    state: { ...state, step: snap.step },
    extra,
  };
  return encodeCheckpoint(data);
}

export interface ResumePoint {
  checkpoint: CheckpointData;
  /** Null for a checkpoint that never trained here (e.g. imported): the run's seed starts the data order. */
  samplerState: RngState | null;
  elapsedS: number;
  bestValLoss: number | null;
  dataset: DatasetRef | null;
  /** Where a fine-tune started, carried into its later checkpoints. */
  init: RunIdentity['init'] | null;
}

export async function readResumePoint(bytes: Uint8Array): Promise<ResumePoint> {
  const checkpoint = await decodeCheckpoint(bytes);
  const extra = checkpoint.extra ?? {};
  let samplerState: RngState | null = null;
  try {
    const s = (JSON.parse(checkpoint.rng) as { data?: unknown }).data;
    if (Array.isArray(s) && s.length === 4 && s.every((x) => Number.isInteger(x))) samplerState = s as RngState;
  } catch {
    samplerState = null;
  }
  const num = (k: string) => (extra[k] !== undefined && Number.isFinite(Number(extra[k])) ? Number(extra[k]) : null);
  let dataset: DatasetRef | null = null;
  try {
    dataset = extra['kiln.dataset'] ? (JSON.parse(extra['kiln.dataset']) as DatasetRef) : null;
  } catch {
    dataset = null;
  }
  let init: ResumePoint['init'] = null;
  try {
    const x = extra['kiln.init'] ? (JSON.parse(extra['kiln.init']) as { name?: unknown; step?: unknown }) : null;
    if (x && typeof x.name === 'string' && typeof x.step === 'number') init = { name: x.name, step: x.step };
  } catch {
    init = null;
  }
  return { checkpoint, samplerState, elapsedS: num('kiln.elapsed_s') ?? 0, bestValLoss: num('kiln.best_val_loss'), dataset, init };
}
