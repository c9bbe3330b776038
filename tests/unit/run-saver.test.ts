// A run's saver on its own, over the run library on fake-indexeddb: a save held at its
// first chunk stands for a slow disk, so what is queued meanwhile can be seen to coalesce
// (only the newest waiting snapshot is written), to wait its turn (a record update lands
// after the save before it), and to be waited for by settle(). A save that hits the
// quota is reported, changes nothing stored, and the next save writes the rows it missed.
import 'fake-indexeddb/auto'; // idb checks values against the global IDB* classes
import { IDBFactory } from 'fake-indexeddb';
import { afterEach, describe, expect, it } from 'vitest';
import type { TrainState } from '../../src/backends/backend.ts';
import type { RunConfig } from '../../src/core/config.ts';
import { isKilnError } from '../../src/core/errors.ts';
import { findPreset } from '../../src/core/presets.ts';
import type { RunRecord, SavedPhase } from '../../src/core/run-record.ts';
import { openRunStore } from '../../src/store/idb-store.ts';
import type { RunStore } from '../../src/store/run-store.ts';
import type { LabMetrics } from '../../src/worker/api.ts';
import { RunSaver, SaveQueue, type RunSnapshot } from '../../src/worker/run-saver.ts';

const config: RunConfig = { ...findPreset('tiny')!.config, steps: 100 };

function record(id: string): RunRecord {
  return {
    id, name: `run ${id}`, createdAt: 1000, updatedAt: 1000, spec: { preset: 'tiny', config, data: { kind: 'bundled', id: 'names' } },
    backend: 'cpu', device: 'test CPU', numParams: 100, step: 0, phase: 'ready',
    lastLoss: null, lastValLoss: null, bestValLoss: null, elapsedS: 0, checkpoints: [], bytesOnDisk: 0,
  };
}

function row(step: number): LabMetrics {
  return { step, loss: 3 - step / 100, lr: 1e-3, grad_norm: 1, tokens_per_s: 1000, elapsed_s: step / 10 };
}

function snapshot(step: number): RunSnapshot {
  return { state: { params: Float32Array.of(step), m: null, v: null, step }, point: { step, samplerState: step, elapsedS: step / 10, bestValLoss: null, lastValLoss: step / 50 } };
}

/** A snapshot's "checkpoint file": two chunks of its step, so the stored bytes say which snapshot was written. */
function fileOf(state: TrainState): Uint8Array {
  return new Uint8Array(1500).fill(state.step);
}

/** Something that holds whoever passes until it is opened; `reached` says someone is waiting. */
function gate() {
  let open!: () => void;
  let reach!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  const reached = new Promise<void>((r) => (reach = r));
  return {
    open,
    reached,
    async pass() {
      reach();
      await opened;
    },
  };
}

const opened: RunStore[] = [];
afterEach(() => {
  for (const s of opened.splice(0)) s.close();
});

/**
 * A library with one run, and a saver for it. `hold` stops the next save at its first
 * chunk; `full` makes chunk writes fail as a full quota does. `log` has the store's
 * writes and the saver's reports, in the order they happened.
 */
async function setup(opts: { phase?: () => SavedPhase } = {}) {
  const log: string[] = [];
  const ctl: { hold: ReturnType<typeof gate> | null; full: boolean } = { hold: null, full: false };
  const store = await openRunStore({
    name: 'run-saver-test', idbFactory: new IDBFactory(), chunkBytes: 1000,
    faults: {
      beforeChunkWrite: async (i) => {
        if (i === 0 && ctl.hold) {
          const g = ctl.hold;
          ctl.hold = null;
          await g.pass();
        }
        if (ctl.full) throw new DOMException('quota', 'QuotaExceededError');
      },
    },
  });
  opened.push(store);
  const rec = record('r');
  await store.putRun(rec);
  const logged: RunStore = {
    ...store,
    async saveCheckpoint(id, bytes, save) {
      log.push(`write ${save.step} (rows ${save.metrics.map((m) => m.step).join(',')})`);
      const out = await store.saveCheckpoint(id, bytes, save);
      log.push(`committed ${save.step}`);
      return out;
    },
    async putRun(run) {
      log.push(`put record (${run.phase}, ${run.spec.config.steps} steps)`);
      await store.putRun(run);
    },
  };
  const rows: LabMetrics[] = [];
  const failures: unknown[] = [];
  const encoded: number[] = [];
  let steps = config.steps;
  const saver = new RunSaver(
    {
      store: async () => logged,
      rows: () => rows,
      encode: async (snap) => {
        encoded.push(snap.point.step);
        return fileOf(snap.state);
      },
      patch: (phase, point) => ({ phase, step: point.step, lastValLoss: point.lastValLoss, elapsedS: point.elapsedS }),
      settings: (stored) => ({ spec: { ...stored.spec, config: { ...config, steps } }, phase: opts.phase?.() ?? stored.phase }),
      onSaving: () => log.push('saving'),
      onSaved: (step) => log.push(`saved ${step}`),
      onSaveFailed: (e) => {
        failures.push(e);
        log.push('failed');
      },
    },
    rec,
  );
  /** Training to `step`: its rows are logged. */
  const trainTo = (step: number) => {
    for (let s = (rows.at(-1)?.step ?? 0) + 1; s <= step; s++) rows.push(row(s));
  };
  return { store, saver, ctl, log, failures, encoded, trainTo, extendTo: (n: number) => (steps = n) };
}

