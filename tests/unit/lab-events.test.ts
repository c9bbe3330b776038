// The lab's event stream on its own, on fake timers: a step's rows wait up to flushMs
// and go out as one batch followed by the status as of it; a status change sends the
// waiting rows first and cancels the timer; another run's status and curve replace the
// last one's; the time left is reckoned from the current leg's pace.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { LabEvent, LabMetrics } from '../../src/worker/api.ts';
import { emptyStatus, LabEvents } from '../../src/worker/lab-events.ts';

function row(step: number, over: Partial<LabMetrics> = {}): LabMetrics {
  return { step, loss: 3 - step / 100, lr: 1e-3, grad_norm: 1, tokens_per_s: 1000, elapsed_s: step / 10, ...over };
}

/** Events as [type, steps or phase]: short enough to compare whole. */
function brief(e: LabEvent): [string, unknown] {
  if (e.type === 'metrics') return ['metrics', e.metrics.map((m) => m.step)];
  if (e.type === 'status') return ['status', e.status.step];
  return [e.type, null];
}

function listened(flushMs = 100) {
  const events = new LabEvents(flushMs);
  const got: LabEvent[] = [];
  events.subscribe((e) => got.push(e));
  return { events, got, seen: () => got.splice(0).map(brief) };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('LabEvents', () => {
  it('sends the rows of flushMs as one batch, then the status as of the last', () => {
    const { events, seen } = listened(100);
    events.step(row(1));
    events.step(row(2));
    vi.advanceTimersByTime(99);
    expect(seen()).toEqual([]);
    events.step(row(3));
    vi.advanceTimersByTime(1);
    expect(seen()).toEqual([['metrics', [1, 2, 3]], ['status', 3]]);
    vi.advanceTimersByTime(1000);
    expect(seen()).toEqual([]);
    expect(events.rows.map((m) => m.step)).toEqual([1, 2, 3]);
  });

  it('sends the waiting rows before a status change, and nothing more when their timer would have fired', () => {
    const { events, seen } = listened(100);
    events.step(row(1));
    events.setStatus({ phase: 'paused' });
    expect(seen()).toEqual([['metrics', [1]], ['status', 1]]);
    vi.advanceTimersByTime(1000);
    expect(seen()).toEqual([]);
    events.setStatus({ phase: 'training' });
    expect(seen()).toEqual([['status', 1]]);
  });

  it('changes the status quietly: the next event carries it', () => {
    const { events, got } = listened();
    events.quietly({ snapshotStep: 7 });
    expect(got).toEqual([]);
    expect(events.status.snapshotStep).toBe(7);
    events.setStatus({ saving: true });
    expect(got).toMatchObject([{ type: 'status', status: { snapshotStep: 7, saving: true } }]);
  });

  it('gives each listener a copy of the status, and goes on past a listener that throws', () => {
    const events = new LabEvents();
    const got: LabEvent[] = [];
    events.subscribe(() => {
      throw new Error('closed page');
    });
    const id = events.subscribe((e) => got.push(e));
    events.setStatus({ phase: 'ready' });
    expect(got).toHaveLength(1);
    const sent = got[0];
    if (sent.type !== 'status') throw new Error(sent.type);
    sent.status.phase = 'error';
    expect(events.status.phase).toBe('ready');
    events.unsubscribe(id);
    events.setStatus({ phase: 'training' });
    expect(got).toHaveLength(1);
  });

  it('reset replaces the curve and status and drops the last run\'s unsent rows; a timed batch still sends the status', () => {
    const { events, seen } = listened(100);
    events.step(row(1));
    events.reset({ ...emptyStatus(), phase: 'paused', step: 40 }, [row(39), row(40)]);
    expect(seen()).toEqual([['status', 40]]);
    expect(events.rows.map((m) => m.step)).toEqual([39, 40]);
    vi.advanceTimersByTime(100);
    expect(seen()).toEqual([['status', 40]]);
  });

  it('rewind drops the rows past a step, sent or not', () => {
    const { events, seen } = listened(100);
    for (const s of [1, 2, 3]) events.step(row(s));
    vi.advanceTimersByTime(100);
    events.step(row(4));
    events.rewind(2);
    expect(events.rows.map((m) => m.step)).toEqual([1, 2]);
    seen();
    events.setStatus({ phase: 'paused' });
    expect(seen()).toEqual([['status', 4]]);
  });

  it('reckons the time left from this leg\'s pace, and keeps the best val loss', () => {
    const events = new LabEvents();
    events.setStatus({ stopAt: 100 });
    events.legStarted();
    events.step(row(10, { elapsed_s: 50 }));
    expect(events.status.etaS).toBeNull();
    events.step(row(20, { elapsed_s: 60, val_loss: 2.5 }));
    expect(events.status).toMatchObject({ step: 20, etaS: 80, lastValLoss: 2.5, valStep: 20, bestValLoss: 2.5, elapsedS: 60, tokensPerS: 1000 });
    events.step(row(30, { elapsed_s: 70, val_loss: 2.7 }));
    expect(events.status).toMatchObject({ etaS: 70, lastValLoss: 2.7, valStep: 30, bestValLoss: 2.5 });
    // A new leg reckons from its own first step, not the last leg's.
    events.legStarted();
    events.step(row(31, { elapsed_s: 1070 }));
    events.step(row(32, { elapsed_s: 1072 }));
    expect(events.status.etaS).toBe(2 * 68);
  });
});
