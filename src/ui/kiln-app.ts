// The lab's page: the run bar across the top, the data and settings on the left, the
// charts in the middle and the samples on the right (DESIGN.md, "The lab's screen");
// on a phone they stack in that order. It owns the page's state (preset, config, data
// choice, backend) and reaches training only through its LabController. Served by
// `kiln serve`, the same page drives that process: a status line says so, a tab that
// another tab's control leaves watching offers no controls but "Take control", and a
// closed connection asks for a reload.
import { LitElement, css, html, nothing } from 'lit';
import { customElement, state } from 'lit/decorators.js';
import { validate, type RunConfig } from '../core/config.ts';
import { PRESET_DATASETS } from '../core/datasets.ts';
import { formatBytes } from '../core/model-spec.ts';
import { findPreset, type ReferenceLine } from '../core/presets.ts';
import type { RunRecord } from '../core/run-record.ts';
import type { DatasetRef, ResultSummary, RunSpec } from '../core/run-spec.ts';
import { cliCommand, decodeShareLink, encodeShareLink, reduceCurve } from '../core/share-link.ts';
import type { ConfigFit, DataSource, LabBackendKind, SampleRequest } from '../worker/api.ts';
import { LabController } from './lab-controller.ts';
import type { ExtendDetail } from './kiln-run-bar.ts';
import type { ScaleView } from './kiln-config-panel.ts';
import type { BranchConfirmDetail } from './kiln-branch-dialog.ts';
import type { CompareRun, SharedCurve } from './kiln-loss-chart.ts';
import type { CompareTableRun } from './kiln-compare-table.ts';
import type { RunCompareDetail, RunIdDetail, RunImportDetail, RunRenameDetail } from './kiln-run-list.ts';
import { COLORS } from './chart-theme.ts';
import { comparedColors } from './run-colors.ts';
import { bannerStyles } from './host-styles.ts';
import './kiln-banners.ts';
import './kiln-run-list.ts';
import './kiln-compare-table.ts';
import './kiln-branch-dialog.ts';
import './kiln-run-bar.ts';
import './kiln-config-panel.ts';
import './kiln-data-picker.ts';
import './kiln-loss-chart.ts';
import './kiln-metric-charts.ts';
import './kiln-sample-panel.ts';
import { formatCount } from './config-form.ts';
import { sentence } from './format.ts';

const DEFAULT_PRESET = 'names';

/** Config fields that change what prepareData makes of the text. */
const DATA_KEYS = ['tokenizer', 'bpeVocab', 'valFraction', 'blockSize'] as const;
/** dataChoice's prefix for a file of kiln serve's --data folder: `server:<path>`. */
const SERVER_CHOICE = 'server:';

