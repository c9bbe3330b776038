// The compare table shows only the settings that differ, in the FIELDS order.
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../../src/core/config.ts';
import { differingFields, sameSettingsNote } from '../../src/ui/kiln-compare-table.ts';

const base = { ...DEFAULT_CONFIG };

describe('differingFields', () => {
  it('finds only lr when only lr differs', () => {
    expect(differingFields([base, { ...base, lr: 3e-4 }])).toEqual(['lr']);
    expect(differingFields([base, { ...base }, { ...base, lr: 3e-4 }])).toEqual(['lr']);
  });

  it('lists several in the FIELDS order, whichever run differs', () => {
    expect(differingFields([{ ...base, seed: 7 }, { ...base, steps: 2000, nLayer: 6 }, base])).toEqual(['nLayer', 'steps', 'seed']);
  });

  it('finds nothing for equal configs, or fewer than two', () => {
    expect(differingFields([base, { ...base }])).toEqual([]);
    expect(differingFields([base])).toEqual([]);
    expect(differingFields([])).toEqual([]);
  });

  it('says the runs differ only by seed (or data), or not at all', () => {
    expect(sameSettingsNote(differingFields([base, { ...base, seed: 1 }]))).toBe('Same settings: the runs differ only in randomness (seed) or data.');
    expect(sameSettingsNote([])).toBe('Same settings.');
    expect(sameSettingsNote(['lr', 'seed'])).toBeNull();
  });
});
