// <kiln-metric-charts>: small multiples beside the loss curve: learning rate, gradient
// norm, tokens/s and MFU (when the device's peak is known) against step, and the elapsed
// time. Same `metrics` contract as <kiln-loss-chart>: typed-array columns, one setData per
// plot per animation frame.
import { LitElement, css, html, type PropertyValues } from 'lit';
import { customElement, property, state } from 'lit/decorators.js';
import uPlot from 'uplot';
import type { LabMetrics } from '../worker/api.ts';
import { COLORS, CSS_COLORS, chartStyles, formatElapsed, formatPercentTick, formatStep, formatTick, stepAxis, valueAxis } from './chart-theme.ts';
import { paddedRange, stepRange } from './smoothing.ts';
import { FrameBatcher, RowsSeen, StepTable } from './uplot-columns.ts';

type Key = 'lr' | 'grad_norm' | 'tokens_per_s' | 'mfu';

interface Panel {
  key: Key;
  title: string;
  color: string;
  /** The number in the panel's caption (at the cursor, else the latest). */
  value: (v: number) => string;
  tick: (v: number, incr: number) => string;
}

const PANELS: readonly Panel[] = [
  { key: 'lr', title: 'Learning rate', color: COLORS.lr, value: (v) => v.toExponential(2).replace('e-', 'e\u2212'), tick: formatTick },
  { key: 'grad_norm', title: 'Gradient norm', color: COLORS.gradNorm, value: (v) => v.toFixed(4), tick: formatTick },
  { key: 'tokens_per_s', title: 'Tokens/s', color: COLORS.tokens, value: (v) => Math.round(v).toLocaleString('en-US'), tick: formatTick },
  { key: 'mfu', title: 'MFU', color: COLORS.mfu, value: (v) => `${(v * 100).toFixed(1)}%`, tick: formatPercentTick },
];

interface Live {
  u: uPlot;
  box: HTMLElement;
  caption: HTMLElement;
  width: number;
}

@customElement('kiln-metric-charts')
export class KilnMetricCharts extends LitElement {
  static override styles = [
    ...chartStyles,
    css`
      .elapsed {
        margin: 0 0 6px;
        font-size: 12px;
        color: ${CSS_COLORS.muted};
      }
      .elapsed b {
        font-weight: 600;
        color: ${CSS_COLORS.text};
      }
      .grid {
        display: grid;
        grid-template-columns: repeat(2, minmax(0, 1fr));
        gap: 10px 20px;
      }
      @media (max-width: 600px) {
        .grid {
          grid-template-columns: minmax(0, 1fr);
        }
      }
      figure {
        margin: 0;
        min-width: 0;
      }
      figcaption {
        display: flex;
        justify-content: space-between;
        align-items: baseline;
        gap: 8px;
        font-size: 12px;
        color: ${CSS_COLORS.muted};
      }
      .value {
        color: ${CSS_COLORS.text};
        white-space: nowrap;
      }
      .plot {
        min-width: 0;
        overflow: hidden;
      }
    `,
  ];

  /** Every logged step of the run; replace it, or push to it and assign it again. */
  @property({ attribute: false, hasChanged: () => true }) metrics: readonly LabMetrics[] = [];
  @property({ type: Boolean }) logX = false;
  /** Height of each small plot with its axis, in CSS pixels. */
  @property({ type: Number }) height = 110;

  @state() private hasMfu = false;
  @state() private elapsed: { s: number; step: number } | null = null;

  private readonly table = new StepTable<LabMetrics, Key>({
    lr: { get: (m) => m.lr },
    grad_norm: { get: (m) => m.grad_norm },
    tokens_per_s: { get: (m) => m.tokens_per_s },
    mfu: { get: (m) => m.mfu, sparse: true },
  });
  private readonly plots = new Map<Key, Live>();
  private plotLogX = false;
  private readonly rowsSeen = new RowsSeen();
  private readonly batcher = new FrameBatcher(() => this.flush());
  private readonly resize = new ResizeObserver(() => this.fit());

  override connectedCallback(): void {
    super.connectedCallback();
    this.resize.observe(this);
    if (this.hasUpdated) this.syncPlots();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.resize.disconnect();
    this.batcher.cancel();
    for (const p of this.plots.values()) p.u.destroy();
    this.plots.clear();
  }

  private panels(): readonly Panel[] {
    return this.hasMfu ? PANELS : PANELS.filter((p) => p.key !== 'mfu');
  }

  protected override render() {
    return html`
      <div class="elapsed">
        ${this.elapsed ? html`Elapsed <b>${formatElapsed(this.elapsed.s)}</b> at step ${formatStep(this.elapsed.step)}` : html`Elapsed <b>–</b>`}
      </div>
      <div class="grid">
        ${this.panels().map(
          (p) => html`<figure data-key=${p.key}>
            <figcaption><span>${p.title}</span><span class="value"></span></figcaption>
            <div class="plot"></div>
          </figure>`,
        )}
      </div>
    `;
  }

