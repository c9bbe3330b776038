// <kiln-config-panel>: the left panel's model and optimisation settings. A preset, then
// every RunConfig field in collapsible sections, checked on every edit with the core's
// own parseField and validate() (the same messages a link or the CLI gives), the fields
// that differ from the preset marked, and the size line the parent computes through the
// worker (ConfigFit). A config over this browser's limits gets the `kiln` command that
// trains it in Node, with a Copy button, and the way to train it with this same UI on
// the machine's own GPU: `kiln serve`, then this config's settings in the tab it opens.
// A model that does not fit also gets "Run on a cluster": the folder `kiln scale` writes,
// as a zip the worker builds (the parent does the building; this element asks for it
// with a `scale-download` event and shows the progress and outcome it is given).
import { LitElement, css, html, nothing, type PropertyValues } from 'lit';
import { customElement, property, state } from 'lit/decorators.js';
import { live } from 'lit/directives/live.js';
import type { FieldKey, FieldSpec, RunConfig } from '../core/config.ts';
import { formatBytes } from '../core/model-spec.ts';
import { sentence } from './format.ts';
import { PRESETS, findPreset } from '../core/presets.ts';
import type { ConfigFit, LabBackendKind, LabEnvironment, LabError, ScaleProgress } from '../worker/api.ts';
import { hostStyles } from './host-styles.ts';
import {
  FORM_SECTIONS, changedFields, editField, fieldText, formatCount, formState, numberStep, presetBase, reconcileDrafts,
  type Drafts, type FieldGroup, type FormState,
} from './config-form.ts';

/** detail of the `config-change` event, sent on every edit and preset change. */
export interface ConfigChangeDetail {
  preset: string;
  config: RunConfig;
  /** validate() found nothing and every field's text parsed. */
  valid: boolean;
}

/** "Run on a cluster" as the parent has it: the zip being built, the last one downloaded, or why it failed. */
export interface ScaleView {
  /** There is a text to tokenize and the settings are valid: the button works. */
  ready: boolean;
  /** Why not yet, in a sentence (null when ready). */
  waiting: string | null;
  building: boolean;
  progress: ScaleProgress | null;
  error: LabError | null;
  done: { fileName: string; bytes: number } | null;
}

/** What the progress line says at each stage of the build. */
function scaleStage(p: ScaleProgress | null): { text: string; value: number | null } {
  const pct = p && p.total > 1 ? p.done / p.total : null;
  const n = pct === null ? '' : ` ${Math.floor(pct * 100)}%`;
  switch (p?.stage) {
    case 'weights': return { text: 'Making the starting weights (Kiln\'s seeded initialisation)…', value: null };
    case 'zip': return { text: `Packing the zip…${n}`, value: pct };
    default: return { text: `Tokenizing the text…${n}`, value: pct };
  }
}

type CopyState = 'idle' | 'copied' | 'selected';
/** The copyable blocks: the kiln train command, the kiln serve command, this config's link settings. */
type CopyWhat = 'train' | 'serve' | 'settings';

const SERVE_COMMAND = 'npx kiln serve --open';

