// <kiln-run-bar>: the controls and the run's status across the top of the lab
// (TensorFlow Playground's bar): Train / Pause / Resume / Stop / Extend, then step,
// loss, val loss, tokens/s, time left and the device. The status line is a polite live
// region, so a screen reader hears the progress without focus moving. `readOnly`: a tab
// watching a run that another tab of `kiln serve` controls shows the status, not the controls.
import { LitElement, css, html, nothing } from 'lit';
import { customElement, property, state } from 'lit/decorators.js';
import type { RunStatus } from '../worker/api.ts';
import { fmtDuration, fmtLoss, fmtRate } from './format.ts';

export interface ExtendDetail {
  steps: number;
  schedule: 'keep' | 'stretch';
}

@customElement('kiln-run-bar')
export class KilnRunBar extends LitElement {
  static override styles = css`
    :host { display: block; background: #fff; border-bottom: 1px solid #e3ded7; }
    .bar { display: flex; flex-wrap: wrap; align-items: center; gap: 8px 16px; padding: 8px 16px; max-width: 1600px; margin: 0 auto; }
    .brand { font-weight: 700; font-size: 18px; letter-spacing: 0.02em; color: #8a3b12; margin-right: 4px; }
    .brand span { font-weight: 400; color: #6b6259; font-size: 13px; margin-left: 6px; }
    .controls { display: flex; gap: 6px; align-items: center; flex-wrap: wrap; }
    button { font: inherit; font-size: 14px; padding: 6px 14px; border-radius: 6px; border: 1px solid #cfc7bd; background: #fff; color: #222; cursor: pointer; min-height: 34px; }
    button:hover:not(:disabled) { background: #f4efe9; }
    button:disabled { opacity: 0.45; cursor: default; }
    button.primary { background: #c2571a; border-color: #a9480f; color: #fff; font-weight: 600; }
    button.primary:hover:not(:disabled) { background: #a9480f; }
    button:focus-visible, input:focus-visible, select:focus-visible { outline: 2px solid #1f6feb; outline-offset: 1px; }
    .extend { display: inline-flex; gap: 4px; align-items: center; }
    .extend input { width: 72px; font: inherit; font-size: 14px; padding: 5px 6px; border: 1px solid #cfc7bd; border-radius: 6px; font-variant-numeric: tabular-nums; }
    .extend select { font: inherit; font-size: 13px; padding: 5px 4px; border: 1px solid #cfc7bd; border-radius: 6px; background: #fff; }
    .status { display: flex; flex-wrap: wrap; gap: 4px 16px; font-size: 13px; color: #4a443e; font-variant-numeric: tabular-nums; margin-left: auto; }
    .status b { color: #222; font-weight: 600; }
    .stat { white-space: nowrap; }
    .stale { color: #8c857d; }
    .phase { text-transform: capitalize; font-weight: 600; color: #8a3b12; }
    .phase.error { color: #b3261e; }
    .why { font-size: 12px; color: #6b645c; max-width: 260px; }
    .device { color: #6b6259; max-width: 260px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
    progress { width: 100%; height: 3px; display: block; appearance: none; border: 0; background: #efe9e2; }
    progress::-webkit-progress-bar { background: #efe9e2; }
    progress::-webkit-progress-value { background: #c2571a; }
    @media (max-width: 700px) { .status { margin-left: 0; width: 100%; } .device { max-width: 100%; } }
  `;

  @property({ attribute: false }) status: RunStatus | null = null;
  /** The device the run trains on (or the adapter found). */
  @property() device = '';
  /** Whether Train can start a run now (data chosen, config valid, a backend). */
  @property({ type: Boolean }) canTrain = false;
  /** Why Train is off (said beside it: a disabled button shows no tooltip), or ''. */
  @property() blocked = '';
  @property({ type: Boolean }) busy = false;
  /** Another tab controls this run (kiln serve): every control is off. */
  @property({ type: Boolean }) readOnly = false;
  /** Train was pressed from the keyboard or the mouse: its focus goes to Pause once training starts, not to the page. */
  private focusPause = false;
  @state() private extendBy = 100;
  @state() private schedule: 'keep' | 'stretch' = 'keep';

  private fire(name: string, detail?: unknown): void {
    this.dispatchEvent(new CustomEvent(name, { detail, bubbles: true, composed: true }));
  }

  private onTrain = (): void => {
    this.focusPause = this.shadowRoot?.activeElement?.classList.contains('primary') ?? false;
    this.fire('train');
  };

