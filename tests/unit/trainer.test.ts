// The training loop on the cpu backend with the tiny preset: learning, events and their
// cadence, stopping, bit-identical resume through checkpoint bytes, numerical failure,
// and evaluate().
import { describe, expect, it } from 'vitest';
import type { Backend, Batch, StepHyper, StepStats, TrainState } from '../../src/backends/backend.ts';
import { CpuBackend } from '../../src/backends/cpu.ts';
import type { RunConfig } from '../../src/core/config.ts';
import { BatchSampler, valBatches } from '../../src/core/data.ts';
import { KilnError } from '../../src/core/errors.ts';
import { flopsPerToken, type ModelConfig } from '../../src/core/model-spec.ts';
import { findPreset } from '../../src/core/presets.ts';
import { lrAt } from '../../src/core/schedule.ts';
import { checkpointBytes, readResumePoint, type RunIdentity } from '../../src/train/checkpointing.ts';
import { initialState, prepareData, type PreparedData } from '../../src/train/prepare.ts';
import { evaluate, train, type StepMetrics, type TrainerOptions, type TrainerResult, type TrainerSnapshot } from '../../src/train/trainer.ts';

const TEXT = 'the cat sat on the mat.\nthe dog sat on the log.\n'.repeat(120);

function tinyConfig(fields: Partial<RunConfig> = {}): RunConfig {
  return { ...findPreset('tiny')!.config, ...fields };
}

async function setup(fields: Partial<RunConfig> = {}): Promise<{ config: RunConfig; data: PreparedData; backend: CpuBackend }> {
  const config = tinyConfig(fields);
  const data = await prepareData(config, TEXT);
  const backend = new CpuBackend();
  await backend.load(data.model, initialState(data.model, config.seed));
  return { config, data, backend };
}

interface Recorded {
  metrics: StepMetrics[];
  checkpoints: TrainerSnapshot[];
  samples: number[];
  result: TrainerResult;
}

async function run(o: Omit<TrainerOptions, 'events'>, extra: TrainerOptions['events'] = {}): Promise<Recorded> {
  const metrics: StepMetrics[] = [];
  const checkpoints: TrainerSnapshot[] = [];
  const samples: number[] = [];
  const result = await train({
    ...o,
    events: {
      async onMetrics(m) {
        metrics.push(m);
        await extra.onMetrics?.(m);
      },
      async onCheckpoint(s) {
        checkpoints.push(s);
        await extra.onCheckpoint?.(s);
      },
      async onSample(step) {
        samples.push(step);
        await extra.onSample?.(step);
      },
    },
  });
  return { metrics, checkpoints, samples, result };
}

