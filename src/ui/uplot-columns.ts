// What the chart elements share: metrics rows turned into growing typed-array columns
// for uPlot, and one update per animation frame. uPlot draws 100k points per series fast
// from typed arrays (DESIGN.md, "Facts for building the lab"), so a new batch of rows is
// appended in place and handed over with setData; nothing is rebuilt per point.

/** A Float64Array that grows by doubling; `view()` is what uPlot reads. */
export class GrowableColumn {
  private buf = new Float64Array(1024);
  private n = 0;
  /** Non-finite values held (uPlot needs those as null gaps, see forPlot). */
  private bad = 0;
  private plain: (number | null)[] | null = null;

  get length(): number {
    return this.n;
  }

  at(i: number): number {
    return this.buf[i];
  }

  push(v: number): void {
    if (this.n === this.buf.length) {
      const next = new Float64Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.n++] = v;
    if (!Number.isFinite(v)) this.bad++;
  }

  truncate(n: number): void {
    if (n >= this.n) return;
    for (let i = n; i < this.n; i++) if (!Number.isFinite(this.buf[i])) this.bad--;
    this.n = n;
  }

  view(): Float64Array {
    return this.buf.subarray(0, this.n);
  }

  /**
   * The column as uPlot should get it. uPlot treats only null as a gap: a NaN in a typed
   * array breaks its min/max scan and its per-pixel decimation, so a column that ever held
   * a non-finite value (a diverged loss) goes over as a plain array with nulls instead.
   */
  forPlot(): Float64Array | (number | null)[] {
    if (this.bad === 0) return this.view();
    if (this.plain?.length !== this.n) this.plain = Array.from(this.view(), (v) => (Number.isFinite(v) ? v : null));
    return this.plain;
  }
}

/** A column that is mostly empty (val loss, MFU): null where a row has no value. */
export class SparseColumn {
  readonly values: (number | null)[] = [];
  /** Indices that hold a value, ascending. */
  readonly present: number[] = [];

  push(v: number | null | undefined): void {
    if (v !== null && v !== undefined && Number.isFinite(v)) {
      this.present.push(this.values.length);
      this.values.push(v);
    } else this.values.push(null);
  }

  truncate(n: number): void {
    this.values.length = Math.min(this.values.length, n);
    while (this.present.length && this.present[this.present.length - 1] >= n) this.present.pop();
  }

  /** The last value present, or null. */
  last(): number | null {
    return this.present.length ? this.values[this.present[this.present.length - 1]] : null;
  }
}

/** How a table reads one column from a row. Sparse columns keep nulls (val loss). */
export interface Field<T> {
  get: (row: T) => number | null | undefined;
  sparse?: boolean;
}

/**
 * Rows keyed by step, as columns. `ingest` takes the parent's whole array each time and
 * works out what is new: the same rows with more at the end (appended in place, or a new
 * array holding the old rows) are appended; a different or shorter array (a new run) is
 * read from scratch. A step at or below the last one (a run recovered from a snapshot
 * repeats steps) cuts the columns back to before it, so x stays ascending as uPlot needs.
 */
export class StepTable<T extends { step: number }, K extends string> {
  readonly x = new GrowableColumn();
  private readonly dense = new Map<K, GrowableColumn>();
  private readonly sparse = new Map<K, SparseColumn>();
  private readonly fields: [K, Field<T>][];
  private consumed = 0;
  private lastRow: T | null = null;

  constructor(fields: Record<K, Field<T>>) {
    this.fields = Object.entries(fields) as [K, Field<T>][];
    for (const [k, f] of this.fields) {
      if (f.sparse) this.sparse.set(k, new SparseColumn());
      else this.dense.set(k, new GrowableColumn());
    }
  }

  get length(): number {
    return this.x.length;
  }

  column(k: K): GrowableColumn {
    const c = this.dense.get(k);
    if (!c) throw new Error(`StepTable: ${k} is not a dense column`);
    return c;
  }

  sparseColumn(k: K): SparseColumn {
    const c = this.sparse.get(k);
    if (!c) throw new Error(`StepTable: ${k} is not a sparse column`);
    return c;
  }