@customElement('kiln-app')
export class KilnApp extends LitElement {
  static override styles = [bannerStyles, css`
    :host { display: block; min-height: 100vh; color: #222; font-size: 14px; }
    /* Train, Pause, Stop and the step stay in reach while the page scrolls to the chart (a phone's is long). */
    kiln-run-bar { position: sticky; top: 0; z-index: 20; }
    main { display: grid; gap: 16px; padding: 16px; max-width: 1600px; margin: 0 auto; box-sizing: border-box;
      grid-template-columns: minmax(300px, 340px) minmax(0, 1fr) minmax(280px, 340px); grid-template-areas: 'left center right'; align-items: start; }
    .left { grid-area: left; display: flex; flex-direction: column; gap: 12px; min-width: 0; }
    .center { grid-area: center; display: flex; flex-direction: column; gap: 12px; min-width: 0; }
    .right { grid-area: right; min-width: 0; }
    section.card { background: #fff; border: 1px solid #e3ded7; border-radius: 10px; padding: 12px 14px; min-width: 0; }
    h2 { font-size: 14px; margin: 0 0 8px; font-weight: 600; }
    .backend { display: flex; gap: 12px; align-items: center; font-size: 13px; flex-wrap: wrap; }
    .backend label { display: inline-flex; gap: 4px; align-items: center; }
    .muted { color: #6b6259; font-size: 12.5px; }
    .intro { font-size: 13.5px; line-height: 1.5; color: #3d3731; }
    .intro ol { margin: 6px 0 0; padding-left: 20px; }
    .runinfo { font-size: 12.5px; color: #5a534c; font-variant-numeric: tabular-nums; display: flex; flex-wrap: wrap; gap: 2px 14px; align-items: center; }
    .runinfo .name { font-weight: 600; color: #222; }
    .runinfo button, .share button { font: inherit; padding: 3px 10px; border-radius: 6px; border: 1px solid #cfc7bd; background: #fff; cursor: pointer; color: #222; }
    .runinfo button { margin-left: auto; }
    .share { display: flex; gap: 6px; align-items: center; font-size: 12.5px; }
    .share input { flex: 1; min-width: 0; font: 12px ui-monospace, monospace; padding: 4px 6px; border: 1px solid #d9d2c9; border-radius: 6px; background: #faf8f5; color: #3d3731; }
    .served-store { margin: 8px 0 0; }
    @media (max-width: 1180px) {
      main { grid-template-columns: minmax(280px, 320px) minmax(0, 1fr); grid-template-areas: 'left center' 'left right'; }
    }
    @media (max-width: 760px) {
      main { grid-template-columns: minmax(0, 1fr); grid-template-areas: none; padding: 10px; gap: 10px; }
      /* One column of cards: the saved runs go last, so a phone reaches the data, the settings and the chart first. */
      .left, .center, .right { display: contents; }
      section.runs { order: 1; }
      /* With a run open, what it does comes first: its line, the loss, the samples, the other curves; the settings after. */
      main.has-run .runinfo, main.has-run .share, main.has-run section.loss, main.has-run section.compare { order: -3; }
      main.has-run section.samples { order: -2; }
      main.has-run section.metrics { order: -1; }
    }
  `];

  private lab = new LabController(this);
  @state() private preset = DEFAULT_PRESET;
  @state() private config: RunConfig = { ...findPreset(DEFAULT_PRESET)!.config };
  @state() private dataChoice: string | null = PRESET_DATASETS[DEFAULT_PRESET] ?? null;
  @state() private fileError: { message: string; hint: string } | null = null;
  /** Every field of the settings panel parses and passes its checks (its config holds the last valid values). */
  @state() private formValid = true;
  @state() private backend: LabBackendKind = 'webgpu';
  @state() private fit: ConfigFit | null = null;
  @state() private linkError: { message: string; hint: string } | null = null;
  @state() private sampleOut = '';
  @state() private samplePrompt = '';
  @state() private chart = { smoothing: 0.6, logY: false, logX: false };
  /** A share link's results: its val curve is drawn as a reference, its numbers said in a banner. */
  @state() private shared: ResultSummary | null = null;
  /** A link (or an opened run) that names a user's file: the data panel asks for it, and checks its hash. */
  @state() private wantFile: Extract<DatasetRef, { kind: 'file' }> | null = null;
  @state() private branching: RunRecord | null = null;
  @state() private shareLink: { url: string; copied: boolean } | null = null;
  private lastFile: Extract<DataSource, { kind: 'file' }> | null = null;
  private preparedFor = '';
  /** The controller's foundRuns this page has taken the settings of. */
  private foundSeen = 0;
  private fitTimer: ReturnType<typeof setTimeout> | null = null;
  private envSeen = false;
  /** Whether the run open before a reload was looked for (once, when the list first comes). */
  private reopenTried = false;

  override connectedCallback(): void {
    super.connectedCallback();
    this.readLink();
    window.addEventListener('hashchange', this.onHash);
  }

  override disconnectedCallback(): void {
    window.removeEventListener('hashchange', this.onHash);
    super.disconnectedCallback();
  }

  private onHash = () => this.readLink();

