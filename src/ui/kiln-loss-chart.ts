// <kiln-loss-chart>: the loss curve. Train loss raw (faint) and smoothed with TensorBoard's
// debiased EMA, val loss as points on a line, dashed reference lines, a true log y (and x)
// axis. Rows arrive as the parent's growing `metrics` array; they go into typed-array
// columns and reach uPlot by setData at most once per animation frame. Saved runs to
// compare (`compare`) and a share link's val curve (`sharedCurve`) are drawn on the same
// step axis, each in its own colour; without them the chart is the single run's as before.
import { LitElement, css, html, type PropertyValues } from 'lit';
import { customElement, property, query } from 'lit/decorators.js';
import uPlot from 'uplot';
import type { LabMetrics } from '../worker/api.ts';
import { COLORS, CSS_COLORS, FONT_FAMILY, chartStyles, formatStep, stepAxis, valueAxis } from './chart-theme.ts';
import { fmtLoss } from './format.ts';
import { CompareColumns, finite, type CompareRun, type SharedCurve } from './compare-columns.ts';
import { DebiasedEma, clampSmoothing, paddedRange, stepRange } from './smoothing.ts';
import { FrameBatcher, GrowableColumn, RowsSeen, StepTable } from './uplot-columns.ts';

export type { CompareRun, SharedCurve } from './compare-columns.ts';

/** A horizontal dashed line with a label ("bigram ~2.45"). */
export interface ReferenceLine {
  value: number;
  label: string;
}

/** detail of the `chart-settings` event. */
export interface ChartSettings {
  smoothing: number;
  logY: boolean;
  logX: boolean;
}

const RAW = 1;
const SMOOTH = 2;
const VAL = 3;
/** The open run's columns: raw, smoothed, val. */
const OWN_COLUMNS = 3;

/** A number for each object, for keys that say "the same rows array" without holding it. */
const objectIds = new WeakMap<object, number>();
let nextObjectId = 1;
function objectId(o: object): number {
  let id = objectIds.get(o);
  if (id === undefined) objectIds.set(o, (id = nextObjectId++));
  return id;
}

@customElement('kiln-loss-chart')
export class KilnLossChart extends LitElement {
  static override styles = [
    ...chartStyles,
    css`
      .controls {
        display: flex;
        flex-wrap: wrap;
        align-items: center;
        gap: 6px 14px;
        margin: 0 0 6px;
        font-size: 12px;
        color: ${CSS_COLORS.muted};
      }
      .smoothing {
        display: flex;
        align-items: center;
        gap: 8px;
        min-width: 0;
      }
      .smoothing input {
        flex: 0 1 100px;
        width: 100px;
        min-width: 64px;
        margin: 0;
        accent-color: ${CSS_COLORS.train};
      }
      output {
        min-width: 2.6em;
        color: ${CSS_COLORS.text};
      }
      .check {
        display: inline-flex;
        align-items: center;
        gap: 5px;
        cursor: pointer;
        user-select: none;
      }
      .check input {
        margin: 0;
        accent-color: ${CSS_COLORS.train};
      }
      .plot {
        position: relative;
        min-width: 0;
        overflow: hidden;
      }
      .empty[hidden] {
        display: none;
      }
      .empty {
        /* Near the top, so it never sits on a reference line drawn across the plot. */
        position: absolute;
        inset: 12px 0 auto;
        display: flex;
        justify-content: center;
        padding: 4px 12px;
        text-align: center;
        font-size: 13px;
        color: ${CSS_COLORS.muted};
        pointer-events: none;
      }
    `,
  ];