  /**
   * Reads what is new in `rows`. Returns the first index that changed (the old length when
   * rows were only appended, 0 after a rebuild), or -1 when nothing changed.
   */
  ingest(rows: readonly T[]): number {
    const before = this.length;
    let from = before;
    let start = this.consumed;
    if (!this.continues(rows)) {
      this.truncate(0);
      from = 0;
      start = 0;
    }
    for (let i = start; i < rows.length; i++) {
      const row = rows[i];
      const step = row.step;
      if (!Number.isFinite(step)) continue;
      const n = this.length;
      if (n > 0 && step <= this.x.at(n - 1)) {
        const k = lowerBound(this.x, step);
        this.truncate(k);
        from = Math.min(from, k);
      }
      this.x.push(step);
      for (const [k, f] of this.fields) {
        const v = f.get(row);
        if (f.sparse) this.sparse.get(k)!.push(v);
        else this.dense.get(k)!.push(v ?? NaN);
      }
    }
    this.consumed = rows.length;
    this.lastRow = rows.length ? rows[rows.length - 1] : null;
    return from < before || this.length !== before ? from : -1;
  }

  /** Do `rows` begin with what was read before? (Same row objects, or rows with the same values.) */
  private continues(rows: readonly T[]): boolean {
    if (this.consumed === 0) return this.length === 0;
    if (rows.length < this.consumed) return false;
    const a = rows[this.consumed - 1];
    const b = this.lastRow!;
    if (a === b) return true;
    return a.step === b.step && this.fields.every(([, f]) => Object.is(f.get(a), f.get(b)));
  }

  private truncate(n: number): void {
    this.x.truncate(n);
    for (const c of this.dense.values()) c.truncate(n);
    for (const c of this.sparse.values()) c.truncate(n);
    if (n === 0) {
      this.consumed = 0;
      this.lastRow = null;
    }
  }
}

