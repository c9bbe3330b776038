// What follows from an open run alone: the phase its record keeps, the status it opens
// with, its record's fields at a saved snapshot (the loss of the snapshot's own step,
// else the record's), and the refusal to train without its text.
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../../src/backends/cpu.ts';
import type { RunConfig } from '../../src/core/config.ts';
import { findPreset } from '../../src/core/presets.ts';
import { initialState, prepareData } from '../../src/train/prepare.ts';
import { checkpointIdentity, needData, openedStatus, recordPatch, savedPhase, type ActiveRun } from '../../src/worker/active-run.ts';
import type { LabMetrics, RunPhase } from '../../src/worker/api.ts';
import type { RunPoint } from '../../src/worker/library-ops.ts';
import { newRecord } from '../../src/worker/run-library.ts';
import { RunSaver } from '../../src/worker/run-saver.ts';

const config: RunConfig = { ...findPreset('tiny')!.config, steps: 100 };

function row(step: number, over: Partial<LabMetrics> = {}): LabMetrics {
  return { step, loss: 3 - step / 100, lr: 1e-3, grad_norm: 1, tokens_per_s: 1000, elapsed_s: step / 10, ...over };
}

const point = (step: number): RunPoint => ({ step, samplerState: 7, elapsedS: step / 10, bestValLoss: 2.4, lastValLoss: 2.6 });

async function run(withData = true): Promise<ActiveRun> {
  const prepared = await prepareData(config, 'anna\nbob\ncarla\n'.repeat(200));
  const spec = { preset: 'tiny', config, data: { kind: 'bundled', id: 'names' } as const };
  const record = { ...newRecord({ id: 'r1', name: 'tiny · names', spec, backend: 'cpu', device: 'test CPU', numParams: 1 }), lastLoss: 9 };
  const saver = new RunSaver({
    store: async () => null, rows: () => [], encode: async () => new Uint8Array(), patch: () => ({}),
    settings: (stored) => ({ spec: stored.spec, phase: stored.phase }), onSaving() {}, onSaved() {}, onSaveFailed() {},
  }, record);
  return {
    info: { id: 'r1', name: 'tiny · names', spec, model: prepared.model, numParams: 1, backend: 'cpu', device: 'test CPU', memoryBytes: 0, data: null },
    config: { ...config }, model: prepared.model, tokenizer: prepared.tokenizer, prepared: withData ? prepared : null, backend: new CpuBackend(),
    point: point(0), snapshot: { state: initialState(prepared.model, config.seed), point: point(0) }, saver,
  };
}

describe('an open run', () => {
  it('keeps a phase that does not outlive the session as the one it reopens in', () => {
    const kept: Record<RunPhase, string> = {
      preparing: 'ready', ready: 'ready', training: 'training', pausing: 'paused', paused: 'paused', done: 'done', stopped: 'stopped', error: 'paused',
    };
    for (const [phase, saved] of Object.entries(kept)) expect(savedPhase(phase as RunPhase)).toBe(saved);
  });

  it('opens ready at step 0, paused part way and done at its end, with the losses of its rows', () => {
    const rec = { ...newRecord({ id: 'r', name: 'r', spec: { preset: 'tiny', config, data: null }, backend: 'cpu', device: 'd', numParams: 1 }), lastLoss: 1.5 };
    const rows = [row(10, { val_loss: 2.8 }), row(20, { val_loss: 2.6 }), row(30)];
    expect(openedStatus(rec, config, point(0), [], null)).toMatchObject({ phase: 'ready', step: 0, lastLoss: 1.5, valStep: null, savedStep: null });
    expect(openedStatus(rec, config, point(30), rows, 30)).toMatchObject({
      phase: 'paused', step: 30, stopAt: 100, decaySteps: config.decaySteps, lastLoss: rows[2].loss, lastValLoss: 2.6, bestValLoss: 2.4,
      valStep: 20, elapsedS: 3, snapshotStep: 30, savedStep: 30, saving: false, recoverable: false, etaS: null,
    });
    expect(openedStatus(rec, config, point(100), rows, 100).phase).toBe('done');
  });

  it('records the loss of the snapshot\'s step, else the record\'s last', async () => {
    const r = await run();
    const rows = [row(5), row(6), row(7)];
    expect(recordPatch(r, rows, 'paused', point(6))).toMatchObject({
      phase: 'paused', step: 6, lastLoss: rows[1].loss, lastValLoss: 2.6, bestValLoss: 2.4, elapsedS: 0.6, backend: 'cpu', device: 'test CPU',
      spec: { config: { steps: 100 } },
    });
    expect(recordPatch(r, [], 'training', point(6)).lastLoss).toBe(9);
    expect(checkpointIdentity(r)).toMatchObject({ config: { steps: 100 }, model: r.model, dataset: { kind: 'bundled', id: 'names' } });
  });

  it('trains only with its text', async () => {
    const bare = await run(false);
    expect(() => needData(bare)).toThrow('this run trains on the bundled dataset names, which is not in this browser');
    const r = await run();
    needData(r);
    expect(r.prepared.split.train.length).toBeGreaterThan(0);
  });
});
