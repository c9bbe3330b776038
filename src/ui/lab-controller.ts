// The page's one connection to training (STYLE.md 5-6): a Lit ReactiveController that
// owns the lab worker, talks to it through the typed LabApi (comlink), and hands the
// elements plain data. No element talks to comlink or the worker itself.
import { proxy, transfer as comlinkTransfer, wrap, type Remote } from 'comlink';
import type { ReactiveController, ReactiveControllerHost } from 'lit';
import type { RunConfig } from '../core/config.ts';
import type {
  ConfigFit, DataSource, DataSummary, ExtendOptions, LabApi, LabBackendKind, LabEnvironment, LabError, LabEvent, LabMetrics, RunInfo,
  RunStatus, SampleRequest,
} from '../worker/api.ts';
import type { RunRecord, StorageUsage } from '../core/run-record.ts';
import type { RunSpec } from '../core/run-spec.ts';

export interface LabSample {
  step: number;
  text: string;
}

/** What comlink rethrows on the page: an Error with the worker's KilnError code and hint copied on. */
export function labError(e: unknown): LabError {
  const err = e as { message?: string; code?: string; hint?: string; name?: string };
  if (err && typeof err.code === 'string' && typeof err.hint === 'string') return { code: err.code as LabError['code'], message: err.message ?? '', hint: err.hint };
  return { code: 'internal', message: err?.message ? `${err.message}` : String(e), hint: 'reload the page; if this keeps happening it is a bug in Kiln' };
}

export class LabController implements ReactiveController {
  env: LabEnvironment | null = null;
  status: RunStatus | null = null;
  run: RunInfo | null = null;
  data: DataSummary | null = null;
  /** Every metrics row of the current run (appended in place; `metricsVersion` changes with it). */
  metrics: LabMetrics[] = [];
  metricsVersion = 0;
  samples: LabSample[] = [];
  progress: { what: string; done: number; total: number } | null = null;
  /** The last failure of a call (a bad file, a config the worker refused), for the page to show. */
  error: LabError | null = null;
  /** A call in progress ('data', 'create', 'sample', 'library'), for disabling controls. */
  busy = new Set<string>();
  /** The run library: every saved run, newest first (null until listed; storageError when it cannot be). */
  runs: RunRecord[] | null = null;
  usage: StorageUsage | null = null;
  /** navigator.storage.persist()'s answer, asked when the first run is saved (null: not asked, or no API). */
  persisted: boolean | null = null;
  storageError: LabError | null = null;
  /** Metrics of the saved runs drawn beside the current one, by id. */
  compared = new Map<string, LabMetrics[]>();
  /** A run that failed to open because a checkpoint is damaged: the earlier step it can open at. */
  openFailure: { id: string; name: string; step: number } | null = null;

  private worker: Worker | null = null;
  private api: Remote<LabApi> | null = null;
  private pendingFrame = 0;

  constructor(private readonly host: ReactiveControllerHost) {
    host.addController(this);
  }

  hostConnected(): void {
    if (this.worker) return;
    const datasets = new URL('datasets/', document.baseURI).href;
    this.worker = new Worker(new URL('../worker/lab-worker.ts', import.meta.url), { type: 'module', name: JSON.stringify({ datasets }) });
    // A worker that fails to load or throws outside a call would otherwise hang the page silently.
    this.worker.addEventListener('error', (e) => {
      this.error = { code: 'internal', message: `the training worker failed: ${e.message || 'it could not be loaded'}`, hint: 'reload the page' };
      this.update();
    });
    this.api = wrap<LabApi>(this.worker);
    void this.api.subscribe(proxy((e: LabEvent) => this.onEvent(e)));
    void this.call('env', async (api) => {
      this.env = await api.environment();
    });
    void this.refreshRuns();
    void navigator.storage?.persisted?.().then((p) => {
      if (p) this.persisted = true;
    });
  }

  hostDisconnected(): void {
    this.worker?.terminate();
    this.worker = null;
    this.api = null;
  }

  /** Redraws the host at most once per animation frame, however many events arrive. */
  private update(): void {
    if (this.pendingFrame) return;
    this.pendingFrame = requestAnimationFrame(() => {
      this.pendingFrame = 0;
      this.host.requestUpdate();
    });
  }

  private onEvent(e: LabEvent): void {
    switch (e.type) {
      case 'status':
        if (e.status.savedStep !== null && e.status.savedStep !== this.status?.savedStep) void this.onSaved();
        this.status = e.status;
        if (e.status.phase !== 'error') this.progress = null;
        break;
      case 'metrics':
        if (e.metrics.length === 0) {
          // recover() dropped rows past its snapshot: fetch the history again.
          void this.api?.history().then((rows) => {
            this.metrics = rows;
            this.metricsVersion++;
            this.update();
          });
        } else {
          for (const m of e.metrics) this.metrics.push(m);
          this.metricsVersion++;
        }
        break;
      case 'sample':
        this.samples = [...this.samples.slice(-19), { step: e.step, text: e.text }];
        break;
      case 'progress':
        this.progress = { what: e.what, done: e.done, total: e.total };
        break;
    }
    this.update();
  }

  private async call<T>(what: string, fn: (api: Remote<LabApi>) => Promise<T>): Promise<T | undefined> {
    if (!this.api) return undefined;
    this.busy.add(what);
    this.error = null;
    this.update();
    try {
      return await fn(this.api);
    } catch (e) {
      this.error = labError(e);
      return undefined;
    } finally {
      this.busy.delete(what);
      this.update();
    }
  }

  checkConfig(config: RunConfig, vocabSize: number, backend: LabBackendKind): Promise<ConfigFit | undefined> {
    if (!this.api) return Promise.resolve(undefined);
    // Not through call(): a config the worker refuses is shown beside the form, not as the page's error.
    return this.api.checkConfig(config, vocabSize, backend).catch(() => undefined);
  }

