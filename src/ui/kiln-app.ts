// The lab's shell. For now it shows what this browser offers (WebGPU or not) and the
// presets with their size and memory needs; the training UI (worker, charts, runs)
// arrives with the lab issue, built on the same core modules as the CLI.
import { LitElement, css, html } from 'lit';
import { customElement, state } from 'lit/decorators.js';
import { PRESETS } from '../core/presets.ts';
import { formatBytes, memoryEstimate, modelSpec, resolveModel } from '../core/model-spec.ts';

type GpuStatus = { kind: 'checking' } | { kind: 'none'; why: string } | { kind: 'ok'; name: string; maxBinding: number };

@customElement('kiln-app')
export class KilnApp extends LitElement {
  static override styles = css`
    :host { display: block; max-width: 960px; margin: 0 auto; padding: 24px 16px; }
    h1 { margin: 0 0 4px; font-size: 1.8rem; }
    .sub { color: #555; margin: 0 0 24px; }
    .status { padding: 12px 16px; border-radius: 8px; margin-bottom: 24px; }
    .ok { background: #e6f4ea; }
    .none { background: #fdecea; }
    table { border-collapse: collapse; width: 100%; }
    th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid #e3ded7; font-size: 0.95rem; }
    td.num { text-align: right; font-variant-numeric: tabular-nums; }
    code { background: #eee; padding: 1px 4px; border-radius: 3px; }
  `;

  @state() private gpu: GpuStatus = { kind: 'checking' };

  override connectedCallback(): void {
    super.connectedCallback();
    void this.detect();
  }

  private async detect(): Promise<void> {
    if (!('gpu' in navigator) || !navigator.gpu) {
      this.gpu = { kind: 'none', why: 'This browser does not expose WebGPU (Chrome/Edge 113+, Safari 26, Firefox 141 on Windows do).' };
      return;
    }
    const adapter = await navigator.gpu.requestAdapter();
    if (!adapter) {
      this.gpu = { kind: 'none', why: 'WebGPU is present but found no GPU adapter: check that hardware acceleration is on.' };
      return;
    }
    const info = adapter.info;
    this.gpu = { kind: 'ok', name: [info.vendor, info.architecture, info.description].filter(Boolean).join(' ') || 'GPU', maxBinding: adapter.limits.maxStorageBufferBindingSize };
  }

  private renderGpu() {
    switch (this.gpu.kind) {
      case 'checking':
        return html`<div class="status">Looking for a WebGPU adapter…</div>`;
      case 'none':
        return html`<div class="status none" role="alert">${this.gpu.why}</div>`;
      case 'ok':
        return html`<div class="status ok">WebGPU adapter: <strong>${this.gpu.name}</strong>, up to ${formatBytes(this.gpu.maxBinding)} per binding.</div>`;
    }
  }

  override render() {
    return html`
      <h1>Kiln</h1>
      <p class="sub">Train small GPT models on your own GPU.</p>
      ${this.renderGpu()}
      <p>The in-browser training lab is under construction. Meanwhile the same models train from a terminal:
        <code>npx kiln train --preset names --data names.txt --out runs/names</code>.</p>
      <h2>Presets</h2>
      <table>
        <thead><tr><th>Preset</th><th>Description</th><th>Parameters</th><th>Training memory</th></tr></thead>
        <tbody>
          ${PRESETS.map((p) => {
            const model = resolveModel(p.config, p.config.tokenizer === 'gpt2' ? 50257 : p.config.tokenizer === 'bpe' ? p.config.bpeVocab : 65);
            return html`<tr><td>${p.name}</td><td>${p.description}</td>
              <td class="num">${modelSpec(model).numParams.toLocaleString('en-US')}</td>
              <td class="num">${formatBytes(memoryEstimate(model, p.config.batchSize).total)}</td></tr>`;
          })}
        </tbody>
      </table>
    `;
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'kiln-app': KilnApp;
  }
}