  /** A share link in the address (#v=1&preset=...) sets the preset, config and bundled data. */
  private readLink(): void {
    const hash = location.hash.slice(1);
    if (!hash) return;
    try {
      const spec = decodeShareLink(hash);
      this.preset = spec.preset;
      this.config = { ...spec.config };
      if (spec.data?.kind === 'bundled') {
        this.dataChoice = spec.data.id;
        this.wantFile = null;
      } else if (spec.data?.kind === 'file') {
        this.wantFile = spec.data;
        this.dataChoice = 'file';
        this.lastFile = null;
      }
      this.shared = spec.results ?? null;
      this.linkError = null;
      this.lab.resetScale();
    } catch (e) {
      const err = e as { message: string; hint?: string };
      this.linkError = { message: `This link could not be opened: ${err.message}`, hint: err.hint ?? 'ask for a new link' };
    }
  }

  // ---- derived state ----

  /** The settings as the panel shows them are valid: no field in red, nothing between fields. */
  private get valid(): boolean {
    return this.formValid && validate(this.config).length === 0;
  }

  private spec(): RunSpec {
    const source = this.chosenSource();
    const data = this.lab.data?.ref ?? (source?.kind === 'bundled' ? source : null);
    return { preset: this.preset, config: { ...this.config }, data };
  }

  /** This config as a share link (on this page's address: never with kiln serve's token, which the controller took out of it). */
  private configLink(): string {
    return `${location.origin}${location.pathname}#${encodeShareLink(this.spec())}`;
  }

  private command(): string {
    return `npx ${cliCommand(this.spec(), this.configLink())}`;
  }

  /** The preset's known loss levels, drawn only over its own dataset (names' bigram means nothing on another text). */
  private references(): ReferenceLine[] {
    const preset = this.lab.run?.spec.preset ?? this.preset;
    const data = this.lab.run ? this.lab.run.spec.data : this.chosenSource();
    const own = data?.kind === 'bundled' && data.id === PRESET_DATASETS[preset];
    return own ? [...(findPreset(preset)?.references ?? [])] : [];
  }

  /**
   * What dataChoice names: a bundled dataset (its id), the person's file ('file': the one
   * kept in lastFile, null once it is gone), or a file of kiln serve's --data folder
   * (`server:<path>`).
   */
  private chosenSource(): DataSource | null {
    const c = this.dataChoice;
    if (!c) return null;
    if (c === 'file') return this.lastFile;
    if (c.startsWith(SERVER_CHOICE)) return { kind: 'server', path: c.slice(SERVER_CHOICE.length) };
    return { kind: 'bundled', id: c };
  }

  /** The person chose a text of their own (a file, or one of kiln serve's --data folder): a preset does not replace it. */
  private get ownData(): boolean {
    return this.dataChoice === 'file' || !!this.dataChoice?.startsWith(SERVER_CHOICE);
  }

  override willUpdate(): void {
    // A run the controller found open on kiln serve (this tab was reloaded, or another tab made it): its settings become the page's.
    if (this.lab.foundRuns !== this.foundSeen) {
      this.foundSeen = this.lab.foundRuns;
      this.adoptRun();
    }
  }