@customElement('kiln-config-panel')
export class KilnConfigPanel extends LitElement {
  static override styles = [hostStyles, css`
    * { box-sizing: border-box; }
    .sr-only {
      position: absolute; width: 1px; height: 1px; overflow: hidden;
      clip: rect(0 0 0 0); clip-path: inset(50%); white-space: nowrap;
    }
    button, input, select { font: inherit; color: inherit; }
    button:focus-visible, input:focus-visible, select:focus-visible {
      outline: 2px solid #1f6feb; outline-offset: 1px;
    }
    select, input[type='number'] {
      width: 100%; min-width: 0; height: 28px; padding: 3px 6px;
      border: 1px solid #cfc7bd; border-radius: 5px; background: #fff;
      font-variant-numeric: tabular-nums;
    }
    select:disabled, input:disabled { background: #f3f0ec; color: #6b645c; }
    input[aria-invalid='true'], select[aria-invalid='true'] { border-color: #b3261e; background: #fff7f6; }
    .btn {
      padding: 3px 10px; min-height: 28px; border: 1px solid #cfc7bd; border-radius: 5px;
      background: #fff; cursor: pointer; white-space: nowrap;
    }
    .btn:hover:not(:disabled) { background: #f4efe9; }
    .btn:disabled { opacity: 0.45; cursor: default; }

    .preset { display: grid; grid-template-columns: minmax(0, 1fr) auto; gap: 4px 8px; align-items: center; }
    .preset label { grid-column: 1 / -1; font-weight: 600; }
    .preset .desc { grid-column: 1 / -1; margin: 0; color: #6b645c; font-size: 12px; }
    .locked { margin: 8px 0 0; font-size: 12px; color: #6b645c; }
    .changed-note { display: flex; align-items: center; gap: 5px; margin: 6px 0 0; font-size: 12px; color: #6b645c; }

    .summary {
      margin: 10px 0 0; padding: 6px 10px; border: 1px solid #e9b8b2; border-left: 3px solid #b3261e;
      border-radius: 5px; background: #fff7f6; color: #8c1d15; font-size: 12px;
    }
    .summary strong { display: block; }
    .summary ul { margin: 2px 0 0; padding: 0; list-style: none; }
    .summary li { margin: 2px 0 0; }
    .summary button {
      padding: 0; border: 0; background: none; color: inherit; text-align: left;
      text-decoration: underline; text-underline-offset: 2px; cursor: pointer;
    }

    section { border-top: 1px solid #e3ded7; }
    section:first-of-type { margin-top: 10px; }
    h3 { margin: 0; font-size: inherit; }
    h3 button {
      display: flex; align-items: center; gap: 6px; width: 100%; padding: 7px 0;
      border: 0; background: none; font-weight: 600; text-align: left; cursor: pointer;
    }
    h3 button:hover { color: #8a3b12; }
    .chev {
      width: 0; height: 0; border-style: solid; border-width: 4px 0 4px 6px;
      border-color: transparent transparent transparent currentColor; transition: transform 0.12s;
    }
    [aria-expanded='true'] .chev { transform: rotate(90deg); }
    .badges { margin-left: auto; display: flex; gap: 6px; font-weight: 400; font-size: 11px; }
    .badge { padding: 0 6px; border-radius: 8px; background: #f6e7dc; color: #8a3b12; }
    .badge.bad { background: #fbe3e0; color: #8c1d15; }

    .grid {
      display: grid; grid-template-columns: repeat(2, minmax(0, 1fr));
      gap: 8px 12px; padding: 0 0 10px;
    }
    .grid[hidden] { display: none; }
    .field { display: flex; flex-direction: column; gap: 2px; min-width: 0; }
    .field > label { display: flex; align-items: center; gap: 4px; color: #4a443e; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
    .field.bool { justify-content: flex-end; }
    .field.changed > label, .field.changed .check { color: #222; font-weight: 600; }
    .dot { flex: none; width: 6px; height: 6px; border-radius: 50%; background: #c2571a; }
    .check { display: flex; align-items: center; gap: 6px; height: 28px; cursor: pointer; }
    .check input { margin: 0; width: 15px; height: 15px; accent-color: #c2571a; }
    .error { color: #b3261e; font-size: 12px; line-height: 1.3; overflow-wrap: anywhere; }

    .size { margin-top: 2px; padding: 8px 0 0; border-top: 1px solid #e3ded7; }
    .size p { margin: 0; }
    .size b { font-weight: 600; }
    .size .stat { white-space: nowrap; }
    .size .limits { margin-top: 2px; color: #6b645c; font-size: 12px; }
    .size.stale { opacity: 0.55; }
    .muted { color: #6b645c; }

    .toobig {
      margin-top: 10px; padding: 8px 10px; border: 1px solid #e9b8b2; border-left: 3px solid #b3261e;
      border-radius: 5px; background: #fff7f6;
    }
    .toobig h4 { margin: 0; font-size: inherit; color: #8c1d15; }
    .toobig ul { margin: 4px 0 6px; padding-left: 18px; }
    .toobig li { margin: 2px 0; }
    .toobig p { margin: 6px 0 4px; }
    .cmd { display: flex; align-items: flex-start; gap: 6px; }
    pre {
      flex: 1; min-width: 0; margin: 0; padding: 6px 8px; border: 1px solid #e3ded7; border-radius: 5px;
      background: #fff; font: 12px/1.35 ui-monospace, 'SF Mono', Menlo, Consolas, monospace;
      white-space: pre-wrap; word-break: break-all; max-height: 9.5em; overflow-y: auto;
    }
    .copied { display: block; min-height: 1.3em; margin-top: 2px; font-size: 12px; color: #6b645c; }

    .cluster { margin: 8px 0; padding: 8px 0; border-top: 1px dashed #e9b8b2; border-bottom: 1px dashed #e9b8b2; }
    .cluster p { margin: 0 0 6px; }
    .btn.zip { font-weight: 600; border-color: #c2571a; color: #8a3b12; }
    .btn.zip:hover:not(:disabled) { background: #fbeee5; }
    .cluster .note { margin: 4px 0 0; color: #6b645c; font-size: 12px; }
    .cluster code { font: 12px ui-monospace, 'SF Mono', Menlo, Consolas, monospace; white-space: nowrap; }
    .building { display: flex; align-items: center; gap: 8px; margin-top: 6px; font-size: 12px; color: #4a443e; }
    .building progress { flex: none; width: 90px; height: 8px; accent-color: #c2571a; }
    .building span { min-width: 0; overflow-wrap: anywhere; }
    .cluster .error { margin: 6px 0 0; }
    .cluster .done { margin: 6px 0 0; font-size: 12px; color: #2f5d2a; overflow-wrap: anywhere; }
  `];

