// <kiln-data-picker>: the training text. A bundled dataset, or the person's own text
// file, chosen with a button or dropped anywhere on the element. The element refuses only
// what it cannot sensibly read (a file over MAX_FILE_BYTES, a drop of several files);
// whether the bytes are text is the worker's call, and its message comes back as `error`.
// After a choice it shows what the worker made of the text (DataSummary), and while the
// worker reads it (BPE training can take a while) a progress bar. A page served by
// `kiln serve --data DIR` also lists the texts of that folder (`serverFiles`), read there
// by the process rather than uploaded.
import { LitElement, css, html, nothing } from 'lit';
import { customElement, property, query, state } from 'lit/decorators.js';
import { live } from 'lit/directives/live.js';
import { BUNDLED_DATASETS } from '../core/datasets.ts';
import { formatBytes } from '../core/model-spec.ts';
import type { DataFile, DataSource, DataSummary } from '../worker/api.ts';
import { hostStyles } from './host-styles.ts';
import { MAX_FILE_BYTES, asSentence, refuseDrop, refuseFile, summaryRows, type Refusal } from './data-choice.ts';

/** detail of the `data-choose` event. */
export interface DataChooseDetail {
  source: DataSource;
}

@customElement('kiln-data-picker')
export class KilnDataPicker extends LitElement {
  static override styles = [hostStyles, css`
    * { box-sizing: border-box; }
    .wrap { position: relative; border-radius: 8px; }
    .wrap.drag { outline: 2px dashed #c2571a; outline-offset: 3px; background: #fdf1e8; }
    .drop-note {
      position: absolute; inset: 0; display: flex; align-items: center; justify-content: center;
      border-radius: 8px; background: rgba(253, 241, 232, 0.92); color: #8a3b12; font-weight: 600;
      pointer-events: none;
    }
    fieldset { margin: 0; padding: 0; border: 0; min-width: 0; }
    legend { padding: 0; margin-bottom: 6px; font-weight: 600; }
    .choices { display: grid; gap: 6px; }
    .choice {
      display: grid; grid-template-columns: auto minmax(0, 1fr) auto; gap: 0 8px; align-items: baseline;
      padding: 7px 10px; border: 1px solid #e3ded7; border-radius: 6px; background: #fff; cursor: pointer;
    }
    .choice:hover { border-color: #cfc7bd; }
    .choice.on { border-color: #c2571a; background: #fdf6f1; box-shadow: inset 0 0 0 1px #c2571a; }
    .choice input { margin: 0; accent-color: #c2571a; align-self: center; }
    .choice:has(input:focus-visible) { outline: 2px solid #1f6feb; outline-offset: 1px; }
    .title { font-weight: 600; min-width: 0; }
    .size { color: #6b645c; font-size: 12px; white-space: nowrap; }
    .desc { grid-column: 2 / -1; color: #6b645c; font-size: 12px; }
    fieldset:disabled .choice { cursor: default; opacity: 0.6; }

    .server { display: grid; gap: 6px; margin-top: 4px; }
    .server-title { font-weight: 600; font-size: 13px; color: #4a443e; }
    .server-list { display: grid; gap: 6px; max-height: 260px; overflow-y: auto; }
    .path { overflow-wrap: anywhere; }

    .file { cursor: default; border-style: dashed; }
    .file .mark {
      width: 13px; height: 13px; border-radius: 50%; border: 1px solid #8d857b; align-self: center;
    }
    .file.on .mark { border: 4px solid #c2571a; }
    .file .row { grid-column: 2 / -1; display: flex; flex-wrap: wrap; align-items: center; gap: 4px 8px; margin-top: 5px; }
    .btn {
      font: inherit; color: inherit; padding: 3px 10px; min-height: 28px; border: 1px solid #cfc7bd;
      border-radius: 5px; background: #fff; cursor: pointer; white-space: nowrap;
    }
    .btn:hover:not(:disabled) { background: #f4efe9; }
    .btn:disabled { opacity: 0.45; cursor: default; }
    .btn:focus-visible { outline: 2px solid #1f6feb; outline-offset: 1px; }
    .or { color: #6b645c; font-size: 12px; }
    input[type='file'] { display: none; }

    .busy { margin-top: 10px; }
    .busy-label { display: flex; justify-content: space-between; gap: 8px; font-size: 12px; color: #4a443e; }
    progress {
      display: block; width: 100%; height: 6px; margin-top: 3px; appearance: none; border: 0;
      border-radius: 3px; background: #efe9e2; overflow: hidden; accent-color: #c2571a;
    }
    progress::-webkit-progress-bar { background: #efe9e2; }
    progress::-webkit-progress-value { background: #c2571a; }

    dl {
      display: grid; grid-template-columns: auto minmax(0, 1fr); gap: 2px 10px;
      margin: 10px 0 0; padding: 8px 10px; border: 1px solid #e3ded7; border-radius: 6px; background: #fff;
    }
    dl.stale { opacity: 0.55; }
    dt { color: #6b645c; }
    dd { margin: 0; min-width: 0; overflow-wrap: anywhere; }

    .alert {
      margin-top: 10px; padding: 7px 10px; border: 1px solid #e9b8b2; border-left: 3px solid #b3261e;
      border-radius: 5px; background: #fff7f6; color: #8c1d15; overflow-wrap: anywhere;
    }
    .alert p { margin: 0; }
    .alert .hint { margin-top: 2px; color: #4a443e; }
  `];