  override updated(): void {
    const env = this.lab.env;
    if (env && !this.envSeen) {
      this.envSeen = true;
      if (!env.webgpu) this.backend = 'cpu';
    }
    // A reload (or a crash) in the middle of training: the run comes back, opened at its last
    // checkpoint (not trained: Resume is the person's), unless a link in the address names
    // another experiment. A finished run stays in the list: the page starts fresh.
    if (env && this.lab.runs && !this.reopenTried) {
      this.reopenTried = true;
      const id = this.lab.lastOpenRun();
      const rec = this.lab.runs.find((r) => r.id === id);
      if (rec && (rec.phase === 'training' || rec.phase === 'paused') && !this.lab.run && !location.hash) void this.reopen(rec.id);
    }
    // Read the data again when the choice or a setting that shapes its tokens changed.
    const key = `${this.dataChoice}|${DATA_KEYS.map((k) => this.config[k]).join('|')}`;
    // A tab watching kiln serve may not prepare data (the server refuses it); it does once it takes control.
    if (env && !this.lab.watching && this.dataChoice && this.valid && key !== this.preparedFor && !this.lab.busy.has('data')) {
      this.preparedFor = key;
      const source = this.chosenSource();
      if (source) void this.lab.prepareData(source, this.config).then((d) => {
        // A file the process refused (not text, too large, outside --data) is said beside the picker.
        const own = source.kind === 'file' || source.kind === 'server';
        this.fileError = !d && this.lab.error && own ? { message: this.lab.error.message, hint: this.lab.error.hint } : null;
        if (!d && own) {
          this.lab.error = null;
          // The text prepared before (the preset's dataset, an earlier file) is not the one chosen:
          // nothing trains until a text is chosen that reads.
          this.lab.data = null;
        }
        if (!d && source.kind === 'file') this.lastFile = null;
        if (d && source.kind === 'file' && source.expect) this.wantFile = null;
        this.scheduleFit();
      });
    }
  }

  private scheduleFit(): void {
    if (this.fitTimer) clearTimeout(this.fitTimer);
    this.fitTimer = setTimeout(async () => {
      if (!this.valid) return;
      const vocab = this.lab.data?.vocabSize ?? (this.config.tokenizer === 'gpt2' ? 50257 : this.config.tokenizer === 'bpe' ? this.config.bpeVocab : 65);
      this.fit = (await this.lab.checkConfig(this.config, vocab, this.backend)) ?? null;
    }, 120);
  }

  // ---- events from the elements ----

  private onConfig(e: CustomEvent<{ preset: string; config: RunConfig; valid: boolean }>): void {
    const presetChanged = e.detail.preset !== this.preset;
    this.preset = e.detail.preset;
    this.config = e.detail.config;
    this.formValid = e.detail.valid;
    if (presetChanged && !this.ownData) this.dataChoice = PRESET_DATASETS[this.preset] ?? this.dataChoice;
    this.lab.resetScale();
    this.scheduleFit();
  }

  /** "Run on a cluster": the `kiln scale` folder of these settings and this text, as a zip. */
  private async onScaleDownload(): Promise<void> {
    const source = this.chosenSource();
    if (!source || !this.valid) return;
    await this.lab.downloadScale(this.spec(), source);
  }

  /** What the settings panel shows of "Run on a cluster" (null where the lab cannot build it: kiln serve). */
  private scaleView(): ScaleView | null {
    if (!this.lab.canScale) return null;
    const waiting = !this.valid ? 'Fix the settings first.' : !this.chosenSource() ? 'Choose the training text first: the zip holds it tokenized.'
      : this.lab.busy.has('data') ? 'Reading the training text…' : null;
    return { ...this.lab.scale, ready: waiting === null, waiting };
  }

  private onData(e: CustomEvent<{ source: DataSource }>): void {
    let s = e.detail.source;
    this.fileError = null;
    // The file a link names is checked by its SHA-256 before anything trains on it.
    if (s.kind === 'file' && this.wantFile) s = { ...s, expect: { sha256: this.wantFile.sha256, bytes: this.wantFile.bytes } };
    // Another text than the one a link or an opened run names: a new run starts (a --data file with the same bytes still reopens it).
    if (s.kind === 'bundled' || s.kind === 'server') this.wantFile = null;
    if (s.kind === 'file') this.lastFile = s;
    this.dataChoice = s.kind === 'bundled' ? s.id : s.kind === 'server' ? `${SERVER_CHOICE}${s.path}` : 'file';
    this.preparedFor = '';
    // A second file leaves dataChoice at 'file': the page must still update to read it.
    this.requestUpdate();
  }

