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
//
// With a run library (deps.store), every run is kept: its record at creation, and a
// checkpoint (the CLI's safetensors bytes) with the metrics rows logged up to it at the
// checkpoint cadence, on pause, stop and at the end. Saves are written one after
// another behind training, from the in-memory snapshot, so training does not wait for
// storage (run-saver.ts); pause() and stop() wait for them, so a paused run is a saved
// run. openRun() makes a saved run current again exactly where its checkpoint stood.
import type { Backend, TrainState } from '../backends/backend.ts';
import type { RunConfig } from '../core/config.ts';
import { validate } from '../core/config.ts';
import { findDataset } from '../core/datasets.ts';
import { isKilnError, KilnError } from '../core/errors.ts';
import { memoryEstimate, modelSpec, resolveModel, type ModelConfig } from '../core/model-spec.ts';
import type { RngState } from '../core/rng.ts';
import type { RunRecord, SavedPhase, StorageUsage } from '../core/run-record.ts';
import type { DatasetRef, RunSpec } from '../core/run-spec.ts';
import { decodeText, printable } from '../core/text.ts';
import type { Tokenizer } from '../core/tokenizers/index.ts';
import type { RunStore } from '../store/run-store.ts';
import { stateCheckpointBytes } from '../train/checkpointing.ts';
import { initialState, prepareData, type PreparedData } from '../train/prepare.ts';
import { train, type StepMetrics, type TrainerSnapshot } from '../train/trainer.ts';
import { adapterBudget, assertModelFits, type Budget } from '../core/budget.ts';
import { configFit, webgpuPlanner } from './config-fit.ts';
import { checkpointAt, createBranch, exportCheckpoint, getRecord, importCheckpoint, loadRun, type RunPoint } from './library-ops.ts';
import { newRecord, newRunId, readOnlyError, uniqueName } from './run-library.ts';
import { RunSaver, SaveQueue } from './run-saver.ts';
import { sampleText } from './sample-text.ts';
import { buildScaleZip } from './scale-zip.ts';
import type {
  ConfigFit, DataFile, DataSource, DataSummary, ExtendOptions, LabApi, LabBackendKind, LabEnvironment, LabError, LabEvent, LabMetrics,
  RunInfo, RunStatus, SampleRequest, ScaleApi, ScaleDownload, ScaleProgress,
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
  /** The run library (opened once, on first use); without it runs are not kept. */
  store?(): Promise<RunStore>;
  /**
   * What a run on this backend may use (default: a browser tab's, adapterBudget). `kiln
   * serve` passes this machine's memory, so a Node run is not held to a tab's 4 GiB.
   */
  budget?(kind: LabBackendKind, limits: LabEnvironment['limits'] | null): Budget;
  /**
   * A text of the process's own data folder (`kiln serve --data`) by its relative path,
   * read inside the folder only (DataSource 'server'); its base name and bytes. Without
   * it such a source is refused.
   */
  readDataFile?(path: string): Promise<{ name: string; bytes: Uint8Array }>;
  /** The texts of that folder, for dataFiles() (without it: none). */
  dataFiles?(): Promise<DataFile[]>;
  /** scale/train_ddp.py's text, for scaleFolder() (the browser worker's bundle has it; without it scaleFolder() is refused). */
  trainerScript?: string;
}

export interface LabSessionOptions {
  /** Milliseconds between metrics batches sent to listeners (the page draws at most once a frame anyway). */
  flushMs?: number;
  /** Automatic samples every this many steps when the config's sampleEvery is 0 (0: none). */
  autoSampleEvery?: number;
  autoSampleTokens?: number;
}

interface ActiveRun {
  info: RunInfo;
  config: RunConfig;
  model: ModelConfig;
  tokenizer: Tokenizer;
  /** Null for a run opened without its data: it samples, and trains once the data is given. */
  prepared: PreparedData | null;
  backend: Backend;
  point: RunPoint;
  snapshot: { state: TrainState; point: RunPoint };
  /** Its record in the run library and the writes to it. */
  saver: RunSaver;
}

