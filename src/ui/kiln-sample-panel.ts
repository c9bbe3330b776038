// <kiln-sample-panel>: text from the model. A prompt and the sampling settings
// (temperature, top-k, top-p, length, seed), tokens streaming into the output as they
// are generated, and below it the samples the run takes by itself as it learns.
import { LitElement, css, html, nothing } from 'lit';
import { customElement, property, state } from 'lit/decorators.js';
import type { SampleRequest } from '../worker/api.ts';
import type { LabSample } from './lab-controller.ts';

@customElement('kiln-sample-panel')
export class KilnSamplePanel extends LitElement {
  static override styles = css`
    :host { display: block; font-size: 13px; color: #222; }
    h2 { font-size: 14px; margin: 0 0 8px; font-weight: 600; }
    form { display: grid; grid-template-columns: repeat(auto-fill, minmax(92px, 1fr)); gap: 6px 8px; align-items: end; }
    label { display: flex; flex-direction: column; gap: 2px; color: #5a534c; font-size: 12px; }
    label.prompt { grid-column: 1 / -1; }
    input { font: inherit; font-size: 13px; padding: 5px 6px; border: 1px solid #cfc7bd; border-radius: 6px; background: #fff; min-width: 0; font-variant-numeric: tabular-nums; }
    input[aria-invalid='true'] { border-color: #b3261e; }
    button { font: inherit; font-size: 13px; padding: 6px 12px; border-radius: 6px; border: 1px solid #a9480f; background: #c2571a; color: #fff; font-weight: 600; cursor: pointer; min-height: 32px; }
    button:disabled { opacity: 0.45; cursor: default; }
    button:focus-visible, input:focus-visible { outline: 2px solid #1f6feb; outline-offset: 1px; }
    .out { margin-top: 8px; min-height: 96px; max-height: 260px; overflow: auto; white-space: pre-wrap; word-break: break-word; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; line-height: 1.45; background: #fff; border: 1px solid #e3ded7; border-radius: 6px; padding: 8px 10px; }
    .out .prompt { color: #8a3b12; font-weight: 600; }
    .muted { color: #8c857d; }
    .err { color: #b3261e; margin-top: 4px; }
    h3 { font-size: 12px; margin: 14px 0 6px; color: #5a534c; font-weight: 600; text-transform: uppercase; letter-spacing: 0.04em; }
    ol { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: 6px; }
    li { background: #fff; border: 1px solid #e3ded7; border-radius: 6px; padding: 6px 8px; }
    li .step { color: #8c857d; font-size: 11px; font-variant-numeric: tabular-nums; }
    li pre { margin: 2px 0 0; white-space: pre-wrap; word-break: break-word; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; max-height: 7.5em; overflow: hidden; }
  `;

  /** Whether there is a model to sample from. */
  @property({ type: Boolean }) ready = false;
  @property({ type: Boolean }) busy = false;
  /** The text generated so far by the current request (streamed in by the parent). */
  @property() output = '';
  @property() outputPrompt = '';
  @property({ attribute: false }) samples: LabSample[] = [];
  @state() private prompt = '';
  @state() private temperature = '0.8';
  @state() private topK = '0';
  @state() private topP = '1';
  @state() private length = '200';
  @state() private seed = '1';

  private problems(): Record<string, string> {
    const out: Record<string, string> = {};
    const t = Number(this.temperature), k = Number(this.topK), p = Number(this.topP), n = Number(this.length), s = Number(this.seed);
    if (!(this.temperature.trim() !== '' && t >= 0 && t <= 10)) out.temperature = 'temperature: 0 to 10';
    if (!(Number.isInteger(k) && k >= 0)) out.topK = 'top-k: a whole number, 0 = off';
    if (!(p > 0 && p <= 1)) out.topP = 'top-p: above 0, at most 1';
    if (!(Number.isInteger(n) && n >= 1 && n <= 4096)) out.length = 'length: 1 to 4096 tokens';
    if (!(Number.isInteger(s) && s >= 0 && s <= 0xffffffff)) out.seed = 'seed: a whole number from 0';
    return out;
  }

  private submit(e: Event): void {
    e.preventDefault();
    if (Object.keys(this.problems()).length) return;
    const req: SampleRequest = {
      prompt: this.prompt, temperature: Number(this.temperature), topK: Number(this.topK), topP: Number(this.topP),
      maxTokens: Number(this.length), seed: Number(this.seed),
    };
    this.dispatchEvent(new CustomEvent('sample-request', { detail: req, bubbles: true, composed: true }));
    // The next press gives another text unless the seed is set back by hand.
    this.seed = String((Number(this.seed) + 1) >>> 0);
  }

  private field(key: 'temperature' | 'topK' | 'topP' | 'length' | 'seed', label: string, step: string, bad: Record<string, string>) {
    return html`<label>${label}<input type="number" step=${step} .value=${this[key]} aria-invalid=${bad[key] ? 'true' : 'false'}
      title=${bad[key] ?? ''} @input=${(e: Event) => (this[key] = (e.target as HTMLInputElement).value)} /></label>`;
  }

  override render() {
    const bad = this.problems();
    return html`
      <h2>Sample from the model</h2>
      <form @submit=${this.submit}>
        <label class="prompt">Prompt<input type="text" .value=${this.prompt} placeholder="(empty: start of a line)"
          @input=${(e: Event) => (this.prompt = (e.target as HTMLInputElement).value)} /></label>
        ${this.field('temperature', 'Temperature', '0.05', bad)}
        ${this.field('topK', 'Top-k', '1', bad)}
        ${this.field('topP', 'Top-p', '0.05', bad)}
        ${this.field('length', 'Length', '1', bad)}
        ${this.field('seed', 'Seed', '1', bad)}
        <button type="submit" ?disabled=${!this.ready || this.busy || Object.keys(bad).length > 0}>${this.busy ? 'Sampling…' : 'Generate'}</button>
      </form>
      ${Object.keys(bad).length ? html`<div class="err" role="alert">${Object.values(bad).join('; ')}</div>` : nothing}
      <div class="out" aria-live="polite" aria-label="Generated text">${this.output || this.outputPrompt
        ? html`<span class="prompt">${this.outputPrompt}</span>${this.output}`
        : html`<span class="muted">${this.ready ? 'Press Generate to read what the model writes now.' : 'Train a model, then sample from it here (also while it trains).'}</span>`}</div>
      ${this.samples.length
        ? html`<h3>As it learns</h3><ol aria-label="Samples taken during training">${[...this.samples].reverse().map((s) => html`<li><div class="step">step ${s.step}</div><pre>${s.text}</pre></li>`)}</ol>`
        : nothing}
    `;
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'kiln-sample-panel': KilnSamplePanel;
  }
}