  /** The preset the config started from (its name; an unknown name means a custom config). */
  @property() preset = 'names';
  @property({ attribute: false }) config: RunConfig = presetBase('names');
  /** Sizes and limit problems of `config`, computed by the parent through the worker. */
  @property({ attribute: false }) fit: ConfigFit | null = null;
  @property() backend: LabBackendKind = 'webgpu';
  @property({ attribute: false }) env: LabEnvironment | null = null;
  /** The `kiln train --link ...` command for this config (shown when it does not fit). */
  @property() cliCommand = '';
  /** This config's share link (its #settings are offered for a `kiln serve` tab). */
  @property() link = '';
  /** The page is served by `kiln serve`: the limits are its device's, and it is already the way out. */
  @property({ type: Boolean }) served = false;
  /** "Run on a cluster" (null: not offered here, as under kiln serve). Shown when the model does not fit. */
  @property({ attribute: false }) scale: ScaleView | null = null;
  /** While a run trains: the fields are read-only. */
  @property({ type: Boolean, reflect: true }) disabled = false;

  @state() private drafts: Drafts = {};
  @state() private closed = new Set<FieldGroup>(['cadence', 'data']);
  @state() private copyState: CopyState = 'idle';
  @state() private copied: CopyWhat = 'train';

  /** The config this element last sent: when the parent hands it back, the drafts stay. */
  private sent: RunConfig | null = null;
  /** The validity the parent last heard of (it starts from valid). */
  private sentValid = true;
  private form: FormState = formState(this.config, {});

  protected override willUpdate(changed: PropertyValues<this>): void {
    if (changed.has('config') && this.config !== this.sent) {
      this.drafts = reconcileDrafts(this.drafts, changed.get('config') as RunConfig | undefined, this.config);
    }
    if (changed.has('cliCommand') || changed.has('link')) this.copyState = 'idle';
    this.form = formState(this.config, this.drafts);
  }

  /**
   * A config the parent set (a link, an opened run) may leave a field's draft in red, or
   * clear one: the parent hears of it, so Train follows what the fields show.
   */
  protected override updated(): void {
    if (this.form.valid !== this.sentValid) this.emit();
  }

  private emit(): void {
    this.sent = this.config;
    this.form = formState(this.config, this.drafts);
    this.sentValid = this.form.valid;
    const detail: ConfigChangeDetail = { preset: this.preset, config: this.config, valid: this.form.valid };
    this.dispatchEvent(new CustomEvent<ConfigChangeDetail>('config-change', { detail, bubbles: true, composed: true }));
  }

