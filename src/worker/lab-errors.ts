// A failure as the page shows it (LabError): a KilnError keeps its code, message and
// hint; anything else is a bug in Kiln and is said to be one. A training leg's failure
// also says whether Recover can go on from the last in-memory snapshot, and from which
// step, since that is what the person can do next.
import { validate, type RunConfig } from '../core/config.ts';
import { isKilnError, KilnError } from '../core/errors.ts';
import type { LabError } from './api.ts';

export function toLabError(e: unknown): LabError {
  if (isKilnError(e)) return { code: e.code, message: e.message, hint: e.hint };
  const err = e instanceof Error ? e : new Error(String(e));
  return { code: 'internal', message: `${err.name}: ${err.message}`, hint: 'this is a bug in Kiln: reload the page; the run can be started again' };
}

/** Why a training leg stopped, and whether a new backend loaded from the snapshot (at snapshotStep) can go on. */
export function legFailure(e: unknown, snapshotStep: number): { error: LabError; recoverable: boolean } {
  const error = toLabError(e);
  const recoverable = error.code === 'device_lost' || error.code === 'device' || error.code === 'numerical' || error.code === 'internal';
  if (error.code === 'device_lost') error.hint = `the run can go on from step ${snapshotStep} (its last snapshot) on a new device: press Recover`;
  if (error.code === 'numerical') error.hint = `${error.hint}; Recover returns to step ${snapshotStep}`;
  return { error, recoverable };
}

/** A config the form should not have let through: every problem in one message. */
export function assertValidConfig(config: RunConfig): void {
  const issues = validate(config);
  if (issues.length) throw new KilnError('config', issues.map((i) => i.message).join('; '), 'fix the fields marked in the form');
}