function sameBits(a: Float32Array | null, b: Float32Array | null): boolean {
  if (a === null || b === null) return a === b;
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** A backend around the cpu one whose clock moves only inside step() and loss(): exact timings. */
class ClockedBackend implements Backend {
  readonly kind = 'cpu' as const;
  readonly info;
  t = 100;
  steps = 0;
  constructor(
    readonly inner: Backend,
    readonly stepSeconds: number,
    readonly lossSeconds: number,
    peakFlops?: number,
  ) {
    this.info = { ...inner.info, ...(peakFlops ? { peakFlops } : {}) };
  }
  now = (): number => this.t;
  load(model: ModelConfig, state: TrainState) {
    return this.inner.load(model, state);
  }
  async step(batch: Batch, hp: StepHyper): Promise<StepStats> {
    this.steps++;
    const s = await this.inner.step(batch, hp);
    this.t += this.stepSeconds;
    return s;
  }
  async loss(batch: Batch) {
    const l = await this.inner.loss(batch);
    this.t += this.lossSeconds;
    return l;
  }
  logits(c: Int32Array) {
    return this.inner.logits(c);
  }
  save() {
    return this.inner.save();
  }
  dispose() {
    this.inner.dispose();
  }
}

describe('train', () => {
  it('learns: the loss falls well below its start on a small repetitive text', async () => {
    const { config, data, backend } = await setup({ evalEvery: 10 });
    const { metrics, result } = await run({ config, model: data.model, backend, split: data.split, startStep: 0, stopAt: 60 });
    expect(metrics.map((m) => m.step)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
    const first = metrics[0].loss;
    // A fresh GPT-2 init predicts close to uniformly: ln(vocab).
    expect(Math.abs(first - Math.log(data.model.vocabSize))).toBeLessThan(0.3);
    const last = metrics.slice(-5).reduce((a, m) => a + m.loss, 0) / 5;
    expect(last).toBeLessThan(first * 0.7);
    const vals = metrics.filter((m) => m.val_loss !== undefined).map((m) => m.val_loss!);
    expect(vals).toHaveLength(6);
    expect(vals[vals.length - 1]).toBeLessThan(vals[0]);
    expect(result).toMatchObject({ step: 60, stopped: false, lastLoss: metrics[59].loss, lastValLoss: vals[5] });
    expect(result.bestValLoss).toBe(Math.min(...vals));
    for (const m of metrics) expect(Number.isFinite(m.loss) && Number.isFinite(m.grad_norm)).toBe(true);
  });

  it('metrics carry step, loss, lr, grad_norm, tokens_per_s, elapsed_s; val_loss at the eval cadence and the last step', async () => {
    const { config, data, backend: cpu } = await setup({ evalEvery: 3, logEvery: 2, checkpointEvery: 100, gradAccum: 2 });
    const backend = new ClockedBackend(cpu, 0.5, 10);
    const { metrics } = await run({ config, model: data.model, backend, split: data.split, startStep: 0, stopAt: 7, now: backend.now });
    // Logged at logEvery (2, 4, 6), at every evaluation (3, 6) and at the end (7).
    expect(metrics.map((m) => m.step)).toEqual([2, 3, 4, 6, 7]);
    expect(metrics.filter((m) => 'val_loss' in m).map((m) => m.step)).toEqual([3, 6, 7]);
    const tokensPerStep = config.batchSize * config.blockSize * 2;
    const evalSeconds = 10 * valBatches(data.split.val, config.batchSize, config.blockSize, config.evalBatches).length;
    let evals = 0;
    for (const m of metrics) {
      expect(Object.keys(m).sort()).toEqual(
        ['step', 'loss', 'lr', 'grad_norm', 'tokens_per_s', 'elapsed_s', ...('val_loss' in m ? ['val_loss'] : [])].sort(),
      );
      expect(m.loss).toBeGreaterThan(0);
      expect(m.grad_norm).toBeGreaterThan(0);
      if (m.val_loss !== undefined) {
        expect(m.val_loss).toBeGreaterThan(0);
        evals++;
      }
      // The lr used for the step just done (0-based step - 1).
      expect(m.lr).toBe(lrAt(m.step - 1, config));
      // Throughput counts step time only: evaluation's 10 s per batch are left out.
      expect(m.tokens_per_s).toBeCloseTo(tokensPerStep / 0.5, 6);
      // Wall time since the start includes the evaluations.
      expect(m.elapsed_s).toBeCloseTo(0.5 * m.step + evalSeconds * evals, 6);
    }
    expect(backend.steps).toBe(7);
  });

  it('reports MFU when the backend knows its peak FLOP/s', async () => {
    const { config, data, backend: cpu } = await setup();
    const backend = new ClockedBackend(cpu, 0.25, 0, 1e9);
    const { metrics } = await run({ config, model: data.model, backend, split: data.split, startStep: 0, stopAt: 2, now: backend.now });
    const tps = (config.batchSize * config.blockSize) / 0.25;
    for (const m of metrics) expect(m.mfu).toBeCloseTo((tps * flopsPerToken(data.model)) / 1e9, 9);
  });

  it('checkpoints at the cadence, on each new best val loss, and at the end', async () => {
    const { config, data, backend } = await setup({ evalEvery: 2, checkpointEvery: 3, sampleEvery: 4 });
    const { metrics, checkpoints, samples } = await run({ config, model: data.model, backend, split: data.split, startStep: 0, stopAt: 9 });
    const vals = metrics.filter((m) => m.val_loss !== undefined);
    expect(vals.map((m) => m.step)).toEqual([2, 4, 6, 8, 9]);
    // Which evaluations were a new best, from the numbers themselves.
    const bestSteps: number[] = [];
    let best = Infinity;
    for (const m of vals) if (m.val_loss! < best) (best = m.val_loss!), bestSteps.push(m.step);
    expect(bestSteps[0]).toBe(2);
    const expected: Array<[number, string]> = [];
    for (let s = 1; s <= 9; s++) {
      if (bestSteps.includes(s)) expected.push([s, 'best']);
      if (s === 9) expected.push([s, 'end']);
      else if (s % 3 === 0) expected.push([s, 'cadence']);
    }
    expect(checkpoints.map((c) => [c.step, c.reason])).toEqual(expected);
    for (const c of checkpoints) {
      expect(c.samplerState).toHaveLength(4);
      expect(c.elapsedS).toBeGreaterThanOrEqual(0);
      if (c.reason === 'best') expect(c.bestValLoss).toBe(vals.find((m) => m.step === c.step)!.val_loss);
    }
    const end = checkpoints[checkpoints.length - 1];
    expect(end.lastValLoss).toBe(vals[vals.length - 1].val_loss);
    expect(end.bestValLoss).toBe(best);
    expect(samples).toEqual([4, 8]);
  });

  it('stops after the current step when the signal aborts, and takes a "stopped" snapshot', async () => {
    const { config, data, backend: cpu } = await setup({ checkpointEvery: 100 });
    const backend = new ClockedBackend(cpu, 0.1, 0);
    const ac = new AbortController();
    const { metrics, checkpoints, result } = await run(
      { config, model: data.model, backend, split: data.split, startStep: 0, stopAt: 50, signal: ac.signal },
      { onMetrics: (m) => void (m.step === 3 && ac.abort()) },
    );
    expect(backend.steps).toBe(3);
    expect(metrics.map((m) => m.step)).toEqual([1, 2, 3]);
    expect(checkpoints.map((c) => [c.step, c.reason])).toEqual([[3, 'stopped']]);
    expect(result).toMatchObject({ step: 3, stopped: true, lastLoss: metrics[2].loss });
    // The snapshot's sampler state is after exactly three batches.
    const sampler = new BatchSampler(data.split.train, config.seed);
    for (let i = 0; i < 3; i++) sampler.next(config.batchSize, config.blockSize, config.gradAccum);
    expect(checkpoints[0].samplerState).toEqual(sampler.state());

    // An already-aborted signal trains nothing and still snapshots where it is.
    const again = await setup();
    const done = new AbortController();
    done.abort();
    const r2 = await run({ config, model: again.data.model, backend: again.backend, split: again.data.split, startStep: 5, stopAt: 9, signal: done.signal });
    expect(r2.metrics).toEqual([]);
    expect(r2.checkpoints.map((c) => [c.step, c.reason])).toEqual([[5, 'stopped']]);
    expect(r2.result).toMatchObject({ step: 5, stopped: true });
  });

  it('resumes bit-identically: 8 straight == 4, checkpoint bytes, 4 more', async () => {
    const N = 8;
    const fields = { evalEvery: 3, checkpointEvery: 100 };
    const straight = await setup(fields);
    const s = await run({ config: straight.config, model: straight.data.model, backend: straight.backend, split: straight.data.split, startStep: 0, stopAt: N });

    const first = await setup(fields);
    const run1: RunIdentity = { config: first.config, model: first.data.model, tokenizer: first.data.tokenizer.toJSON(), dataset: null };
    let bytes: Uint8Array | null = null;
    const a = await run(
      { config: first.config, model: first.data.model, backend: first.backend, split: first.data.split, startStep: 0, stopAt: N / 2 },
      { onCheckpoint: async (snap) => void (snap.reason === 'end' && (bytes = await checkpointBytes(first.backend, run1, snap))) },
    );
    expect(bytes).not.toBeNull();
    first.backend.dispose();

    const rp = await readResumePoint(bytes!);
    expect(rp.checkpoint.step).toBe(N / 2);
    expect(rp.samplerState).toEqual(a.checkpoints.find((c) => c.reason === 'end')!.samplerState);
    const second = new CpuBackend();
    await second.load(rp.checkpoint.model, rp.checkpoint.state);
    const b = await run({
      config: rp.checkpoint.config, model: rp.checkpoint.model, backend: second, split: first.data.split,
      startStep: rp.checkpoint.step, stopAt: N, samplerState: rp.samplerState!, elapsedS: rp.elapsedS, bestValLoss: rp.bestValLoss,
    });

    const joined = [...a.metrics, ...b.metrics];
    expect(joined.map((m) => m.step)).toEqual(s.metrics.map((m) => m.step));
    for (let i = 0; i < N; i++) {
      expect(joined[i].loss, `loss at step ${i + 1}`).toBe(s.metrics[i].loss);
      expect(joined[i].grad_norm, `grad norm at step ${i + 1}`).toBe(s.metrics[i].grad_norm);
      expect(joined[i].lr).toBe(s.metrics[i].lr);
    }
    expect(b.result.lastValLoss).toBe(s.result.lastValLoss);
    const [x, y] = [await straight.backend.save(), await second.save()];
    expect(sameBits(x.params, y.params)).toBe(true);
    expect(sameBits(x.m, y.m)).toBe(true);
    expect(sameBits(x.v, y.v)).toBe(true);
    expect(y.step).toBe(x.step);
  });

  it('resumes bit-identically from a cadence checkpoint taken mid-run', async () => {
    const fields = { evalEvery: 100, checkpointEvery: 3 };
    const straight = await setup(fields);
    const identity: RunIdentity = { config: straight.config, model: straight.data.model, tokenizer: straight.data.tokenizer.toJSON(), dataset: null };
    let at3: Uint8Array | null = null;
    const s = await run(
      { config: straight.config, model: straight.data.model, backend: straight.backend, split: straight.data.split, startStep: 0, stopAt: 7 },
      { onCheckpoint: async (snap) => void (snap.step === 3 && (at3 = await checkpointBytes(straight.backend, identity, snap))) },
    );
    const rp = await readResumePoint(at3!);
    expect(rp.checkpoint.step).toBe(3);
    const be = new CpuBackend();
    await be.load(rp.checkpoint.model, rp.checkpoint.state);
    const r = await run({
      config: rp.checkpoint.config, model: rp.checkpoint.model, backend: be, split: straight.data.split,
      startStep: 3, stopAt: 7, samplerState: rp.samplerState!,
    });
    expect(r.metrics.map((m) => [m.step, m.loss])).toEqual(s.metrics.slice(3).map((m) => [m.step, m.loss]));
  });

  it('throws KilnError "numerical" when the backend returns NaN or Infinity, before logging that step', async () => {
    for (const bad of [{ loss: NaN, gradNorm: 1 }, { loss: 1, gradNorm: Infinity }, { loss: -Infinity, gradNorm: 1 }]) {
      const { config, data, backend: cpu } = await setup();
      let calls = 0;
      const backend: Backend = {
        kind: 'cpu',
        info: cpu.info,
        load: (m, s) => cpu.load(m, s),
        step: async (b, hp) => (++calls === 3 ? bad : cpu.step(b, hp)),
        loss: (b) => cpu.loss(b),
        logits: (c) => cpu.logits(c),
        save: () => cpu.save(),
        dispose: () => cpu.dispose(),
      };
      const metrics: StepMetrics[] = [];
      const checkpoints: TrainerSnapshot[] = [];
      let caught: unknown;
      try {
        await train({
          config, model: data.model, backend, split: data.split, startStep: 0, stopAt: 10,
          events: { onMetrics: (m) => void metrics.push(m), onCheckpoint: (c) => void checkpoints.push(c) },
        });
      } catch (e) {
        caught = e;
      }
      expect(caught, JSON.stringify(bad)).toBeInstanceOf(KilnError);
      const e = caught as KilnError;
      expect(e.code).toBe('numerical');
      expect(e.message).toContain('step 3');
      expect(e.hint).toMatch(/learning rate|lr/);
      expect(metrics.map((m) => m.step)).toEqual([1, 2]);
      // No checkpoint of the broken state.
      expect(checkpoints).toEqual([]);
    }
  });
});

describe('evaluate', () => {
  it('is the mean of backend.loss over the fixed validation batches, and changes nothing', async () => {
    const { config, data, backend } = await setup({ evalBatches: 3 });
    // Train a little so the loss is not the init's.
    await train({ config, model: data.model, backend, split: data.split, startStep: 0, stopAt: 3 });
    const before = await backend.save();
    const batches = valBatches(data.split.val, config.batchSize, config.blockSize, config.evalBatches);
    expect(batches.length).toBe(3);
    let sum = 0;
    for (const b of batches) sum += await backend.loss(b);
    const expected = sum / batches.length;
    const got = await evaluate(backend, data.split.val, config);
    expect(got).toBe(expected);
    expect(await evaluate(backend, data.split.val, config)).toBe(got);
    const after = await backend.save();
    expect(sameBits(after.params, before.params)).toBe(true);
    expect(sameBits(after.m, before.m)).toBe(true);
    expect(after.step).toBe(before.step);
    // Each batch's loss differs, so this is a real mean, not one batch's value.
    const each = await Promise.all(batches.map((b) => backend.loss(b)));
    expect(new Set(each).size).toBeGreaterThan(1);
  });

  it('uses fewer batches when the validation split is short, never more than it has', async () => {
    const { config, data, backend } = await setup({ evalBatches: 1000 });
    const batches = valBatches(data.split.val, config.batchSize, config.blockSize, 1000);
    const windows = Math.floor((data.split.val.length - 1) / config.blockSize);
    expect(batches.length).toBe(Math.ceil(windows / config.batchSize));
    let sum = 0;
    for (const b of batches) sum += await backend.loss(b);
    expect(await evaluate(backend, data.split.val, config)).toBe(sum / batches.length);
  });
});