/** The first index whose value is >= v in an ascending column. */
export function lowerBound(col: GrowableColumn, v: number): number {
  let lo = 0;
  let hi = col.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (col.at(mid) < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Work per frame after which the remaining charts wait for the next frame. */
const FRAME_BUDGET_MS = 12;

/** Batchers with an update waiting, oldest first: all of the page's charts share frames. */
const pending = new Set<FrameBatcher>();
let frameId = 0;

function runFrame(now: number): void {
  frameId = 0;
  const start = performance.now();
  let ran = false;
  for (const b of [...pending]) {
    if (now < b.notBefore) continue;
    if (ran && performance.now() - start > FRAME_BUDGET_MS) break;
    pending.delete(b);
    b.run();
    ran = true;
  }
  if (pending.size) frameId = requestAnimationFrame(runFrame);
}

/**
 * Runs `fn` at most once per animation frame however often `schedule` is called: the
 * parent may hand over new rows many times a frame, the plot redraws once. A redraw of
 * 100k points costs milliseconds, so the page's charts share one frame loop: once a frame
 * has spent FRAME_BUDGET_MS, the other charts draw in the next one (the loss chart and the
 * small multiples do not stack into one long task), and after a run that took d ms a chart
 * waits at least 2d before its next, so while a fast run streams rows the charts take at
 * most about a third of the main thread.
 */
export class FrameBatcher {
  /** performance.now() before which this batcher's next run waits. */
  notBefore = 0;

  constructor(private readonly fn: () => void) {}

  schedule(): void {
    pending.add(this);
    if (!frameId) frameId = requestAnimationFrame(runFrame);
  }

  cancel(): void {
    pending.delete(this);
  }

  /** Runs the update now (the frame loop calls this). */
  run(): void {
    const t0 = performance.now();
    this.fn();
    const t1 = performance.now();
    this.notBefore = t1 + 2 * (t1 - t0);
  }
}

/**
 * Whether the parent's rows array holds anything not yet seen: another array, or the
 * same one grown (rows are pushed in place). The page re-renders for many reasons (a
 * streamed sample token, a status line): only new rows are worth a redraw.
 */
export class RowsSeen {
  private rows: readonly unknown[] | null = null;
  private length = -1;

  changed(rows: readonly unknown[]): boolean {
    if (rows === this.rows && rows.length === this.length) return false;
    this.rows = rows;
    this.length = rows.length;
    return true;
  }
}

/**
 * A value on a shared step axis: a number; null, a gap (the run logged the step but its
 * value is missing or not finite); undefined, no row of this run at this step. uPlot
 * draws straight across undefined (its own word for an alignment artifact, see
 * uPlot.join) and breaks the line at null, so a diverged loss still shows as a gap.
 */
export type Cell = number | null | undefined;

/** Columns on one ascending, duplicate-free step axis. */
export interface StepColumns {
  x: number[];
  cols: Cell[][];
}

/** The first index in ascending `xs` whose value is >= v (or > v with `after`). */
export function searchSorted(xs: ArrayLike<number>, v: number, after = false): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (xs[mid] < v || (after && xs[mid] === v)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Several series, each on its own ascending steps, as columns on the union of their steps
 * (undefined where a series has no row). For the runs a chart compares: made once when
 * they change, not per frame.
 */
export function alignSteps(series: ReadonlyArray<{ x: ArrayLike<number>; y: ArrayLike<Cell> }>): StepColumns {
  const all: number[] = [];
  for (const s of series) for (let i = 0; i < s.x.length; i++) if (Number.isFinite(s.x[i])) all.push(s.x[i]);
  all.sort((a, b) => a - b);
  const x: number[] = [];
  for (const v of all) if (x.length === 0 || x[x.length - 1] !== v) x.push(v);
  const cols = series.map((s) => {
    const col: Cell[] = new Array<Cell>(x.length).fill(undefined);
    let j = 0;
    for (let i = 0; i < s.x.length; i++) {
      const step = s.x[i];
      if (!Number.isFinite(step)) continue;
      while (j < x.length && x[j] < step) j++;
      if (x[j] === step) col[j] = s.y[i];
    }
    return col;
  });
  return { x, cols };
}

/**
 * The open run's columns and other runs' columns (alignSteps) on one x axis, as uPlot's
 * aligned data: x is the union of both runs' steps, the open run's columns first. The
 * open run grows while it trains, so `update` works from the first row that changed:
 * a new row whose step the others already have fills that position in place (runs that
 * log every step share one grid, the usual case), a row past the others' steps is
 * appended, and only a step between two of theirs re-merges the rest of the axis.
 */
export class StepMerge {
  readonly x: number[] = [];
  /** The open run's columns, then the others'. */
  cols: Cell[][] = [];
  private other: StepColumns = { x: [], cols: [] };
  /** Where each of the open run's rows sits on x. */
  private readonly pos: number[] = [];
  private stale = true;

  constructor(private readonly nOwn: number) {
    this.cols = Array.from({ length: nOwn }, () => []);
  }

  /** The other runs' columns; the next update merges from scratch. */
  setOther(other: StepColumns): void {
    this.other = other;
    this.cols = Array.from({ length: this.nOwn + other.cols.length }, () => []);
    this.stale = true;
  }

  /**
   * Brings the merge up to date with the open run's `n` rows (steps ascending, read
   * through `stepAt`; its columns through `cells`, one function per column), of which
   * rows from `from` on are new or changed (StepTable.ingest's answer: 0 after a rebuild,
   * -1 when nothing changed).
   */
  update(n: number, stepAt: (i: number) => number, cells: ReadonlyArray<(i: number) => Cell>, from: number): void {
    const placed = this.pos.length;
    if (from < 0 && n === placed && !this.stale) return;
    if (this.stale || from <= 0 || from > placed) return this.mergeFrom(0, 0, 0, n, stepAt, cells);
    if (from < placed) {
      // Rows cut back (a recovered run repeats steps): merge again after the last row kept.
      const kept = stepAt(from - 1);
      return this.mergeFrom(this.pos[from - 1] + 1, from, searchSorted(this.other.x, kept, true), n, stepAt, cells);
    }
    const ox = this.other.cols;
    for (let i = placed; i < n; i++) {
      const s = stepAt(i);
      let q = i > 0 ? this.pos[i - 1] + 1 : 0;
      while (q < this.x.length && this.x[q] < s) q++;
      if (q === this.x.length) {
        this.x.push(s);
        for (let c = 0; c < this.nOwn; c++) this.cols[c].push(cells[c](i));
        for (let c = 0; c < ox.length; c++) this.cols[this.nOwn + c].push(undefined);
      } else if (this.x[q] === s) {
        for (let c = 0; c < this.nOwn; c++) this.cols[c][q] = cells[c](i);
      } else {
        return this.mergeFrom(q, i, searchSorted(this.other.x, s), n, stepAt, cells);
      }
      this.pos.push(q);
    }
  }

  /** Cuts x back to `q` positions and merges the open run's rows from `i` with the others' from `e`. */
  private mergeFrom(q: number, i: number, e: number, n: number, stepAt: (i: number) => number, cells: ReadonlyArray<(i: number) => Cell>): void {
    const { x: ox, cols: oc } = this.other;
    const own = this.nOwn;
    this.x.length = q;
    for (const c of this.cols) c.length = q;
    this.pos.length = i;
    while (i < n || e < ox.length) {
      const si = i < n ? stepAt(i) : Infinity;
      const se = e < ox.length ? ox[e] : Infinity;
      const step = Math.min(si, se);
      this.x.push(step);
      for (let c = 0; c < own; c++) this.cols[c].push(si === step ? cells[c](i) : undefined);
      for (let c = 0; c < oc.length; c++) this.cols[own + c].push(se === step ? oc[c][e] : undefined);
      if (si === step) {
        this.pos.push(this.x.length - 1);
        i++;
      }
      if (se === step) e++;
    }
    this.stale = false;
  }
}