  private edit(key: FieldKey, text: string): void {
    const next = editField(this.config, this.drafts, key, text);
    this.config = next.config;
    this.drafts = next.drafts;
    this.emit();
  }

  private choosePreset(name: string): void {
    this.preset = name;
    this.config = presetBase(name);
    this.drafts = {};
    this.emit();
  }

  private toggle(group: FieldGroup): void {
    const closed = new Set(this.closed);
    if (!closed.delete(group)) closed.add(group);
    this.closed = closed;
  }

  /** From the summary: open the field's section and put the cursor in it. */
  private async goTo(key: FieldKey): Promise<void> {
    const section = FORM_SECTIONS.find((s) => s.fields.some((f) => f.key === key));
    if (section && this.closed.has(section.group)) this.toggle(section.group);
    await this.updateComplete;
    this.renderRoot.querySelector<HTMLElement>(`#f-${key}`)?.focus();
  }

  private async copy(what: CopyWhat): Promise<void> {
    this.copied = what;
    try {
      await navigator.clipboard.writeText(what === 'train' ? this.cliCommand : what === 'serve' ? SERVE_COMMAND : this.settings());
      this.copyState = 'copied';
    } catch {
      // No clipboard (an insecure origin, a denied permission): select the text instead.
      const pre = this.renderRoot.querySelector(`pre[data-copy=${what}]`);
      const sel = window.getSelection();
      if (pre && sel) sel.selectAllChildren(pre);
      this.copyState = 'selected';
    }
  }

  private renderInput(f: FieldSpec, invalid: boolean, describedBy: string, dot: unknown) {
    const id = `f-${f.key}`;
    const value = this.config[f.key];
    const common = { id, invalid: invalid ? 'true' : 'false' };
    switch (f.kind) {
      case 'bool':
        return html`<label class="check" title=${f.doc}>
          <input id=${common.id} type="checkbox" .checked=${live(value === true)} ?disabled=${this.disabled}
            aria-invalid=${common.invalid} aria-describedby=${describedBy}
            @change=${(e: Event) => this.edit(f.key, String((e.target as HTMLInputElement).checked))} />${f.key}${dot}</label>`;
      case 'enum':
        return html`<select id=${common.id} ?disabled=${this.disabled} title=${f.doc}
          aria-invalid=${common.invalid} aria-describedby=${describedBy}
          @change=${(e: Event) => this.edit(f.key, (e.target as HTMLSelectElement).value)}>
          ${f.values!.map((v) => html`<option value=${v} ?selected=${v === (this.drafts[f.key] ?? fieldText(value))}>${v}</option>`)}
        </select>`;
      default:
        return html`<input id=${common.id} type="number" inputmode=${f.kind === 'int' ? 'numeric' : 'decimal'}
          min=${f.min ?? nothing} max=${f.max ?? nothing} step=${numberStep(f, value as number)}
          .value=${live(this.drafts[f.key] ?? fieldText(value))} ?disabled=${this.disabled} title=${f.doc}
          aria-invalid=${common.invalid} aria-describedby=${describedBy}
          @input=${(e: Event) => this.edit(f.key, (e.target as HTMLInputElement).value)} />`;
    }
  }

  private renderField(f: FieldSpec, base: RunConfig, changed: Set<FieldKey>) {
    const messages = this.form.issues[f.key] ?? [];
    const isChanged = changed.has(f.key);
    const describedBy = messages.length ? `d-${f.key} e-${f.key}` : `d-${f.key}`;
    const dot = isChanged
      ? html`<span class="dot" title="changed from the preset's ${fieldText(base[f.key])}"></span><span class="sr-only">(changed)</span>`
      : nothing;
    return html`<div class="field ${f.kind} ${isChanged ? 'changed' : ''}">
      ${f.kind === 'bool'
        ? nothing
        : html`<label for="f-${f.key}" title=${f.doc}>${f.key}${dot}</label>`}
      ${this.renderInput(f, messages.length > 0, describedBy, dot)}
      <span id="d-${f.key}" class="sr-only">${f.doc}${isChanged ? `; the preset has ${fieldText(base[f.key])}` : ''}</span>
      ${messages.length ? html`<div id="e-${f.key}" class="error">${messages.join(' ')}</div>` : nothing}
    </div>`;
  }

