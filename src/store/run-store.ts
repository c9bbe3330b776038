// The run library's interface: what the lab's worker needs to keep runs across visits.
// The browser implementation is IndexedDB (idb-store.ts); tests run the same code on
// fake-indexeddb.
//
// A save never touches what it replaces until the new checkpoint is complete: its
// chunks are written under a fresh id first, and one small transaction then adds it to
// the run's record (with the metrics rows logged since the last save) and drops the
// checkpoints that fall out of the kept window. A tab closed mid-save leaves the run
// record pointing at the previous checkpoint; the chunks it left behind belong to no
// record and sweep() removes them.
import type { CheckpointMeta, RunRecord, StorageUsage } from '../core/run-record.ts';
import type { StepMetrics } from '../train/trainer.ts';

export interface SaveRequest {
  /** The checkpoint's step and val loss (CheckpointMeta's). */
  step: number;
  valLoss: number | null;
  /** Record fields that change with this save (step, phase, losses, elapsedS, device, spec after an extend). */
  patch: Partial<Omit<RunRecord, 'id' | 'checkpoints' | 'bytesOnDisk' | 'createdAt'>>;
  /** Metrics rows logged since the last save, committed in the same transaction as the checkpoint. */
  metrics: StepMetrics[];
}

export interface RunStore {
  /** Every run, most recently updated first. */
  listRuns(): Promise<RunRecord[]>;
  getRun(id: string): Promise<RunRecord | null>;
  /** Creates a run's record (no checkpoint yet) or replaces its metadata. */
  putRun(run: RunRecord): Promise<void>;
  renameRun(id: string, name: string): Promise<RunRecord>;
  /** The run, its checkpoints' chunks and metrics, and user datasets no other run uses. */
  deleteRun(id: string): Promise<void>;
  /**
   * Writes a checkpoint (safetensors bytes) in chunks, then commits it to the run.
   * QuotaExceededError becomes KilnError('storage') saying how much was needed and
   * what to delete; the run's previous checkpoints are untouched.
   */
  saveCheckpoint(runId: string, bytes: Uint8Array, save: SaveRequest): Promise<RunRecord>;
  /** The checkpoint's bytes, length and SHA-256 checked (KilnError('checkpoint') when they differ). */
  loadCheckpoint(runId: string, checkpoint: CheckpointMeta): Promise<Uint8Array>;
  /** Every committed metrics row of the run, in step order. */
  metrics(runId: string): Promise<StepMetrics[]>;
  /** Replaces the run's metrics (a branch copies its parent's rows; a resume from an older checkpoint drops later ones). */
  replaceMetrics(runId: string, rows: StepMetrics[]): Promise<void>;
  /**
   * Goes back to the checkpoint at `step`: the newer checkpoints (their chunks) and the
   * metrics rows after it are removed, in one transaction. A run continued from an older
   * checkpoint (its newest was damaged) must not keep a curve it no longer has.
   */
  rewind(runId: string, step: number): Promise<RunRecord>;
  /** Keeps a user's text file by its content hash (hex SHA-256). */
  putDataset(sha256: string, name: string, bytes: Uint8Array): Promise<void>;
  getDataset(sha256: string): Promise<{ name: string; bytes: Uint8Array } | null>;
  usage(): Promise<StorageUsage>;
  /**
   * Makes a listed run the store did not write itself (RunRecord.source: a `kiln train`
   * folder in kiln serve's --out) its own before the lab trains it; refused (KilnError)
   * when it may not be: a read-only run, a folder another process is writing, or one whose
   * checkpoint is no longer at `step` (the one the lab opened). Stores whose runs are all
   * their own have none.
   */
  adopt?(id: string, step?: number): Promise<RunRecord>;
  /** Removes chunks no run's record names (left by a save that never committed); returns how many. */
  sweep(): Promise<number>;
  close(): void;
}
