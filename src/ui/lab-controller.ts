// The page's one connection to training (STYLE.md 5-6): a Lit ReactiveController that
// owns the lab's LabApi and hands the elements plain data. The LabApi is the page's own
// web worker (worker-lab.ts), or, when `kiln serve` served the page (its URL carries
// #kiln-token=...), that process over its WebSocket (remote-lab.ts): then training runs
// on this machine's backend, the run library is kiln serve's --out folder, and no worker
// starts. No element talks to comlink, the worker or the socket itself.
import type { ReactiveController, ReactiveControllerHost } from 'lit';
import type { RunConfig } from '../core/config.ts';
import type {
  ConfigFit, DataFile, DataSource, DataSummary, ExtendOptions, LabApi, LabBackendKind, LabEnvironment, LabError, LabEvent, LabMetrics, RunInfo,
  RunStatus, SampleRequest, ScaleApi, ScaleProgress,
} from '../worker/api.ts';
import type { RunRecord, StorageUsage } from '../core/run-record.ts';
import type { RunSpec } from '../core/run-spec.ts';
import { connectRemoteLab, SERVE_TOKEN_KEY, takeServeToken, type RemoteLab } from './remote-lab.ts';
import { workerLab } from './worker-lab.ts';

export interface LabSample {
  step: number;
  text: string;
}

/** The page's connection to the `kiln serve` that served it. */
export interface ServedState {
  /** The server answered (until then, and after a failed connection, false). */
  connected: boolean;
  /** This tab steers the server's runs; false: another tab does, and this one watches. */
  controlling: boolean;
  /** The connection failed or closed: every call fails until the page is reloaded. */
  closed: LabError | null;
}

/**
 * The token of the `kiln serve` that served this page, or null (the static lab). It is
 * taken out of the address (so it is not left in the address bar, a bookmark or a
 * copied link; other fragment parts, such as a share link, stay) and kept in this tab's
 * sessionStorage, so a reload connects again.
 */
