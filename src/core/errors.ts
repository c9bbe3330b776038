// One error type for everything a user can cause. The CLI maps `code` to an exit
// code (DESIGN.md: 1 usage/config, 2 data/checkpoint, 3 device, 4 numerical); the UI
// shows `message` and `hint`. 'device_lost' is a device that went away mid-run (driver
// reset, sleep, unplugged): unlike the other device errors, the run can go on from its
// last checkpoint, so callers that know where that is say so.

export type ErrorCode = 'usage' | 'config' | 'data' | 'checkpoint' | 'device' | 'device_lost' | 'numerical' | 'storage';

export class KilnError extends Error {
  readonly code: ErrorCode;
  readonly hint: string;

  constructor(code: ErrorCode, message: string, hint = '') {
    super(message);
    this.name = 'KilnError';
    this.code = code;
    this.hint = hint;
  }
}

export const EXIT_CODES: Record<ErrorCode, number> = {
  usage: 1,
  config: 1,
  data: 2,
  checkpoint: 2,
  storage: 2,
  device: 3,
  device_lost: 3,
  numerical: 4,
};

export function isKilnError(e: unknown): e is KilnError {
  return e instanceof KilnError;
}
