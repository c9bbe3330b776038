// The LabApi's implementation, transport-neutral: plain data in and out, the
// environment (how to find a GPU, how to read a bundled text) injected. The browser
// worker (lab-worker.ts) exposes one through comlink; `kiln serve` can expose one over
// a WebSocket. One run at a time.
//
// Training is the trainer's loop (src/train/trainer.ts) run in legs: start() runs one
// to stopAt; pause() aborts it after the step in flight, and the trainer hands back the
// exact point it stopped at (step, sampler state, elapsed time, best val loss), which
// the next leg starts from on the same loaded backend, so pause/resume and extend
// leave the same curve as an uninterrupted run. An in-memory snapshot (weights and
// AdamW moments) is taken at the checkpoint cadence and on every pause; after a lost
// device recover() loads it into a new backend.
import type { Backend, TrainState } from '../backends/backend.ts';
import type { RunConfig } from '../core/config.ts';
import { validate } from '../core/config.ts';
import { findDataset } from '../core/datasets.ts';
import { isKilnError, KilnError } from '../core/errors.ts';
import { memoryEstimate, modelSpec, resolveModel, type ModelConfig } from '../core/model-spec.ts';
import type { RngState } from '../core/rng.ts';
import type { RunSpec } from '../core/run-spec.ts';
import { decodeText } from '../core/text.ts';
import type { Tokenizer } from '../core/tokenizers/index.ts';
import { initialState, prepareData, type PreparedData } from '../train/prepare.ts';
import { train, type StepMetrics, type TrainerSnapshot } from '../train/trainer.ts';
import { configFit } from './config-fit.ts';
import { sampleText } from './sample-text.ts';
import type {
  ConfigFit, DataSource, DataSummary, ExtendOptions, LabApi, LabBackendKind, LabEnvironment, LabError, LabEvent, LabMetrics,
  RunInfo, RunStatus, SampleRequest,
} from './api.ts';

export interface LabSessionDeps {
  environment(): Promise<LabEnvironment>;
  /** A fresh backend of this kind (a new GPU device for webgpu: recover() needs one after a loss). */
  createBackend(kind: LabBackendKind): Promise<Backend>;
  /** The bytes of a bundled dataset's file. */
  loadBundled(file: string): Promise<Uint8Array>;
  /** SHA-256 of a user's file, hex (crypto.subtle in browsers). */
  sha256(bytes: Uint8Array): Promise<string>;
  /** The device as a person reads it (default: backend.info.device, the raw adapter string). */
  deviceName?(backend: Backend): string;
}

export interface LabSessionOptions {
  /** Milliseconds between metrics batches sent to listeners (the page draws at most once a frame anyway). */
  flushMs?: number;
  /** Automatic samples every this many steps when the config's sampleEvery is 0 (0: none). */
  autoSampleEvery?: number;
  autoSampleTokens?: number;
}

/** The exact point a training leg ended at: where the next one starts. */
interface ResumePoint {
  step: number;
  samplerState: RngState | number;
  elapsedS: number;
  bestValLoss: number | null;
  lastValLoss: number | null;
}

interface ActiveRun {
  info: RunInfo;
  config: RunConfig;
  model: ModelConfig;
  tokenizer: Tokenizer;
  prepared: PreparedData;
  backend: Backend;
  point: ResumePoint;
  snapshot: { state: TrainState; point: ResumePoint };
}

function toLabError(e: unknown): LabError {
  if (isKilnError(e)) return { code: e.code, message: e.message, hint: e.hint };
  const err = e instanceof Error ? e : new Error(String(e));
  return { code: 'internal', message: `${err.name}: ${err.message}`, hint: 'this is a bug in Kiln: reload the page; the run can be started again' };
}

export class LabSession implements LabApi {
  private listeners = new Map<number, (e: LabEvent) => void>();
  private nextListener = 1;
  private envPromise: Promise<LabEnvironment> | null = null;
  private data: { source: DataSource; text: string; summary: DataSummary; prepared: PreparedData; config: RunConfig } | null = null;
  private run: ActiveRun | null = null;
  private state: RunStatus = LabSession.emptyStatus();
  private rows: LabMetrics[] = [];
  private unsent: LabMetrics[] = [];
  private flushTimer: ReturnType<typeof setTimeout> | null = null;
  private abort: AbortController | null = null;
  private leg: Promise<void> | null = null;
  /** After the leg ends: start another (extend while training). */
  private continueAfterLeg = false;
  /** Work for between steps while a leg runs (sampling). */
  private betweenSteps: Array<() => Promise<void>> = [];
  /** The pace of this leg, for the time left: [elapsed_s, step] at its first logged step. */
  private paceStart: [number, number] | null = null;
  private readonly flushMs: number;

