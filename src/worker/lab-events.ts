// The open run's status and curve as the page sees them, and the event stream that tells
// the listeners. A step's metrics come far faster than a page draws (it draws at most
// once a frame anyway), so rows go out in batches, at most one per flushMs, each
// followed by the status as of it. A status change first sends the rows still waiting,
// so a listener never sees a status ahead of the curve it has.
import type { StepMetrics } from '../train/trainer.ts';
import type { LabEvent, LabMetrics, RunStatus } from './api.ts';

export function emptyStatus(): RunStatus {
  return {
    phase: 'preparing', step: 0, stopAt: 0, decaySteps: 0, lastLoss: null, lastValLoss: null, bestValLoss: null, valStep: null,
    tokensPerS: null, elapsedS: 0, etaS: null, recoverable: false, snapshotStep: null, savedStep: null, saving: false,
  };
}

export class LabEvents {
  private listeners = new Map<number, (e: LabEvent) => void>();
  private nextListener = 1;
  private state: RunStatus = emptyStatus();
  private curve: LabMetrics[] = [];
  private unsent: LabMetrics[] = [];
  private flushTimer: ReturnType<typeof setTimeout> | null = null;
  /** The pace of this leg, for the time left: [elapsed_s, step] at its first logged step. */
  private paceStart: [number, number] | null = null;

  constructor(private readonly flushMs = 100) {}

  /** The status now (read-only: it changes through setStatus, quietly and step). */
  get status(): Readonly<RunStatus> {
    return this.state;
  }

  /** The open run's metrics rows in memory, in step order. */
  get rows(): readonly LabMetrics[] {
    return this.curve;
  }

  subscribe(listener: (e: LabEvent) => void): number {
    const id = this.nextListener++;
    this.listeners.set(id, listener);
    return id;
  }

  unsubscribe(id: number): void {
    this.listeners.delete(id);
  }

  emit(e: LabEvent): void {
    for (const l of this.listeners.values()) {
      try {
        l(e);
      } catch {
        // A listener that throws (a closed page) must not stop training.
      }
    }
  }

  /** Changes the status and says so (after the rows still waiting). */
  setStatus(patch: Partial<RunStatus>): void {
    this.state = { ...this.state, ...patch };
    this.flush();
    this.emit({ type: 'status', status: { ...this.state } });
  }

  /** Changes the status without an event of its own: the next batch or status event carries it. */
  quietly(patch: Partial<RunStatus>): void {
    this.state = { ...this.state, ...patch };
  }

  /**
   * Another run is current: its status and curve replace the last one's, and rows not
   * yet sent are dropped (they were the last run's). A batch already timed still sends
   * the status when it fires.
   */
  reset(status: RunStatus, rows: LabMetrics[]): void {
    this.curve = rows;
    this.unsent = [];
    this.state = status;
    this.emit({ type: 'status', status: { ...this.state } });
  }

  /** The curve goes on from an earlier step (a recovered snapshot): the rows past it go, sent or not. */
  rewind(step: number): void {
    this.curve = this.curve.filter((m) => m.step <= step);
    this.unsent = [];
  }

  /** A training leg begins: its time left is reckoned from its own pace, not an earlier leg's. */
  legStarted(): void {
    this.paceStart = null;
  }

  /** A step's metrics: a row of the curve, and the status as of it, sent with the next batch. */
  step(m: StepMetrics): void {
    const row: LabMetrics = { ...m };
    if (this.paceStart === null) this.paceStart = [m.elapsed_s, m.step];
    const [e0, s0] = this.paceStart;
    const pace = m.step > s0 ? (m.elapsed_s - e0) / (m.step - s0) : null;
    this.state = {
      ...this.state,
      step: m.step,
      lastLoss: m.loss,
      ...(m.val_loss !== undefined ? { lastValLoss: m.val_loss, valStep: m.step, bestValLoss: Math.min(m.val_loss, this.state.bestValLoss ?? Infinity) } : {}),
      tokensPerS: m.tokens_per_s,
      elapsedS: m.elapsed_s,
      etaS: pace !== null ? pace * (this.state.stopAt - m.step) : null,
    };
    this.queue(row);
  }

  private queue(m: LabMetrics): void {
    this.curve.push(m);
    this.unsent.push(m);
    if (this.flushTimer === null) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = null;
        this.flush();
        this.emit({ type: 'status', status: { ...this.state } });
      }, this.flushMs);
    }
  }

  private flush(): void {
    if (this.flushTimer !== null) {
      clearTimeout(this.flushTimer);
      this.flushTimer = null;
    }
    if (this.unsent.length) this.emit({ type: 'metrics', metrics: this.unsent.splice(0) });
  }
}
