// A failure as the page shows it: a KilnError as it is, anything else as a bug; a
// training leg's failure says whether Recover can go on, and from which step.
import { describe, expect, it } from 'vitest';
import { KilnError } from '../../src/core/errors.ts';
import { findPreset } from '../../src/core/presets.ts';
import { assertValidConfig, legFailure, toLabError } from '../../src/worker/lab-errors.ts';

describe('lab errors', () => {
  it('keeps a KilnError\'s code, message and hint, and calls anything else a bug', () => {
    expect(toLabError(new KilnError('data', 'not text', 'open a .txt'))).toEqual({ code: 'data', message: 'not text', hint: 'open a .txt' });
    expect(toLabError(new TypeError('x is undefined'))).toEqual({
      code: 'internal', message: 'TypeError: x is undefined', hint: 'this is a bug in Kiln: reload the page; the run can be started again',
    });
    expect(toLabError('thrown string').message).toBe('Error: thrown string');
  });

  it('offers Recover after a lost device, a device error, a NaN or a bug, from the snapshot\'s step', () => {
    expect(legFailure(new KilnError('device_lost', 'the GPU was lost', 'reload'), 40)).toEqual({
      error: { code: 'device_lost', message: 'the GPU was lost', hint: 'the run can go on from step 40 (its last snapshot) on a new device: press Recover' },
      recoverable: true,
    });
    expect(legFailure(new KilnError('numerical', 'loss is NaN at step 43', 'lower the learning rate'), 40)).toMatchObject({
      error: { hint: 'lower the learning rate; Recover returns to step 40' }, recoverable: true,
    });
    expect(legFailure(new KilnError('device', 'out of memory', 'smaller batch'), 40)).toMatchObject({ error: { hint: 'smaller batch' }, recoverable: true });
    expect(legFailure(new Error('boom'), 40).recoverable).toBe(true);
    expect(legFailure(new KilnError('data', 'too short', 'more text'), 40)).toMatchObject({ error: { hint: 'more text' }, recoverable: false });
    expect(legFailure(new KilnError('storage', 'full', 'free space'), 40).recoverable).toBe(false);
  });

  it('says every problem of a config at once', () => {
    const config = findPreset('tiny')!.config;
    expect(() => assertValidConfig(config)).not.toThrow();
    let e: unknown;
    try {
      assertValidConfig({ ...config, lr: -1, steps: 0 });
    } catch (err) {
      e = err;
    }
    expect(e).toBeInstanceOf(KilnError);
    expect(e).toMatchObject({ code: 'config', hint: 'fix the fields marked in the form' });
    expect((e as KilnError).message.split('; ').length).toBeGreaterThanOrEqual(2);
  });
});
