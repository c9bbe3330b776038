// The training loop, backend-agnostic: learning-rate schedule, micro-batches, eval at
// a fixed cadence on fixed validation batches, sampling, checkpoint cadence. It
// reports through events; sinks (terminal, files, the lab's UI, IndexedDB) listen.
import type { Backend, Batch, StepHyper, StepStats } from '../backends/backend.ts';
import { dropoutStepSeed } from '../core/dropout.ts';
import type { RunConfig } from '../core/config.ts';
import { BatchSampler, valBatches, type Split } from '../core/data.ts';
import { KilnError } from '../core/errors.ts';
import type { RngState } from '../core/rng.ts';
import { lrAt } from '../core/schedule.ts';
import { flopsPerToken, type ModelConfig } from '../core/model-spec.ts';
import { scoreTokens } from './eval-split.ts';
import { yieldTurn } from './yield-turn.ts';

/** One line of metrics.jsonl: the step just completed (1-based count of optimizer steps). */
export interface StepMetrics {
  step: number;
  loss: number;
  val_loss?: number;
  lr: number;
  grad_norm: number;
  tokens_per_s: number;
  /** Model FLOPs utilisation, where the backend knows its peak. */
  mfu?: number;
  elapsed_s: number;
}

/** What a checkpoint needs from the trainer beyond the backend's state. */
export interface TrainerSnapshot {
  step: number;
  samplerState: RngState;
  elapsedS: number;
  bestValLoss: number | null;
  lastValLoss: number | null;
  /** Why it was taken: the cadence, a new best val loss, the end, or a stop request. */
  reason: 'cadence' | 'best' | 'end' | 'stopped';
}

export interface TrainerEvents {
  onMetrics?(m: StepMetrics): void | Promise<void>;
  /** Called at the sampling cadence; the handler generates text itself (it owns tokenizer and RNG). */
  onSample?(step: number): void | Promise<void>;
  onCheckpoint?(s: TrainerSnapshot): void | Promise<void>;
  /** After every step's own events: work that needs the model between steps (the lab's sampling). */
  betweenSteps?(step: number): void | Promise<void>;
}

export interface TrainerOptions {
  config: RunConfig;
  model: ModelConfig;
  backend: Backend;
  split: Split;
  /** Optimizer steps already done (0 for a new run). */
  startStep: number;
  /** Train until this many steps are done. */
  stopAt: number;
  samplerState?: RngState;
  elapsedS?: number;
  bestValLoss?: number | null;
  events?: TrainerEvents;
  /** Abort to stop after the current step; the trainer then takes a checkpoint. */
  signal?: AbortSignal;
  now?: () => number;
}

export interface TrainerResult {
  step: number;
  lastLoss: number | null;
  lastValLoss: number | null;
  bestValLoss: number | null;
  stopped: boolean;
}

export function stepHyper(config: RunConfig, step: number): StepHyper {
  return {
    lr: lrAt(step, config),
    weightDecay: config.weightDecay,
    beta1: config.beta1,
    beta2: config.beta2,
    eps: config.eps,
    gradClip: config.gradClip,
    ...(config.dropout > 0 ? { dropout: { p: config.dropout, seed: dropoutStepSeed(config.seed, step) } } : {}),
  };
}

/**
 * Whether a run's evaluations score every window of the held-out split, exactly as
 * `kiln eval` does (src/train/eval-split.ts), so its val loss is the one its checkpoint
 * gets from eval: when that costs at most twice the sampled evaluation (evalBatches
 * batches). A bigger split is judged by the sample, the same windows every time.
 */
export function scoresWholeSplit(valTokens: number, config: RunConfig): boolean {
  return valTokens - 1 <= 2 * config.evalBatches * config.batchSize * config.blockSize;
}

/** Mean loss over the fixed sample of validation batches (evenly spread windows). */
export async function evaluate(backend: Backend, val: Int32Array, config: RunConfig): Promise<number> {
  const batches: Batch[] = valBatches(val, config.batchSize, config.blockSize, config.evalBatches);
  let sum = 0;
  for (const b of batches) sum += await backend.loss(b);
  return sum / batches.length;
}

