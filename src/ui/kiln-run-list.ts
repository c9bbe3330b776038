// <kiln-run-list>: the run library on the left of the lab. Each saved run as a card: its
// name (renamed in place), preset, how far it trained, its best val loss, its size on
// disk, when it last changed, where it came from (a branch, an imported file) and how it
// last stood; and what can be done with it: open or resume it, show it on the loss chart,
// download its checkpoint, branch from it, delete it (after an inline confirm). At the
// bottom, how much of the browser's storage the library takes and whether the browser
// may clear it. Everything arrives as properties and leaves as events; the parent talks
// to the worker.
import { LitElement, css, html, nothing, type PropertyValues } from 'lit';
import { customElement, property, state } from 'lit/decorators.js';
import { formatBytes } from '../core/model-spec.ts';
import type { RunRecord, StorageUsage } from '../core/run-record.ts';
import { COLORS } from './chart-theme.ts';
import { fmtLoss, sentence } from './format.ts';
import { hostStyles } from './host-styles.ts';
import { comparedColors, runColor } from './run-colors.ts';

/** detail of `run-open`, `run-download`, `run-branch` and `run-delete`. */
export interface RunIdDetail {
  id: string;
}

/** detail of `run-rename`. */
export interface RunRenameDetail {
  id: string;
  name: string;
}

/** detail of `run-compare`: show (on) or hide the run's curves on the loss chart. */
export interface RunCompareDetail {
  id: string;
  on: boolean;
}

/** detail of `run-import`: a `.safetensors` file the person picked. */
export interface RunImportDetail {
  fileName: string;
  bytes: Uint8Array;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * When something happened, as a person says it: "just now", "5 min ago", "3 h ago" (today),
 * "yesterday", "12 Mar", "12 Mar 2024" (another year). Days are the local calendar's.
 */
export function relativeTime(ms: number, now: number): string {
  if (!Number.isFinite(ms) || !Number.isFinite(now)) return '';
  const d = now - ms;
  if (d < 60_000) return 'just now';
  if (d < 3_600_000) return `${Math.floor(d / 60_000)} min ago`;
  const today = new Date(now);
  const startOfToday = new Date(today.getFullYear(), today.getMonth(), today.getDate()).getTime();
  if (ms >= startOfToday) return `${Math.floor(d / 3_600_000)} h ago`;
  if (ms >= new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1).getTime()) return 'yesterday';
  const then = new Date(ms);
  const day = `${then.getDate()} ${MONTHS[then.getMonth()]}`;
  return then.getFullYear() === today.getFullYear() ? day : `${day} ${then.getFullYear()}`;
}

export type PhaseTone = 'training' | 'interrupted' | 'paused' | 'stopped' | 'done' | 'ready';

/**
 * How a saved run stands, as its badge says it. A run saved as 'training' that is not the
 * open one was cut off (the page closed or crashed mid-run): "interrupted".
 */
export function phaseBadge(run: Pick<RunRecord, 'id' | 'phase' | 'source'>, currentId: string | null): PhaseTone {
  // A folder another kiln is writing now (kiln serve lists it) is training, not cut off.
  if (run.source?.busy) return 'training';
  if (run.phase === 'training') return run.id === currentId ? 'training' : 'interrupted';
  return run.phase;
}

/**
 * Where the run came from, or null: "branched from NAME at step N", "imported from FILE";
 * for a folder kiln serve lists but did not write, "from kiln train" or "from kiln scale,
 * trained by torchrun", with who is writing it and what is wrong with it.
 */
export function provenance(run: Pick<RunRecord, 'parent' | 'imported' | 'source'>): string | null {
  const src = run.source;
  if (src) {
    const parts = [src.kind === 'train' ? `from kiln train (${src.folder})` : `from kiln scale (${src.folder}), trained by torchrun: read-only here`];
    if (src.busy) parts.push(src.busy);
    if (src.problem) parts.push(src.problem);
    return parts.join(' · ');
  }
  if (run.parent) return `branched from ${run.parent.name} at step ${run.parent.step.toLocaleString('en-US')}`;
  if (run.imported) return `imported from ${run.imported.fileName}`;
  return null;
}

/** "Runs use 12.3 MiB · 45 MiB of 2.1 GiB used by this site" (the parts that are known). */
export function storageLine(u: StorageUsage, where: 'site' | 'disk' = 'site'): string {
  let line = `Runs use ${formatBytes(u.runsBytes)}`;
  if (u.datasetsBytes > 0) line += `, your texts ${formatBytes(u.datasetsBytes)}`;
  // kiln serve's runs are files on its disk: what is left there, not a browser quota.
  if (where === 'disk') return u.usage !== null && u.quota !== null ? `${line} · ${formatBytes(Math.max(0, u.quota - u.usage))} free on this disk` : line;
  if (u.usage !== null && u.quota !== null) line += ` · ${formatBytes(u.usage)} of ${formatBytes(u.quota)} used by this site`;
  else if (u.usage !== null) line += ` · ${formatBytes(u.usage)} used by this site`;
  return line;
}