export function servedToken(): string | null {
  const stored = `${SERVE_TOKEN_KEY}@${location.origin}`;
  const { token, rest } = takeServeToken(location.hash);
  if (token !== null) history.replaceState(history.state, '', `${location.pathname}${location.search}${rest ? `#${rest}` : ''}`);
  try {
    if (token !== null) sessionStorage.setItem(stored, token);
    return token ?? sessionStorage.getItem(stored);
  } catch {
    // Storage refused (a privacy setting): this load still connects; a reload needs the printed URL again.
    return token;
  }
}

/** What a LabApi call rejects with on the page: an Error with the KilnError's code and hint copied on (by comlink or remote-lab.ts). */
export function labError(e: unknown): LabError {
  const err = e as { message?: string; code?: string; hint?: string; name?: string };
  if (err && typeof err.code === 'string' && typeof err.hint === 'string') return { code: err.code as LabError['code'], message: err.message ?? '', hint: err.hint };
  return { code: 'internal', message: err?.message ? `${err.message}` : String(e), hint: 'reload the page; if this keeps happening it is a bug in Kiln' };
}

/** "Run on a cluster": the `kiln scale` zip being built, the last one handed over, or why it failed. */
export interface ScaleState {
  building: boolean;
  progress: ScaleProgress | null;
  error: LabError | null;
  /** The last zip downloaded (its name and size). */
  done: { fileName: string; bytes: number } | null;
}

/** localStorage: the id of the run the static lab had open, reopened after a reload. */
const OPEN_RUN_KEY = 'kiln.openRun';

const SCALE_IDLE: ScaleState = { building: false, progress: null, error: null, done: null };

/** Hands bytes to the browser as a download named `fileName`. */
function saveFile(blob: Blob, fileName: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = fileName;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
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
  /** The texts kiln serve's --data folder offers (empty in the static lab, and without --data). */
  dataFiles: DataFile[] = [];
  /** Metrics of the saved runs drawn beside the current one, by id. */
  compared = new Map<string, LabMetrics[]>();
  /** A run that failed to open because a checkpoint is damaged: the earlier step it can open at. */
  openFailure: { id: string; name: string; step: number } | null = null;
  /** "Run on a cluster" (the browser's worker only). */
  scale: ScaleState = SCALE_IDLE;

  /**
   * Counts the runs the controller found rather than the page opened: the run kiln serve
   * had open when this page connected, or one another tab made or opened while this one
   * watches. The page takes such a run's settings (preset, config, data) when it changes.
   */
  foundRuns = 0;
  /** The last checkpoint import the worker refused: its file and why. */
  importError: { fileName: string; message: string; hint: string } | null = null;

  /** Set when `kiln serve` served this page (null: the static lab, training in this browser's worker). */
  served: ServedState | null = null;

  private api: LabApi | null = null;
  /** The worker's call beyond LabApi (null under kiln serve, whose page has the kiln CLI at hand). */
  private scaleApi: ScaleApi | null = null;
  private closeApi: (() => void) | null = null;
  private remote: RemoteLab | null = null;
  /** kiln serve's token (taken from the address once, when the controller is made). */
  private readonly token = servedToken();
  private attached = false;
  private pendingFrame = 0;
  /** While resync() fetches the history: the rows that arrive meanwhile. */
  private arriving: LabMetrics[] | null = null;
  private statusEvents = 0;

  constructor(private readonly host: ReactiveControllerHost) {
    host.addController(this);
  }

  hostConnected(): void {
    if (this.attached) return;
    this.attached = true;
    if (this.token !== null) {
      void this.connectServed(this.token);
      return;
    }
    const datasets = new URL('datasets/', document.baseURI).href;
    const worker = new Worker(new URL('../worker/lab-worker.ts', import.meta.url), { type: 'module', name: JSON.stringify({ datasets }) });
    // A worker that fails to load or throws outside a call would otherwise hang the page silently.
    worker.addEventListener('error', (e) => {
      this.error = { code: 'internal', message: `the training worker failed: ${e.message || 'it could not be loaded'}`, hint: 'reload the page' };
      this.update();
    });
    const api = workerLab(worker);
    this.scaleApi = api;
    this.use(api, () => api.close());
    void navigator.storage?.persisted?.().then((p) => {
      if (p) this.persisted = true;
    });
  }

  hostDisconnected(): void {
    this.attached = false;
    this.closeApi?.();
    this.closeApi = null;
    this.api = null;
    this.scaleApi = null;
    this.remote = null;
  }

  /** Starts talking to a LabApi: its events, its environment, its run library. */
  private use(api: LabApi, close: () => void): void {
    this.api = api;
    this.closeApi = close;
    api.subscribe((e) => this.onEvent(e)).catch(() => {});
    void this.call('env', async (a) => {
      this.env = await a.environment();
    });
    void this.refreshRuns();
    void api.dataFiles().then((files) => {
      this.dataFiles = files;
      this.update();
    }).catch(() => {});
    // kiln serve may have a run open already (connectServed resyncs); a fresh worker has none, but is asked alike.
    if (!this.served) {
      void api.current().then((info) => {
        if (info && this.api === api && !this.run) return this.adopt(api, info, true).then(() => this.update());
      }).catch(() => {});
    }
  }

  /** The page came from `kiln serve`: its LabApi over the WebSocket at /ws of the same host. */
  private async connectServed(token: string): Promise<void> {
    this.served = { connected: false, controlling: false, closed: null };
    this.update();
    let remote: RemoteLab;
    try {
      remote = await connectRemoteLab({
        url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`,
        token,
        onControl: (controlling) => {
          if (this.served) this.served = { ...this.served, controlling };
          this.update();
        },
        onClose: (why) => {
          this.served = { connected: false, controlling: false, closed: { code: 'internal', message: why, hint: 'reload the page after restarting kiln serve (it does not reconnect by itself)' } };
          this.update();
        },
      });
    } catch (e) {
      this.served = { connected: false, controlling: false, closed: labError(e) };
      this.update();
      return;
    }
    if (!this.attached) {
      remote.close();
      return;
    }
    this.remote = remote;
    this.served = { connected: true, controlling: remote.controlling, closed: null };
    this.use(remote, () => remote.close());
    // The server may be training already (this tab was reloaded, or another tab started it): show where it is.
    await this.resync();
  }

  /** Lets this tab steer kiln serve, taking control from the tab that has it. */
  async takeControl(): Promise<void> {
    const remote = this.remote;
    if (!remote) return;
    await this.call('control', () => remote.takeControl(true));
    if (this.served) this.served = { ...this.served, controlling: remote.controlling };
    this.update();
  }

  /** Whether this tab only watches (another tab controls kiln serve): the page offers no controls then. */
  get watching(): boolean {
    return !!this.served && (!this.served.connected || !this.served.controlling);
  }

  /**
   * The current run as the server has it now: its info, data, curve and status, switched
   * together (rows and a status that arrive meanwhile are kept). On connecting, and in a
   * watching tab whenever the run changed (another tab made, opened or branched one).
   */
  private async resync(): Promise<void> {
    const api = this.api;
    if (!api) return;
    const arrived: LabMetrics[] = [];
    this.arriving = arrived;
    const statusSeen = this.statusEvents;
    try {
      const [rows, status, info] = await Promise.all([api.history(), api.status(), api.current()]);
      const last = rows.at(-1)?.step ?? -1;
      this.takeRun(info, true);
      this.metrics = [...rows, ...arrived.filter((m) => m.step > last)];
      this.metricsVersion++;
      if (this.statusEvents === statusSeen) this.status = status;
    } catch {
      // A closed connection says so in its own banner.
    } finally {
      if (this.arriving === arrived) this.arriving = null;
    }
    this.update();
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
      case 'status': {
        const prev = this.status;
        this.statusEvents++;
        if (e.status.savedStep !== null && e.status.savedStep !== prev?.savedStep) void this.onSaved();
        this.status = e.status;
        // Watching kiln serve: another tab made, opened or branched a run (the step went back,
        // or the phase changed): this tab learns its curve and the library's change here.
        if (this.served && !this.served.controlling && prev && (e.status.step < prev.step || e.status.phase !== prev.phase)) {
          void this.resync();
          void this.refreshRuns();
        }
        if (e.status.phase !== 'error') this.progress = null;
        break;
      }
      case 'metrics':
        if (e.metrics.length === 0) {
          // recover() dropped rows past its snapshot: fetch the history again.
          void this.api?.history().then((rows) => {
            this.metrics = rows;
            this.metricsVersion++;
            this.update();
          });
        } else {
          // From kiln serve, rows fetched by history() may arrive again as events: each step once.
          const last = this.served ? this.metrics.at(-1)?.step ?? -1 : -1;
          for (const m of e.metrics) if (m.step > last) this.metrics.push(m);
          this.arriving?.push(...e.metrics);
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

  private async call<T>(what: string, fn: (api: LabApi) => Promise<T>): Promise<T | undefined> {
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
      this.rememberOpen(this.run.id);
      await api.start();
    });
    void this.refreshRuns();
  }

  // ---- the run library ----

  /** After a save: the list and usage change; the first save asks the browser to keep storage. */
  private async onSaved(): Promise<void> {
    await this.refreshRuns();
    // The browser's storage holds the runs only in the static lab; kiln serve keeps them in its --out folder.
    if (this.persisted === null && !this.served && navigator.storage?.persist) {
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

  private async adopt(api: LabApi, info: RunInfo, found = false): Promise<void> {
    // Everything fetched first, then switched at once: the page never draws the new run with the old curve.
    const [rows, status] = await Promise.all([api.history(), api.status()]);
    this.run = null;
    this.takeRun(info, found);
    this.metrics = rows;
    this.metricsVersion++;
    this.status = status;
  }

  /**
   * Makes `info` the page's run (with its data). A different run's samples go; one the page
   * did not open itself (`found`: open on the server already, or made by another tab)
   * moves `foundRuns`, so the page takes its settings.
   */
  private takeRun(info: RunInfo | null, found: boolean): void {
    const changed = (info?.id ?? null) !== (this.run?.id ?? null);
    this.run = info;
    if (info) this.rememberOpen(info.id);
    if (info?.data) this.data = info.data;
    if (!changed) return;
    this.samples = [];
    if (info && found) this.foundRuns++;
  }

  /**
   * The run this browser's lab had open last (kept across reloads, so the page comes back to
   * it), or null. kiln serve keeps its own: the server says which run is open.
   */
  lastOpenRun(): string | null {
    try {
      return this.served ? null : localStorage.getItem(OPEN_RUN_KEY);
    } catch {
      return null; // storage blocked: the page starts fresh, as before
    }
  }

  private rememberOpen(id: string | null): void {
    if (this.served) return;
    try {
      if (id) localStorage.setItem(OPEN_RUN_KEY, id);
      else localStorage.removeItem(OPEN_RUN_KEY);
    } catch {
      // storage blocked: nothing to come back to
    }
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
    if (this.lastOpenRun() === id) this.rememberOpen(null);
    await this.call('library', (api) => api.deleteRun(id));
    await this.refreshRuns();
  }

  /** Hands the checkpoint to the browser as a download (the CLI's .safetensors file). */
  async download(id: string): Promise<void> {
    const file = await this.call('library', (api) => api.exportCheckpoint(id));
    if (!file) return;
    saveFile(new Blob([file.bytes as Uint8Array<ArrayBuffer>], { type: 'application/octet-stream' }), file.fileName);
  }

  // ---- "Run on a cluster" ----

  /** The lab can build the `kiln scale` folder (the browser's worker; not kiln serve). */
  get canScale(): boolean {
    return this.scaleApi !== null;
  }

  /** Forgets the last zip's outcome (the settings changed); a build in progress goes on. */
  resetScale(): void {
    if (this.scale.building || (!this.scale.done && !this.scale.error)) return;
    this.scale = SCALE_IDLE;
    this.update();
  }

  /** Builds the `kiln scale` folder of this spec and text in the worker and downloads it as a zip. */
  async downloadScale(spec: RunSpec, source: DataSource): Promise<void> {
    const api = this.scaleApi;
    if (!api || this.scale.building) return;
    this.scale = { ...SCALE_IDLE, building: true };
    this.update();
    try {
      const zip = await api.scaleFolder(spec, source, (progress) => {
        if (this.scale.building) this.scale = { ...this.scale, progress };
        this.update();
      });
      saveFile(zip.blob, zip.fileName);
      this.scale = { ...SCALE_IDLE, done: { fileName: zip.fileName, bytes: zip.blob.size } };
    } catch (e) {
      this.scale = { ...SCALE_IDLE, error: labError(e) };
    }
    this.update();
  }

  async importCheckpoint(fileName: string, bytes: Uint8Array): Promise<RunRecord | undefined> {
    this.importError = null;
    const rec = await this.call('library', (api) => api.importCheckpoint(fileName, bytes));
    // A refused file is said under the Import button that picked it, not as the page's error.
    if (!rec && this.error) {
      this.importError = { fileName, message: this.error.message, hint: this.error.hint };
      this.error = null;
    }
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
    return this.call('sample', (api) => api.sample(req, onText));
  }
}
