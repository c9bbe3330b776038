// The run library's operations on a RunStore that need no session state: finding a
// record and a checkpoint, export, import, making a branch's record, and reading a saved
// run back into the pieces a session trains from. The session (lab-session.ts) does the
// rest: which run is open, its backend, its status.
import type { TrainState } from '../backends/backend.ts';
import { validate, type RunConfig } from '../core/config.ts';
import { KilnError } from '../core/errors.ts';
import { modelSpec, resolveModel, type ModelConfig } from '../core/model-spec.ts';
import type { RngState } from '../core/rng.ts';
import type { CheckpointMeta, RunRecord } from '../core/run-record.ts';
import { printable } from '../core/text.ts';
import { tokenizerFromJSON, type Tokenizer } from '../core/tokenizers/index.ts';
import type { RunStore } from '../store/run-store.ts';
import { readResumePoint } from '../train/checkpointing.ts';
import { initialState, prepareData, type PreparedData } from '../train/prepare.ts';
import type { LabBackendKind } from './api.ts';
import { assertBranchable, checkpointFileName, nameFromFile, nearestPreset, newRecord, newRunId, uniqueName } from './run-library.ts';

/** The exact point a run stands at: where its next training leg starts. */
export interface RunPoint {
  step: number;
  samplerState: RngState | number;
  elapsedS: number;
  bestValLoss: number | null;
  lastValLoss: number | null;
}

/** What a saved run is made of again: model, weights and moments, tokenizer, data, point. */
export interface LoadedRun {
  model: ModelConfig;
  state: TrainState;
  tokenizer: Tokenizer;
  /** Null when its text is not here (it samples, and trains once the text is given). */
  prepared: PreparedData | null;
  point: RunPoint;
}

export async function getRecord(store: RunStore, id: string): Promise<RunRecord> {
  const rec = await store.getRun(id);
  if (!rec) throw new KilnError('usage', 'that run is no longer in the run library', 'it may have been deleted in another tab: reload the page');
  return rec;
}

/** The newest checkpoint (null: none yet), or `step`'s (refused when there is none at that step). */
export function checkpointAt(rec: RunRecord, step?: number): CheckpointMeta | null {
  if (step === undefined) return rec.checkpoints.at(-1) ?? null;
  const meta = rec.checkpoints.find((c) => c.step === step);
  if (!meta) {
    const have = rec.checkpoints.map((c) => c.step).join(', ') || 'none';
    throw new KilnError('usage', `"${printable(rec.name, 80)}" has no checkpoint at step ${step}`, `its checkpoints are at steps ${have}`);
  }
  return meta;
}

export async function exportCheckpoint(store: RunStore, id: string, step?: number): Promise<{ fileName: string; bytes: Uint8Array }> {
  const rec = await getRecord(store, id);
  const meta = checkpointAt(rec, step);
  if (!meta) throw new KilnError('usage', `"${printable(rec.name, 80)}" has no checkpoint yet`, 'train it past its first save (every checkpointEvery steps, or pause it)');
  return { fileName: checkpointFileName(rec.name, meta.step), bytes: await store.loadCheckpoint(id, meta) };
}

/** A `.safetensors` checkpoint as a new run; the file is checked whole before the library keeps it. */
export async function importCheckpoint(store: RunStore, fileName: string, bytes: Uint8Array): Promise<RunRecord> {
  // Framing, hashes, sizes against the file and tokenizer bounds are all checked here.
  const rp = await readResumePoint(bytes);
  const ck = rp.checkpoint;
  const config = { ...ck.config };
  const valLoss = finiteOrNull(ck.extra?.['kiln.val_loss']);
  const taken = (await store.listRuns()).map((x) => x.name);
  const backendKind = ck.extra?.['kiln.backend'];
  const rec = newRecord({
    id: newRunId(), name: uniqueName(nameFromFile(fileName), taken), spec: { preset: nearestPreset(config), config, data: rp.dataset },
    backend: 'webgpu', device: backendKind ? `kiln ${printable(backendKind, 20)}` : 'kiln', numParams: modelSpec(ck.model).numParams,
    imported: { fileName: printable(fileName, 120) },
  });
  await store.putRun(rec);
  try {
    return await store.saveCheckpoint(rec.id, bytes, {
      step: ck.step, valLoss,
      patch: { phase: ck.step >= config.steps ? 'done' : 'paused', step: ck.step, lastValLoss: valLoss, bestValLoss: rp.bestValLoss, elapsedS: rp.elapsedS },
      metrics: [],
    });
  } catch (e) {
    await store.deleteRun(rec.id).catch(() => {});
    throw e;
  }
}