/** What the data panel made of a text: kept so a run can be made from it (and its bytes stored). */
interface PreparedText {
  source: DataSource;
  bytes: Uint8Array;
  text: string;
  summary: DataSummary;
  prepared: PreparedData;
  config: RunConfig;
}

const SHA_HINT = 'open the same file the run was trained on, or choose another dataset (a new run then starts)';

function toLabError(e: unknown): LabError {
  if (isKilnError(e)) return { code: e.code, message: e.message, hint: e.hint };
  const err = e instanceof Error ? e : new Error(String(e));
  return { code: 'internal', message: `${err.name}: ${err.message}`, hint: 'this is a bug in Kiln: reload the page; the run can be started again' };
}

export class LabSession implements LabApi, ScaleApi {
  private listeners = new Map<number, (e: LabEvent) => void>();
  private nextListener = 1;
  private envPromise: Promise<LabEnvironment> | null = null;
  private data: PreparedText | null = null;
  private storePromise: Promise<RunStore> | null = null;
  /** Every run's saves, one after another behind training (a closed run's still finish first). */
  private readonly saves = new SaveQueue();
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
      tokensPerS: null, elapsedS: 0, etaS: null, recoverable: false, snapshotStep: null, savedStep: null, saving: false,
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

  async current(): Promise<RunInfo | null> {
    return this.run ? { ...this.run.info } : null;
  }

  // ---- environment and config ----

  environment(): Promise<LabEnvironment> {
    this.envPromise ??= this.deps.environment();
    return this.envPromise;
  }

  async checkConfig(config: RunConfig, vocabSize: number, backend: LabBackendKind): Promise<ConfigFit> {
    const limits = backend === 'webgpu' ? (await this.environment()).limits : null;
    return configFit(config, vocabSize, limits, this.budgetFor(backend, limits));
  }

  private budgetFor(kind: LabBackendKind, limits: LabEnvironment['limits'] | null): Budget {
    return this.deps.budget?.(kind, limits) ?? adapterBudget(limits);
  }

  // ---- data ----

  async dataFiles(): Promise<DataFile[]> {
    return (await this.deps.dataFiles?.()) ?? [];
  }

  async prepareData(source: DataSource, config: RunConfig): Promise<DataSummary> {
    const { bytes, name, ref } = await this.readSource(source);
    const text = decodeText(bytes, name);
    const prepared = await prepareData(config, text, undefined, (done, total) => this.emit({ type: 'progress', what: 'tokenizer', done, total }));
    const summary = summarize(ref, name, bytes, text, config, prepared);
    this.data = { source, bytes, text, summary, prepared, config: { ...config } };
    // A run opened without its data (after a reload, or from an imported checkpoint) trains once it is given.
    const r = this.run;
    if (r && !r.prepared && sameData(r.info.spec.data, ref)) await this.attachData(r);
    return summary;
  }

  private async readSource(source: DataSource): Promise<{ bytes: Uint8Array; name: string; ref: DatasetRef }> {
    if (source.kind === 'bundled') {
      const d = findDataset(source.id);
      if (!d) throw new KilnError('data', `there is no bundled dataset "${printable(source.id, 60)}"`, 'choose one from the list, or open your own text file');
      return { bytes: await this.deps.loadBundled(d.file), name: d.title, ref: { kind: 'bundled', id: d.id } };
    }
    if (source.kind === 'stored') {
      const kept = await (await this.needStore()).getDataset(source.sha256);
      if (!kept) throw new KilnError('data', 'the text file of this run is no longer kept in this browser', 'open the file again');
      return { bytes: kept.bytes, name: kept.name, ref: { kind: 'file', name: kept.name, bytes: kept.bytes.length, sha256: source.sha256 } };
    }
    if (source.kind === 'server') {
      if (!this.deps.readDataFile) throw new KilnError('data', 'this lab has no data folder', 'open a text file of your own, or start kiln serve with --data DIR to pick the files there');
      const { name, bytes } = await this.deps.readDataFile(source.path);
      // The user's file, as if uploaded: runs, links and the CLI name it by name and SHA-256.
      return { bytes, name, ref: { kind: 'file', name, bytes: bytes.length, sha256: await this.deps.sha256(bytes) } };
    }
    const sha256 = await this.deps.sha256(source.bytes);
    if (source.expect && sha256 !== source.expect.sha256.toLowerCase()) {
      throw new KilnError(
        'data',
        `${printable(source.name, 80)} is not the file the run was trained on: its SHA-256 is ${sha256.slice(0, 12)}… (${source.bytes.length} bytes), the run's file has ${source.expect.sha256.slice(0, 12)}… (${source.expect.bytes} bytes)`,
        SHA_HINT,
      );
    }
    return { bytes: source.bytes, name: source.name, ref: { kind: 'file', name: source.name, bytes: source.bytes.length, sha256 } };
  }