  constructor(private readonly deps: LabSessionDeps, private readonly opts: LabSessionOptions = {}) {
    this.flushMs = opts.flushMs ?? 100;
  }

  private static emptyStatus(): RunStatus {
    return {
      phase: 'preparing', step: 0, stopAt: 0, decaySteps: 0, lastLoss: null, lastValLoss: null, bestValLoss: null, valStep: null,
      tokensPerS: null, elapsedS: 0, etaS: null, recoverable: false, snapshotStep: null,
    };
  }

  // ---- events ----

  private emit(e: LabEvent): void {
    for (const l of this.listeners.values()) {
      try {
        l(e);
      } catch {
        // A listener that throws (a closed page) must not stop training.
      }
    }
  }

  private setStatus(patch: Partial<RunStatus>): void {
    this.state = { ...this.state, ...patch };
    this.flush();
    this.emit({ type: 'status', status: { ...this.state } });
  }

  private flush(): void {
    if (this.flushTimer !== null) {
      clearTimeout(this.flushTimer);
      this.flushTimer = null;
    }
    if (this.unsent.length) this.emit({ type: 'metrics', metrics: this.unsent.splice(0) });
  }

  private queueMetrics(m: LabMetrics): void {
    this.rows.push(m);
    this.unsent.push(m);
    if (this.flushTimer === null) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = null;
        this.flush();
        this.emit({ type: 'status', status: { ...this.state } });
      }, this.flushMs);
    }
  }

  async subscribe(listener: (e: LabEvent) => void): Promise<number> {
    const id = this.nextListener++;
    this.listeners.set(id, listener);
    return id;
  }

  async unsubscribe(id: number): Promise<void> {
    this.listeners.delete(id);
  }

  async history(): Promise<LabMetrics[]> {
    return this.rows.slice();
  }

  async status(): Promise<RunStatus> {
    return { ...this.state };
  }

  // ---- environment and config ----

  environment(): Promise<LabEnvironment> {
    this.envPromise ??= this.deps.environment();
    return this.envPromise;
  }

  async checkConfig(config: RunConfig, vocabSize: number, backend: LabBackendKind): Promise<ConfigFit> {
    return configFit(config, vocabSize, backend === 'webgpu' ? (await this.environment()).limits : null);
  }

  // ---- data ----

  async prepareData(source: DataSource, config: RunConfig): Promise<DataSummary> {
    let bytes: Uint8Array;
    let name: string;
    let ref: DataSummary['ref'];
    if (source.kind === 'bundled') {
      const d = findDataset(source.id);
      if (!d) throw new KilnError('data', `there is no bundled dataset "${source.id}"`, 'choose one from the list, or open your own text file');
      bytes = await this.deps.loadBundled(d.file);
      name = d.title;
      ref = { kind: 'bundled', id: d.id };
    } else {
      bytes = source.bytes;
      name = source.name;
      ref = { kind: 'file', name: source.name, bytes: bytes.length, sha256: await this.deps.sha256(bytes) };
    }
    const text = decodeText(bytes, name);
    const prepared = await prepareData(config, text, undefined, (done, total) => this.emit({ type: 'progress', what: 'tokenizer', done, total }));
    const { split, tokenizer } = prepared;
    const summary: DataSummary = {
      ref, name, bytes: bytes.length, chars: [...text].length, distinctChars: new Set(text).size, tokenizer: config.tokenizer,
      vocabSize: tokenizer.vocabSize, tokens: split.train.length + split.val.length, trainTokens: split.train.length, valTokens: split.val.length,
    };
    this.data = { source, text, summary, prepared, config: { ...config } };
    return summary;
  }

  // ---- the run ----

  async createRun(spec: RunSpec, backendKind: LabBackendKind): Promise<RunInfo> {
    if (this.leg) throw new KilnError('usage', 'a run is training', 'stop it first');
    const issues = validate(spec.config);
    if (issues.length) throw new KilnError('config', issues.map((i) => i.message).join('; '), 'fix the fields marked in the form');
    if (!this.data) throw new KilnError('usage', 'no training data yet', 'choose a dataset or open a text file first');
    // A tokenizer setting that changed since the data was read needs it read again.
    const d = this.data;
    if (d.config.tokenizer !== spec.config.tokenizer || d.config.bpeVocab !== spec.config.bpeVocab || d.config.valFraction !== spec.config.valFraction || d.config.blockSize !== spec.config.blockSize) {
      await this.prepareData(d.source, spec.config);
    }
    const prepared = this.data.prepared;
    this.disposeRun();
    const config = { ...spec.config };
    const model = resolveModel(config, prepared.tokenizer.vocabSize);
    const backend = await this.deps.createBackend(backendKind);
    const memoryBytes = backend.memoryBytes?.(model, config.batchSize) ?? memoryEstimate(model, config.batchSize).total;
    try {
      await backend.load(model, initialState(model, config.seed));
    } catch (e) {
      backend.dispose();
      throw e;
    }
    const point: ResumePoint = { step: 0, samplerState: config.seed, elapsedS: 0, bestValLoss: null, lastValLoss: null };
    const info: RunInfo = {
      spec: { ...spec, config, data: this.data.summary.ref }, model, numParams: modelSpec(model).numParams, backend: backendKind,
      device: this.deviceName(backend), memoryBytes, data: this.data.summary,
    };
    this.run = {
      info, config, model, tokenizer: prepared.tokenizer, prepared, backend, point,
      snapshot: { state: initialState(model, config.seed), point: { ...point } },
    };
    this.rows = [];
    this.unsent = [];
    this.state = { ...LabSession.emptyStatus(), phase: 'ready', stopAt: config.steps, decaySteps: config.decaySteps, snapshotStep: 0 };
    this.emit({ type: 'status', status: { ...this.state } });
    return info;
  }

  private deviceName(backend: Backend): string {
    return this.deps.deviceName?.(backend) ?? backend.info.device;
  }

  private need(): ActiveRun {
    if (!this.run) throw new KilnError('usage', 'there is no run yet', 'press Train first');
    return this.run;
  }

  async start(): Promise<void> {
    const r = this.need();
    if (this.leg) return;
    if (r.point.step >= this.state.stopAt) throw new KilnError('usage', `the run is at step ${r.point.step} of ${this.state.stopAt}`, 'extend it to train further');
    this.startLeg(r);
  }

  async resume(): Promise<void> {
    return this.start();
  }

  async pause(): Promise<void> {
    if (!this.leg) return;
    this.setStatus({ phase: 'pausing' });
    this.abort?.abort();
    await this.leg;
  }

  async stop(): Promise<void> {
    this.continueAfterLeg = false;
    if (this.leg) {
      this.abort?.abort();
      await this.leg;
    }
    if (this.run && this.state.phase !== 'error') this.setStatus({ phase: this.run.point.step >= this.state.stopAt ? 'done' : 'stopped', etaS: null });
  }

  async extend(steps: number, opts: ExtendOptions = {}): Promise<void> {
    const r = this.need();
    if (!(Number.isInteger(steps) && steps >= 1 && steps <= 10_000_000)) throw new KilnError('usage', `extend by ${steps} steps`, 'use a whole number of steps from 1 to 10,000,000');
    const stopAt = this.state.stopAt + steps;
    r.config.steps = stopAt;
    if (opts.schedule === 'stretch') r.config.decaySteps = Math.max(r.config.decaySteps, stopAt);
    r.info.spec.config = { ...r.config };
    this.setStatus({ stopAt, decaySteps: r.config.decaySteps });
    if (this.leg) {
      // The running leg was given the old end: end it after this step and go on.
      this.continueAfterLeg = true;
      this.abort?.abort();
      return;
    }
    if (this.state.phase !== 'error') this.startLeg(r);
  }

  async recover(): Promise<void> {
    const r = this.need();
    if (this.leg) throw new KilnError('usage', 'the run is training', 'pause it first');
    try {
      r.backend.dispose();
    } catch {
      // A lost device may refuse even that.
    }
    const backend = await this.deps.createBackend(r.info.backend);
    await backend.load(r.model, r.snapshot.state);
    r.backend = backend;
    r.point = { ...r.snapshot.point };
    // The curve goes on from the snapshot: drop the rows past it.
    this.rows = this.rows.filter((m) => m.step <= r.point.step);
    this.unsent = [];
    r.info.device = this.deviceName(backend);
    this.setStatus({
      phase: 'paused', step: r.point.step, error: undefined, recoverable: false, lastLoss: this.rows.at(-1)?.loss ?? null,
      lastValLoss: r.point.lastValLoss, bestValLoss: r.point.bestValLoss, etaS: null,
    });
    this.emit({ type: 'metrics', metrics: [] });
  }

  private startLeg(r: ActiveRun): void {
    const ctl = new AbortController();
    this.abort = ctl;
    this.paceStart = null;
    this.setStatus({ phase: 'training', error: undefined, recoverable: false });
    this.leg = this.runLeg(r, ctl).finally(() => {
      this.leg = null;
      this.abort = null;
      // Sampling asked for while the last step ran.
      void this.drainBetweenSteps();
      if (this.continueAfterLeg && this.run === r && this.state.phase !== 'error') {
        this.continueAfterLeg = false;
        if (r.point.step < this.state.stopAt) this.startLeg(r);
      }
    });
  }

  private async runLeg(r: ActiveRun, ctl: AbortController): Promise<void> {
    const config = r.config;
    const sampleEvery = config.sampleEvery > 0 ? config.sampleEvery : (this.opts.autoSampleEvery ?? 0);
    const takeSnapshot = async (point: ResumePoint) => {
      r.snapshot = { state: await r.backend.save(), point: { ...point } };
      this.state.snapshotStep = point.step;
    };
    try {
      const result = await train({
        config: { ...config, sampleEvery },
        model: r.model,
        backend: r.backend,
        split: r.prepared.split,
        startStep: r.point.step,
        stopAt: this.state.stopAt,
        samplerState: r.point.samplerState as RngState,
        elapsedS: r.point.elapsedS,
        bestValLoss: r.point.bestValLoss,
        signal: ctl.signal,
        events: {
          onMetrics: (m: StepMetrics) => this.onMetrics(m),
          onSample: async (step) => {
            const text = await this.generateText(r, { prompt: '', maxTokens: this.opts.autoSampleTokens ?? 80, temperature: 0.8, topK: 0, topP: 1, seed: config.seed ^ step });
            this.emit({ type: 'sample', step, text });
          },
          onCheckpoint: async (snap: TrainerSnapshot) => {
            r.point = { step: snap.step, samplerState: snap.samplerState, elapsedS: snap.elapsedS, bestValLoss: snap.bestValLoss, lastValLoss: snap.lastValLoss ?? r.point.lastValLoss };
            // 'best' comes with another snapshot at the cadence or the end; a stop is a pause.
            if (snap.reason !== 'best') await takeSnapshot(r.point);
          },
          betweenSteps: () => this.drainBetweenSteps(),
        },
      });
      r.point.step = result.step;
      const phase = result.stopped ? (this.continueAfterLeg ? 'training' : 'paused') : 'done';
      this.setStatus({ phase, step: result.step, etaS: null });
    } catch (e) {
      const error = toLabError(e);
      const recoverable = error.code === 'device_lost' || error.code === 'device' || error.code === 'numerical' || error.code === 'internal';
      this.continueAfterLeg = false;
      if (error.code === 'device_lost') error.hint = `the run can go on from step ${r.snapshot.point.step} (its last snapshot) on a new device: press Recover`;
      if (error.code === 'numerical') error.hint = `${error.hint}; Recover returns to step ${r.snapshot.point.step}`;
      this.setStatus({ phase: 'error', error, recoverable, etaS: null });
    }
  }

  private onMetrics(m: StepMetrics): void {
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
    this.queueMetrics(row);
  }

  // ---- sampling ----

  async sample(req: SampleRequest, onText?: (text: string) => void): Promise<string> {
    const r = this.need();
    if (this.leg) {
      // Between two steps: the trainer runs queued work after each step's events.
      return new Promise<string>((resolve, reject) => {
        this.betweenSteps.push(() => this.generateText(r, req, onText).then(resolve, reject));
      });
    }
    if (this.state.phase === 'error' && !this.state.recoverable) throw new KilnError('usage', 'the run failed', 'start a new run');
    return this.generateText(r, req, onText);
  }

  private async drainBetweenSteps(): Promise<void> {
    for (const task of this.betweenSteps.splice(0)) await task();
  }

  private generateText(r: ActiveRun, req: SampleRequest, onText?: (text: string) => void): Promise<string> {
    return sampleText(r.backend, r.tokenizer, r.model.blockSize, req, onText);
  }

  private disposeRun(): void {
    if (this.run) {
      try {
        this.run.backend.dispose();
      } catch {
        // Already gone with its device.
      }
      this.run = null;
    }
  }

  async dispose(): Promise<void> {
    this.continueAfterLeg = false;
    this.abort?.abort();
    await this.leg;
    this.disposeRun();
  }
}
