// The checks every refusal shares: a KilnError (never a bare Error or a crash) with the
// expected code and a one-line message that says what was wrong.
import { expect } from 'vitest';
import { KilnError, type ErrorCode } from '../../src/core/errors.ts';

function check(caught: unknown, code: ErrorCode, match: RegExp | undefined, what: string): KilnError {
  expect(caught, `expected ${what} to be refused with a KilnError`).toBeInstanceOf(KilnError);
  const e = caught as KilnError;
  expect(e.code).toBe(code);
  if (match) expect(e.message).toMatch(match);
  expect(e.message).not.toContain('\n');
  return e;
}

/** The KilnError `f` throws, checked for its code and message. */
export function expectKilnError(f: () => unknown, code: ErrorCode, match?: RegExp, what = 'the call'): KilnError {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  return check(caught, code, match, what);
}

/** The KilnError `p` rejects with, checked for its code and message. */
export async function expectKilnRejection(p: Promise<unknown>, code: ErrorCode, match?: RegExp, what = 'the promise'): Promise<KilnError> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  return check(caught, code, match, what);
}