  // ---- "Run on a cluster" (ScaleApi, outside LabApi) ----

  /**
   * The `kiln scale` folder of a config and a text, as a zip: the text tokenized as a run
   * tokenizes it (the data panel's tokens when they are for the same text and settings),
   * Kiln's seeded starting weights, the trainer and its launch scripts.
   */
  async scaleFolder(spec: RunSpec, source: DataSource, onProgress?: (p: ScaleProgress) => void): Promise<ScaleDownload> {
    const trainerScript = this.deps.trainerScript;
    if (trainerScript === undefined) throw new KilnError('usage', 'this lab cannot build a kiln scale folder', 'run kiln scale with the same settings in Node: it writes the same folder');
    const issues = validate(spec.config);
    if (issues.length) throw new KilnError('config', issues.map((i) => i.message).join('; '), 'fix the fields marked in the form');
    const config = spec.config;
    onProgress?.({ stage: 'data', done: 0, total: 1 });
    const { bytes, name, ref } = await this.readSource(source);
    const d = this.data;
    const same = d && sameData(d.summary.ref, ref) && d.config.tokenizer === config.tokenizer && d.config.bpeVocab === config.bpeVocab
      && d.config.valFraction === config.valFraction && d.config.blockSize === config.blockSize;
    const prepared = same ? d.prepared : await prepareData(config, decodeText(bytes, name), undefined, (done, total) => onProgress?.({ stage: 'data', done, total }));
    onProgress?.({ stage: 'data', done: 1, total: 1 });
    return buildScaleZip({ spec: { preset: spec.preset, config: { ...config }, data: ref }, data: ref, prepared, trainerScript, ...(onProgress ? { onProgress } : {}) });
  }

  /** Gives a run opened without data the prepared text, tokenized with the run's own tokenizer. */
  private async attachData(r: ActiveRun): Promise<void> {
    const d = this.data!;
    r.prepared = await prepareData(r.config, d.text, r.tokenizer.toJSON());
    r.info.data = summarize(d.summary.ref, d.summary.name, d.bytes, d.text, r.config, r.prepared);
    if (r.info.spec.data?.kind === 'file' && this.deps.store) await (await this.needStore()).putDataset(r.info.spec.data.sha256, d.summary.name, d.bytes);
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
    const data = this.data;
    const prepared = data.prepared;
    await this.settleSaves();
    this.disposeRun();
    const config = { ...spec.config };
    const model = resolveModel(config, prepared.tokenizer.vocabSize);
    const backend = await this.loadBackend(backendKind, model, initialState(model, config.seed), config.batchSize);
    const memoryBytes = backend.memoryBytes?.(model, config.batchSize) ?? memoryEstimate(model, config.batchSize).total;
    const point: RunPoint = { step: 0, samplerState: config.seed, elapsedS: 0, bestValLoss: null, lastValLoss: null };
    const runSpec: RunSpec = { preset: spec.preset, config, data: data.summary.ref };
    const store = await this.tryStore();
    const taken = store ? (await store.listRuns()).map((x) => x.name) : [];
    const info: RunInfo = {
      id: newRunId(), name: uniqueName(`${spec.preset} · ${data.summary.name}`, taken), spec: runSpec, model, numParams: modelSpec(model).numParams,
      backend: backendKind, device: this.deviceName(backend), memoryBytes, data: data.summary,
    };
    let record: RunRecord | null = null;
    if (store) {
      record = newRecord({ id: info.id, name: info.name, spec: runSpec, backend: backendKind, device: info.device, numParams: info.numParams });
      await store.putRun(record);
      if (runSpec.data?.kind === 'file') await store.putDataset(runSpec.data.sha256, data.summary.name, data.bytes);
    }
    this.run = this.activeRun(
      { info, config, model, tokenizer: prepared.tokenizer, prepared, backend, point, snapshot: { state: initialState(model, config.seed), point: { ...point } } },
      record,
      null,
    );
    this.rows = [];
    this.unsent = [];
    this.state = { ...LabSession.emptyStatus(), phase: 'ready', stopAt: config.steps, decaySteps: config.decaySteps, snapshotStep: 0 };
    this.emit({ type: 'status', status: { ...this.state } });
    return info;
  }