/**
 * A new run from a parent's checkpoint with other training settings: the checkpoint and
 * the parent's metrics up to it are copied, so the branch owns its curve (the parent may
 * be deleted later) and says where it came from.
 */
export async function createBranch(store: RunStore, id: string, step: number, config: RunConfig, backend: LabBackendKind, name?: string): Promise<RunRecord> {
  const parent = await getRecord(store, id);
  const meta = checkpointAt(parent, step)!;
  const child = { ...config };
  const issues = validate(child);
  if (issues.length) throw new KilnError('config', issues.map((i) => i.message).join('; '), 'fix the fields marked in the form');
  assertBranchable(parent.spec.config, child, step);
  const bytes = await store.loadCheckpoint(id, meta);
  const rows = (await store.metrics(id)).filter((m) => m.step <= step);
  const taken = (await store.listRuns()).map((x) => x.name);
  const rec = newRecord({
    id: newRunId(), name: uniqueName(name?.trim() || `${parent.name} · branch`, taken), spec: { ...parent.spec, config: child },
    backend, device: parent.device, numParams: parent.numParams, parent: { runId: parent.id, name: parent.name, step },
  });
  await store.putRun(rec);
  try {
    await store.replaceMetrics(rec.id, rows);
    let best: number | null = null;
    for (const m of rows) if (m.val_loss !== undefined && (best === null || m.val_loss < best)) best = m.val_loss;
    await store.saveCheckpoint(rec.id, bytes, {
      step, valLoss: meta.valLoss,
      patch: { phase: 'paused', step, lastLoss: rows.at(-1)?.loss ?? null, lastValLoss: meta.valLoss, bestValLoss: best, elapsedS: rows.at(-1)?.elapsed_s ?? 0 },
      metrics: [],
    });
  } catch (e) {
    await store.deleteRun(rec.id).catch(() => {});
    throw e;
  }
  return getRecord(store, rec.id);
}

/**
 * A saved run's pieces at a checkpoint (`meta`), or from its seed when it was never saved
 * past step 0 (the same run: initialisation and data order come from the seed).
 */
export async function loadRun(store: RunStore, rec: RunRecord, meta: CheckpointMeta | null, config: RunConfig, text: string | null): Promise<LoadedRun> {
  if (meta) {
    const rp = await readResumePoint(await store.loadCheckpoint(rec.id, meta));
    const ck = rp.checkpoint;
    const prepared = text !== null ? await prepareData(config, text, ck.tokenizer) : null;
    return {
      model: ck.model, state: ck.state, tokenizer: prepared?.tokenizer ?? (await tokenizerFromJSON(ck.tokenizer)), prepared,
      point: { step: ck.step, samplerState: rp.samplerState ?? config.seed, elapsedS: rp.elapsedS, bestValLoss: rp.bestValLoss, lastValLoss: finiteOrNull(ck.extra?.['kiln.val_loss']) },
    };
  }
  if (text === null) throw new KilnError('data', `"${printable(rec.name, 80)}" was never saved past step 0, and its text is not in this browser`, 'start a new run');
  const prepared = await prepareData(config, text);
  const model = resolveModel(config, prepared.tokenizer.vocabSize);
  return { model, state: initialState(model, config.seed), tokenizer: prepared.tokenizer, prepared, point: { step: 0, samplerState: config.seed, elapsedS: 0, bestValLoss: null, lastValLoss: null } };
}

export function finiteOrNull(x: string | undefined): number | null {
  const n = x === undefined ? NaN : Number(x);
  return Number.isFinite(n) ? n : null;
}
