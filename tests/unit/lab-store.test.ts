// The session's handle on the run library: opened once, on first use; without one,
// or when the browser will not open one, saves behind training skip quietly while what
// a person asked of the library is refused with why; waiting on the saves waits for
// every one queued so far.
import { describe, expect, it } from 'vitest';
import { isKilnError } from '../../src/core/errors.ts';
import type { RunStore } from '../../src/store/run-store.ts';
import { LabStore } from '../../src/worker/lab-store.ts';

async function refusal(p: Promise<unknown>) {
  const e = await p.then(() => null, (err: unknown) => err);
  if (!isKilnError(e)) throw new Error(`expected a KilnError, got ${String(e)}`);
  return { code: e.code, message: e.message, hint: e.hint };
}

describe('LabStore', () => {
  it('opens the library once, on first use', async () => {
    let opened = 0;
    const store = {} as RunStore;
    const lib = new LabStore({
      store: async () => {
        opened++;
        return store;
      },
    });
    expect(lib.kept).toBe(true);
    expect(opened).toBe(0);
    expect(await lib.tryOpen()).toBe(store);
    expect(await lib.need()).toBe(store);
    expect(opened).toBe(1);
  });

  it('without a library: nothing kept, and asking for it says so', async () => {
    const lib = new LabStore({});
    expect(lib.kept).toBe(false);
    expect(await lib.tryOpen()).toBeNull();
    expect(await refusal(lib.need())).toEqual({ code: 'storage', message: 'runs are not kept here', hint: 'this build of the lab has no run library' });
  });

  it('a library the browser will not open: tried once, null for saves, the browser\'s reason for a person', async () => {
    let opened = 0;
    const lib = new LabStore({
      store: async () => {
        opened++;
        throw new DOMException('The user denied permission to access the database.', 'SecurityError');
      },
    });
    expect(lib.kept).toBe(true);
    expect(await lib.tryOpen()).toBeNull();
    expect(await refusal(lib.need())).toEqual({
      code: 'storage',
      message: 'this browser does not let Kiln keep runs (The user denied permission to access the database.)',
      hint: 'runs still train, but are lost when the page closes; private windows and some privacy settings block site storage',
    });
    expect(opened).toBe(1);
  });

  it('settles once the saves queued so far are written, in order', async () => {
    const lib = new LabStore({});
    const done: number[] = [];
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    lib.saves.add(async () => {
      await held;
      done.push(1);
    });
    lib.saves.add(async () => {
      done.push(2);
    });
    const settled = lib.settled().then(() => [...done]);
    await Promise.resolve();
    expect(done).toEqual([]);
    release();
    expect(await settled).toEqual([1, 2]);
  });
});
