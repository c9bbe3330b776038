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
//
// The session decides what happens when; the parts that need none of its other state
// are their own modules, each tested on its own: the status and event stream
// (lab-events.ts), the texts (lab-data.ts), backends (lab-backends.ts), the library
// handle (lab-store.ts), errors as the page shows them (lab-errors.ts) and what follows
// from an open run alone (active-run.ts).
import type { RunConfig } from '../core/config.ts';
import { KilnError } from '../core/errors.ts';
import { modelSpec, resolveModel } from '../core/model-spec.ts';
import type { RngState } from '../core/rng.ts';
import type { RunRecord, SavedPhase, StorageUsage } from '../core/run-record.ts';
import type { RunSpec } from '../core/run-spec.ts';
import { printable } from '../core/text.ts';
import type { RunStore } from '../store/run-store.ts';
import { stateCheckpointBytes } from '../train/checkpointing.ts';
import { initialState } from '../train/prepare.ts';
import { train, type TrainerSnapshot } from '../train/trainer.ts';
import type {
  ConfigFit, DataFile, DataSource, DataSummary, ExtendOptions, LabApi, LabBackendKind, LabEnvironment, LabEvent, LabMetrics,
  RunInfo, RunStatus, SampleRequest, ScaleApi, ScaleDownload, ScaleProgress,
} from './api.ts';
import { checkpointIdentity, needData, openedStatus, recordPatch, savedPhase, type ActiveRun } from './active-run.ts';
import { LabBackends, type BackendDeps } from './lab-backends.ts';
import { LabData, sameData, sameTokens, type DataDeps } from './lab-data.ts';
import { assertValidConfig, legFailure, toLabError } from './lab-errors.ts';
import { emptyStatus, LabEvents } from './lab-events.ts';
import { LabStore, type StoreDeps } from './lab-store.ts';
import { checkpointAt, createBranch, exportCheckpoint, getRecord, importCheckpoint, loadRun, type RunPoint } from './library-ops.ts';
import { newRecord, newRunId, readOnlyError, uniqueName } from './run-library.ts';
import { RunSaver } from './run-saver.ts';
import { sampleText } from './sample-text.ts';
import { buildScaleZip } from './scale-zip.ts';

/** The environment a session runs in; each part is documented in the module that uses it. */
export interface LabSessionDeps extends BackendDeps, DataDeps, StoreDeps {
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

export class LabSession implements LabApi, ScaleApi {
  /** The status and curve of the open run, and the listeners told of them. */
  private readonly events: LabEvents;
  private readonly backends: LabBackends;
  /** The run library, and the queue of every run's saves to it. */
  private readonly store: LabStore;
  /** The texts, and the one the data panel prepared. */
  private readonly data: LabData;
  private run: ActiveRun | null = null;
  private abort: AbortController | null = null;
  private leg: Promise<void> | null = null;
  /** After the leg ends: start another (extend while training). */
  private continueAfterLeg = false;
  /** Work for between steps while a leg runs (sampling). */
  private betweenSteps: Array<() => Promise<void>> = [];

  constructor(private readonly deps: LabSessionDeps, private readonly opts: LabSessionOptions = {}) {
    this.events = new LabEvents(opts.flushMs ?? 100);
    this.backends = new LabBackends(deps);
    this.store = new LabStore(deps);
    this.data = new LabData(deps, () => this.store.need());
  }

  private get state(): Readonly<RunStatus> {
    return this.events.status;
  }

  private setStatus(patch: Partial<RunStatus>): void {
    this.events.setStatus(patch);
  }

  // ---- events ----

  async subscribe(listener: (e: LabEvent) => void): Promise<number> {
    return this.events.subscribe(listener);
  }

  async unsubscribe(id: number): Promise<void> {
    this.events.unsubscribe(id);
  }

  async history(): Promise<LabMetrics[]> {
    return this.events.rows.slice();
  }

  async status(): Promise<RunStatus> {
    return { ...this.state };
  }

  async current(): Promise<RunInfo | null> {
    return this.run ? { ...this.run.info } : null;
  }

