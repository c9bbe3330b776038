// Run colours: the same run keeps its colour everywhere and on every visit; compared runs
// never share one; none is the open run's train or val colour.
import { describe, expect, it } from 'vitest';
import { COLORS } from '../../src/ui/chart-theme.ts';
import { RUN_PALETTE, comparedColors, runColor, runColors } from '../../src/ui/run-colors.ts';

describe('run colours', () => {
  const ids = ['r-lq2k8x-a1', 'r-lq2k9c-b7', 'r-lq2kaa-c3', 'r-lq2kc1-d9'];

  it('is stable for an id and spreads a few ids over different colours', () => {
    for (const id of ids) expect(runColor(id)).toBe(runColor(`${id}`));
    expect(new Set(ids.map(runColor)).size).toBeGreaterThanOrEqual(3);
    for (const id of ids) expect(RUN_PALETTE).toContain(runColor(id));
  });

  it('keeps clear of the open run\'s colours, and has eight distinct colours', () => {
    expect(new Set(RUN_PALETTE).size).toBe(8);
    expect(RUN_PALETTE).not.toContain(COLORS.train);
    expect(RUN_PALETTE).not.toContain(COLORS.val);
  });

  it('gives runs shown together distinct colours, each its own where free', () => {
    const many = Array.from({ length: 8 }, (_, i) => `run-${i}`);
    const m = runColors(many);
    expect(new Set(m.values()).size).toBe(8);
    expect(m.get(many[0])).toBe(runColor(many[0]));
    // Order decides who keeps a contested colour; the first always keeps its own.
    const pair = runColors([many[5], many[0]]);
    expect(pair.get(many[5])).toBe(runColor(many[5]));
    expect(comparedColors(['a', 'open', 'b'], 'open')).toEqual(runColors(['a', 'b']));
  });
});