/** What navigator.storage.persisted() means for the runs, or '' when unknown. */
export function persistenceLine(persisted: boolean | null): string {
  if (persisted === null) return '';
  return persisted ? 'Storage is persistent' : 'The browser may clear this storage when space runs low';
}

/** Whether the run's Open button continues training (it stopped short of its end) or only opens it. */
function resumable(run: RunRecord, tone: PhaseTone): boolean {
  if (run.source?.readOnly || run.source?.busy) return false;
  return (tone === 'paused' || tone === 'interrupted') && run.step < run.spec.config.steps;
}

@customElement('kiln-run-list')
export class KilnRunList extends LitElement {
  static override styles = [hostStyles, css`
    * { box-sizing: border-box; }
    button, input { font: inherit; color: inherit; }
    button:focus-visible, input:focus-visible { outline: 2px solid #1f6feb; outline-offset: 1px; }
    .head { display: flex; align-items: center; gap: 8px; margin: 0 0 8px; }
    h2 { flex: 1; min-width: 0; margin: 0; font-size: 14px; font-weight: 600; }
    h2 .count { color: #6b6259; font-weight: 400; margin-left: 4px; }
    .import-error { margin: 0 0 8px; padding: 6px 8px; border-left: 3px solid #b3261e; background: #fff7f6; font-size: 12.5px; color: #5a1d17; overflow-wrap: anywhere; }
    .import-error b { color: #8c1d18; }
    .btn {
      padding: 3px 10px; min-height: 28px; border: 1px solid #cfc7bd; border-radius: 6px;
      background: #fff; cursor: pointer; white-space: nowrap; font-size: 12.5px;
    }
    .btn:hover:not(:disabled) { background: #f4efe9; }
    .btn:disabled { opacity: 0.45; cursor: default; }
    .btn.primary { background: #c2571a; border-color: #a9480f; color: #fff; font-weight: 600; }
    .btn.primary:hover:not(:disabled) { background: #a9480f; }
    .btn.danger { color: #8c1d15; }
    .btn.danger-solid { background: #b3261e; border-color: #8c1d15; color: #fff; font-weight: 600; }
    .btn.danger-solid:hover:not(:disabled) { background: #8c1d15; }
    input[type='file'] { display: none; }
    .empty { margin: 0; padding: 12px 10px; border: 1px dashed #d6cfc6; border-radius: 8px; color: #6b6259; font-size: 12.5px; text-align: center; }

    ul { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: 6px; }
    li {
      min-width: 0; padding: 8px 10px; border: 1px solid #e3ded7; border-radius: 8px; background: #fff;
    }
    li.current { border-color: #c2571a; background: #fdf6f1; box-shadow: inset 0 0 0 1px #c2571a; }
    .top { display: flex; align-items: center; gap: 6px; min-width: 0; }
    .show { display: inline-flex; align-items: center; gap: 4px; flex: none; cursor: pointer; }
    .show input { margin: 0; width: 14px; height: 14px; cursor: pointer; }
    .show.open { cursor: default; }
    /* The open run has no toggle (it is always on the chart): a box of the checkbox's size keeps the names in line. */
    .show .pin { display: inline-block; width: 14px; }
    .swatch { display: inline-block; width: 12px; height: 4px; border-radius: 2px; }
    .name { flex: 1; min-width: 0; font-weight: 600; font-size: 13.5px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
    .rename input { width: 100%; min-width: 0; height: 26px; padding: 2px 6px; border: 1px solid #c2571a; border-radius: 5px; background: #fff; font-weight: 600; }
    .rename { flex: 1; min-width: 0; }
    .icon {
      flex: none; display: inline-flex; align-items: center; justify-content: center; width: 24px; height: 24px;
      padding: 0; border: 0; border-radius: 5px; background: none; color: #6b6259; cursor: pointer;
    }
    .icon:hover:not(:disabled) { background: #f4efe9; color: #222; }
    .icon:disabled { opacity: 0.45; cursor: default; }
    .icon svg { width: 14px; height: 14px; }
    .badge { padding: 0 7px; border-radius: 9px; font-size: 11px; line-height: 17px; }
    .badge.training { background: #f6e7dc; color: #8a3b12; }
    .badge.interrupted { background: #fbe3e0; color: #8c1d15; }
    .badge.paused { background: #fff1d6; color: #6b4a00; }
    .badge.stopped, .badge.ready { background: #efebe6; color: #5a534c; }
    .badge.done { background: #e1f0e5; color: #1e5b33; }
    .meta { display: flex; flex-wrap: wrap; align-items: baseline; gap: 1px 10px; margin-top: 3px; color: #6b6259; font-size: 12px; }
    .meta > span { white-space: nowrap; }
    .meta b { color: #222; font-weight: 600; }
    .from { margin-top: 2px; color: #6b6259; font-size: 12px; overflow-wrap: anywhere; }
    .actions { display: flex; flex-wrap: wrap; align-items: center; gap: 5px; margin-top: 7px; }
    .actions .btn { padding: 2px 8px; min-height: 26px; }
    .actions .spacer { flex: 1; }
    .icon.delete:hover:not(:disabled) { background: #fbe3e0; color: #8c1d15; }
    .confirm {
      margin-top: 7px; padding: 7px 9px; border: 1px solid #e9b8b2; border-left: 3px solid #b3261e;
      border-radius: 6px; background: #fff7f6; color: #5c1410; font-size: 12.5px; overflow-wrap: anywhere;
    }
    .confirm .actions { margin-top: 6px; }
    .storage { margin: 10px 0 0; color: #6b6259; font-size: 12px; line-height: 1.45; }
    .storage p { margin: 0; }
    .storage .warn { color: #6b4a00; }
    .sr-only {
      position: absolute; width: 1px; height: 1px; overflow: hidden;
      clip: rect(0 0 0 0); clip-path: inset(50%); white-space: nowrap;
    }
  `];