  protected override updated(changed: PropertyValues<this>): void {
    if (changed.has('logX') && this.plotLogX !== this.logX) {
      for (const p of this.plots.values()) p.u.destroy();
      this.plots.clear();
    }
    if (changed.has('height')) for (const p of this.plots.values()) p.u.setSize({ width: p.width, height: this.height });
    this.syncPlots();
    if (changed.has('metrics') && this.rowsSeen.changed(this.metrics)) this.batcher.schedule();
  }

  /** A plot for every panel on screen, none for a panel gone (MFU in a run without it). */
  private syncPlots(): void {
    const shown = new Set(this.panels().map((p) => p.key));
    for (const [key, p] of this.plots) {
      if (!shown.has(key)) {
        p.u.destroy();
        this.plots.delete(key);
      }
    }
    for (const panel of this.panels()) {
      if (this.plots.has(panel.key)) continue;
      const fig = this.renderRoot.querySelector<HTMLElement>(`figure[data-key="${panel.key}"]`);
      if (!fig) continue;
      const box = fig.querySelector<HTMLElement>('.plot')!;
      const caption = fig.querySelector<HTMLElement>('.value')!;
      const width = Math.max(1, Math.floor(box.clientWidth));
      const u = new uPlot(this.options(panel, width, caption), this.data(panel.key), box);
      this.plots.set(panel.key, { u, box, caption, width });
      this.showValue(panel, caption, null);
    }
    this.plotLogX = this.logX;
  }

  private flush(): void {
    const from = this.table.ingest(this.metrics);
    if (from < 0) return;
    const n = this.metrics.length;
    const last = n ? this.metrics[n - 1] : null;
    this.elapsed = last ? { s: last.elapsed_s, step: last.step } : null;
    this.hasMfu = this.table.sparseColumn('mfu').present.length > 0;
    for (const panel of this.panels()) {
      const p = this.plots.get(panel.key);
      if (!p) continue; // a new MFU panel: made after this render, with the data
      p.u.batch(() => p.u.setData(this.data(panel.key))); // drawn now: the batcher times it
      if (p.u.cursor.idx === null || p.u.cursor.idx === undefined) this.showValue(panel, p.caption, null);
    }
  }

  private data(key: Key): uPlot.AlignedData {
    const y = key === 'mfu' ? this.table.sparseColumn('mfu').values : this.table.column(key).forPlot();
    return [this.table.x.view(), y];
  }

  private latest(key: Key): number | null {
    if (key === 'mfu') return this.table.sparseColumn('mfu').last();
    const n = this.table.length;
    return n ? this.table.column(key).at(n - 1) : null;
  }

  private showValue(panel: Panel, caption: HTMLElement, v: number | null): void {
    const value = v ?? this.latest(panel.key);
    caption.textContent = value === null || !Number.isFinite(value) ? '' : panel.value(value);
  }

  private fit(): void {
    for (const p of this.plots.values()) {
      const w = Math.floor(p.box.clientWidth);
      if (w <= 0 || w === p.width) continue;
      p.width = w;
      p.u.setSize({ width: w, height: this.height });
    }
  }

  private options(panel: Panel, width: number, caption: HTMLElement): uPlot.Options {
    const logX = this.logX;
    return {
      width,
      height: this.height,
      pxAlign: false,
      padding: [8, 18, 0, 0],
      legend: { show: false },
      cursor: {
        y: false,
        drag: { x: true, y: false },
        hover: { skip: [null, NaN] },
        points: { size: 6, width: 1.5 },
        sync: { key: 'kiln-steps' },
      },
      scales: {
        x: { time: false, distr: logX ? 3 : 1, range: (_u, min, max) => stepRange(min, max, logX) },
        // Ends snapped to round values: 76px of plot height then still holds two labelled ticks.
        y: { range: (_u, min, max) => (min === null || max === null ? paddedRange(min, max, false) : uPlot.rangeNum(min, max, 0.1, true)) },
      },
      axes: [stepAxis(logX), valueAxis(panel.tick, 22, 42)],
      series: [{}, { label: panel.title, stroke: panel.color, width: 1.5, spanGaps: true, points: { show: false } }],
      hooks: {
        setCursor: [
          (u) => {
            const idx = u.cursor.idxs?.[1] ?? u.cursor.idx;
            const v = idx === null || idx === undefined ? null : (u.data[1][idx] ?? null);
            this.showValue(panel, caption, v);
          },
        ],
      },
    };
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'kiln-metric-charts': KilnMetricCharts;
  }
}