  /** Every logged step of the run; replace it, or push to it and assign it again. */
  @property({ attribute: false, hasChanged: () => true }) metrics: readonly LabMetrics[] = [];
  @property({ attribute: false }) referenceLines: readonly ReferenceLine[] = [];
  /** TensorBoard's smoothing weight, 0 (off) to 0.999. */
  @property({ type: Number }) smoothing = 0.6;
  @property({ type: Boolean }) logY = false;
  @property({ type: Boolean }) logX = false;
  /** Plot and axes height in CSS pixels (the legend and the controls come on top). */
  @property({ type: Number }) height = 280;
  /** The steps the settings ask for: the x-axis spans them before the first step. */
  @property({ type: Number }) plannedSteps = 0;
  /**
   * Saved runs drawn with the open one, aligned by step: each run's train loss smoothed
   * like the open run's (thinner) and its val points, in its colour. Not the open run
   * itself. The chart redraws when an entry's id, name, colour or rows array (or its
   * length) changes, not for a new outer array: hand the same rows arrays again.
   */
  @property({ attribute: false }) compare: readonly CompareRun[] = [];
  /** A share link's val curve, dashed; redrawn when its label or points array changes. */
  @property({ attribute: false }) sharedCurve: SharedCurve | null = null;

  @query('.plot') private plotBox!: HTMLDivElement;

  private readonly table = new StepTable<LabMetrics, 'loss' | 'val'>({
    loss: { get: (m) => m.loss },
    val: { get: (m) => m.val_loss, sparse: true },
  });
  private readonly smoothed = new GrowableColumn();
  private ema = new DebiasedEma(0.6);
  private plot: uPlot | null = null;
  /** The log settings the plot was made with. */
  private plotLog = '';
  private empty: HTMLDivElement | null = null;
  private zoomed = false;
  private width = 0;
  private readonly batcher = new FrameBatcher(() => this.flush());
  private readonly rowsSeen = new RowsSeen();
  /** The reference lines drawn, as text: the parent hands a new array on every render. */
  private refsKey = '';
  /** The compared runs and shared curve drawn (ids, names, colours, rows arrays), as text. */
  private othersKey = '';
  /** Their series (names and colours) the plot was made with: a change makes a new plot. */
  private plotSeries = '';
  /** The compared runs' columns, merged with the open run's (see compare-columns.ts). */
  private readonly cmp = new CompareColumns(OWN_COLUMNS);
  private othersStale = true;
  private readonly resize = new ResizeObserver(() => this.fit());

  override connectedCallback(): void {
    super.connectedCallback();
    this.resize.observe(this);
    if (this.hasUpdated && !this.plot) this.createPlot();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.resize.disconnect();
    this.batcher.cancel();
    this.plot?.destroy();
    this.plot = null;
  }

  protected override render() {
    const w = clampSmoothing(this.smoothing);
    return html`
      <div class="controls">
        <span class="smoothing">
          <label for="smoothing">Smoothing</label>
          <input id="smoothing" type="range" min="0" max="0.99" step="0.01" .value=${String(w)} @input=${this.onSmoothing} />
          <output for="smoothing">${w > 0.99 ? w.toFixed(3) : w.toFixed(2)}</output>
        </span>
        <label class="check"><input type="checkbox" .checked=${this.logY} @change=${this.onLogY} />Log y</label>
        <label class="check"><input type="checkbox" .checked=${this.logX} @change=${this.onLogX} />Log x</label>
      </div>
      <div class="plot"></div>
    `;
  }

  protected override firstUpdated(): void {
    this.createPlot();
  }

  protected override updated(changed: PropertyValues<this>): void {
    // uPlot fixes a scale's distribution when it is made: a log switch makes a new plot.
    if ((changed.has('logX') || changed.has('logY')) && this.plot && this.plotLog !== this.logKey()) this.createPlot();
    if (changed.has('height') && this.plot) this.plot.setSize({ width: this.plot.width, height: this.height });
    const newRows = changed.has('metrics') && this.rowsSeen.changed(this.metrics);
    const refs = this.referenceLines.map((r) => `${r.value} ${r.label}`).join('|');
    const newRefs = refs !== this.refsKey;
    this.refsKey = refs;
    const others = this.othersKeyNow();
    const newOthers = others !== this.othersKey;
    this.othersKey = others;
    if (newOthers || (changed.has('smoothing') && this.cmp.merge)) this.othersStale = true;
    // Runs added, removed, renamed or recoloured: other series, so a new plot (like a log switch).
    if (this.plot && this.seriesKey() !== this.plotSeries) this.createPlot();
    if (newRows || newRefs || newOthers || changed.has('smoothing') || changed.has('plannedSteps')) this.batcher.schedule();
  }