  /** The chosen text: a bundled dataset's id, 'file' for the person's own file, `server:<path>` for one of serverFiles, or null. */
  @property() selected: string | null = null;
  /** What the worker made of the chosen text. */
  @property({ attribute: false }) summary: DataSummary | null = null;
  /** The worker is reading the text: choices wait. */
  @property({ type: Boolean }) busy = false;
  /** Tokenizer training progress (determinate bar when set). */
  @property({ attribute: false }) progress: { done: number; total: number } | null = null;
  /** A text the worker refused (the core's message and hint). */
  @property({ attribute: false }) error: { message: string; hint: string } | null = null;
  /** While a run trains: the text cannot change. */
  @property({ type: Boolean }) disabled = false;
  /** The texts of kiln serve's --data folder (empty in the static lab). */
  @property({ attribute: false }) serverFiles: DataFile[] = [];

  @state() private dragging = false;
  @state() private refusal: Refusal | null = null;
  @query('input[type=file]') private fileInput!: HTMLInputElement;

  /** dragenter minus dragleave: both fire for every child crossed, so only 0 means outside. */
  private depth = 0;

  constructor() {
    super();
    // The whole element is the drop zone.
    this.addEventListener('dragenter', (e) => this.onDragEnter(e));
    this.addEventListener('dragover', (e) => this.onDragOver(e));
    this.addEventListener('dragleave', () => this.onDragLeave());
    this.addEventListener('drop', (e) => void this.onDrop(e));
  }

  private get locked(): boolean {
    return this.busy || this.disabled;
  }

  private choose(source: DataSource): void {
    this.refusal = null;
    // Shown at once, like an input's value; the parent may set it back.
    this.selected = source.kind === 'bundled' ? source.id : source.kind === 'server' ? `server:${source.path}` : 'file';
    this.dispatchEvent(new CustomEvent<DataChooseDetail>('data-choose', { detail: { source }, bubbles: true, composed: true }));
  }

  private async take(file: File): Promise<void> {
    const refused = refuseFile(file.name, file.size);
    if (refused) {
      this.refusal = refused;
      return;
    }
    try {
      const bytes = new Uint8Array(await file.arrayBuffer());
      this.choose({ kind: 'file', name: file.name, bytes });
    } catch (e) {
      this.refusal = {
        message: `${file.name} could not be read (${e instanceof Error ? e.message : String(e)})`,
        hint: 'check that the file is still there and readable, then choose it again',
      };
    }
  }

  private onFileInput(e: Event): void {
    const input = e.target as HTMLInputElement;
    const file = input.files?.[0];
    // Cleared so that choosing the same file again (after editing it) fires change again.
    input.value = '';
    if (file) void this.take(file);
  }

  private carriesFiles(e: DragEvent): boolean {
    return !this.locked && (e.dataTransfer?.types.includes('Files') ?? false);
  }

  private onDragEnter(e: DragEvent): void {
    if (!this.carriesFiles(e)) return;
    e.preventDefault();
    this.depth++;
    this.dragging = true;
  }

  private onDragOver(e: DragEvent): void {
    if (!this.carriesFiles(e)) return;
    // Without preventDefault on dragover the browser refuses the drop.
    e.preventDefault();
    e.dataTransfer!.dropEffect = 'copy';
    this.dragging = true;
  }

  private onDragLeave(): void {
    this.depth = Math.max(0, this.depth - 1);
    if (this.depth === 0) this.dragging = false;
  }

