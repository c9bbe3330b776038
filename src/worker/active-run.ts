// The run a session has open, and what follows from it alone: what its checkpoint file
// says it is, what its record in the run library says, the status it opens with, and
// whether it can train. The session (lab-session.ts) decides when these are asked for.
import type { Backend, TrainState } from '../backends/backend.ts';
import type { RunConfig } from '../core/config.ts';
import type { ModelConfig } from '../core/model-spec.ts';
import type { RunRecord, SavedPhase } from '../core/run-record.ts';
import type { Tokenizer } from '../core/tokenizers/index.ts';
import type { PreparedData } from '../train/prepare.ts';
import type { LabMetrics, RunInfo, RunPhase, RunStatus } from './api.ts';
import { dataNeeded } from './lab-data.ts';
import { emptyStatus } from './lab-events.ts';
import type { RunPoint } from './library-ops.ts';
import type { RunSaver } from './run-saver.ts';

export interface ActiveRun {
  info: RunInfo;
  config: RunConfig;
  model: ModelConfig;
  tokenizer: Tokenizer;
  /** Null for a run opened without its data: it samples, and trains once the data is given. */
  prepared: PreparedData | null;
  backend: Backend;
  point: RunPoint;
  snapshot: { state: TrainState; point: RunPoint };
  /** Its record in the run library and the writes to it. */
  saver: RunSaver;
}

/** A run opened without its data cannot train: say which text it needs. */
export function needData(r: ActiveRun): asserts r is ActiveRun & { prepared: PreparedData } {
  if (!r.prepared) throw dataNeeded(r.info.spec.data);
}

/** What a checkpoint file of the run says it is (so kiln eval, sample and --resume read it). */
export function checkpointIdentity(r: ActiveRun) {
  return { config: { ...r.config }, model: r.model, tokenizer: r.tokenizer.toJSON(), dataset: r.info.spec.data };
}

/**
 * The record's fields as of a saved snapshot. `rows` are the run's rows in memory (none
 * once another run is open): the last loss is the snapshot's step's, else the record's.
 */
export function recordPatch(r: ActiveRun, rows: readonly LabMetrics[], phase: SavedPhase, point: RunPoint): Partial<RunRecord> {
  const last = rows.filter((m) => m.step <= point.step).at(-1);
  return {
    phase, step: point.step, spec: { ...r.info.spec, config: { ...r.config } }, backend: r.info.backend, device: r.info.device,
    lastLoss: last?.loss ?? r.saver.record?.lastLoss ?? null, lastValLoss: point.lastValLoss, bestValLoss: point.bestValLoss, elapsedS: point.elapsedS,
  };
}

/** The phase a run's record keeps: one that does not outlive the session (pausing, failed, preparing) is kept as the phase it reopens in. */
export function savedPhase(phase: RunPhase): SavedPhase {
  return phase === 'pausing' || phase === 'error' ? 'paused' : phase === 'preparing' ? 'ready' : phase;
}

/** The status of a saved run opened at `point`, its rows up to there in hand. */
export function openedStatus(rec: RunRecord, config: RunConfig, point: RunPoint, rows: readonly LabMetrics[], savedStep: number | null): RunStatus {
  const last = rows.at(-1);
  const lastVal = [...rows].reverse().find((m) => m.val_loss !== undefined);
  return {
    ...emptyStatus(),
    phase: point.step >= config.steps ? 'done' : point.step === 0 ? 'ready' : 'paused',
    step: point.step, stopAt: config.steps, decaySteps: config.decaySteps, lastLoss: last?.loss ?? rec.lastLoss,
    lastValLoss: point.lastValLoss, bestValLoss: point.bestValLoss, valStep: lastVal?.step ?? null, elapsedS: point.elapsedS,
    snapshotStep: point.step, savedStep,
  };
}