  private othersKeyNow(): string {
    // An empty rows array (metrics not loaded yet) is the same whichever new [] the parent hands over.
    const rowsKey = (rows: readonly unknown[]) => (rows.length === 0 ? 'none' : `${objectId(rows)}:${rows.length}`);
    const runs = this.compare.map((c) => `${c.id}\u0000${c.name}\u0000${c.color}\u0000${rowsKey(c.rows)}`);
    const shared = this.sharedCurve ? `${this.sharedCurve.label}\u0000${rowsKey(this.sharedCurve.points)}` : '';
    return `${runs.join('\u0001')}\u0002${shared}`;
  }

  /** The series the others add, as text (what options() builds from). */
  private seriesKey(): string {
    return `${this.compare.map((c) => `${c.name}\u0000${c.color}`).join('\u0001')}\u0002${this.sharedCurve?.label ?? ''}`;
  }

  private onSmoothing(e: Event): void {
    this.smoothing = Number((e.target as HTMLInputElement).value);
    this.emitSettings();
  }

  private onLogY(e: Event): void {
    this.logY = (e.target as HTMLInputElement).checked;
    this.emitSettings();
  }

  private onLogX(e: Event): void {
    this.logX = (e.target as HTMLInputElement).checked;
    this.emitSettings();
  }

  private emitSettings(): void {
    const detail: ChartSettings = { smoothing: clampSmoothing(this.smoothing), logY: this.logY, logX: this.logX };
    this.dispatchEvent(new CustomEvent<ChartSettings>('chart-settings', { detail, bubbles: true, composed: true }));
  }

  /** New rows into the columns, then one setData. Runs in an animation frame. */
  private flush(): void {
    const from = this.table.ingest(this.metrics);
    if (from === 0) this.zoomed = false; // a new run: its own full range
    let changed = from;
    if (clampSmoothing(this.smoothing) !== this.ema.w) changed = this.extendSmoothed(0);
    else if (from >= 0) changed = Math.min(from, this.extendSmoothed(from));
    const u = this.plot;
    if (!u) return;
    const data = this.data(changed);
    this.showEmpty();
    // batch: uPlot draws now, not in a microtask, so the batcher's timing sees the cost.
    u.batch(() => {
      if (this.zoomed && this.table.length > 0) {
        // Keep the person's zoom while rows stream in (double-click zooms out again).
        const { min, max } = u.scales.x;
        u.setData(data, false);
        if (min !== undefined && max !== undefined) u.setScale('x', { min, max });
      } else u.setData(data);
    });
    if (u.cursor.idx === null || u.cursor.idx === undefined) u.setLegend({});
  }

  /**
   * Smooths the rows from `from` on. The average carries state, so a cut table (from below
   * what was smoothed) or a new weight smooths the whole column again: 100k points take ~1 ms.
   */
  private extendSmoothed(from: number): number {
    const loss = this.table.column('loss');
    if (from < this.smoothed.length || this.ema.w !== clampSmoothing(this.smoothing)) {
      this.smoothed.truncate(0);
      this.ema = new DebiasedEma(this.smoothing);
    }
    const first = this.smoothed.length;
    for (let i = this.smoothed.length; i < loss.length; i++) this.smoothed.push(this.ema.push(loss.at(i)));
    return first;
  }

