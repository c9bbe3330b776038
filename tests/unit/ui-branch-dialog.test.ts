// The branch dialog's form: typed texts become the branch's config through the core's
// parseField and validate(); the end must lie past the checkpoint; the default name names
// the first changed setting.
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../../src/core/config.ts';
import { branchForm, defaultBranchName, defaultEnd } from '../../src/ui/kiln-branch-dialog.ts';

const parent = { ...DEFAULT_CONFIG, steps: 1000, decaySteps: 1000 };

describe('branchForm', () => {
  it('keeps the parent\'s settings when nothing is typed, and is valid', () => {
    const f = branchForm(parent, 500, {});
    expect(f.config).toEqual(parent);
    expect(f.changed).toEqual([]);
    expect(f.valid).toBe(true);
    expect(defaultBranchName('names · names.txt', f)).toBe('names · names.txt · branch');
  });

  it('takes the typed values and names the first changed setting', () => {
    const f = branchForm(parent, 500, { lr: '1e-4', minLr: '1e-5', seed: '7' });
    expect(f.valid).toBe(true);
    expect(f.config.lr).toBe(1e-4);
    expect(f.config.nEmbd).toBe(parent.nEmbd);
    expect(f.changed).toEqual(['lr', 'minLr', 'seed']);
    expect(defaultBranchName('A', f)).toBe('A · lr 1e-4');
    expect(defaultBranchName('A', branchForm(parent, 500, { weightDecay: '0.05' }))).toBe('A · weightDecay 0.05');
  });

  it('reports a text that does not parse with the core\'s message, and validate()\'s rules', () => {
    const bad = branchForm(parent, 500, { lr: 'fast', gradClip: '-1' });
    expect(bad.valid).toBe(false);
    expect(bad.issues.lr).toMatch(/lr must be a number/);
    expect(bad.issues.gradClip).toMatch(/out of range/);
    expect(bad.config.lr).toBe(parent.lr);
    const above = branchForm(parent, 500, { minLr: '0.01' });
    expect(above.issues.minLr).toMatch(/minLr 0.01 is above lr/);
  });

  it('wants the end past the checkpoint, and proposes one past a finished run\'s last checkpoint', () => {
    expect(branchForm(parent, 500, { steps: '500' }).issues.steps).toMatch(/not past the checkpoint's step 500/);
    expect(branchForm(parent, 500, { steps: '501' }).valid).toBe(true);
    expect(defaultEnd(parent, 500)).toBe(1000);
    expect(defaultEnd(parent, 1000)).toBe(1500);
    const f = branchForm(parent, 1000, {});
    expect(f.valid).toBe(true);
    expect(f.config.steps).toBe(1500);
    expect(defaultBranchName('A', f)).toBe('A · steps 1500');
  });
});