  /** A new backend with a state loaded (freed again when the load fails), after the budget said the model fits. */
  private async loadBackend(kind: LabBackendKind, model: ModelConfig, state: TrainState, batchSize: number): Promise<Backend> {
    // The same decision (and words) as the settings panel and the CLI: src/core/budget.ts.
    const limits = kind === 'webgpu' ? (await this.environment()).limits : null;
    assertModelFits(model, batchSize, this.budgetFor(kind, limits), limits ? webgpuPlanner(limits) : undefined);
    const backend = await this.deps.createBackend(kind);
    try {
      await backend.load(model, state);
    } catch (e) {
      backend.dispose();
      throw e;
    }
    return backend;
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
    this.needData(r);
    // (Only a listed run waits here: a run of the library's own starts at once, as before.)
    if (r.saver.record?.source) {
      await this.claim(r);
      if (this.leg || this.run !== r) return;
    }
    this.startLeg(r);
  }

  /**
   * A listed run the library did not write (RunRecord.source: a `kiln train` folder in
   * kiln serve's --out) is made the library's own before it trains or saves, as the
   * person acted on it; a read-only one (a scaled run, which torchrun trains) is
   * refused with the reason, and so is a folder another kiln is writing.
   */
  private async claim(r: ActiveRun): Promise<void> {
    const rec = r.saver.record;
    if (!rec?.source) return;
    if (rec.source.readOnly) throw readOnlyError(rec);
    const store = await this.needStore();
    if (!store.adopt) return;
    const own = await store.adopt(rec.id, r.saver.savedStep ?? undefined);
    if (r.saver.record?.id === own.id) r.saver.adopted(own);
  }

  /** A run opened without its data cannot train: say which text it needs. */
  private needData(r: ActiveRun): asserts r is ActiveRun & { prepared: PreparedData } {
    if (r.prepared) return;
    const ref = r.info.spec.data;
    const what = ref?.kind === 'file' ? `the file ${printable(ref.name, 80)} (${ref.bytes} bytes)` : ref?.kind === 'bundled' ? `the bundled dataset ${printable(ref.id, 40)}` : 'its training text, which it does not name';
    throw new KilnError('data', `this run trains on ${what}, which is not in this browser`, 'open that file in the data panel to continue training; sampling works without it');
  }

  async resume(): Promise<void> {
    return this.start();
  }

  async pause(): Promise<void> {
    if (this.leg) {
      this.setStatus({ phase: 'pausing' });
      this.abort?.abort();
      await this.leg;
    }
    // A paused run is a saved run (its stop snapshot was queued by the leg).
    await this.settleSaves();
  }

  async stop(): Promise<void> {
    this.continueAfterLeg = false;
    if (this.leg) {
      this.abort?.abort();
      await this.leg;
    }
    const r = this.run;
    if (r && this.state.phase !== 'error') {
      this.setStatus({ phase: r.point.step >= this.state.stopAt ? 'done' : 'stopped', etaS: null });
      r.saver.queueRecordUpdate();
    }
    await this.settleSaves();
  }