  /** The saved runs, in the order to show them (listRuns: most recently updated first). */
  @property({ attribute: false }) runs: readonly RunRecord[] = [];
  /** The open run's id (highlighted; its curves are the chart's own). */
  @property({ attribute: false }) currentId: string | null = null;
  /** The open run's step as it trains (its record holds its last save): its card shows this one. */
  @property({ attribute: false }) currentStep: number | null = null;
  /** Ids of the runs shown on the loss chart beside the open one. */
  @property({ attribute: false }) compared: readonly string[] = [];
  @property({ attribute: false }) usage: StorageUsage | null = null;
  /** navigator.storage.persisted(): null when unknown. */
  @property({ attribute: false }) persisted: boolean | null = null;
  /** An operation on the library is in flight: the actions wait. */
  @property({ type: Boolean }) busy = false;
  /** Why the last checkpoint picked for import was refused (said under the button that picked it), or null. */
  @property({ attribute: false }) importError: { fileName: string; message: string; hint: string } | null = null;
  /** Where the runs are kept: this site's browser storage, or (kiln serve) files on a disk. */
  @property() where: 'site' | 'disk' = 'site';

  /** The run whose name is being edited. */
  @state() private renaming: string | null = null;
  /** The run whose Delete waits for a confirm. */
  @state() private confirming: string | null = null;
  /** Refreshed on every render, so "5 min ago" moves on with the list's updates. */
  private now = Date.now();
  private clock: ReturnType<typeof setInterval> | null = null;

  override connectedCallback(): void {
    super.connectedCallback();
    // "just now" should not stay "just now" for an hour on an idle page.
    this.clock = setInterval(() => this.requestUpdate(), 60_000);
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    if (this.clock) clearInterval(this.clock);
    this.clock = null;
  }

  private fire<T>(name: string, detail: T): void {
    this.dispatchEvent(new CustomEvent<T>(name, { detail, bubbles: true, composed: true }));
  }

  protected override willUpdate(changed: PropertyValues<this>): void {
    this.now = Date.now();
    // A run that left the list takes its rename or confirm with it.
    if (changed.has('runs')) {
      const ids = new Set(this.runs.map((r) => r.id));
      if (this.renaming && !ids.has(this.renaming)) this.renaming = null;
      if (this.confirming && !ids.has(this.confirming)) this.confirming = null;
    }
  }

  protected override updated(changed: PropertyValues): void {
    if (changed.has('renaming') && this.renaming) {
      const input = this.renderRoot.querySelector<HTMLInputElement>('.rename input');
      input?.focus();
      input?.select();
    }
    if (changed.has('confirming') && this.confirming) this.renderRoot.querySelector<HTMLButtonElement>('.confirm .btn.danger-solid')?.focus();
  }

  // ---- rename ----

  private startRename(id: string): void {
    this.confirming = null;
    this.renaming = id;
  }

