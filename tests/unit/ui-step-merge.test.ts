// Compared runs on the loss chart: other runs' columns on the union of their steps, and
// the open run merged in as it grows. Every incremental update must equal a merge made
// from scratch (alignSteps of everything), whichever way the rows arrive.
import { describe, expect, it } from 'vitest';
import { StepMerge, alignSteps, type Cell } from '../../src/ui/uplot-columns.ts';

interface Own {
  x: number[];
  a: Cell[];
  b: Cell[];
}

/** The merge from scratch: the open run's two columns and the others', on the union of steps. */
function reference(own: Own, others: Array<{ x: number[]; y: Cell[] }>) {
  const all = alignSteps([{ x: own.x, y: own.a }, { x: own.x, y: own.b }, ...others]);
  return { x: all.x, cols: all.cols };
}

function update(m: StepMerge, own: Own, n: number, from: number) {
  m.update(n, (i) => own.x[i], [(i) => own.a[i], (i) => own.b[i]], from);
}

/** A deterministic pseudo-random sequence. */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

describe('alignSteps', () => {
  it('puts series on the union of their steps, undefined where one has no row', () => {
    const r = alignSteps([
      { x: [1, 2, 4], y: [10, null, 40] },
      { x: [2, 3], y: [20, 30] },
    ]);
    expect(r.x).toEqual([1, 2, 3, 4]);
    expect(r.cols).toEqual([
      [10, null, undefined, 40],
      [undefined, 20, 30, undefined],
    ]);
  });
});

describe('StepMerge', () => {
  const others = [
    { x: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 20, 30], y: [9, 8, 7, 6, 5, 4, 3, 2, 1, 0.5, 0.4, 0.3] as Cell[] },
    { x: [5, 10, 15, 25], y: [1, 2, null, 4] as Cell[] },
  ];

  it('fills the others\' positions in place, appends past them, and re-merges a step between theirs', () => {
    const m = new StepMerge(2);
    m.setOther(alignSteps(others));
    const own: Own = { x: [], a: [], b: [] };
    const push = (step: number) => {
      own.x.push(step);
      own.a.push(step * 10);
      own.b.push(step % 3 ? null : step);
    };
    update(m, own, 0, 0);
    expect(m.x).toEqual(reference(own, others).x);
    for (const step of [1, 2, 3]) push(step);
    update(m, own, 3, 0);
    for (const step of [4, 5, 12, 13, 25, 31, 40]) {
      const from = own.x.length;
      push(step);
      update(m, own, own.x.length, from);
      const ref = reference(own, others);
      expect(m.x).toEqual(ref.x);
      expect(m.cols).toEqual(ref.cols);
    }
    update(m, own, own.x.length, -1); // nothing new: nothing changes
    expect(m.x).toEqual(reference(own, others).x);
  });

  it('matches a merge from scratch for random runs, appends and cut-backs', () => {
    const rand = rng(7);
    for (let trial = 0; trial < 40; trial++) {
      const other = [0, 1].map(() => {
        const x: number[] = [];
        for (let s = 1; s < 200; s += 1 + Math.floor(rand() * 8)) x.push(s);
        return { x, y: x.map((s) => (rand() < 0.1 ? null : s / 7)) as Cell[] };
      });
      const m = new StepMerge(2);
      m.setOther(alignSteps(other));
      const own: Own = { x: [], a: [], b: [] };
      let step = 0;
      update(m, own, 0, 0);
      for (let batch = 0; batch < 30; batch++) {
        let from = own.x.length;
        if (rand() < 0.15 && own.x.length > 2) {
          // A recovered run repeats steps: the columns are cut back to before the repeat.
          const keep = Math.floor(rand() * own.x.length);
          own.x.length = own.a.length = own.b.length = keep;
          step = keep ? own.x[keep - 1] : 0;
          from = keep;
        }
        const k = 1 + Math.floor(rand() * 6);
        for (let i = 0; i < k; i++) {
          step += 1 + Math.floor(rand() * 4);
          own.x.push(step);
          own.a.push(rand() < 0.05 ? null : step);
          own.b.push(rand() < 0.7 ? null : -step);
        }
        update(m, own, own.x.length, from);
        const ref = reference(own, other);
        expect(m.x).toEqual(ref.x);
        expect(m.cols).toEqual(ref.cols);
      }
      // New others: the next update merges from scratch.
      m.setOther(alignSteps([other[1]]));
      update(m, own, own.x.length, -1);
      expect(m.cols).toEqual(reference(own, [other[1]]).cols);
    }
  });
});