  // ---- environment and config ----

  environment(): Promise<LabEnvironment> {
    return this.backends.environment();
  }

  async checkConfig(config: RunConfig, vocabSize: number, backend: LabBackendKind): Promise<ConfigFit> {
    return this.backends.checkConfig(config, vocabSize, backend);
  }

  // ---- data ----

  async dataFiles(): Promise<DataFile[]> {
    return this.data.files();
  }

  async prepareData(source: DataSource, config: RunConfig): Promise<DataSummary> {
    const { summary } = await this.data.prepare(source, config, (done, total) => this.events.emit({ type: 'progress', what: 'tokenizer', done, total }));
    // A run opened without its data (after a reload, or from an imported checkpoint) trains once it is given.
    const r = this.run;
    if (r && !r.prepared && sameData(r.info.spec.data, summary.ref)) await this.attachData(r);
    return summary;
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
    assertValidConfig(spec.config);
    const config = spec.config;
    onProgress?.({ stage: 'data', done: 0, total: 1 });
    const { ref, prepared } = await this.data.tokensFor(source, config, (done, total) => onProgress?.({ stage: 'data', done, total }));
    onProgress?.({ stage: 'data', done: 1, total: 1 });
    return buildScaleZip({ spec: { preset: spec.preset, config: { ...config }, data: ref }, data: ref, prepared, trainerScript, ...(onProgress ? { onProgress } : {}) });
  }

  /** Gives a run opened without data the prepared text, tokenized with the run's own tokenizer. */
  private async attachData(r: ActiveRun): Promise<void> {
    const d = this.data.current!;
    const { prepared, summary } = await this.data.forRun(r.config, r.tokenizer);
    r.prepared = prepared;
    r.info.data = summary;
    if (r.info.spec.data?.kind === 'file' && this.store.kept) await (await this.store.need()).putDataset(r.info.spec.data.sha256, d.summary.name, d.bytes);
  }

  // ---- the run ----