  async prepareData(source: DataSource, config: RunConfig): Promise<DataSummary | undefined> {
    const d = await this.call('data', (api) => api.prepareData(source, config));
    if (d) this.data = d;
    return d;
  }

  /** Creates the run and starts it. */
  async train(spec: RunSpec, backend: LabBackendKind): Promise<void> {
    await this.call('create', async (api) => {
      this.metrics = [];
      this.metricsVersion++;
      this.samples = [];
      this.run = await api.createRun(spec, backend);
      await api.start();
    });
    void this.refreshRuns();
  }

  // ---- the run library ----

  /** After a save: the list and usage change; the first save asks the browser to keep storage. */
  private async onSaved(): Promise<void> {
    await this.refreshRuns();
    if (this.persisted === null && navigator.storage?.persist) {
      try {
        this.persisted = await navigator.storage.persist();
      } catch {
        this.persisted = false;
      }
      this.update();
    }
  }

  async refreshRuns(): Promise<void> {
    if (!this.api) return;
    try {
      this.runs = await this.api.listRuns();
      this.usage = await this.api.storageUsage();
      this.storageError = null;
    } catch (e) {
      this.storageError = labError(e);
      this.runs = [];
    }
    for (const id of [...this.compared.keys()]) if (!this.runs.some((r) => r.id === id)) this.compared.delete(id);
    this.update();
  }

  /** Makes a saved run current (paused where it was saved), its curve and data loaded. */
  async openRun(id: string, backend: LabBackendKind, step?: number): Promise<RunInfo | undefined> {
    this.openFailure = null;
    const info = await this.call('library', async (api) => {
      const opened = await api.openRun(id, backend, step);
      await this.adopt(api, opened);
      return opened;
    });
    if (!info && this.error?.code === 'checkpoint') {
      const rec = this.runs?.find((r) => r.id === id);
      const failed = step ?? rec?.checkpoints.at(-1)?.step;
      const earlier = rec?.checkpoints.filter((c) => failed === undefined || c.step < failed).at(-1);
      if (rec && earlier) this.openFailure = { id, name: rec.name, step: earlier.step };
    }
    void this.refreshRuns();
    return info;
  }

  private async adopt(api: Remote<LabApi>, info: RunInfo): Promise<void> {
    // Everything fetched first, then switched at once: the page never draws the new run with the old curve.
    const [rows, status] = await Promise.all([api.history(), api.status()]);
    this.run = info;
    if (info.data) this.data = info.data;
    this.samples = [];
    this.metrics = rows;
    this.metricsVersion++;
    this.status = status;
  }

  async branch(id: string, step: number, config: RunConfig, backend: LabBackendKind, name: string): Promise<RunInfo | undefined> {
    const info = await this.call('library', async (api) => {
      const made = await api.branchRun(id, step, config, backend, name);
      await this.adopt(api, made);
      return made;
    });
    void this.refreshRuns();
    return info;
  }

  async renameRun(id: string, name: string): Promise<void> {
    const rec = await this.call('library', (api) => api.renameRun(id, name));
    if (rec && this.run?.id === id) this.run = { ...this.run, name: rec.name };
    await this.refreshRuns();
  }

  async deleteRun(id: string): Promise<void> {
    this.compared.delete(id);
    await this.call('library', (api) => api.deleteRun(id));
    await this.refreshRuns();
  }

  /** Hands the checkpoint to the browser as a download (the CLI's .safetensors file). */
  async download(id: string): Promise<void> {
    const file = await this.call('library', (api) => api.exportCheckpoint(id));
    if (!file) return;
    const url = URL.createObjectURL(new Blob([file.bytes as Uint8Array<ArrayBuffer>], { type: 'application/octet-stream' }));
    const a = document.createElement('a');
    a.href = url;
    a.download = file.fileName;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  }

  async importCheckpoint(fileName: string, bytes: Uint8Array): Promise<RunRecord | undefined> {
    const rec = await this.call('library', (api) => api.importCheckpoint(fileName, transfer(bytes)));
    await this.refreshRuns();
    return rec;
  }

  /** Draws (or stops drawing) a saved run beside the current one. */
  async setCompared(id: string, on: boolean): Promise<void> {
    if (!on) {
      this.compared.delete(id);
      this.update();
      return;
    }
    const rows = await this.call('library', (api) => api.runMetrics(id));
    if (rows) this.compared.set(id, rows);
    this.update();
  }

  /** Retries a save that failed (after the person made room). */
  async save(): Promise<void> {
    await this.call('control', (api) => api.save());
    await this.refreshRuns();
  }

  pause(): Promise<void> {
    return this.call('control', (api) => api.pause()).then(() => undefined);
  }

  resume(): Promise<void> {
    return this.call('control', (api) => api.resume()).then(() => undefined);
  }

  stop(): Promise<void> {
    return this.call('control', (api) => api.stop()).then(() => undefined);
  }

  extend(steps: number, opts?: ExtendOptions): Promise<void> {
    return this.call('control', (api) => api.extend(steps, opts)).then(() => undefined);
  }

  recover(): Promise<void> {
    return this.call('control', (api) => api.recover()).then(() => undefined);
  }

  /** Samples text; each piece is passed to onText as it is generated. */
  sample(req: SampleRequest, onText: (text: string) => void): Promise<string | undefined> {
    return this.call('sample', (api) => api.sample(req, proxy(onText)));
  }
}

/** Moves a file's bytes to the worker instead of copying them (the page does not need them after). */
function transfer(bytes: Uint8Array): Uint8Array {
  return comlinkTransfer(bytes, [bytes.buffer as ArrayBuffer]);
}