  /**
   * uPlot's data. One run: the columns themselves. With others: the merge of the open
   * run's columns (from row `from` on, or all) with theirs on one step axis.
   */
  private data(from = 0): uPlot.AlignedData {
    this.syncOthers();
    const val = this.table.sparseColumn('val');
    if (!this.cmp.merge) return [this.table.x.view(), this.table.column('loss').forPlot(), this.smoothed.forPlot(), val.values];
    const x = this.table.x;
    const loss = this.table.column('loss');
    const n = Math.min(this.table.length, this.smoothed.length);
    return this.cmp.data(n, (i) => x.at(i), [(i) => finite(loss.at(i)), (i) => finite(this.smoothed.at(i)), (i) => val.values[i]], from);
  }

  /** Rebuilds the other runs' columns when they changed (or the smoothing did): compare-columns.ts. */
  private syncOthers(): void {
    if (!this.othersStale) return;
    this.othersStale = false;
    this.cmp.sync(this.compare, this.sharedCurve, clampSmoothing(this.smoothing), (color, k) => this.valPoints(color, k));
  }

  /**
   * Val dots for another run's series `k` (counted among the others): shown while they stay
   * well apart (sparser than the open run's, so that several runs' dots do not crowd its own).
   */
  private valPoints(color: string, k: number): uPlot.Series.Points {
    return {
      show: (u) => (this.cmp.others?.points[k] ?? 0) * 24 < u.bbox.width / uPlot.pxRatio,
      size: 4.5,
      width: 1,
      stroke: color,
      fill: COLORS.background,
    };
  }

  private logKey(): string {
    return `${this.logX}/${this.logY}`;
  }

  private createPlot(): void {
    this.plot?.destroy();
    this.width = Math.max(1, Math.floor(this.plotBox.clientWidth));
    const data = this.data();
    const u = new uPlot(this.options(this.width), data, this.plotBox);
    this.plotLog = this.logKey();
    this.plotSeries = this.seriesKey();
    this.plot = u;
    this.empty = document.createElement('div');
    this.empty.className = 'empty';
    this.empty.textContent = 'The loss curve appears here when training starts.';
    u.over.append(this.empty);
    this.showEmpty();
    this.zoomed = false;
  }

  private showEmpty(): void {
    if (this.empty) this.empty.hidden = this.table.length > 0 || (this.cmp.merge?.x.length ?? 0) > 0;
  }

  private fit(): void {
    const w = Math.floor(this.plotBox?.clientWidth ?? 0);
    if (!this.plot || w <= 0 || w === this.width) return;
    this.width = w;
    this.plot.setSize({ width: w, height: this.height });
  }