  async createRun(spec: RunSpec, backendKind: LabBackendKind): Promise<RunInfo> {
    if (this.leg) throw new KilnError('usage', 'a run is training', 'stop it first');
    assertValidConfig(spec.config);
    if (!this.data.current) throw new KilnError('usage', 'no training data yet', 'choose a dataset or open a text file first');
    // A tokenizer setting that changed since the data was read needs it read again.
    const d = this.data.current;
    if (!sameTokens(d.config, spec.config)) await this.prepareData(d.source, spec.config);
    const data = this.data.current;
    const prepared = data.prepared;
    await this.store.settled();
    this.disposeRun();
    const config = { ...spec.config };
    const model = resolveModel(config, prepared.tokenizer.vocabSize);
    const backend = await this.backends.load(backendKind, model, initialState(model, config.seed), config.batchSize);
    const memoryBytes = this.backends.memoryBytes(backend, model, config.batchSize);
    const point: RunPoint = { step: 0, samplerState: config.seed, elapsedS: 0, bestValLoss: null, lastValLoss: null };
    const runSpec: RunSpec = { preset: spec.preset, config, data: data.summary.ref };
    const store = await this.store.tryOpen();
    const taken = store ? (await store.listRuns()).map((x) => x.name) : [];
    const info: RunInfo = {
      id: newRunId(), name: uniqueName(`${spec.preset} · ${data.summary.name}`, taken), spec: runSpec, model, numParams: modelSpec(model).numParams,
      backend: backendKind, device: this.backends.deviceName(backend), memoryBytes, data: data.summary,
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
    this.events.reset({ ...emptyStatus(), phase: 'ready', stopAt: config.steps, decaySteps: config.decaySteps, snapshotStep: 0 }, []);
    return info;
  }

  private need(): ActiveRun {
    if (!this.run) throw new KilnError('usage', 'there is no run yet', 'press Train first');
    return this.run;
  }

  async start(): Promise<void> {
    const r = this.need();
    if (this.leg) return;
    if (r.point.step >= this.state.stopAt) throw new KilnError('usage', `the run is at step ${r.point.step} of ${this.state.stopAt}`, 'extend it to train further');
    needData(r);
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
    const store = await this.store.need();
    if (!store.adopt) return;
    const own = await store.adopt(rec.id, r.saver.savedStep ?? undefined);
    if (r.saver.record?.id === own.id) r.saver.adopted(own);
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
    await this.store.settled();
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
    await this.store.settled();
  }

  async extend(steps: number, opts: ExtendOptions = {}): Promise<void> {
    const r = this.need();
    if (!(Number.isInteger(steps) && steps >= 1 && steps <= 10_000_000)) throw new KilnError('usage', `extend by ${steps} steps`, 'use a whole number of steps from 1 to 10,000,000');
    const stopAt = this.state.stopAt + steps;
    if (!this.leg) {
      needData(r);
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
    const backend = await this.backends.load(r.info.backend, r.model, r.snapshot.state, r.config.batchSize);
    r.backend = backend;
    r.point = { ...r.snapshot.point };
    this.events.rewind(r.point.step);
    r.info.device = this.backends.deviceName(backend);
    this.setStatus({
      phase: 'paused', step: r.point.step, error: undefined, recoverable: false, lastLoss: this.events.rows.at(-1)?.loss ?? null,
      lastValLoss: r.point.lastValLoss, bestValLoss: r.point.bestValLoss, etaS: null,
    });
    // An empty batch tells the page to read the history again: the rows past the snapshot are gone.
    this.events.emit({ type: 'metrics', metrics: [] });
  }

  private startLeg(r: ActiveRun): void {
    const ctl = new AbortController();
    this.abort = ctl;
    this.events.legStarted();
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
    needData(r);
    const prepared = r.prepared;
    const config = r.config;
    const sampleEvery = config.sampleEvery > 0 ? config.sampleEvery : (this.opts.autoSampleEvery ?? 0);
    const takeSnapshot = async (point: RunPoint) => {
      r.snapshot = { state: await r.backend.save(), point: { ...point } };
      this.events.quietly({ snapshotStep: point.step });
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
          onMetrics: (m) => this.events.step(m),
          onSample: async (step) => {
            const text = await this.generateText(r, { prompt: '', maxTokens: this.opts.autoSampleTokens ?? 80, temperature: 0.8, topK: 0, topP: 1, seed: config.seed ^ step });
            this.events.emit({ type: 'sample', step, text });
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
      const { error, recoverable } = legFailure(e, r.snapshot.point.step);
      this.continueAfterLeg = false;
      this.setStatus({ phase: 'error', error, recoverable, etaS: null });
    }
  }

  // ---- the run library ----

  /** A run made current, with its saver: what it reports reaches the status only while it is current. */
  private activeRun(fields: Omit<ActiveRun, 'saver'>, record: RunRecord | null, savedStep: number | null): ActiveRun {
    const r: ActiveRun = {
      ...fields,
      saver: new RunSaver(
        {
          store: () => this.store.tryOpen(),
          rows: () => (this.run === r ? this.events.rows : []),
          encode: (snap) => stateCheckpointBytes(snap.state, r.backend.kind, checkpointIdentity(r), { ...snap.point, samplerState: snap.point.samplerState as RngState }),
          patch: (phase, point) => recordPatch(r, this.run === r ? this.events.rows : [], phase, point),
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
        this.store.saves,
      ),
    };
    return r;
  }

  async save(): Promise<void> {
    const r = this.need();
    await this.store.need();
    if (!r.saver.record) throw new KilnError('storage', 'this run is no longer in the run library (it was deleted)', 'start a new run to keep one');
    if (!this.leg && r.point.step > 0) {
      await this.claim(r);
      r.saver.queueSave(r.snapshot, savedPhase(this.state.phase));
    }
    await this.store.settled();
    if (this.state.saveError) throw new KilnError('storage', this.state.saveError.message, this.state.saveError.hint);
  }

  async listRuns(): Promise<RunRecord[]> {
    return (await this.store.need()).listRuns();
  }

  async runMetrics(id: string): Promise<LabMetrics[]> {
    return (await this.store.need()).metrics(id);
  }

  async storageUsage(): Promise<StorageUsage> {
    return (await this.store.need()).usage();
  }

  async renameRun(id: string, name: string): Promise<RunRecord> {
    const store = await this.store.need();
    await this.store.settled();
    const rec = await store.renameRun(id, name);
    const r = this.run;
    if (r?.saver.record?.id === id) {
      r.saver.renamed(rec.name);
      r.info.name = rec.name;
    }
    return rec;
  }

  async deleteRun(id: string): Promise<void> {
    const store = await this.store.need();
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
    await this.store.settled();
    await store.deleteRun(id);
  }

  async exportCheckpoint(id: string, step?: number): Promise<{ fileName: string; bytes: Uint8Array }> {
    const store = await this.store.need();
    await this.store.settled();
    return exportCheckpoint(store, id, step);
  }

  async importCheckpoint(fileName: string, bytes: Uint8Array): Promise<RunRecord> {
    return importCheckpoint(await this.store.need(), fileName, bytes);
  }

  async branchRun(id: string, step: number, config: RunConfig, backendKind: LabBackendKind, name?: string): Promise<RunInfo> {
    const store = await this.store.need();
    if (this.leg) await this.pause();
    await this.store.settled();
    return this.openRecord(store, await createBranch(store, id, step, config, backendKind, name), backendKind);
  }

  async openRun(id: string, backendKind: LabBackendKind, step?: number): Promise<RunInfo> {
    const store = await this.store.need();
    if (this.leg) await this.pause();
    await this.store.settled();
    return this.openRecord(store, await getRecord(store, id), backendKind, step);
  }

  private async openRecord(store: RunStore, rec: RunRecord, backendKind: LabBackendKind, step?: number): Promise<RunInfo> {
    const config = { ...rec.spec.config };
    const meta = checkpointAt(rec, step);
    // A listed folder the lab did not write opens only at a checkpoint it has (never as a fresh model from the seed).
    if (!meta && rec.source) {
      throw new KilnError('checkpoint', `"${printable(rec.name, 80)}" has no checkpoint to open${rec.source.problem ? ` (${rec.source.problem})` : ''}`,
        rec.source.kind === 'scale' ? 'torchrun saves checkpoints/step_N every checkpointEvery steps: open it once one is saved' : 'kiln train saves checkpoint.safetensors every checkpointEvery steps: open it once one is saved');
    }
    const found = await this.data.textOf(rec.spec.data);
    const loaded = await loadRun(store, rec, meta, config, found?.text ?? null);
    let rows = (await store.metrics(rec.id)).filter((m) => m.step <= loaded.point.step);
    if (meta && meta !== rec.checkpoints.at(-1)) {
      // Opened at an older checkpoint (the newest was damaged): the run goes on from here, so what came after goes.
      rec = await store.rewind(rec.id, meta.step);
      rows = await store.metrics(rec.id);
    }
    const backend = await this.backends.load(backendKind, loaded.model, loaded.state, config.batchSize);
    this.disposeRun();
    const summary: DataSummary | null = found && loaded.prepared ? this.data.keepOpened(found, rec.spec.data!, config, loaded.prepared) : null;
    const memoryBytes = this.backends.memoryBytes(backend, loaded.model, config.batchSize);
    const info: RunInfo = {
      id: rec.id, name: rec.name, spec: { ...rec.spec, config }, model: loaded.model, numParams: modelSpec(loaded.model).numParams, backend: backendKind,
      device: this.backends.deviceName(backend), memoryBytes, data: summary,
    };
    if (rec.parent) info.parent = rec.parent;
    const point = loaded.point;
    this.run = this.activeRun(
      { info, config, model: loaded.model, tokenizer: loaded.tokenizer, prepared: loaded.prepared, backend, point, snapshot: { state: loaded.state, point: { ...point } } },
      rec,
      meta?.step ?? null,
    );
    this.events.reset(openedStatus(rec, config, point, rows, meta?.step ?? null), rows);
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
    await this.store.settled();
    this.disposeRun();
  }
}