export async function train(o: TrainerOptions): Promise<TrainerResult> {
  const { config, backend, events = {} } = o;
  const now = o.now ?? (() => performance.now() / 1000);
  const sampler = new BatchSampler(o.split.train, o.samplerState ?? config.seed);
  const tokensPerStep = config.batchSize * config.blockSize * config.gradAccum;
  const flops = flopsPerToken(o.model);
  const wholeSplit = scoresWholeSplit(o.split.val.length, config);
  let step = o.startStep;
  let best = o.bestValLoss ?? null;
  let lastVal: number | null = null;
  let lastLoss: number | null = null;
  const t0 = now() - (o.elapsedS ?? 0);
  // Throughput counts optimizer steps only, not evaluation or checkpoint time.
  let windowSeconds = 0;
  let windowTokens = 0;

  const snapshot = (reason: TrainerSnapshot['reason']): TrainerSnapshot => ({
    step,
    samplerState: sampler.state(),
    elapsedS: now() - t0,
    bestValLoss: best,
    lastValLoss: lastVal,
    reason,
  });

  // Steps are issued ahead (up to the backend's maxStepsInFlight) so a pipelining
  // backend records the next step while the GPU runs this one; never past a step whose
  // end needs the model as it stands (eval, sample, checkpoint, the last step) or a
  // stop request, so every event still sees exactly the state after its step.
  const depth = Math.max(1, backend.maxStepsInFlight ?? 1);
  const inFlight: Array<{ stats: Promise<StepStats>; issuedAt: number }> = [];
  let issued = step;
  // When the step before finished: a pipelined step's time starts there, not at its issue.
  let lastDone = -Infinity;
  const barrierAfter = (n: number): boolean =>
    n >= o.stopAt || n % config.evalEvery === 0 || n % config.checkpointEvery === 0 || (config.sampleEvery > 0 && n % config.sampleEvery === 0);
  const issue = (): void => {
    const batch = sampler.next(config.batchSize, config.blockSize, config.gradAccum);
    const issuedAt = now();
    const stats = backend.step(batch, stepHyper(config, issued));
    stats.catch(() => undefined); // rejections surface where the step is awaited
    inFlight.push({ stats, issuedAt });
    issued++;
  };
  const drain = async (): Promise<void> => {
    for (const f of inFlight.splice(0)) await f.stats.catch(() => undefined);
  };

  try {
    while (step < o.stopAt && (inFlight.length > 0 || !o.signal?.aborted)) {
      if (inFlight.length === 0) issue();
      while (inFlight.length < depth && !o.signal?.aborted && !barrierAfter(issued)) issue();
      // A stop request (Ctrl-C, the lab's Pause) arrives as a macrotask, and a CPU step
      // settles through microtasks only: let it in once per step, so that a stop lands
      // within one step. A pipelining backend's steps settle through the event loop
      // already (GPU readbacks), and a turn here would only reorder their completions.
      if (depth === 1) await yieldTurn();
      const cur = inFlight.shift()!;
      const stats = await cur.stats;
      const tDone = now();
      windowSeconds += tDone - Math.max(cur.issuedAt, lastDone);
      lastDone = tDone;
      if (!Number.isFinite(stats.loss) || !Number.isFinite(stats.gradNorm)) {
        throw new KilnError(
          'numerical',
          `the loss became ${stats.loss} at step ${step + 1} (gradient norm ${stats.gradNorm})`,
          'lower the learning rate (lr), keep gradClip at 1, or resume from the last good checkpoint',
        );
      }
      step++;
      lastLoss = stats.loss;
      windowTokens += tokensPerStep;

      const isLast = step === o.stopAt;
      let val: number | undefined;
      if (step % config.evalEvery === 0 || isLast) {
        val = wholeSplit ? (await scoreTokens(backend, o.split.val, o.model)).loss : await evaluate(backend, o.split.val, config);
        lastVal = val;
      }
      if (step % config.logEvery === 0 || val !== undefined || isLast) {
        const t = now();
        const tps = windowTokens / Math.max(windowSeconds, 1e-9);
        windowSeconds = 0;
        windowTokens = 0;
        const m: StepMetrics = {
          step,
          loss: stats.loss,
          ...(val !== undefined ? { val_loss: val } : {}),
          lr: lrAt(step - 1, config),
          grad_norm: stats.gradNorm,
          tokens_per_s: tps,
          ...(backend.info.peakFlops ? { mfu: (tps * flops) / backend.info.peakFlops } : {}),
          elapsed_s: t - t0,
        };
        await events.onMetrics?.(m);
      }
      if (config.sampleEvery > 0 && step % config.sampleEvery === 0) await events.onSample?.(step);
      if (val !== undefined && (best === null || val < best)) {
        best = val;
        await events.onCheckpoint?.(snapshot('best'));
      }
      if (isLast) await events.onCheckpoint?.(snapshot('end'));
      else if (step % config.checkpointEvery === 0) await events.onCheckpoint?.(snapshot('cadence'));
      await events.betweenSteps?.(step);
    }
  } catch (e) {
    // Whatever failed (a step, an event handler), no step outlives the trainer.
    await drain();
    throw e;
  }
  const stopped = step < o.stopAt;
  if (stopped) await events.onCheckpoint?.(snapshot('stopped'));
  return { step, lastLoss, lastValLoss: lastVal, bestValLoss: best, stopped };
}