  private async onDrop(e: DragEvent): Promise<void> {
    this.depth = 0;
    this.dragging = false;
    if (this.locked) return;
    e.preventDefault();
    const files = e.dataTransfer?.files;
    const refused = refuseDrop(files?.length ?? 0);
    if (refused) {
      this.refusal = refused;
      return;
    }
    await this.take(files![0]);
  }

  private takeServer(f: DataFile): void {
    const refused = refuseFile(f.path, f.bytes);
    if (refused) {
      this.refusal = { ...refused, hint: 'choose a smaller file, or train on the whole file with kiln train --data FILE' };
      return;
    }
    this.choose({ kind: 'server', path: f.path });
  }

  private renderServerFiles() {
    if (!this.serverFiles.length) return nothing;
    const title = 'On this machine (kiln serve --data)';
    return html`<div class="server" role="group" aria-label=${title}>
      <span class="server-title">${title}</span>
      <div class="server-list">
        ${this.serverFiles.map((f) => {
          const value = `server:${f.path}`;
          return html`<label class="choice ${this.selected === value ? 'on' : ''}">
            <input type="radio" name="data" value=${value} .checked=${live(this.selected === value)} @change=${() => this.takeServer(f)} />
            <span class="title path">${f.path}</span>
            <span class="size">${formatBytes(f.bytes)}</span>
          </label>`;
        })}
      </div>
    </div>`;
  }

  private renderBusy() {
    if (!this.busy) return nothing;
    const p = this.progress;
    const determinate = p !== null && p.total > 0;
    return html`<div class="busy">
      <div class="busy-label">
        <span>${determinate ? 'Training the tokenizer…' : 'Reading the text…'}</span>
        ${determinate ? html`<span>${Math.floor((100 * p.done) / p.total)}%</span>` : nothing}
      </div>
      ${determinate
        ? html`<progress max=${p.total} .value=${p.done} aria-label="Training the tokenizer"></progress>`
        : html`<progress aria-label="Reading the text"></progress>`}
    </div>`;
  }

  private renderSummary() {
    const s = this.summary;
    if (!s) return nothing;
    return html`<dl class=${this.busy ? 'stale' : ''} aria-label="The training text">
      ${summaryRows(s).map(([label, value]) => html`<dt>${label}</dt><dd>${value}</dd>`)}
    </dl>`;
  }

  private renderError() {
    const err = this.refusal ?? this.error;
    if (!err) return nothing;
    return html`<div class="alert" role="alert">
      <p><strong>${err.message}</strong></p>
      ${err.hint ? html`<p class="hint">${asSentence(err.hint)}</p>` : nothing}
    </div>`;
  }

  override render() {
    const fileOn = this.selected === 'file';
    const fileName = fileOn && this.summary ? this.summary.name : null;
    return html`<div class="wrap ${this.dragging ? 'drag' : ''}">
      <fieldset class="choices" ?disabled=${this.locked}>
        <legend>Training text</legend>
        ${BUNDLED_DATASETS.map((d) => html`<label class="choice ${this.selected === d.id ? 'on' : ''}">
          <input type="radio" name="data" value=${d.id} .checked=${live(this.selected === d.id)}
            @change=${() => this.choose({ kind: 'bundled', id: d.id })} />
          <span class="title">${d.title}</span>
          <span class="size">${formatBytes(d.bytes)}</span>
          <span class="desc">${d.description}</span>
        </label>`)}
        <div class="choice file ${fileOn ? 'on' : ''}" role="group" aria-labelledby="file-title">
          <span class="mark" aria-hidden="true"></span>
          <span class="title" id="file-title">Your own text file</span>
          <span class="size">up to ${formatBytes(MAX_FILE_BYTES)}</span>
          <span class="desc">${fileName ? html`Training on <strong>${fileName}</strong>.` : 'UTF-8 text (.txt); it stays on this device.'}</span>
          <span class="row">
            <button type="button" class="btn" ?disabled=${this.locked} @click=${() => this.fileInput.click()}>
              ${fileName ? 'Choose another file…' : 'Choose a file…'}</button>
            <span class="or">or drop one here</span>
          </span>
          <input type="file" accept=".txt,text/plain" tabindex="-1" aria-hidden="true" @change=${(e: Event) => this.onFileInput(e)} />
        </div>
        ${this.renderServerFiles()}
      </fieldset>
      ${this.renderBusy()}
      ${this.renderError()}
      ${this.renderSummary()}
      ${this.dragging ? html`<div class="drop-note" aria-hidden="true">Drop the text file to train on it</div>` : nothing}
    </div>`;
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'kiln-data-picker': KilnDataPicker;
  }
}
