// The loss chart's compared runs (src/ui/compare-columns.ts): each run's smoothed train
// loss and val points, and a share link's curve, as series on the union of their steps.
import { describe, expect, it } from 'vitest';
import { CompareColumns, SHARED_COLOR, compareColumns, shortName, type CompareRun } from '../../src/ui/compare-columns.ts';

const dots = (color: string, k: number) => ({ show: false, stroke: `${color}#${k}` });

describe('compareColumns', () => {
  it('is null with nothing to compare', () => {
    expect(compareColumns([], null, 0.6, dots)).toBeNull();
  });

  it('puts runs and the shared curve on one step axis', () => {
    const runs: CompareRun[] = [
      { id: 'a', name: 'run a', color: '#f00', rows: [{ step: 0, loss: 4 }, { step: 10, loss: 2, val_loss: 3 }, { step: 20, loss: NaN }] },
      { id: 'b', name: 'run b', color: '#0f0', rows: [{ step: 5, loss: 5 }, { step: 10, loss: 1 }] },
    ];
    const o = compareColumns(runs, { label: 'shared', points: [[20, 2.5], [15, 2.7], [15, 9], [30, NaN]] }, 0, dots)!;
    expect(o.series.map((s) => s.label)).toEqual(['run a', 'run a val', 'run b', 'run b val', 'shared']);
    expect(o.series[1].points).toEqual({ show: false, stroke: '#f00#1' });
    expect(o.series[4].stroke).toBe(SHARED_COLOR);
    expect(o.series[4].points).toEqual({ show: false, stroke: `${SHARED_COLOR}#4` });
    expect(o.columns.x).toEqual([0, 5, 10, 15, 20]);
    // Smoothing 0 leaves the train loss as it is; a NaN loss is a null gap, a missing row undefined.
    expect(o.columns.cols[0]).toEqual([4, undefined, 2, undefined, null]);
    expect(o.columns.cols[1]).toEqual([null, undefined, 3, undefined, null]);
    expect(o.columns.cols[2]).toEqual([undefined, 5, 1, undefined, undefined]);
    expect(o.columns.cols[4]).toEqual([undefined, undefined, undefined, 2.7, 2.5]);
    expect(o.latest).toEqual([2, 3, 1, null, 2.5]);
    expect(o.points).toEqual([2, 1, 2, 0, 2]);
  });

  it('shortens long names for the legend', () => {
    expect(shortName('x'.repeat(30))).toBe(`${'x'.repeat(16)}…${'x'.repeat(7)}`);
    expect(shortName('x'.repeat(30))).toHaveLength(24);
    // Two runs named alike keep what tells them apart (the end).
    const a = shortName('tiny · English first names');
    const b = shortName('tiny · English first names 2');
    expect(a).not.toBe(b);
    expect(b.endsWith('names 2')).toBe(true);
    expect(shortName('short')).toBe('short');
  });
});

describe('CompareColumns', () => {
  it('merges the open run with the others, and drops the merge when they go', () => {
    const c = new CompareColumns(1);
    c.sync([{ id: 'a', name: 'a', color: '#f00', rows: [{ step: 1, loss: 2 }, { step: 3, loss: 2 }] }], null, 0, dots);
    const own = [0, 1, 2];
    const data = c.data(own.length, (i) => own[i], [(i) => own[i] * 10], 0);
    expect(data[0]).toEqual([0, 1, 2, 3]);
    expect(data[1]).toEqual([0, 10, 20, undefined]);
    expect(data[2]).toEqual([undefined, 2, undefined, 2]);
    c.sync([], null, 0, dots);
    expect(c.merge).toBeNull();
    expect(c.others).toBeNull();
  });
});