const stepsOf = (rows: { step: number }[]) => rows.map((m) => m.step);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('RunSaver', () => {
  it('coalesces saves that fall behind: of three queued while one is written, only the newest is written', async () => {
    const { store, saver, ctl, log, encoded, trainTo } = await setup();
    const slow = gate();
    ctl.hold = slow;
    trainTo(6);
    saver.queueSave(snapshot(6), 'training');
    await slow.reached;
    for (const step of [12, 18, 24]) {
      trainTo(step);
      saver.queueSave(snapshot(step), step === 24 ? 'paused' : 'training');
    }
    slow.open();
    await saver.settle();

    expect(encoded).toEqual([6, 24]);
    expect(log).toEqual(['saving', `write 6 (rows ${range(1, 6)})`, 'committed 6', 'saved 6', 'saving', `write 24 (rows ${range(7, 24)})`, 'committed 24', 'saved 24']);
    const rec = (await store.getRun('r'))!;
    expect(rec.checkpoints.map((c) => c.step)).toEqual([6, 24]);
    expect(rec).toMatchObject({ step: 24, phase: 'paused' });
    expect(await store.loadCheckpoint('r', rec.checkpoints[1]!)).toEqual(new Uint8Array(1500).fill(24));
    // Every row up to the newest save is stored once, none lost with the skipped snapshots.
    expect(stepsOf(await store.metrics('r'))).toEqual(range(1, 24));
    expect(saver.savedStep).toBe(24);
    expect(saver.record).toEqual(rec);
  });

  it('writes a record update queued during a save after that save, over the record it committed', async () => {
    let phase: SavedPhase = 'training';
    const { store, saver, ctl, log, trainTo, extendTo } = await setup({ phase: () => phase });
    const slow = gate();
    ctl.hold = slow;
    trainTo(6);
    saver.queueSave(snapshot(6), 'training');
    await slow.reached;
    // Stopped and extended while the save is still writing.
    phase = 'stopped';
    extendTo(150);
    saver.queueRecordUpdate();
    await new Promise((r) => setTimeout(r, 20));
    expect(log).toEqual(['saving', `write 6 (rows ${range(1, 6)})`]);
    slow.open();
    await saver.settle();

    expect(log).toEqual(['saving', `write 6 (rows ${range(1, 6)})`, 'committed 6', 'saved 6', 'put record (stopped, 150 steps)']);
    const rec = (await store.getRun('r'))!;
    // The update read the record the save committed: its checkpoint and step stay.
    expect(rec).toMatchObject({ phase: 'stopped', step: 6, spec: { config: { steps: 150 } } });
    expect(rec.checkpoints.map((c) => c.step)).toEqual([6]);
    expect(saver.record).toEqual(rec);
  });

  it('settle() resolves only once every write queued before it is done', async () => {
    const { store, saver, ctl, log, trainTo } = await setup({ phase: () => 'paused' });
    const slow = gate();
    ctl.hold = slow;
    trainTo(6);
    saver.queueSave(snapshot(6), 'training');
    await slow.reached;
    saver.queueRecordUpdate();
    trainTo(12);
    saver.queueSave(snapshot(12), 'paused');
    let settled = false;
    const settling = saver.settle().then(() => (settled = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(settled).toBe(false);
    slow.open();
    await settling;

    expect(log).toEqual([
      'saving', `write 6 (rows ${range(1, 6)})`, 'committed 6', 'saved 6',
      'put record (paused, 100 steps)',
      'saving', `write 12 (rows ${range(7, 12)})`, 'committed 12', 'saved 12',
    ]);
    expect((await store.getRun('r'))!.checkpoints.map((c) => c.step)).toEqual([6, 12]);
    expect(stepsOf(await store.metrics('r'))).toEqual(range(1, 12));
  });

  it('shares its queue: a second saver on the same queue writes after the first', async () => {
    const first = await setup();
    const queue = new SaveQueue();
    const order: string[] = [];
    const saverOn = (s: typeof first, name: string, rec: RunRecord) =>
      new RunSaver(
        {
          store: async () => s.store, rows: () => [], encode: async (snap) => fileOf(snap.state), patch: (phase) => ({ phase }),
          settings: (stored) => ({ spec: stored.spec, phase: stored.phase }),
          onSaving: () => order.push(`${name} saving`), onSaved: () => order.push(`${name} saved`), onSaveFailed: () => order.push(`${name} failed`),
        },
        rec,
        null,
        queue,
      );
    await first.store.putRun(record('b'));
    const a = saverOn(first, 'a', record('r'));
    const b = saverOn(first, 'b', record('b'));
    const slow = gate();
    first.ctl.hold = slow;
    a.queueSave(snapshot(6), 'paused');
    await slow.reached;
    b.queueSave(snapshot(3), 'paused');
    await new Promise((r) => setTimeout(r, 20));
    expect(order).toEqual(['a saving']);
    slow.open();
    await b.settle();
    expect(order).toEqual(['a saving', 'a saved', 'b saving', 'b saved']);
    expect((await first.store.getRun('b'))!.checkpoints.map((c) => c.step)).toEqual([3]);
  });

  it('reports a save that hits the quota, keeps what was stored, and the next save writes the rows it missed', async () => {
    const { store, saver, ctl, log, failures, trainTo } = await setup();
    trainTo(6);
    saver.queueSave(snapshot(6), 'training');
    await saver.settle();
    ctl.full = true;
    trainTo(12);
    saver.queueSave(snapshot(12), 'training');
    await expect(saver.settle()).resolves.toBeUndefined();

    expect(failures).toHaveLength(1);
    const e = failures[0];
    expect(isKilnError(e) && e.code).toBe('storage');
    expect((e as Error).message).toMatch(/^the browser's storage is full: saving this checkpoint needs \d/);
    expect(log.slice(-3)).toEqual(['saving', `write 12 (rows ${range(7, 12)})`, 'failed']);
    expect(saver.savedStep).toBe(6);
    let rec = (await store.getRun('r'))!;
    expect(rec.checkpoints.map((c) => c.step)).toEqual([6]);
    expect(stepsOf(await store.metrics('r'))).toEqual(range(1, 6));

    // Space freed: the next save goes through and carries the rows since step 6.
    ctl.full = false;
    trainTo(18);
    saver.queueSave(snapshot(18), 'paused');
    await saver.settle();
    expect(failures).toHaveLength(1);
    expect(log.slice(-4)).toEqual(['saving', `write 18 (rows ${range(7, 18)})`, 'committed 18', 'saved 18']);
    rec = (await store.getRun('r'))!;
    expect(rec.checkpoints.map((c) => c.step)).toEqual([6, 18]);
    expect(stepsOf(await store.metrics('r'))).toEqual(range(1, 18));
    expect(saver.savedStep).toBe(18);
  });

  it('writes nothing for a run forgotten (deleted) while its writes waited their turn', async () => {
    const queue = new SaveQueue();
    const busy = gate();
    queue.add(() => busy.pass()); // another run's write, still going
    const { store, log, trainTo } = await setup();
    const saver = new RunSaver(
      {
        store: async () => store, rows: () => [row(1), row(2), row(3)], encode: async (snap) => fileOf(snap.state), patch: (phase) => ({ phase }),
        settings: (stored) => ({ spec: stored.spec, phase: 'stopped' }),
        onSaving: () => log.push('saving'), onSaved: (step) => log.push(`saved ${step}`), onSaveFailed: () => log.push('failed'),
      },
      (await store.getRun('r'))!,
      null,
      queue,
    );
    trainTo(3);
    saver.queueSave(snapshot(3), 'paused');
    saver.queueRecordUpdate();
    saver.forget();
    saver.queueSave(snapshot(3), 'paused');
    expect(saver.record).toBeNull();
    busy.open();
    await saver.settle();
    expect(log).toEqual([]);
    expect(await store.getRun('r')).toEqual(record('r'));
    expect(await store.metrics('r')).toEqual([]);
  });
});