  /** Why Train cannot start a run now, in a few words (null: it can). */
  private trainBlocked(): string | null {
    const lab = this.lab;
    if (!lab.env) return lab.served ? 'Connecting to kiln serve…' : 'Looking for a GPU…';
    if (lab.watching) return 'Another tab controls kiln serve: take control to train here.';
    if (!this.valid) return 'Fix the settings marked in red first.';
    if (lab.busy.has('data')) return 'Reading the training text…';
    if (!lab.data) return this.fileError ? 'Choose a text file that reads, or a bundled dataset.' : 'Choose the training text first.';
    if (this.fit && !this.fit.fits) return 'This model does not fit here: see the settings.';
    return null;
  }

  private async onTrain(): Promise<void> {
    if (!this.valid) return;
    this.sampleOut = '';
    this.samplePrompt = '';
    this.shareLink = null;
    // On a phone the open run's cards move to the top (see the styles): go up to them.
    if (window.matchMedia?.('(max-width: 760px)').matches) window.scrollTo({ top: 0 });
    await this.lab.train(this.spec(), this.backend);
  }

  // ---- the run library ----

  /** The page's settings become the opened run's, so Train, Share and the command match it. */
  private adoptRun(): void {
    const r = this.lab.run;
    if (!r) return;
    this.preset = r.spec.preset;
    this.config = { ...r.spec.config };
    const d = r.spec.data;
    // A run on a --data file records it as the user's file: the choice stays that file when it is the text prepared.
    const sameServerFile = d?.kind === 'file' && this.dataChoice?.startsWith(SERVER_CHOICE) && this.lab.data?.ref.kind === 'file' && this.lab.data.ref.sha256 === d.sha256;
    this.dataChoice = d?.kind === 'bundled' ? d.id : sameServerFile ? this.dataChoice : d ? 'file' : this.dataChoice;
    this.wantFile = d?.kind === 'file' && !r.data ? d : null;
    this.preparedFor = `${this.dataChoice}|${DATA_KEYS.map((k) => this.config[k]).join('|')}`;
    this.sampleOut = '';
    this.shareLink = null;
    this.scheduleFit();
  }

  private async reopen(id: string): Promise<void> {
    if (await this.lab.openRun(id, this.backend)) this.adoptRun();
  }

  private async onOpenRun(e: CustomEvent<RunIdDetail>): Promise<void> {
    const rec = this.lab.runs?.find((r) => r.id === e.detail.id);
    const info = await this.lab.openRun(e.detail.id, this.backend);
    if (!info) return;
    this.adoptRun();
    // "Resume" in the list: an interrupted or paused run goes on training at once when its data is here.
    const st = this.lab.status;
    // Not a folder another kiln is writing, nor a scaled run (torchrun trains it): those open to look at and sample.
    const trainable = !rec?.source?.busy && !rec?.source?.readOnly;
    if (rec && trainable && (rec.phase === 'training' || rec.phase === 'paused') && info.data && st && st.step < st.stopAt) await this.lab.resume();
  }

  private async openEarlier(): Promise<void> {
    const f = this.lab.openFailure;
    if (!f) return;
    if (await this.lab.openRun(f.id, this.backend, f.step)) this.adoptRun();
  }

  private async onBranch(e: CustomEvent<BranchConfirmDetail>): Promise<void> {
    this.branching = null;
    const d = e.detail;
    if (await this.lab.branch(d.id, d.step, d.config, this.backend, d.name)) this.adoptRun();
  }

  private onCompare(e: CustomEvent<RunCompareDetail>): void {
    void this.lab.setCompared(e.detail.id, e.detail.on);
  }

  /** The library's runs, the open one as it stands now (its record says how it was at the last save). */
  private listedRuns(): RunRecord[] {
    const runs = this.lab.runs ?? [];
    const st = this.lab.status;
    const id = this.lab.run?.id;
    if (!st || !id) return runs;
    const phase: RunRecord['phase'] | null = st.phase === 'training' || st.phase === 'pausing' ? 'training' : st.phase === 'paused' || st.phase === 'error' ? 'paused'
      : st.phase === 'done' || st.phase === 'stopped' || st.phase === 'ready' ? st.phase : null;
    return runs.map((r) => (r.id === id && phase && r.phase !== phase ? { ...r, phase } : r));
  }