  private options(width: number): uPlot.Options {
    const logX = this.logX;
    const logY = this.logY;
    const latest = (sidx: number): number | null => {
      if (sidx > VAL) return this.cmp.others?.latest[sidx - VAL - 1] ?? null;
      const n = this.table.length;
      if (n === 0) return null;
      if (sidx === RAW) return this.table.column('loss').at(n - 1);
      if (sidx === SMOOTH) return this.smoothed.at(n - 1);
      return this.table.sparseColumn('val').last();
    };
    const lastStep = (): number | null => {
      if (this.table.length) return this.table.x.at(this.table.length - 1);
      const x = this.cmp.merge?.x;
      return x?.length ? x[x.length - 1] : null;
    };
    // With the cursor away the legend shows the latest values, not dashes.
    const lossValue = (_u: uPlot, v: number | null, sidx: number, idx: number | null) => fmtLoss(idx === null ? latest(sidx) : v);
    return {
      width,
      height: this.height,
      pxAlign: false,
      padding: [10, 18, 0, 2],
      cursor: {
        drag: { x: true, y: false },
        // The val column is mostly null: hovering anywhere shows the nearest val point.
        // (uPlot always skips undefined too: a step another run has and this one not.)
        hover: { skip: [null, NaN] },
        points: { size: 7, width: 1.5 },
        // Hovering here moves the cursor of every step chart on the page (the small multiples).
        sync: { key: 'kiln-steps' },
      },
      legend: { live: true },
      scales: {
        x: { time: false, distr: logX ? 3 : 1, range: (_u, min, max) => stepRange(min, max, logX, this.plannedSteps) },
        y: { distr: logY ? 3 : 1, range: (_u, min, max) => paddedRange(min, max, logY, this.referenceLines.map((r) => r.value)) },
      },
      axes: [stepAxis(logX), valueAxis()],
      series: [
        { label: 'step', value: (_u, v, _s, idx) => formatStep(idx === null ? lastStep() : v) },
        { label: 'train (raw)', stroke: COLORS.trainRaw, width: 1, points: { show: false }, value: lossValue },
        { label: 'train', stroke: COLORS.train, width: 2, points: { show: false }, value: lossValue },
        {
          label: 'val',
          stroke: COLORS.val,
          width: 1.5,
          spanGaps: true,
          value: lossValue,
          points: {
            // Dots while they stay apart; with thousands of evals the line says it all.
            show: (u) => this.table.sparseColumn('val').present.length * 7 < u.bbox.width / uPlot.pxRatio,
            size: 5,
            width: 1,
            stroke: COLORS.val,
            fill: COLORS.background,
          },
        },
        ...(this.cmp.others?.series ?? []).map((s) => ({ ...s, value: lossValue })),
      ],
      hooks: {
        // Lines under the curves (after the grid), their labels over them.
        drawAxes: [(u) => this.drawReferenceLines(u, 'lines')],
        draw: [(u) => this.drawReferenceLines(u, 'labels')],
        setScale: [
          (u, key) => {
            if (key !== 'x') return;
            const xs = u.data[0];
            const n = xs.length;
            const { min, max } = u.scales.x;
            this.zoomed = n > 1 && min !== undefined && max !== undefined && (min > xs[0] || max < xs[n - 1]);
          },
        ],
      },
    };
  }

  /**
   * Dashed lines at the reference values, or their labels: at the left, where a falling curve
   * is high above, on a background tag so a curve passing behind leaves them readable.
   */
  private drawReferenceLines(u: uPlot, part: 'lines' | 'labels'): void {
    if (this.referenceLines.length === 0) return;
    const { ctx, bbox } = u;
    const r = uPlot.pxRatio;
    ctx.save();
    ctx.beginPath();
    ctx.rect(bbox.left, bbox.top, bbox.width, bbox.height);
    ctx.clip();
    ctx.font = `${11 * r}px ${FONT_FAMILY}`;
    ctx.textAlign = 'left';
    ctx.textBaseline = 'middle';
    const fontPx = 11 * r;
    for (const line of this.referenceLines) {
      if (!Number.isFinite(line.value) || (this.logY && line.value <= 0)) continue;
      const y = Math.round(u.valToPos(line.value, 'y', true)) + 0.5;
      if (y < bbox.top || y > bbox.top + bbox.height) continue;
      if (part === 'lines') {
        ctx.setLineDash([5 * r, 4 * r]);
        ctx.lineWidth = r;
        ctx.strokeStyle = COLORS.reference;
        ctx.beginPath();
        ctx.moveTo(bbox.left, y);
        ctx.lineTo(bbox.left + bbox.width, y);
        ctx.stroke();
        continue;
      }
      const padX = 4 * r;
      const h = fontPx + 4 * r;
      const w = ctx.measureText(line.label).width + 2 * padX;
      const x = bbox.left + 6 * r;
      // Above the line, or below it where the top edge would cut the tag.
      const top = y - h - 2 * r >= bbox.top ? y - h - 2 * r : y + 2 * r;
      ctx.fillStyle = 'rgba(250, 248, 245, 0.88)';
      ctx.beginPath();
      ctx.roundRect(x, top, w, h, 3 * r);
      ctx.fill();
      ctx.fillStyle = COLORS.muted;
      ctx.fillText(line.label, x + padX, top + h / 2 + 0.5 * r);
    }
    ctx.restore();
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'kiln-loss-chart': KilnLossChart;
  }
}
