// The session's handle on the run library, opened once, on first use (a failed open is
// remembered, not tried again). Two ways in, for two kinds of caller: saves behind
// training go on without a library (the run is then just not kept), while what a person
// asked of the library fails with why there is none. Every run's saves go through one
// queue, one after another, so waiting on it (pause, stop, a delete, opening another
// run) waits for them all.
import { KilnError } from '../core/errors.ts';
import { printable } from '../core/text.ts';
import type { RunStore } from '../store/run-store.ts';
import { SaveQueue } from './run-saver.ts';

export interface StoreDeps {
  /** The run library (opened once, on first use); without it runs are not kept. */
  store?(): Promise<RunStore>;
}

export class LabStore {
  /** Every run's saves, one after another behind training (a closed run's still finish first). */
  readonly saves = new SaveQueue();
  private storePromise: Promise<RunStore> | null = null;

  constructor(private readonly deps: StoreDeps) {}

  /** Whether this lab keeps runs at all (it may still fail to open). */
  get kept(): boolean {
    return this.deps.store !== undefined;
  }

  /** The library, or null where there is none or it cannot be opened. */
  async tryOpen(): Promise<RunStore | null> {
    if (!this.deps.store) return null;
    this.storePromise ??= this.deps.store();
    try {
      return await this.storePromise;
    } catch {
      return null;
    }
  }

  /** The library, or a storage error that says why there is none. */
  async need(): Promise<RunStore> {
    if (!this.deps.store) throw new KilnError('storage', 'runs are not kept here', 'this build of the lab has no run library');
    this.storePromise ??= this.deps.store();
    try {
      return await this.storePromise;
    } catch (e) {
      throw new KilnError(
        'storage',
        `this browser does not let Kiln keep runs (${printable((e as Error)?.message ?? String(e), 160)})`,
        'runs still train, but are lost when the page closes; private windows and some privacy settings block site storage',
      );
    }
  }

  /** Waits for the saves queued so far (they never reject: a failure is status.saveError). */
  async settled(): Promise<void> {
    await this.saves.settled();
  }
}