  private comparedIds(): string[] {
    return [...this.lab.compared.keys()].filter((id) => id !== this.lab.run?.id);
  }

  private compareRuns(): CompareRun[] {
    const colors = comparedColors(this.comparedIds(), this.lab.run?.id ?? null);
    return this.comparedIds().map((id) => {
      const rec = this.lab.runs?.find((r) => r.id === id);
      return { id, name: rec?.name ?? 'run', color: colors.get(id) ?? COLORS.reference, rows: this.lab.compared.get(id) ?? [] };
    });
  }

  private compareTable(): CompareTableRun[] {
    const others = this.compareRuns().flatMap((c) => {
      const rec = this.lab.runs?.find((r) => r.id === c.id);
      return rec ? [{ id: c.id, name: c.name, color: c.color, config: rec.spec.config }] : [];
    });
    const r = this.lab.run;
    if (!others.length) return [];
    return r ? [{ id: r.id, name: r.name, color: COLORS.train, config: r.spec.config }, ...others] : others;
  }

  private sharedCurve(): SharedCurve | null {
    const c = this.shared?.curve;
    return c?.length ? { label: `shared run (val${this.shared?.device ? `, ${this.shared.device}` : ''})`, points: c } : null;
  }

  /** The current run as a link: its settings, data and what it reached. */
  private async onShare(): Promise<void> {
    const r = this.lab.run;
    const st = this.lab.status;
    if (!r || !st) return;
    const rows = this.lab.metrics;
    const vals = rows.flatMap((m) => (m.val_loss !== undefined ? [[m.step, m.val_loss] as [number, number]] : []));
    const results: ResultSummary = { steps: st.step, device: r.device };
    if (st.lastLoss !== null) results.trainLoss = st.lastLoss;
    if (st.lastValLoss !== null) results.valLoss = st.lastValLoss;
    if (vals.length) results.curve = reduceCurve(vals, 64);
    const url = `${location.origin}${location.pathname}#${encodeShareLink({ ...r.spec, results })}`;
    let copied = false;
    try {
      await navigator.clipboard.writeText(url);
      copied = true;
    } catch {
      // No clipboard permission (an http page, a denied prompt): the link is shown to copy by hand.
    }
    this.shareLink = { url, copied };
  }

  private async onSample(e: CustomEvent<SampleRequest>): Promise<void> {
    this.sampleOut = '';
    this.samplePrompt = e.detail.prompt;
    await this.lab.sample(e.detail, (t) => {
      this.sampleOut += t;
    });
  }

  private setBackend(b: LabBackendKind): void {
    this.backend = b;
    this.scheduleFit();
  }

  // ---- rendering ----

  private renderRunInfo() {
    const r = this.lab.run;
    if (!r) {
      return html`<section class="card intro" aria-label="How to start">
        <h2>${this.lab.served ? 'Train a GPT on this machine' : 'Train a GPT in your browser'}</h2>
        <ol>
          <li>Choose a dataset on the left, or drop a text file of your own.</li>
          <li>Pick a preset (start with <b>names</b>) and adjust the settings if you like.</li>
          <li>Press <b>Train</b>: the loss falls on the chart and the model's samples appear on the right.</li>
        </ol>
      </section>`;
    }
    const st = this.lab.status;
    const saved = st?.saving ? 'saving…' : st?.savedStep !== null && st?.savedStep !== undefined ? `saved at step ${st.savedStep}` : 'not saved yet';
    return html`<div class="runinfo"><span class="name">${r.name}</span><span>${r.spec.preset}</span><span>${formatCount(r.numParams)} parameters</span>
        <span>${r.backend === 'webgpu' ? 'WebGPU' : 'CPU'} · ${formatBytes(r.memoryBytes)}</span><span>${r.data?.name ?? 'data not loaded'}</span>
        ${r.parent ? html`<span>branched from ${r.parent.name} at step ${r.parent.step}</span>` : nothing}<span>${saved}</span>
        <button @click=${this.onShare} title="Copy a link that reproduces this run">Share</button></div>
      ${this.shareLink
        ? html`<div class="share"><input readonly aria-label="Share link" .value=${this.shareLink.url} @focus=${(e: Event) => (e.target as HTMLInputElement).select()} />
            <span>${this.shareLink.copied ? 'Copied' : 'Copy this link'}</span></div>`
        : nothing}`;
  }