  private renderSections(base: RunConfig, changed: Set<FieldKey>) {
    return FORM_SECTIONS.map((s) => {
      const open = !this.closed.has(s.group);
      const nChanged = s.fields.filter((f) => changed.has(f.key)).length;
      const nBad = s.fields.filter((f) => this.form.issues[f.key]).length;
      return html`<section>
        <h3><button type="button" aria-expanded=${open ? 'true' : 'false'} aria-controls="sec-${s.group}" @click=${() => this.toggle(s.group)}>
          <span class="chev" aria-hidden="true"></span>${s.title}
          <span class="badges">
            ${nBad ? html`<span class="badge bad">${nBad} ${nBad === 1 ? 'problem' : 'problems'}</span>` : nothing}
            ${nChanged ? html`<span class="badge">${nChanged} changed</span>` : nothing}
          </span>
        </button></h3>
        <div class="grid" id="sec-${s.group}" ?hidden=${!open}>${s.fields.map((f) => this.renderField(f, base, changed))}</div>
      </section>`;
    });
  }

  private renderSummary() {
    const list = this.form.list;
    if (!list.length) return nothing;
    return html`<div class="summary" role="status">
      <strong>${list.length} ${list.length === 1 ? 'setting needs' : 'settings need'} fixing:</strong>
      <ul>${list.map((i) => html`<li><button type="button" @click=${() => void this.goTo(i.field)}>${i.message}</button></li>`)}</ul>
    </div>`;
  }

  private renderSize() {
    const fit = this.fit;
    if (!fit) return html`<div class="size muted" aria-live="polite"><p>Sizing the model…</p></div>`;
    const where = this.backend === 'webgpu' ? 'on the GPU' : 'in memory (CPU)';
    const env = this.env;
    return html`<div class="size ${this.form.valid ? '' : 'stale'}" aria-live="polite"
        title=${this.form.valid ? '' : 'These sizes are for the last valid settings'}>
      <p><span class="stat"><b title=${`${fit.numParams.toLocaleString('en-US')} parameters`}>${formatCount(fit.numParams)}</b> parameters</span> ·
        <span class="stat"><b>${formatCount(fit.flopsPerToken)}</b> FLOPs per token</span> ·
        <span class="stat"><b>~${formatBytes(fit.memoryBytes)}</b> ${where}</span></p>
      ${env && this.backend === 'webgpu' && env.webgpu
        ? html`<p class="limits">Largest binding ${fit.largestName} ${formatBytes(fit.largestBinding)}; this adapter allows
            ${formatBytes(env.limits.maxStorageBufferBindingSize)} per binding, ${formatBytes(env.limits.maxBufferSize)} per buffer.</p>`
        : nothing}
    </div>`;
  }

  /** The share link's fragment (#v=1&preset=...): what a `kiln serve` tab's address needs to load this config. */
  private settings(): string {
    const hash = this.link.indexOf('#');
    return hash >= 0 ? this.link.slice(hash) : '';
  }

  private renderCopyable(what: CopyWhat, label: string, text: string) {
    return html`<div class="cmd">
      <pre aria-label=${label} data-copy=${what}><code>${text}</code></pre>
      <button type="button" class="btn" ?disabled=${!text} aria-label="Copy the ${label}" @click=${() => void this.copy(what)}>Copy</button>
    </div>`;
  }

