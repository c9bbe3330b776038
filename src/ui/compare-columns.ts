// The loss chart's other runs: saved runs to compare and a share link's val curve, turned
// into uPlot series and columns on one step axis (alignSteps), then merged with the open
// run's columns as it grows (StepMerge). Plain functions and a small class, no Lit: the
// chart calls `sync` when the others (or the smoothing) change and `data` once a frame.
import type uPlot from 'uplot';
import { debiasedEma } from './smoothing.ts';
import { StepMerge, StepTable, alignSteps, type Cell, type StepColumns } from './uplot-columns.ts';

/** A saved run drawn beside the open one (its rows as runMetrics returns them). */
export interface CompareRun {
  id: string;
  name: string;
  color: string;
  rows: ReadonlyArray<{ step: number; loss?: number; val_loss?: number }>;
}

/** A share link's val curve: a dashed reference series. */
export interface SharedCurve {
  label: string;
  points: ReadonlyArray<readonly [number, number]>;
}

/** The shared curve's colour: a darker grey than the reference lines, apart from every run's colour. */
export const SHARED_COLOR = '#5c564f';

/**
 * A legend label no wider than the legend can take, cut in the middle: runs named after
 * their preset and data differ at the end ("… names", "… names 2"), which must stay.
 */
export function shortName(name: string, max = 24): string {
  if (name.length <= max) return name;
  const tail = Math.floor((max - 1) / 3);
  return `${name.slice(0, max - 1 - tail).trimEnd()}…${name.slice(name.length - tail).trimStart()}`;
}

export const finite = (v: number): Cell => (Number.isFinite(v) ? v : null);

/** What the other runs add to the plot: their series and columns, made when they change. */
export interface Others {
  series: uPlot.Series[];
  /** Per series: the value shown while the cursor is away (its last point). */
  latest: Array<number | null>;
  /** Per series: how many points it has (val points show while they stay apart). */
  points: number[];
  /** Their columns on the union of their steps. */
  columns: StepColumns;
}

/** Val dots for another run's series `k` (counted among the others), in `color`. */
export type ValPoints = (color: string, k: number) => uPlot.Series.Points;

/**
 * The other runs' series and columns: each run's rows through a StepTable (ascending
 * steps, as the open run's), its train loss smoothed with weight `w` and its val points,
 * and the shared curve's points, all on one step axis. Null when there is nothing to draw.
 */
export function compareColumns(compare: readonly CompareRun[], shared: SharedCurve | null, w: number, valPoints: ValPoints): Others | null {
  if (compare.length === 0 && !shared) return null;
  const cols: Array<{ x: ArrayLike<number>; y: ArrayLike<Cell> }> = [];
  const others: Omit<Others, 'columns'> = { series: [], latest: [], points: [] };
  const add = (s: uPlot.Series, x: ArrayLike<number>, y: Cell[]) => {
    cols.push({ x, y });
    others.series.push(s);
    let last: number | null = null;
    let count = 0;
    for (const v of y) {
      if (v === null || v === undefined) continue;
      last = v;
      count++;
    }
    others.latest.push(last);
    others.points.push(count);
  };
  for (const run of compare) {
    const t = new StepTable<CompareRun['rows'][number], 'loss' | 'val'>({ loss: { get: (m) => m.loss }, val: { get: (m) => m.val_loss, sparse: true } });
    t.ingest(run.rows);
    const x = t.x.view();
    const smooth = Array.from(debiasedEma(t.column('loss').view(), w), finite);
    const name = shortName(run.name);
    add({ label: name, stroke: run.color, width: 1.25, alpha: 0.85, points: { show: false } }, x, smooth);
    const valIdx = others.series.length;
    // Dotted, so that it is told from the same colour's train line where they cross.
    add({ label: `${name} val`, stroke: run.color, width: 1.25, dash: [2, 3], spanGaps: true, points: valPoints(run.color, valIdx) }, x, t.sparseColumn('val').values);
  }
  if (shared) {
    const pts = shared.points.filter(([s, v]) => Number.isFinite(s) && Number.isFinite(v)).sort((a, b) => a[0] - b[0]);
    const x: number[] = [];
    const y: Cell[] = [];
    for (const [s, v] of pts) {
      if (x.length && x[x.length - 1] === s) continue;
      x.push(s);
      y.push(v);
    }
    const idx = others.series.length;
    add({ label: shortName(shared.label, 32), stroke: SHARED_COLOR, width: 1.5, dash: [6, 4], spanGaps: true, points: valPoints(SHARED_COLOR, idx) }, x, y);
  }
  return { ...others, columns: alignSteps(cols) };
}

/**
 * The open run's columns with the others' on one step axis. Until there are others
 * (`merge` null) the chart hands the open run's columns to uPlot as they are.
 */
export class CompareColumns {
  /** Null until there are others to draw. */
  merge: StepMerge | null = null;
  others: Others | null = null;

  constructor(private readonly ownColumns: number) {}

  /** Rebuilds the others' columns (they changed, or the smoothing weight `w` did). */
  sync(compare: readonly CompareRun[], shared: SharedCurve | null, w: number, valPoints: ValPoints): void {
    const others = compareColumns(compare, shared, w, valPoints);
    if (!others) {
      this.merge = null;
      this.others = null;
      return;
    }
    this.merge ??= new StepMerge(this.ownColumns);
    this.merge.setOther(others.columns);
    this.others = others;
  }

  /**
   * uPlot's data with the others: the merge of the open run's `n` rows (steps through
   * `stepAt`, columns through `cells`; rows from `from` on are new) with theirs.
   * Call only while `merge` is set.
   */
  data(n: number, stepAt: (i: number) => number, cells: ReadonlyArray<(i: number) => Cell>, from: number): uPlot.AlignedData {
    const merge = this.merge!;
    merge.update(n, stepAt, cells, from);
    return [merge.x, ...merge.cols] as unknown as uPlot.AlignedData;
  }
}