  private finishRename(run: RunRecord, input: HTMLInputElement, save: boolean): void {
    if (this.renaming !== run.id) return; // Enter already saved; this is the blur that follows
    this.renaming = null;
    const name = input.value.trim();
    if (save && name && name !== run.name) this.fire<RunRenameDetail>('run-rename', { id: run.id, name });
    // Back to the pencil, so the keyboard stays in the card.
    void this.updateComplete.then(() => this.renderRoot.querySelector<HTMLButtonElement>(`[data-rename="${CSS.escape(run.id)}"]`)?.focus());
  }

  private onRenameKey(run: RunRecord, e: KeyboardEvent): void {
    if (e.key === 'Enter') {
      e.preventDefault();
      this.finishRename(run, e.target as HTMLInputElement, true);
    } else if (e.key === 'Escape') {
      e.preventDefault();
      e.stopPropagation();
      this.finishRename(run, e.target as HTMLInputElement, false);
    }
  }

  private cancelDelete(id: string): void {
    this.confirming = null;
    void this.updateComplete.then(() => this.renderRoot.querySelector<HTMLButtonElement>(`[data-delete="${CSS.escape(id)}"]`)?.focus());
  }

  // ---- import ----

  private async onFile(e: Event): Promise<void> {
    const input = e.target as HTMLInputElement;
    const file = input.files?.[0];
    // Cleared, so that choosing the same file again (after a refusal) fires again.
    input.value = '';
    if (!file) return;
    const bytes = new Uint8Array(await file.arrayBuffer());
    this.fire<RunImportDetail>('run-import', { fileName: file.name, bytes });
  }

  // ---- rendering ----

  private renderName(run: RunRecord) {
    if (this.renaming === run.id) {
      return html`<span class="rename"><input type="text" maxlength="120" .value=${run.name} aria-label="New name for ${run.name}"
        @keydown=${(e: KeyboardEvent) => this.onRenameKey(run, e)}
        @blur=${(e: FocusEvent) => this.finishRename(run, e.target as HTMLInputElement, true)} /></span>`;
    }
    return html`<span class="name" title=${run.name}>${run.name}</span>
      <button type="button" class="icon" data-rename=${run.id} aria-label="Rename ${run.name}" title=${run.source?.readOnly ? `Read-only: ${run.source.readOnly}` : 'Rename'} ?disabled=${this.busy || !!run.source?.readOnly}
        @click=${() => this.startRename(run.id)}>
        <svg viewBox="0 0 16 16" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="1.5" stroke-linejoin="round">
          <path d="M11.2 2.3l2.5 2.5-8.2 8.2-3.1.6.6-3.1z" /><path d="M9.8 3.7l2.5 2.5" />
        </svg>
      </button>`;
  }

  private renderConfirm(run: RunRecord) {
    return html`<div class="confirm" role="group" aria-label="Confirm delete"
        @keydown=${(e: KeyboardEvent) => e.key === 'Escape' && this.cancelDelete(run.id)}>
      Delete <b>${run.name}</b>? Its checkpoints (${formatBytes(run.bytesOnDisk)}) are removed.
      <div class="actions">
        <button type="button" class="btn danger-solid" ?disabled=${this.busy}
          @click=${() => { this.confirming = null; this.fire<RunIdDetail>('run-delete', { id: run.id }); }}>Delete</button>
        <button type="button" class="btn" @click=${() => this.cancelDelete(run.id)}>Cancel</button>
      </div>
    </div>`;
  }

