// <kiln-banners>: the lines across the top of the lab, under the run bar: kiln serve's
// connection, a share link that could not be opened, no WebGPU, a software GPU, a failed
// call, a failed save, a shared experiment's results and a stopped run. It draws what its
// properties say and fires an event for each button; the page (kiln-app) acts on them:
// `take-control`, `open-earlier`, `save-now` and `recover`.
import { LitElement, css, html, nothing } from 'lit';
import { customElement, property } from 'lit/decorators.js';
import type { ResultSummary } from '../core/run-spec.ts';
import type { LabEnvironment, LabError, RunStatus } from '../worker/api.ts';
import { fmtLoss as formatLoss, sentence } from './format.ts';
import { bannerStyles } from './host-styles.ts';
import type { ServedState } from './lab-controller.ts';

/** The run a failed open can fall back to (LabController.openFailure). */
export interface OpenFailure {
  id: string;
  name: string;
  step: number;
}

@customElement('kiln-banners')
export class KilnBanners extends LitElement {
  static override styles = [css`:host { display: block; }`, bannerStyles];

  /** The worker's environment (null until it answered). */
  @property({ attribute: false }) env: LabEnvironment | null = null;
  @property({ attribute: false }) status: RunStatus | null = null;
  /** The page's connection to kiln serve, or null (the static lab). */
  @property({ attribute: false }) served: ServedState | null = null;
  /** The last call's failure. */
  @property({ attribute: false }) error: LabError | null = null;
  /** A run that failed to open and the earlier step it can be opened at. */
  @property({ attribute: false }) openFailure: OpenFailure | null = null;
  /** A share link in the address that could not be read. */
  @property({ attribute: false }) linkError: { message: string; hint: string } | null = null;
  /** A share link's results. */
  @property({ attribute: false }) shared: ResultSummary | null = null;
  /** This tab watches kiln serve (another tab controls it): no save or recover. */
  @property({ type: Boolean }) watching = false;
  /** A take-control call is under way. */
  @property({ type: Boolean }) controlBusy = false;

  private emit(name: string): void {
    this.dispatchEvent(new CustomEvent(name, { bubbles: true, composed: true }));
  }

  /** The line that says this page drives `kiln serve`, and whether this tab steers it. */
  private renderServed() {
    const s = this.served;
    if (!s) return nothing;
    if (s.closed) {
      return html`<div class="banner error served" role="alert"><b>${s.closed.message}</b>${sentence(s.closed.hint)}</div>`;
    }
    if (!s.connected) return html`<div class="banner info served" role="status">Connecting to kiln serve on this machine…</div>`;
    return html`<div class="banner info served" role="status"><b>Connected to kiln serve on this machine.</b>
      ${s.controlling
        ? html`Training runs in that process${this.env?.device ? ` on ${this.env.device}` : ''}; closing this tab does not stop it.`
        : html`Another tab controls this run: you are watching.
          <div><button @click=${() => this.emit('take-control')} ?disabled=${this.controlBusy}>Take control</button></div>`}</div>`;
  }

  private renderSharedBanner() {
    const r = this.shared!;
    const parts = [
      r.valLoss !== undefined ? `val ${formatLoss(r.valLoss)}` : null,
      r.trainLoss !== undefined ? `train ${formatLoss(r.trainLoss)}` : null,
      r.steps !== undefined ? `at step ${r.steps}` : null,
      r.device ? `on ${r.device}` : null,
    ].filter((x) => x);
    return html`<div class="banner info" role="status"><b>A shared experiment: ${parts.length ? `the sharer reached ${parts.join(' ')}` : 'its settings are loaded'}.</b>
      ${r.curve?.length ? 'Their validation curve is the dashed line on the chart. ' : ''}Press Train to run it yourself with the same settings and seed.</div>`;
  }

  protected override render() {
    const env = this.env;
    const st = this.status;
    const served = this.served;
    // A call that failed because the connection closed says nothing the closed banner does not.
    const err = this.error && this.error.message !== served?.closed?.message ? this.error : null;
    const where = served ? 'kiln serve' : 'this browser';
    return html`
      ${this.renderServed()}
      ${this.linkError ? html`<div class="banner error" role="alert"><b>${this.linkError.message}</b>${sentence(this.linkError.hint)}</div>` : nothing}
      ${env && !env.webgpu
        ? html`<div class="banner warn" role="alert"><b>No WebGPU in ${where}: training runs on the CPU instead (small models only).</b>${env.webgpuWhy}</div>`
        : nothing}
      ${env?.isSoftware
        ? html`<div class="banner warn"><b>${served ? 'kiln serve\'s' : 'This browser\'s'} GPU is ${env.device.replace(/ \(.*$/, '')}, a CPU emulation.</b>${served
            ? 'Training works but is slow: keep to the tiny and names presets, or run kiln serve on a machine with a GPU driver.'
            : 'Training works but is slow: keep to the tiny and names presets, or open Kiln in a browser with hardware acceleration.'}</div>`
        : nothing}
      ${err ? html`<div class="banner error" role="alert"><b>${err.message}</b>${sentence(err.hint)}
          ${this.openFailure ? html`<div><button @click=${() => this.emit('open-earlier')}>Open “${this.openFailure.name}” at step ${this.openFailure.step}</button></div>` : nothing}</div>` : nothing}
      ${st?.saveError
        ? html`<div class="banner error" role="alert"><b>Saving failed: ${st.saveError.message}</b>${sentence(st.saveError.hint)}
            <div><button ?disabled=${this.watching} @click=${() => this.emit('save-now')}>Save now</button></div></div>`
        : nothing}
      ${this.shared && !this.linkError ? this.renderSharedBanner() : nothing}
      ${st?.phase === 'error' && st.error
        ? html`<div class="banner error" role="alert"><b>Training stopped: ${st.error.message}</b>${sentence(st.error.hint)}
            ${st.recoverable ? html`<div><button ?disabled=${this.watching} @click=${() => this.emit('recover')}>Recover from step ${st.snapshotStep ?? 0}</button></div>` : nothing}</div>`
        : nothing}
    `;
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'kiln-banners': KilnBanners;
  }
}
