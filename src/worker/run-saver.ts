// A run's writes to the run library, made behind training so that training never waits
// for storage. A save writes a snapshot taken in memory (weights and AdamW moments at a
// step) with the metrics rows logged since the previous save; the run may have trained
// on meanwhile. Saves that fall behind are coalesced: while one is waiting its turn, a
// newer snapshot replaces it, so a slow disk costs checkpoints, not memory or time. A
// record update (settings or phase changed without a new checkpoint) waits in the same
// queue, so it never overtakes a save queued before it and reads the record that save
// committed.
//
// Nothing queued here rejects. A failed save (a full disk or quota) is handed to
// onSaveFailed, the lab pauses the run with it, and the previous checkpoint stays as it
// was; the next save tries again from the same rows.
//
// The lab session makes one RunSaver per open run and gives them all its SaveQueue, so a
// closed run's writes finish before the next run's begin, and waiting on the queue
// (pause, stop, a delete, opening another run) waits for every run's.
import type { TrainState } from '../backends/backend.ts';
import type { RunRecord, SavedPhase } from '../core/run-record.ts';
import type { RunSpec } from '../core/run-spec.ts';
import type { RunStore } from '../store/run-store.ts';
import type { LabMetrics } from './api.ts';
import type { RunPoint } from './library-ops.ts';

export interface RunSnapshot {
  state: TrainState;
  point: RunPoint;
}

export interface RunSaverDeps {
  /** The run library; null when there is none or it could not be opened (the write is skipped). */
  store(): Promise<RunStore | null>;
  /** The run's metrics rows in memory, in step order (none once another run is open). */
  rows(): readonly LabMetrics[];
  /** A snapshot's checkpoint file (the CLI's safetensors bytes). */
  encode(snap: RunSnapshot): Promise<Uint8Array>;
  /** The record's fields as of a snapshot being saved. */
  patch(phase: SavedPhase, point: RunPoint): Partial<RunRecord>;
  /** The record's settings and phase now, over the stored record, for an update without a checkpoint. */
  settings(stored: RunRecord): { spec: RunSpec; phase: SavedPhase };
  onSaving(): void;
  onSaved(step: number): void;
  /** The run is not to train on past a save it cannot keep. */
  onSaveFailed(error: unknown): void;
}

/** Writes waiting their turn, one after another. */
export class SaveQueue {
  private tail: Promise<void> = Promise.resolve();

  add(job: () => Promise<void>): void {
    this.tail = this.tail.then(job);
  }

  /** Waits for the writes queued so far (not those queued meanwhile: training may go on saving). */
  settled(): Promise<void> {
    return this.tail;
  }
}

export class RunSaver {
  private pending: { snap: RunSnapshot; phase: SavedPhase } | null = null;
  private rec: RunRecord | null;
  private saved: number | null;

  /**
   * @param record the run's record in the library (null: the run is not kept, and nothing is written)
   * @param savedStep the step of its newest checkpoint: rows up to it are already stored
   */
  constructor(private readonly deps: RunSaverDeps, record: RunRecord | null, savedStep: number | null = null, private readonly queue = new SaveQueue()) {
    this.rec = record;
    this.saved = savedStep;
  }

  /** The record as last written (or as the run was opened with). */
  get record(): RunRecord | null {
    return this.rec;
  }

  /** Step of the newest committed checkpoint. */
  get savedStep(): number | null {
    return this.saved;
  }

  /** The record was renamed in the library (the next write keeps the name). */
  renamed(name: string): void {
    if (this.rec) this.rec = { ...this.rec, name };
  }

  /** The library made the run its own (a listed folder it did not write, adopted before training): later writes go to this record. */
  adopted(record: RunRecord): void {
    this.rec = record;
  }

  /** The run was deleted from the library: what is queued or asked for later writes nothing. */
  forget(): void {
    this.rec = null;
    this.saved = null;
  }

  /** Writes a snapshot to the library behind training. */
  queueSave(snap: RunSnapshot, phase: SavedPhase): void {
    if (!this.rec) return;
    const waiting = this.pending !== null;
    this.pending = { snap, phase };
    if (!waiting) this.queue.add(() => this.writePending());
  }

  /** The record's settings and phase changed without a new checkpoint (extend, stop). */
  queueRecordUpdate(): void {
    if (!this.rec) return;
    this.queue.add(async () => {
      const store = await this.deps.store();
      if (!store || !this.rec) return;
      try {
        const fresh = await store.getRun(this.rec.id);
        if (!fresh) return;
        this.rec = { ...fresh, ...this.deps.settings(fresh), updatedAt: Date.now() };
        await store.putRun(this.rec);
      } catch {
        // Only metadata: the next checkpoint's save writes it again.
      }
    });
  }

  /** Waits for the writes queued so far; they never reject. */
  settle(): Promise<void> {
    return this.queue.settled();
  }

  private async writePending(): Promise<void> {
    const job = this.pending;
    this.pending = null;
    if (!job) return;
    const { snap, phase } = job;
    const store = await this.deps.store();
    if (!store || !this.rec) return;
    const from = this.saved ?? -1;
    const rows = this.deps.rows().filter((m) => m.step > from && m.step <= snap.point.step);
    this.deps.onSaving();
    try {
      const bytes = await this.deps.encode(snap);
      this.rec = await store.saveCheckpoint(this.rec.id, bytes, { step: snap.point.step, valLoss: snap.point.lastValLoss, patch: this.deps.patch(phase, snap.point), metrics: rows });
      this.saved = snap.point.step;
      this.deps.onSaved(snap.point.step);
    } catch (e) {
      this.deps.onSaveFailed(e);
    }
  }
}
