// The look both chart elements share: palette, fonts, axes, number formats, and uPlot's
// stylesheet (which has to live inside each shadow root to reach the plot).
import { css, unsafeCSS, type CSSResult } from 'lit';
import uPlot from 'uplot';
import uplotCss from 'uplot/dist/uPlot.min.css?inline';
import { FONT_FAMILY, hostStyles } from './host-styles.ts';

export { FONT_FAMILY };

/** A calm palette on the page's #faf8f5: train in kiln brown-orange, val in blue. */
export const COLORS = {
  text: '#222',
  muted: '#6b645c',
  axis: '#5c564f',
  grid: '#ebe6df',
  train: '#b8581c',
  trainRaw: 'rgba(184, 88, 28, 0.22)',
  val: '#2f6aa8',
  reference: '#8d857b',
  background: '#faf8f5',
  lr: '#6c5a96',
  gradNorm: '#a3473c',
  tokens: '#2f7b68',
  mfu: '#8c6d1f',
} as const;

/** The same colours for css`` templates (which take only CSS values). */
export const CSS_COLORS = Object.fromEntries(Object.entries(COLORS).map(([k, v]) => [k, unsafeCSS(v)])) as Record<keyof typeof COLORS, CSSResult>;

export const CSS_FONT_FAMILY = unsafeCSS(FONT_FAMILY);
const AXIS_FONT = `11px ${FONT_FAMILY}`;

/** uPlot's stylesheet plus the legend and overlay look of both elements. */
export const chartStyles = [
  hostStyles,
  unsafeCSS(uplotCss),
  css`
    .uplot {
      font-family: ${CSS_FONT_FAMILY};
      color: ${CSS_COLORS.text};
    }
    .u-legend {
      font-size: 12px;
      line-height: 1.4;
      font-variant-numeric: tabular-nums;
      margin: 2px 0 0;
      text-align: left;
    }
    .u-legend.u-inline tr {
      margin-right: 12px;
    }
    .u-legend th {
      font-weight: 500;
      color: ${CSS_COLORS.muted};
    }
    .u-legend td {
      padding: 1px 0 1px 2px;
    }
    .u-legend .u-value {
      display: inline-block;
      min-width: 6ch;
      text-align: left;
      color: ${CSS_COLORS.text};
    }
    .u-legend .u-marker {
      width: 0.9em;
      height: 3px;
      border-radius: 2px;
      margin-right: 5px;
      vertical-align: middle;
    }
    .u-select {
      background: rgba(47, 106, 168, 0.08);
    }
  `,
];

/** Axis label text: 12.5k, 1.2M, 6e-4, 0.25; decimals follow the tick spacing. */
export function formatTick(v: number, incr: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e6) return trim(v / 1e6, incr / 1e6) + 'M';
  if (a >= 1e4) return trim(v / 1e3, incr / 1e3) + 'k';
  if (a < 0.01) return Number(v.toPrecision(6)).toExponential().replace('e-', 'e\u2212');
  return trim(v, incr);
}

/** A fraction as a percent tick: 0.25 -> 25%. */
export function formatPercentTick(v: number, incr: number): string {
  return trim(v * 100, incr * 100) + '%';
}

function trim(v: number, incr: number): string {
  return v.toFixed(decimalsOf(incr));
}

/** Digits after the point in the shortest form of a tick step (0.25 -> 2, 2.5 -> 1, 500 -> 0). */
function decimalsOf(incr: number): number {
  if (!(incr > 0) || !Number.isFinite(incr)) return 0;
  const s = Number(incr.toPrecision(6)).toString();
  const e = s.indexOf('e-');
  const dot = s.indexOf('.');
  if (e >= 0) return Number(s.slice(e + 2)) + (dot >= 0 ? e - dot - 1 : 0);
  return dot >= 0 ? s.length - dot - 1 : 0;
}

/** A step as people read it: 12,345. */
export function formatStep(v: number | null | undefined): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '–' : Math.round(v).toLocaleString('en-US');
}

/** Seconds as 1:02:03 or 4:05. */
export function formatElapsed(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '–';
  const t = Math.floor(s);
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = String(t % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

/**
 * Tick labels for one axis; log axes hand over nulls for the ticks they leave unlabelled,
 * and their ticks (1, 2, 5, 10...) read best without a shared number of decimals.
 */
function tickValues(format: (v: number, incr: number) => string): uPlot.Axis.DynamicValues {
  return (u, splits, axisIdx, _space, incr) => {
    const log = u.scales[u.axes[axisIdx].scale ?? (axisIdx === 0 ? 'x' : 'y')]?.distr === 3;
    return splits.map((v) => (v === null || v === undefined ? null : format(v, log ? Number(v.toPrecision(2)) : incr)));
  };
}

/** The y axis as wide as its widest label (uPlot's fixed 50px clips "12.5k" or wastes room). */
function autoSize(u: uPlot, values: string[] | null, axisIdx: number, cycleNum: number): number {
  const axis = u.axes[axisIdx] as uPlot.Axis & { _size?: number };
  // uPlot calls this again after laying out; answering the first size again ends the loop.
  if (cycleNum > 1 && axis._size !== undefined) return axis._size;
  let size = (axis.ticks?.size ?? 0) + (axis.gap ?? 0) + 2;
  const longest = (values ?? []).reduce((a, b) => (b && b.length > a.length ? b : a), '');
  if (longest) {
    u.ctx.font = `${11 * uPlot.pxRatio}px ${FONT_FAMILY}`;
    size += u.ctx.measureText(longest).width / uPlot.pxRatio;
  }
  return Math.ceil(size);
}

/** The x (step) axis. */
/** Steps are whole numbers: tick increments 1, 2, 5, 10, 20, 50, ... (uPlot's defaults include 2.5 and 0.5). */
const STEP_INCRS = Array.from({ length: 10 }, (_, e) => [1, 2, 5].map((m) => m * 10 ** e)).flat();

export function stepAxis(log = false): uPlot.Axis {
  return {
    ...(log ? {} : { incrs: STEP_INCRS }),
    stroke: COLORS.axis,
    font: AXIS_FONT,
    size: 28,
    gap: 4,
    space: 60,
    grid: { stroke: COLORS.grid, width: 1 },
    ticks: { stroke: COLORS.grid, width: 1, size: 4 },
    values: tickValues(formatTick),
  };
}

/**
 * A y axis on the left; `space` is the least room between ticks, `size` its width (by
 * default as wide as its widest label; small multiples pass one width so they line up).
 */
export function valueAxis(format: (v: number, incr: number) => string = formatTick, space = 28, size?: number): uPlot.Axis {
  return {
    stroke: COLORS.axis,
    font: AXIS_FONT,
    gap: 4,
    space,
    size: size ?? autoSize,
    grid: { stroke: COLORS.grid, width: 1 },
    ticks: { stroke: COLORS.grid, width: 1, size: 4 },
    values: tickValues(format),
  };
}