  protected override updated(): void {
    const p = this.status?.phase;
    if (!this.focusPause) return;
    if (p === 'training') {
      this.focusPause = false;
      this.renderRoot.querySelector<HTMLButtonElement>('button.pause')?.focus();
    } else if (p === 'error') this.focusPause = false;
  }

  private renderControls() {
    const p = this.status?.phase;
    const training = p === 'training' || p === 'pausing';
    const paused = p === 'paused';
    const ended = p === 'done' || p === 'stopped';
    const extendable = (paused || ended || p === 'training') && !this.readOnly;
    const ro = this.readOnly;
    const why = !training && !this.busy && !ro && !this.canTrain ? this.blocked : '';
    return html`<div class="controls" role="toolbar" aria-label="Training controls" title=${ro ? 'Another tab controls this run' : ''}>
      <button class="primary" ?disabled=${!this.canTrain || training || this.busy} @click=${this.onTrain}
        aria-describedby=${why ? 'train-why' : nothing}
        title=${why || 'Start a new run with these settings'}>${ended || paused || p === 'error' ? 'New run' : 'Train'}</button>
      ${training
        ? html`<button class="pause" ?disabled=${p === 'pausing' || ro} @click=${() => this.fire('pause')}>Pause</button>`
        : html`<button ?disabled=${!paused || ro} @click=${() => this.fire('resume')}>Resume</button>`}
      <button ?disabled=${!(training || paused) || ro} @click=${() => this.fire('stop')}>Stop</button>
      <span class="extend">
        <button ?disabled=${!extendable || this.busy} @click=${() => this.fire('extend', { steps: this.extendBy, schedule: this.schedule } satisfies ExtendDetail)}>Extend</button>
        <input type="number" min="1" max="1000000" step="1" .value=${String(this.extendBy)} aria-label="Steps to extend by"
          @change=${(e: Event) => (this.extendBy = Math.max(1, Math.round(Number((e.target as HTMLInputElement).value)) || 1))} />
        <select aria-label="Learning-rate schedule when extending" @change=${(e: Event) => (this.schedule = (e.target as HTMLSelectElement).value as 'keep' | 'stretch')}>
          <option value="keep" ?selected=${this.schedule === 'keep'}>same schedule</option>
          <option value="stretch" ?selected=${this.schedule === 'stretch'}>stretch decay</option>
        </select>
      </span>
      ${p === 'error' && this.status?.recoverable ? html`<button ?disabled=${ro} @click=${() => this.fire('recover')}>Recover</button>` : nothing}
      ${why ? html`<span class="why" id="train-why">${why}</span>` : nothing}
    </div>`;
  }

  private renderStatus() {
    const s = this.status;
    if (!s) return html`<div class="status" role="status" aria-live="polite"><span class="device" title=${this.device}>${this.device}</span></div>`;
    const staleVal = s.valStep !== null && s.valStep !== s.step;
    // Training, but no step has reported a speed yet: the kernels compile and the first batch runs.
    const starting = s.phase === 'training' && s.tokensPerS === null;
    return html`<div class="status" role="status" aria-live="polite" aria-atomic="false">
      <span class="stat phase ${s.phase === 'error' ? 'error' : ''}" title=${starting ? 'Preparing the GPU kernels and the first batch' : ''}>${starting ? 'starting…' : s.phase}</span>
      <span class="stat">step <b>${s.step.toLocaleString('en-US')}</b> / ${s.stopAt.toLocaleString('en-US')}</span>
      <span class="stat">loss <b>${fmtLoss(s.lastLoss)}</b></span>
      <span class="stat ${staleVal ? 'stale' : ''}" title=${staleVal ? `measured at step ${s.valStep}` : ''}>val <b>${fmtLoss(s.lastValLoss)}</b>${staleVal ? html` <small>@${s.valStep}</small>` : nothing}</span>
      <span class="stat"><b>${fmtRate(s.tokensPerS)}</b> tok/s</span>
      <span class="stat">left <b>${s.phase === 'training' ? fmtDuration(s.etaS) : '–'}</b></span>
      <span class="stat device" title=${this.device}>${this.device}</span>
    </div>`;
  }

  override render() {
    const s = this.status;
    return html`<div class="bar">
        <div class="brand">Kiln<span>GPT training lab</span></div>
        ${this.renderControls()}
        ${this.renderStatus()}
      </div>
      ${s && s.stopAt > 0 ? html`<progress max=${s.stopAt} .value=${s.step} aria-label="Training progress"></progress>` : nothing}`;
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'kiln-run-bar': KilnRunBar;
  }
}