  async extend(steps: number, opts: ExtendOptions = {}): Promise<void> {
    const r = this.need();
    if (!(Number.isInteger(steps) && steps >= 1 && steps <= 10_000_000)) throw new KilnError('usage', `extend by ${steps} steps`, 'use a whole number of steps from 1 to 10,000,000');
    const stopAt = this.state.stopAt + steps;
    if (!this.leg) {
      this.needData(r);
      if (r.saver.record?.source) await this.claim(r);
    }
    r.config.steps = stopAt;
    if (opts.schedule === 'stretch') r.config.decaySteps = Math.max(r.config.decaySteps, stopAt);
    r.info.spec.config = { ...r.config };
    this.setStatus({ stopAt, decaySteps: r.config.decaySteps });
    r.saver.queueRecordUpdate();
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
    const backend = await this.loadBackend(r.info.backend, r.model, r.snapshot.state, r.config.batchSize);
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
    this.needData(r);
    const prepared = r.prepared;
    const config = r.config;
    const sampleEvery = config.sampleEvery > 0 ? config.sampleEvery : (this.opts.autoSampleEvery ?? 0);
    const takeSnapshot = async (point: RunPoint) => {
      r.snapshot = { state: await r.backend.save(), point: { ...point } };
      this.state.snapshotStep = point.step;
    };
    try {
      const result = await train({
        config: { ...config, sampleEvery },
        model: r.model,
        backend: r.backend,
        split: prepared.split,
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
            if (snap.reason === 'best') return;
            await takeSnapshot(r.point);
            const phase: SavedPhase = snap.reason === 'end' ? 'done' : snap.reason === 'stopped' ? 'paused' : 'training';
            r.saver.queueSave(r.snapshot, phase);
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

  // ---- the run library ----

  private async tryStore(): Promise<RunStore | null> {
    if (!this.deps.store) return null;
    this.storePromise ??= this.deps.store();
    try {
      return await this.storePromise;
    } catch {
      return null;
    }
  }

  private async needStore(): Promise<RunStore> {
    if (!this.deps.store) throw new KilnError('storage', 'runs are not kept here', 'this build of the lab has no run library');
    this.storePromise ??= this.deps.store();
    try {
      return await this.storePromise;
    } catch (e) {
      throw new KilnError(
        'storage',
        `this browser does not let Kiln keep runs (${printable((e as Error)?.message ?? String(e), 160)})`,
        'runs still train, but are lost when the page closes; private windows and some privacy settings block site storage',
      );
    }
  }

  /** Waits for the saves queued so far (they never reject: a failure is status.saveError). */
  private async settleSaves(): Promise<void> {
    await this.saves.settled();
  }

  /** A run made current, with its saver: what it reports reaches the status only while it is current. */
  private activeRun(fields: Omit<ActiveRun, 'saver'>, record: RunRecord | null, savedStep: number | null): ActiveRun {
    const r: ActiveRun = {
      ...fields,
      saver: new RunSaver(
        {
          store: () => this.tryStore(),
          rows: () => (this.run === r ? this.rows : []),
          encode: (snap) => stateCheckpointBytes(snap.state, r.backend.kind, this.identity(r), { ...snap.point, samplerState: snap.point.samplerState as RngState }),
          patch: (phase, point) => this.recordPatch(r, phase, point),
          settings: (stored) => ({ spec: { ...r.info.spec, config: { ...r.config } }, phase: savedPhase(this.run === r ? this.state.phase : stored.phase) }),
          onSaving: () => {
            if (this.run === r) this.setStatus({ saving: true });
          },
          onSaved: (step) => {
            if (this.run === r) this.setStatus({ saving: false, savedStep: step, saveError: undefined });
          },
          onSaveFailed: (e) => {
            if (this.run !== r) return;
            this.setStatus({ saving: false, saveError: toLabError(e) });
            // A run is not to train on past what it cannot keep: it pauses with the store's message.
            if (this.leg) {
              this.continueAfterLeg = false;
              this.setStatus({ phase: 'pausing' });
              this.abort?.abort();
            }
          },
        },
        record,
        savedStep,
        this.saves,
      ),
    };
    return r;
  }

  private identity(r: ActiveRun) {
    return { config: { ...r.config }, model: r.model, tokenizer: r.tokenizer.toJSON(), dataset: r.info.spec.data };
  }

  private recordPatch(r: ActiveRun, phase: SavedPhase, point: RunPoint): Partial<RunRecord> {
    const last = this.run === r ? this.rows.filter((m) => m.step <= point.step).at(-1) : undefined;
    return {
      phase, step: point.step, spec: { ...r.info.spec, config: { ...r.config } }, backend: r.info.backend, device: r.info.device,
      lastLoss: last?.loss ?? r.saver.record?.lastLoss ?? null, lastValLoss: point.lastValLoss, bestValLoss: point.bestValLoss, elapsedS: point.elapsedS,
    };
  }

  async save(): Promise<void> {
    const r = this.need();
    await this.needStore();
    if (!r.saver.record) throw new KilnError('storage', 'this run is no longer in the run library (it was deleted)', 'start a new run to keep one');
    if (!this.leg && r.point.step > 0) {
      await this.claim(r);
      r.saver.queueSave(r.snapshot, savedPhase(this.state.phase));
    }
    await this.settleSaves();
    if (this.state.saveError) throw new KilnError('storage', this.state.saveError.message, this.state.saveError.hint);
  }

  async listRuns(): Promise<RunRecord[]> {
    return (await this.needStore()).listRuns();
  }

  async runMetrics(id: string): Promise<LabMetrics[]> {
    return (await this.needStore()).metrics(id);
  }

  async storageUsage(): Promise<StorageUsage> {
    return (await this.needStore()).usage();
  }

  async renameRun(id: string, name: string): Promise<RunRecord> {
    const store = await this.needStore();
    await this.settleSaves();
    const rec = await store.renameRun(id, name);
    const r = this.run;
    if (r?.saver.record?.id === id) {
      r.saver.renamed(rec.name);
      r.info.name = rec.name;
    }
    return rec;
  }

  async deleteRun(id: string): Promise<void> {
    const store = await this.needStore();
    const r = this.run;
    const listed = r?.saver.record?.id === id ? r.saver.record.source : undefined;
    if (r && listed) {
      // A listed folder the lab did not write: refused before the open run lets go of its record.
      if (listed.readOnly) throw readOnlyError(r.saver.record!, 'change');
      if (store.adopt) r.saver.adopted(await store.adopt(id));
    }
    if (r?.saver.record?.id === id) {
      // The run stays open (unsaved) until another is made or opened.
      if (this.leg) await this.pause();
      r.saver.forget();
      this.setStatus({ savedStep: null });
    }
    await this.settleSaves();
    await store.deleteRun(id);
  }

  async exportCheckpoint(id: string, step?: number): Promise<{ fileName: string; bytes: Uint8Array }> {
    const store = await this.needStore();
    await this.settleSaves();
    return exportCheckpoint(store, id, step);
  }

  async importCheckpoint(fileName: string, bytes: Uint8Array): Promise<RunRecord> {
    return importCheckpoint(await this.needStore(), fileName, bytes);
  }

  async branchRun(id: string, step: number, config: RunConfig, backendKind: LabBackendKind, name?: string): Promise<RunInfo> {
    const store = await this.needStore();
    if (this.leg) await this.pause();
    await this.settleSaves();
    return this.openRecord(store, await createBranch(store, id, step, config, backendKind, name), backendKind);
  }

  async openRun(id: string, backendKind: LabBackendKind, step?: number): Promise<RunInfo> {
    const store = await this.needStore();
    if (this.leg) await this.pause();
    await this.settleSaves();
    return this.openRecord(store, await getRecord(store, id), backendKind, step);
  }

  /** The text a saved run names, read again (null when it is not here: a user's file never kept, or gone). */
  private async textOf(ref: DatasetRef | null): Promise<{ source: DataSource; bytes: Uint8Array; text: string } | null> {
    if (!ref) return null;
    if (this.data && sameData(this.data.summary.ref, ref)) return this.data;
    const source: DataSource = ref.kind === 'bundled' ? { kind: 'bundled', id: ref.id } : { kind: 'stored', sha256: ref.sha256 };
    try {
      const { bytes, name } = await this.readSource(source);
      return { source, bytes, text: decodeText(bytes, name) };
    } catch {
      return null;
    }
  }

  private async openRecord(store: RunStore, rec: RunRecord, backendKind: LabBackendKind, step?: number): Promise<RunInfo> {
    const config = { ...rec.spec.config };
    const meta = checkpointAt(rec, step);
    // A listed folder the lab did not write opens only at a checkpoint it has (never as a fresh model from the seed).
    if (!meta && rec.source) {
      throw new KilnError('checkpoint', `"${printable(rec.name, 80)}" has no checkpoint to open${rec.source.problem ? ` (${rec.source.problem})` : ''}`,
        rec.source.kind === 'scale' ? 'torchrun saves checkpoints/step_N every checkpointEvery steps: open it once one is saved' : 'kiln train saves checkpoint.safetensors every checkpointEvery steps: open it once one is saved');
    }
    const found = await this.textOf(rec.spec.data);
    const loaded = await loadRun(store, rec, meta, config, found?.text ?? null);
    let rows = (await store.metrics(rec.id)).filter((m) => m.step <= loaded.point.step);
    if (meta && meta !== rec.checkpoints.at(-1)) {
      // Opened at an older checkpoint (the newest was damaged): the run goes on from here, so what came after goes.
      rec = await store.rewind(rec.id, meta.step);
      rows = await store.metrics(rec.id);
    }
    const backend = await this.loadBackend(backendKind, loaded.model, loaded.state, config.batchSize);
    this.disposeRun();
    let summary: DataSummary | null = null;
    if (found && loaded.prepared) {
      const ref = rec.spec.data!;
      const name = ref.kind === 'file' ? ref.name : (findDataset(ref.id)?.title ?? ref.id);
      summary = summarize(ref, name, found.bytes, found.text, config, loaded.prepared);
      this.data = { source: found.source, bytes: found.bytes, text: found.text, summary, prepared: loaded.prepared, config: { ...config } };
    }
    const memoryBytes = backend.memoryBytes?.(loaded.model, config.batchSize) ?? memoryEstimate(loaded.model, config.batchSize).total;
    const info: RunInfo = {
      id: rec.id, name: rec.name, spec: { ...rec.spec, config }, model: loaded.model, numParams: modelSpec(loaded.model).numParams, backend: backendKind,
      device: this.deviceName(backend), memoryBytes, data: summary,
    };
    if (rec.parent) info.parent = rec.parent;
    const point = loaded.point;
    this.run = this.activeRun(
      { info, config, model: loaded.model, tokenizer: loaded.tokenizer, prepared: loaded.prepared, backend, point, snapshot: { state: loaded.state, point: { ...point } } },
      rec,
      meta?.step ?? null,
    );
    this.rows = rows;
    this.unsent = [];
    const last = rows.at(-1);
    const lastVal = [...rows].reverse().find((m) => m.val_loss !== undefined);
    this.state = {
      ...LabSession.emptyStatus(),
      phase: point.step >= config.steps ? 'done' : point.step === 0 ? 'ready' : 'paused',
      step: point.step, stopAt: config.steps, decaySteps: config.decaySteps, lastLoss: last?.loss ?? rec.lastLoss,
      lastValLoss: point.lastValLoss, bestValLoss: point.bestValLoss, valStep: lastVal?.step ?? null, elapsedS: point.elapsedS,
      snapshotStep: point.step, savedStep: meta?.step ?? null,
    };
    this.emit({ type: 'status', status: { ...this.state } });
    return info;
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
    await this.settleSaves();
    this.disposeRun();
  }
}

function summarize(ref: DatasetRef, name: string, bytes: Uint8Array, text: string, config: RunConfig, prepared: PreparedData): DataSummary {
  const { split, tokenizer } = prepared;
  return {
    ref, name, bytes: bytes.length, chars: [...text].length, distinctChars: new Set(text).size, tokenizer: config.tokenizer,
    vocabSize: tokenizer.vocabSize, tokens: split.train.length + split.val.length, trainTokens: split.train.length, valTokens: split.val.length,
  };
}

/** The same text: the same bundled id, or a file with the same SHA-256. */
function sameData(a: DatasetRef | null, b: DatasetRef | null): boolean {
  if (!a || !b) return false;
  if (a.kind === 'bundled' && b.kind === 'bundled') return a.id === b.id;
  if (a.kind === 'file' && b.kind === 'file') return a.sha256 === b.sha256;
  return false;
}

function savedPhase(phase: RunStatus['phase']): SavedPhase {
  return phase === 'pausing' || phase === 'error' ? 'paused' : phase === 'preparing' ? 'ready' : phase;
}

