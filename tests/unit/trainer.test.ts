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
import { evaluate, scoresWholeSplit, train, type StepMetrics, type TrainerOptions, type TrainerResult, type TrainerSnapshot } from '../../src/train/trainer.ts';
import { scoreBatchSize, scoreTokens } from '../../src/train/eval-split.ts';

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

/**
 * A backend around the cpu one that behaves like a GPU queue on a virtual clock: a
 * step() call costs the host `hostSeconds` (recording), the device then runs the steps
 * back to back, `deviceSeconds` each, and a step's promise settles (in a later task, in
 * call order) with the clock at its completion. It allows `maxStepsInFlight` pending
 * steps and records how many were pending whenever anything else was called.
 */
class QueuedBackend implements Backend {
  readonly kind = 'cpu' as const;
  readonly info;
  t = 100;
  busyUntil = 0;
  pending = 0;
  maxPending = 0;
  /** Steps pending at each loss(), logits() and save() call. */
  pendingAtOtherCalls: number[] = [];
  /** Makes the n-th step() (1-based) reject. */
  failAt = 0;
  private calls = 0;
  constructor(
    readonly inner: Backend,
    readonly hostSeconds: number,
    readonly deviceSeconds: number,
    readonly maxStepsInFlight: number,
  ) {
    this.info = inner.info;
  }
  now = (): number => this.t;
  load(model: ModelConfig, state: TrainState) {
    return this.inner.load(model, state);
  }
  step(batch: Batch, hp: StepHyper): Promise<StepStats> {
    const n = ++this.calls;
    this.pending++;
    this.maxPending = Math.max(this.maxPending, this.pending);
    if (this.pending > this.maxStepsInFlight) throw new Error(`${this.pending} steps in flight, more than ${this.maxStepsInFlight}`);
    this.t += this.hostSeconds;
    const done = Math.max(this.t, this.busyUntil) + this.deviceSeconds;
    this.busyUntil = done;
    const stats = this.inner.step(batch, hp); // the cpu computes at once, in call order
    return new Promise((resolve, reject) =>
      setTimeout(() => {
        this.t = Math.max(this.t, done);
        this.pending--;
        if (n === this.failAt) reject(new Error(`step ${n} failed`));
        else resolve(stats);
      }, 0),
    );
  }
  loss(batch: Batch) {
    this.pendingAtOtherCalls.push(this.pending);
    return this.inner.loss(batch);
  }
  logits(c: Int32Array) {
    this.pendingAtOtherCalls.push(this.pending);
    return this.inner.logits(c);
  }
  save() {
    this.pendingAtOtherCalls.push(this.pending);
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
    // 10 s per evaluation batch: every window of a small held-out split, else the sample.
    const windows = Math.floor((data.split.val.length - 1) / config.blockSize);
    const evalSeconds = 10 * (scoresWholeSplit(data.split.val.length, config)
      ? Math.ceil(windows / scoreBatchSize(data.model))
      : valBatches(data.split.val, config.batchSize, config.blockSize, config.evalBatches).length);
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

describe('train with a backend that pipelines steps', () => {
  const fields = { evalEvery: 4, checkpointEvery: 5, sampleEvery: 6, logEvery: 1 };

  it('gives the same metrics, checkpoints and samples as one step at a time, and events never see a step in flight', async () => {
    const plain = await setup(fields);
    const want = await run({ config: plain.config, model: plain.data.model, backend: plain.backend, split: plain.data.split, startStep: 0, stopAt: 13 });

    const { config, data, backend: cpu } = await setup(fields);
    const backend = new QueuedBackend(cpu, 0.1, 0.5, 2);
    const states: TrainState[] = [];
    const got = await run(
      { config, model: data.model, backend, split: data.split, startStep: 0, stopAt: 13, now: backend.now },
      { onCheckpoint: async () => void states.push(await backend.save()), onSample: async () => void (await backend.logits(new Int32Array([1]))) },
    );
    expect(backend.maxPending).toBe(2);
    expect(backend.pendingAtOtherCalls.length).toBeGreaterThan(0);
    expect(backend.pendingAtOtherCalls.every((n) => n === 0)).toBe(true);
    const strip = (m: StepMetrics) => [m.step, m.loss, m.grad_norm, m.lr, m.val_loss];
    expect(got.metrics.map(strip)).toEqual(want.metrics.map(strip));
    expect(got.samples).toEqual(want.samples);
    expect(got.checkpoints.map((c) => [c.step, c.reason, c.samplerState, c.bestValLoss])).toEqual(
      want.checkpoints.map((c) => [c.step, c.reason, c.samplerState, c.bestValLoss]),
    );
    // Each checkpoint's backend state is the state after exactly its step.
    expect(states.map((st) => st.step)).toEqual(got.checkpoints.map((c) => c.step));
    expect(got.result).toEqual(want.result);
  });

  it('counts each step once in tokens/s: pipelined steps cost the device time, not host + device', async () => {
    const tokensPerStep = (c: RunConfig) => c.batchSize * c.blockSize * c.gradAccum;
    for (const depth of [1, 2]) {
      const { config, data, backend: cpu } = await setup({ evalEvery: 100, checkpointEvery: 100, logEvery: 1 });
      const backend = new QueuedBackend(cpu, 0.2, 0.5, depth);
      const { metrics } = await run({ config, model: data.model, backend, split: data.split, startStep: 0, stopAt: 8, now: backend.now });
      const seconds = metrics.map((m) => tokensPerStep(config) / m.tokens_per_s);
      // One at a time: host and device alternate. Pipelined: the host records the next
      // step while the device runs this one; only the first step pays for both.
      const want = depth === 1 ? Array(8).fill(0.7) : [0.7, ...Array(7).fill(0.5)];
      seconds.forEach((x, i) => expect(x, `depth ${depth}, step ${i + 1}`).toBeCloseTo(want[i], 9));
      // Wall time still adds up: elapsed equals the summed step times (no evaluation here
      // but the last step's, which costs no time on this clock).
      expect(metrics[7].elapsed_s).toBeCloseTo(want.reduce((a, b) => a + b, 0), 9);
    }
  });

  it('a stop request finishes the steps in flight and snapshots where the backend is', async () => {
    const { config, data, backend: cpu } = await setup({ checkpointEvery: 100, evalEvery: 100 });
    const backend = new QueuedBackend(cpu, 0.1, 0.5, 2);
    const ac = new AbortController();
    const { metrics, checkpoints, result } = await run(
      { config, model: data.model, backend, split: data.split, startStep: 0, stopAt: 50, signal: ac.signal, now: backend.now },
      { onMetrics: (m) => void (m.step === 3 && ac.abort()) },
    );
    // Step 4 was already issued when step 3's metrics asked to stop: it completes and counts.
    expect(metrics.map((m) => m.step)).toEqual([1, 2, 3, 4]);
    expect(checkpoints.map((c) => [c.step, c.reason])).toEqual([[4, 'stopped']]);
    expect(result).toMatchObject({ step: 4, stopped: true });
    expect((await backend.save()).step).toBe(4);
    const sampler = new BatchSampler(data.split.train, config.seed);
    for (let i = 0; i < 4; i++) sampler.next(config.batchSize, config.blockSize, config.gradAccum);
    expect(checkpoints[0].samplerState).toEqual(sampler.state());
  });

  it('a failing step rejects train() only after the step behind it has settled', async () => {
    const { config, data, backend: cpu } = await setup({ checkpointEvery: 100, evalEvery: 100 });
    const backend = new QueuedBackend(cpu, 0.1, 0.5, 2);
    backend.failAt = 3;
    const checkpoints: TrainerSnapshot[] = [];
    await expect(
      train({ config, model: data.model, backend, split: data.split, startStep: 0, stopAt: 20, now: backend.now, events: { onCheckpoint: (c) => void checkpoints.push(c) } }),
    ).rejects.toThrow('step 3 failed');
    expect(backend.maxPending).toBe(2);
    expect(backend.pending).toBe(0);
    expect(checkpoints).toEqual([]);
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

describe('the run\'s val loss and kiln eval', () => {
  it('a small held-out split is scored whole at every evaluation, as kiln eval scores it; a big one by the sample', async () => {
    const { config, data, backend } = await setup({ evalEvery: 2, checkpointEvery: 100, evalBatches: 100 });
    expect(scoresWholeSplit(data.split.val.length, config)).toBe(true);
    const { metrics } = await run({ config, model: data.model, backend, split: data.split, startStep: 0, stopAt: 4 });
    expect(metrics.at(-1)!.val_loss).toBe((await scoreTokens(backend, data.split.val, data.model)).loss);
    const sampled = { ...config, evalBatches: 1 };
    expect(scoresWholeSplit(data.split.val.length, sampled)).toBe(data.split.val.length - 1 <= 2 * config.batchSize * config.blockSize);
    expect(scoresWholeSplit(2 * 1 * config.batchSize * config.blockSize + 2, sampled)).toBe(false);
  });
});