  private renderRun(run: RunRecord, colors: Map<string, string>) {
    const current = run.id === this.currentId;
    const tone = phaseBadge(run, this.currentId);
    const on = current || colors.has(run.id);
    const color = current ? COLORS.train : colors.get(run.id) ?? runColor(run.id);
    const from = provenance(run);
    const saved = run.checkpoints.length > 0;
    const noCheckpoint = saved ? '' : run.source?.problem ? `No checkpoint opens: ${run.source.problem}` : 'No checkpoint saved yet';
    // A scaled run's folder is torchrun's: the lab renames and deletes nothing there.
    const fixed = run.source?.readOnly ? `Read-only: ${run.source.readOnly}` : '';
    const updated = new Date(run.updatedAt);
    return html`<li class=${current ? 'current' : ''} aria-current=${current ? 'true' : 'false'}>
      <div class="top">
        ${current
          ? html`<span class="show open" title="The open run is always on the chart"><span class="pin"></span>
              <span class="swatch" style="background: ${color}"></span><span class="sr-only">(open, on the chart)</span></span>`
          : html`<label class="show" title="Show on the loss chart">
              <input type="checkbox" .checked=${on} style="accent-color: ${color}" aria-label="Show ${run.name} on the loss chart"
                @change=${(e: Event) => this.fire<RunCompareDetail>('run-compare', { id: run.id, on: (e.target as HTMLInputElement).checked })} />
              <span class="swatch" style="background: ${color}" aria-hidden="true"></span>
            </label>`}
        ${this.renderName(run)}
      </div>
      <div class="meta">
        <span class="badge ${tone}">${tone}</span>
        <span>${run.spec.preset}</span>
        <span>step <b>${(current && this.currentStep !== null ? Math.max(run.step, this.currentStep) : run.step).toLocaleString('en-US')}</b> / ${run.spec.config.steps.toLocaleString('en-US')}</span>
        <span>${run.bestValLoss === null ? 'no val yet' : html`best val <b>${fmtLoss(run.bestValLoss)}</b>`}</span>
        <span>${formatBytes(run.bytesOnDisk)}</span>
        <span title=${updated.toLocaleString()}><time datetime=${updated.toISOString()}>${relativeTime(run.updatedAt, this.now)}</time></span>
      </div>
      ${from ? html`<div class="from">${from}</div>` : nothing}
      ${this.confirming === run.id
        ? this.renderConfirm(run)
        : html`<div class="actions">
            ${current
              ? nothing
              : html`<button type="button" class="btn primary" ?disabled=${this.busy || !saved} title=${noCheckpoint || `Open it, paused at step ${run.step.toLocaleString('en-US')}`}
                  @click=${() => this.fire<RunIdDetail>('run-open', { id: run.id })}>${resumable(run, tone) ? 'Resume' : 'Open'}</button>`}
            <button type="button" class="btn" ?disabled=${this.busy || !saved} title=${noCheckpoint || 'A new run from one of its checkpoints, with other training settings'}
              @click=${() => this.fire<RunIdDetail>('run-branch', { id: run.id })}>Branch…</button>
            <button type="button" class="btn" ?disabled=${this.busy || !saved} title=${noCheckpoint || 'Its newest checkpoint as a .safetensors file (kiln sample, eval and export read it)'}
              @click=${() => this.fire<RunIdDetail>('run-download', { id: run.id })}>Download</button>
            <span class="spacer"></span>
            <button type="button" class="icon delete" data-delete=${run.id} ?disabled=${this.busy || !!fixed} aria-label="Delete ${run.name}" title=${fixed || 'Delete'}
              @click=${() => { this.renaming = null; this.confirming = run.id; }}>
              <svg viewBox="0 0 16 16" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="1.4" stroke-linecap="round" stroke-linejoin="round">
                <path d="M2.5 4h11M6.5 4V2.5h3V4M4 4l.7 9.5h6.6L12 4M6.8 6.5v4.5M9.2 6.5v4.5" />
              </svg>
            </button>
          </div>`}
    </li>`;
  }

  private renderStorage() {
    const persist = persistenceLine(this.persisted);
    if (!this.usage && !persist) return nothing;
    return html`<div class="storage">
      ${this.usage ? html`<p>${storageLine(this.usage, this.where).replace(/(\d) (B|KiB|MiB|GiB|TiB)\b/g, '$1\u00a0$2')}</p>` : nothing}
      ${persist ? html`<p class=${this.persisted ? '' : 'warn'}>${persist}</p>` : nothing}
    </div>`;
  }

  override render() {
    const colors = comparedColors(this.compared, this.currentId);
    return html`
      <div class="head">
        <h2>Saved runs${this.runs.length ? html`<span class="count">${this.runs.length}</span>` : nothing}</h2>
        <button type="button" class="btn" ?disabled=${this.busy} title="Add a .safetensors checkpoint (from kiln train, or downloaded) as a run"
          @click=${() => this.renderRoot.querySelector<HTMLInputElement>('input[type=file]')?.click()}>Import checkpoint…</button>
        <input type="file" accept=".safetensors" aria-label="Checkpoint file to import" @change=${this.onFile} />
      </div>
      ${this.importError
        ? html`<p class="import-error" role="alert"><b>${this.importError.fileName} was not imported:</b> ${this.importError.message}. ${sentence(this.importError.hint)}</p>`
        : nothing}
      ${this.runs.length === 0
        ? html`<p class="empty">No saved runs yet. Runs are saved as they train.</p>`
        : html`<ul aria-label="Saved runs">${this.runs.map((r) => this.renderRun(r, colors))}</ul>`}
      ${this.renderStorage()}
    `;
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'kiln-run-list': KilnRunList;
  }
}
