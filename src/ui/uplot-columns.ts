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