  private renderTooBig() {
    const fit = this.fit;
    if (!fit || (fit.fits && fit.problems.length === 0)) return nothing;
    const settings = this.settings();
    const what = { train: 'The kiln command is copied.', serve: 'The kiln serve command is copied.', settings: 'The settings are copied.' }[this.copied];
    const copied = this.copyState === 'copied' ? what : this.copyState === 'selected' ? 'Selected: press Ctrl+C (⌘C) to copy.' : '';
    return html`<div class="toobig" role="status">
      <h4>${this.served ? "Over the limits of kiln serve's device" : "Over this browser's limits"}</h4>
      ${fit.problems.length ? html`<ul>${fit.problems.map((p) => html`<li>${p.message}</li>`)}</ul>` : nothing}
      <p>${this.served
        ? 'This model is too big for this device. The same config as a kiln command (for another machine, or another backend):'
        : 'This model is too big for this browser: run the same config with the kiln command in Node:'}</p>
      ${this.renderCopyable('train', 'kiln command', this.cliCommand)}
      ${fit.fits ? nothing : this.renderCluster()}
      ${this.served || !settings
        ? nothing
        : html`<p>Or run it on this machine with the lab's UI:</p>
          ${this.renderCopyable('serve', 'kiln serve command', SERVE_COMMAND)}
          <p>then open this config there: add its settings to the end of the address of the tab it opens.</p>
          ${this.renderCopyable('settings', "config's settings", settings)}`}
      <span class="copied" aria-live="polite">${copied}</span>
    </div>`;
  }

  /** "Run on a cluster": the button, what the zip is, and the build's progress or outcome. */
  private renderCluster() {
    const sc = this.scale;
    if (!sc) return nothing;
    const stage = scaleStage(sc.progress);
    return html`<div class="cluster">
      <p>Or on your own GPUs, with PyTorch:</p>
      <button type="button" class="btn zip" ?disabled=${!sc.ready || sc.building || !this.cliCommand} aria-describedby="cluster-note"
        @click=${() => this.dispatchEvent(new CustomEvent('scale-download', { bubbles: true, composed: true }))}>Run on a cluster (.zip)</button>
      <p class="note" id="cluster-note">A folder for PyTorch <code>torchrun</code> on your own GPUs: unzip, then <code>bash run.sh</code> (<code>bash run.sh --fsdp</code> shards a model too big for one GPU).</p>
      ${sc.waiting && !sc.building ? html`<p class="note">${sc.waiting}</p>` : nothing}
      ${sc.building
        ? html`<div class="building" role="status"><progress max="1" value=${stage.value ?? nothing} aria-label="Building the zip"></progress><span>${stage.text}</span></div>`
        : nothing}
      ${sc.error ? html`<p class="error" role="alert"><b>The zip could not be built:</b> ${sc.error.message}. ${sentence(sc.error.hint)}</p>` : nothing}
      ${sc.done && !sc.building ? html`<p class="done" role="status">Downloaded ${sc.done.fileName} (${formatBytes(sc.done.bytes)}).</p>` : nothing}
    </div>`;
  }

  override render() {
    const known = findPreset(this.preset);
    const base = presetBase(this.preset);
    const changed = changedFields(this.config, base);
    return html`
      <div class="preset">
        <label for="preset">Preset</label>
        <select id="preset" ?disabled=${this.disabled} aria-describedby="preset-desc"
          @change=${(e: Event) => this.choosePreset((e.target as HTMLSelectElement).value)}>
          ${known ? nothing : html`<option value=${this.preset} selected>${this.preset || 'custom'}</option>`}
          ${PRESETS.map((p) => html`<option value=${p.name} ?selected=${p.name === this.preset}>${p.name}</option>`)}
        </select>
        <button type="button" class="btn" ?disabled=${this.disabled || (changed.size === 0 && Object.keys(this.drafts).length === 0)}
          @click=${() => this.choosePreset(this.preset)}>Reset to preset</button>
        <p class="desc" id="preset-desc">${known?.description ?? 'Settings not from a preset: compared with the defaults.'}</p>
      </div>
      ${this.disabled ? html`<p class="locked">Settings are fixed while a run trains.</p>` : nothing}
      ${changed.size
        ? html`<p class="changed-note"><span class="dot" aria-hidden="true"></span>${changed.size}
            ${changed.size === 1 ? 'setting differs' : 'settings differ'} from the preset.</p>`
        : nothing}
      ${this.renderSummary()}
      ${this.renderSections(base, changed)}
      ${this.renderSize()}
      ${this.renderTooBig()}
    `;
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'kiln-config-panel': KilnConfigPanel;
  }
}