  override render() {
    const lab = this.lab;
    const st = lab.status;
    const training = st?.phase === 'training' || st?.phase === 'pausing';
    const env = lab.env;
    const watching = lab.watching;
    const blocked = this.trainBlocked();
    return html`
      <kiln-run-bar .status=${st} .device=${lab.run?.device ?? env?.device ?? (lab.served ? 'connecting to kiln serve…' : 'looking for a GPU…')} ?canTrain=${blocked === null} .blocked=${blocked ?? ''} ?busy=${lab.busy.has('create')}
        ?readOnly=${watching}
        @train=${this.onTrain} @pause=${() => lab.pause()} @resume=${() => lab.resume()} @stop=${() => lab.stop()}
        @extend=${(e: CustomEvent<ExtendDetail>) => lab.extend(e.detail.steps, { schedule: e.detail.schedule })}
        @recover=${() => lab.recover()}></kiln-run-bar>
      <kiln-banners .env=${env} .status=${st} .served=${lab.served} .error=${lab.error} .openFailure=${lab.openFailure} .linkError=${this.linkError}
        .shared=${this.shared} ?watching=${watching} ?controlBusy=${lab.busy.has('control')}
        @take-control=${() => lab.takeControl()} @open-earlier=${this.openEarlier} @save-now=${() => lab.save()}
        @recover=${() => lab.recover()}></kiln-banners>
      <main class=${lab.run ? 'has-run' : ''}>
        <div class="left">
          <section class="card runs" aria-label="Runs">
            ${lab.storageError
              ? html`<h2>Runs</h2><div class="muted">${lab.storageError.message}. ${sentence(lab.storageError.hint)}</div>`
              : html`<kiln-run-list .runs=${this.listedRuns()} .currentId=${lab.run?.id ?? null} .currentStep=${lab.run ? st?.step ?? null : null} .compared=${this.comparedIds()} .usage=${lab.usage} .where=${lab.served ? 'disk' : 'site'}
                  .persisted=${lab.persisted} ?busy=${lab.busy.has('library') || training || watching}
                  @run-open=${this.onOpenRun} @run-rename=${(e: CustomEvent<RunRenameDetail>) => lab.renameRun(e.detail.id, e.detail.name)}
                  @run-delete=${(e: CustomEvent<RunIdDetail>) => lab.deleteRun(e.detail.id)} @run-download=${(e: CustomEvent<RunIdDetail>) => lab.download(e.detail.id)}
                  @run-branch=${(e: CustomEvent<RunIdDetail>) => (this.branching = lab.runs?.find((r) => r.id === e.detail.id) ?? null)}
                  @run-compare=${this.onCompare}
                  .importError=${lab.importError}
                  @run-import=${(e: CustomEvent<RunImportDetail>) => lab.importCheckpoint(e.detail.fileName, e.detail.bytes)}></kiln-run-list>`}
            ${lab.served ? html`<p class="muted served-store">Runs are saved in kiln serve's --out folder on this machine.</p>` : nothing}
          </section>
          <section class="card" aria-label="Training data">
            ${this.wantFile
              ? html`<div class="banner warn" style="margin:0 0 10px" role="status"><b>This run trains on your file ${this.wantFile.name} (${formatBytes(this.wantFile.bytes)}).</b>
                  Open that file below: it is checked by its SHA-256 (${this.wantFile.sha256.slice(0, 12)}…) before anything trains on it.</div>`
              : nothing}
            <kiln-data-picker .selected=${this.dataChoice} .summary=${lab.data} .serverFiles=${lab.dataFiles} ?busy=${lab.busy.has('data')}
              .progress=${lab.progress && lab.progress.what === 'tokenizer' ? { done: lab.progress.done, total: lab.progress.total } : null}
              .error=${this.fileError} @data-choose=${this.onData}></kiln-data-picker>
          </section>
          <section class="card" aria-label="Where to train">
            <h2>Device</h2>
            <div class="backend" role="radiogroup" aria-label="Backend">
              <label><input type="radio" name="backend" .checked=${this.backend === 'webgpu'} ?disabled=${!env?.webgpu || training || watching}
                @change=${() => this.setBackend('webgpu')} />${env?.gpuApi === 'cuda' ? 'CUDA' : 'WebGPU'}</label>
              <label><input type="radio" name="backend" .checked=${this.backend === 'cpu'} ?disabled=${training || watching}
                @change=${() => this.setBackend('cpu')} />CPU (reference, slow)</label>
            </div>
            <div class="muted">${env ? (env.webgpu ? env.device : 'no WebGPU adapter') : lab.served ? 'connecting to kiln serve…' : 'looking for a GPU…'}${env && lab.served ? ' (kiln serve, this machine)' : ''}</div>
          </section>
          <section class="card" aria-label="Model and training settings">
            <kiln-config-panel .preset=${this.preset} .config=${this.config} .fit=${this.fit} .backend=${this.backend} .env=${env}
              .cliCommand=${this.valid ? this.command() : ''} .link=${this.valid ? this.configLink() : ''} ?served=${!!lab.served} ?disabled=${training || watching} .scale=${this.scaleView()}
              @config-change=${this.onConfig} @scale-download=${this.onScaleDownload}></kiln-config-panel>
          </section>
        </div>
        <div class="center">
          ${this.renderRunInfo()}
          <section class="card loss" aria-label="Loss">
            <kiln-loss-chart .metrics=${lab.metrics} .plannedSteps=${st?.stopAt || this.config.steps} .referenceLines=${this.references()} .compare=${this.compareRuns()} .sharedCurve=${this.sharedCurve()}
              .smoothing=${this.chart.smoothing} ?logY=${this.chart.logY} ?logX=${this.chart.logX}
              @chart-settings=${(e: CustomEvent<{ smoothing: number; logY: boolean; logX: boolean }>) => (this.chart = e.detail)}></kiln-loss-chart>
          </section>
          ${this.compareTable().length
            ? html`<section class="card compare" aria-label="Compared settings"><kiln-compare-table .runs=${this.compareTable()}></kiln-compare-table></section>`
            : nothing}
          <section class="card metrics" aria-label="Training metrics">
            <kiln-metric-charts .metrics=${lab.metrics} ?logX=${this.chart.logX}></kiln-metric-charts>
          </section>
        </div>
        <div class="right">
          <section class="card samples">
            <kiln-sample-panel ?ready=${!!lab.run && st?.phase !== 'preparing' && !watching} ?busy=${lab.busy.has('sample')} .output=${this.sampleOut}
              .outputPrompt=${this.samplePrompt} .samples=${lab.samples} @sample-request=${this.onSample}></kiln-sample-panel>
          </section>
        </div>
      </main>
      <kiln-branch-dialog .run=${this.branching} .steps=${this.branching?.checkpoints.map((c) => c.step) ?? []}
        @branch-confirm=${this.onBranch} @branch-cancel=${() => (this.branching = null)}></kiln-branch-dialog>
    `;
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'kiln-app': KilnApp;
  }
}
