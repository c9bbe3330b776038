// <kiln-update-prompt>: the service worker's two messages, as a small card at the
// bottom of the page. "A new version of Kiln is ready" stays until the person reloads
// or dismisses it: the new version waits (registerType 'prompt'), because reloading by
// itself would end a run that is training. "Kiln works offline now" shows once, after
// the first install, and hides itself. The card sits in a polite live region that is
// always in the page, so a screen reader hears each message when it appears.
import { LitElement, css, html, nothing, svg, unsafeCSS } from 'lit';
import { customElement, property, state } from 'lit/decorators.js';
import { FONT_FAMILY } from './host-styles.ts';
import { registerKilnSW, type KilnSW } from './pwa.ts';

export type UpdatePromptKind = 'update' | 'offline' | null;

/** How long "works offline now" stays up (ms). */
const OFFLINE_NOTE_MS = 6000;

/** One registration per page, however often the element is connected. */
let sw: KilnSW | null | undefined;

const glyph = svg`<svg viewBox="0 0 512 512" aria-hidden="true" width="30" height="30">
  <rect width="512" height="512" rx="104" fill="#c2571a"/>
  <path d="M140 392V262a116 116 0 0 1 232 0v130z" fill="#fff8ef"/>
  <rect x="112" y="388" width="288" height="30" rx="8" fill="#fff8ef"/>
  <rect x="226" y="96" width="44" height="72" rx="6" fill="#fff8ef"/>
  <path d="M196 392v-78a60 60 0 0 1 120 0v78z" fill="#7a2f0c"/>
  <path d="M256 384c-30 0-46-22-40-46 5-20 24-30 26-56 19 12 28 31 26 48 10-6 16-16 17-28 20 20 26 44 20 60-6 14-24 22-49 22z" fill="#ffc24a"/>
</svg>`;

@customElement('kiln-update-prompt')
export class KilnUpdatePrompt extends LitElement {
  static override styles = css`
    :host {
      position: fixed; z-index: 1000; right: 16px; bottom: calc(16px + env(safe-area-inset-bottom, 0px));
      width: min(420px, calc(100vw - 32px)); pointer-events: none;
      color: #222; font: 13.5px/1.45 ${unsafeCSS(FONT_FAMILY)};
    }
    .card {
      pointer-events: auto; display: grid; grid-template-columns: auto 1fr auto; gap: 4px 12px; align-items: start;
      background: #fff; border: 1px solid #e3ded7; border-radius: 10px; padding: 12px 10px 12px 14px;
      box-shadow: 0 8px 28px rgba(60, 40, 20, 0.16), 0 1px 3px rgba(60, 40, 20, 0.08);
      animation: rise 160ms ease-out;
    }
    .icon { grid-row: span 2; padding-top: 1px; }
    .icon svg { display: block; border-radius: 7px; }
    .title { font-weight: 600; margin: 0; }
    .text { grid-column: 2; margin: 0; color: #6b6259; font-size: 12.5px; }
    .actions { grid-column: 2; display: flex; gap: 8px; margin-top: 8px; }
    button { font: inherit; font-size: 13.5px; border-radius: 6px; cursor: pointer; }
    .reload { padding: 5px 14px; min-height: 32px; background: #c2571a; border: 1px solid #a9480f; color: #fff; font-weight: 600; }
    .reload:hover:not(:disabled) { background: #a9480f; }
    .reload:disabled { opacity: 0.6; cursor: default; }
    .close {
      grid-column: 3; grid-row: 1; width: 28px; height: 28px; margin: -4px 0 0; padding: 0; border: 0; background: none;
      color: #6b6259; font-size: 20px; line-height: 28px; text-align: center;
    }
    .close:hover { background: #f4efe9; color: #222; }
    button:focus-visible { outline: 2px solid #1f6feb; outline-offset: 1px; }
    @keyframes rise { from { transform: translateY(8px); opacity: 0; } to { transform: none; opacity: 1; } }
    @media (prefers-reduced-motion: reduce) { .card { animation: none; } }
    @media (max-width: 520px) {
      :host { left: 10px; right: 10px; bottom: calc(10px + env(safe-area-inset-bottom, 0px)); width: auto; }
    }
  `;

  /** Which message shows: a waiting new version, the first offline install, or none. */
  @property({ reflect: true }) kind: UpdatePromptKind = null;
  @state() private reloading = false;
  private hideTimer: ReturnType<typeof setTimeout> | null = null;

  override connectedCallback(): void {
    super.connectedCallback();
    if (sw === undefined) {
      sw = registerKilnSW({
        onNeedRefresh: () => this.show('update'),
        onOfflineReady: () => this.show('offline'),
      });
    }
  }

  override disconnectedCallback(): void {
    this.clearTimer();
    super.disconnectedCallback();
  }

  /** Shows a message; a waiting update is never replaced by the offline note. */
  show(kind: Exclude<UpdatePromptKind, null>): void {
    if (kind === 'offline' && this.kind === 'update') return;
    this.clearTimer();
    this.kind = kind;
    if (kind === 'offline') this.hideTimer = setTimeout(() => this.dismiss(), OFFLINE_NOTE_MS);
  }

  dismiss(): void {
    this.clearTimer();
    this.kind = null;
  }

  private clearTimer(): void {
    if (this.hideTimer) clearTimeout(this.hideTimer);
    this.hideTimer = null;
  }

  private async reload(): Promise<void> {
    this.reloading = true;
    // The waiting service worker activates, takes control, and the page reloads.
    if (sw) await sw.update();
    else location.reload();
  }

  private renderCard() {
    const update = this.kind === 'update';
    return html`<div class="card">
      <span class="icon">${glyph}</span>
      <p class="title">${update ? 'A new version of Kiln is ready' : 'Kiln works offline now'}</p>
      <button class="close" type="button" aria-label="Dismiss" title="Dismiss" @click=${() => this.dismiss()}>×</button>
      <p class="text">${update
        ? 'Reloading ends a run that is training: reload when training is paused or done.'
        : 'The lab and its bundled datasets are saved on this device: it opens and trains without a network.'}</p>
      ${update
        ? html`<div class="actions">
            <button class="reload" type="button" ?disabled=${this.reloading} @click=${() => this.reload()}>${this.reloading ? 'Reloading…' : 'Reload'}</button>
          </div>`
        : nothing}
    </div>`;
  }

  override render() {
    return html`<div role="status" aria-live="polite">${this.kind ? this.renderCard() : nothing}</div>`;
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'kiln-update-prompt': KilnUpdatePrompt;
  }
}
