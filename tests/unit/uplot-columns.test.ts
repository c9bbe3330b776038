// The charts' columns: a parent's growing metrics array becomes typed-array columns read
// incrementally; a new run rebuilds them; repeated steps cut them back so x stays ascending.
import { describe, expect, it } from 'vitest';
import { GrowableColumn, StepTable } from '../../src/ui/uplot-columns.ts';

interface Row {
  step: number;
  loss: number;
  val_loss?: number;
}

const table = () => new StepTable<Row, 'loss' | 'val'>({ loss: { get: (r) => r.loss }, val: { get: (r) => r.val_loss, sparse: true } });
const rows = (from: number, to: number, loss = (s: number) => 5 - s / 1000): Row[] =>
  Array.from({ length: to - from + 1 }, (_, i) => ({ step: from + i, loss: loss(from + i), ...((from + i) % 10 === 0 ? { val_loss: 4 } : {}) }));

describe('StepTable', () => {
  it('appends rows pushed to the same array, and rows of a new array that holds the old ones', () => {
    const t = table();
    const arr = rows(1, 5);
    expect(t.ingest(arr)).toBe(0);
    arr.push(...rows(6, 12));
    expect(t.ingest(arr)).toBe(5);
    expect(t.ingest([...arr, ...rows(13, 20)])).toBe(12);
    expect(Array.from(t.x.view())).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(t.sparseColumn('val').present).toEqual([9, 19]);
    expect(t.sparseColumn('val').values[9]).toBe(4);
    expect(t.sparseColumn('val').values[8]).toBeNull();
    expect(t.ingest([...arr, ...rows(13, 20)].map((r) => ({ ...r })))).toBe(-1); // same values, fresh objects
  });

  it('rebuilds for a shorter array or one that starts differently (a new run)', () => {
    const t = table();
    t.ingest(rows(1, 100));
    expect(t.ingest(rows(1, 30, () => 9))).toBe(0);
    expect(t.length).toBe(30);
    expect(t.column('loss').at(29)).toBe(9);
    expect(t.ingest(rows(1, 200))).toBe(0);
    expect(t.length).toBe(200);
    expect(t.ingest([])).toBe(0);
    expect(t.length).toBe(0);
  });

  it('cuts back to before a repeated step (a run recovered from a snapshot)', () => {
    const t = table();
    const arr = rows(1, 50);
    t.ingest(arr);
    arr.push(...rows(41, 60, () => 1));
    expect(t.ingest(arr)).toBe(40);
    expect(t.length).toBe(60);
    expect(t.column('loss').at(40)).toBe(1);
    expect(t.sparseColumn('val').present).toEqual([9, 19, 29, 39, 49, 59]);
  });

  it('grows past its first buffer and hands uPlot nulls where a value is not finite', () => {
    const c = new GrowableColumn();
    for (let i = 0; i < 5000; i++) c.push(i);
    expect(c.view().length).toBe(5000);
    expect(c.view()[4999]).toBe(4999);
    expect(c.forPlot()).toBeInstanceOf(Float64Array);
    c.push(NaN);
    expect((c.forPlot() as (number | null)[])[5000]).toBeNull();
    c.truncate(5000);
    expect(c.forPlot()).toBeInstanceOf(Float64Array);
  });
});
