// The lab session with its run library (IndexedDB, here fake-indexeddb) on the CPU
// backend: what a reload does to a run. A run trained to 12, closed and opened by a new
// session, resumed to 24, has the losses of a run trained to 24 in one go; a branch keeps
// its parent's curve; an exported checkpoint is the CLI's format and imports back; a
// damaged newest checkpoint is refused and the run opens at the one before; a full quota
// pauses the run with the store's message and the last checkpoint stays.
import { readFileSync } from 'node:fs';
import 'fake-indexeddb/auto';
import { IDBFactory } from 'fake-indexeddb';
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../../src/backends/cpu.ts';
import { decodeCheckpoint } from '../../src/core/checkpoint.ts';
import type { RunConfig } from '../../src/core/config.ts';
import { findPreset } from '../../src/core/presets.ts';
import { openRunStore } from '../../src/store/idb-store.ts';
import { openKilnDB } from '../../src/store/schema.ts';
import type { RunStore } from '../../src/store/run-store.ts';
import type { LabMetrics, RunStatus } from '../../src/worker/api.ts';
import { LabSession, type LabSessionDeps } from '../../src/worker/lab-session.ts';

async function sha256(bytes: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>);
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

function deps(store: () => Promise<RunStore>): LabSessionDeps {
  return {
    environment: async () => ({ webgpu: false, webgpuWhy: 'Node test', device: '', isSoftware: false, limits: { maxStorageBufferBindingSize: 0, maxBufferSize: 0 } }),
    createBackend: async () => new CpuBackend(),
    loadBundled: async (file) => new Uint8Array(readFileSync(new URL(`../../public/datasets/${file}`, import.meta.url))),
    sha256,
    store,
  };
}

const tiny = (over: Partial<RunConfig> = {}): RunConfig => ({ ...findPreset('tiny')!.config, steps: 12, evalEvery: 4, checkpointEvery: 6, ...over });

/** One browser profile: every session opened on it sees the same database. */
function profile() {
  const factory = new IDBFactory();
  const open = () => openRunStore({ idbFactory: factory, chunkBytes: 16 * 1024, storage: { estimate: async () => ({ usage: 0, quota: 1e9 }) } });
  return Object.assign(open, { factory });
}

async function until(s: LabSession, ok: (st: RunStatus) => boolean, ms = 60_000): Promise<RunStatus> {
  const end = Date.now() + ms;
  for (;;) {
    const st = await s.status();
    if (ok(st)) return st;
    if (Date.now() > end) throw new Error(`timed out; status ${JSON.stringify(st)}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

const curve = (rows: LabMetrics[]) => rows.map((m) => [m.step, m.loss, m.val_loss ?? null]);

async function trained(open: () => Promise<RunStore>, config: RunConfig, data: 'names' | Uint8Array = 'names') {
  const s = new LabSession(deps(open), { flushMs: 1 });
  if (data === 'names') await s.prepareData({ kind: 'bundled', id: 'names' }, config);
  else await s.prepareData({ kind: 'file', name: 'mine.txt', bytes: data }, config);
  const info = await s.createRun({ preset: 'tiny', config, data: null }, 'cpu');
  await s.start();
  await until(s, (st) => st.phase === 'done');
  await s.pause(); // waits for the end's save
  return { s, info };
}

describe('LabSession with a run library', () => {
  it('a run closed at 12 and opened by a new session resumes to 24 with the losses of 24 in one go', async () => {
    const open = profile();
    const straight = await trained(open, tiny({ steps: 24 }));
    const want = curve(await straight.s.history());

    const first = await trained(open, tiny({ steps: 12 }));
    const runs = await first.s.listRuns();
    expect(runs.map((r) => r.name)).toContain(first.info.name);
    const rec = runs.find((r) => r.id === first.info.id)!;
    expect(rec).toMatchObject({ step: 12, phase: 'done', checkpoints: expect.any(Array) });
    expect(rec.checkpoints.map((c) => c.step)).toEqual([6, 12]);
    await first.s.dispose(); // the page closes

    const again = new LabSession(deps(open), { flushMs: 1 });
    const info = await again.openRun(first.info.id, 'cpu');
    expect(info.data?.name).toBeTruthy();
    expect((await again.status())).toMatchObject({ phase: 'done', step: 12, savedStep: 12 });
    expect(curve(await again.history())).toEqual(want.filter(([step]) => (step as number) <= 12));
    await again.extend(12);
    await until(again, (st) => st.phase === 'done' && st.step === 24);
    await again.pause();
    expect(curve(await again.history())).toEqual(want);
    // What was stored is the same curve, and the record moved on.
    expect(curve(await again.runMetrics(first.info.id))).toEqual(want);
    expect((await again.listRuns()).find((r) => r.id === first.info.id)).toMatchObject({ step: 24, phase: 'done' });
  }, 120_000);

  it('a branch keeps the parent curve to its step and goes on with its own learning rate', async () => {
    const open = profile();
    const parent = await trained(open, tiny({ steps: 12 }));
    const parentRows = await parent.s.history();
    const info = await parent.s.branchRun(parent.info.id, 6, tiny({ steps: 12, lr: 1e-3 }), 'cpu', 'low lr');
    expect(info).toMatchObject({ name: 'low lr', parent: { runId: parent.info.id, step: 6 } });
    expect(info.spec.config.lr).toBe(1e-3);
    expect(curve(await parent.s.history())).toEqual(curve(parentRows).filter(([step]) => (step as number) <= 6));
    await parent.s.start();
    await until(parent.s, (st) => st.phase === 'done');
    await parent.s.pause();
    const rows = await parent.s.history();
    expect(rows.at(-1)!.step).toBe(12);
    expect(rows.find((m) => m.step === 7)!.lr).not.toBe(parentRows.find((m) => m.step === 7)!.lr);
    const runs = await parent.s.listRuns();
    expect(runs).toHaveLength(2);
    // A branch may not change the model.
    await expect(parent.s.branchRun(parent.info.id, 6, tiny({ nEmbd: 64 }), 'cpu')).rejects.toThrow(/keeps the parent's model/);
  }, 120_000);

  it('exports the CLI checkpoint format, imports it back as a run that samples, and renames and deletes', async () => {
    const open = profile();
    const { s, info } = await trained(open, tiny({ steps: 6 }));
    const { fileName, bytes } = await s.exportCheckpoint(info.id);
    expect(fileName).toMatch(/step6\.safetensors$/);
    const ck = await decodeCheckpoint(bytes);
    expect(ck.step).toBe(6);
    expect(ck.extra?.['kiln.dataset']).toBe(JSON.stringify({ kind: 'bundled', id: 'names' }));

    const imported = await s.importCheckpoint('shared.safetensors', bytes);
    expect(imported).toMatchObject({ name: 'shared', step: 6, imported: { fileName: 'shared.safetensors' }, spec: { preset: 'tiny' } });
    await s.openRun(imported.id, 'cpu');
    const text = await s.sample({ prompt: '', maxTokens: 10, temperature: 1, topK: 0, topP: 1, seed: 1 });
    expect(text.length).toBeGreaterThan(0);
    await expect(s.importCheckpoint('junk.safetensors', new Uint8Array([1, 2, 3]))).rejects.toMatchObject({ code: 'checkpoint' });

    const renamed = await s.renameRun(imported.id, '  my model  ');
    expect(renamed.name).toBe('my model');
    await s.deleteRun(info.id);
    expect((await s.listRuns()).map((r) => r.name)).toEqual(['my model']);
  }, 120_000);

  it('a user file is kept by hash, so the run reopens with its data; another file is refused by hash', async () => {
    const open = profile();
    const text = new TextEncoder().encode('abcdefgh ijklmnop qrstuvwxyz. '.repeat(300));
    const { s, info } = await trained(open, tiny({ steps: 6 }), text);
    await s.dispose();
    const again = new LabSession(deps(open), { flushMs: 1 });
    const opened = await again.openRun(info.id, 'cpu');
    expect(opened.data).toMatchObject({ name: 'mine.txt', bytes: text.length });
    const wrong = new TextEncoder().encode('something else entirely');
    await expect(
      again.prepareData({ kind: 'file', name: 'mine.txt', bytes: wrong, expect: { sha256: await sha256(text), bytes: text.length } }, tiny()),
    ).rejects.toThrow(/not the file the run was trained on/);
  }, 120_000);

  it('a damaged newest checkpoint is refused with the earlier step named, and the run opens there', async () => {
    const open = profile();
    const { s, info } = await trained(open, tiny({ steps: 12 }));
    const store = await open();
    const rec = (await store.getRun(info.id))!;
    const newest = rec.checkpoints.at(-1)!;
    // Flip a byte in the stored chunks of the newest checkpoint, as a failing disk would.
    await flipChunkByte(open.factory, newest.id);
    await expect(s.openRun(info.id, 'cpu')).rejects.toMatchObject({ code: 'checkpoint', hint: expect.stringContaining('step 6') });
    const opened = await s.openRun(info.id, 'cpu', 6);
    expect(opened.spec.config.steps).toBe(12);
    expect(await s.status()).toMatchObject({ phase: 'paused', step: 6 });
    expect((await s.history()).every((m) => m.step <= 6)).toBe(true);
    await s.start();
    await until(s, (st) => st.phase === 'done');
    await s.pause();
    expect((await store.getRun(info.id))!.checkpoints.map((c) => c.step)).toEqual([6, 12]);
  }, 120_000);

  it('a save that hits the quota pauses the run with the message, and the last checkpoint stays loadable', async () => {
    const factory = new IDBFactory();
    let saves = 0;
    let full = false;
    const open = () =>
      openRunStore({
        idbFactory: factory, chunkBytes: 16 * 1024, storage: { estimate: async () => ({ usage: 0, quota: 1e9 }) },
        faults: {
          beforeChunkWrite: (index) => {
            if (index === 0 && ++saves === 2) full = true;
            if (full) throw new DOMException('quota', 'QuotaExceededError');
          },
        },
      });
    const config = tiny({ steps: 5000 });
    const s = new LabSession(deps(open), { flushMs: 1 });
    await s.prepareData({ kind: 'bundled', id: 'names' }, config);
    const info = await s.createRun({ preset: 'tiny', config, data: null }, 'cpu');
    await s.start();
    const st = await until(s, (x) => x.phase === 'paused' && !!x.saveError);
    expect(st.saveError).toMatchObject({ code: 'storage', message: expect.stringMatching(/storage is full: saving this checkpoint needs \d/) });
    expect(st.step).toBeLessThan(5000);
    expect(st.savedStep).toBe(6);
    const store = await open();
    const rec = (await store.getRun(info.id))!;
    expect(rec.checkpoints.map((c) => c.step)).toEqual([6]);
    expect((await decodeCheckpoint(await store.loadCheckpoint(info.id, rec.checkpoints[0]!))).step).toBe(6);
    // Space freed: Save now writes the paused state.
    full = false;
    await s.save();
    const after = await s.status();
    expect(after.saveError).toBeUndefined();
    expect(after.savedStep).toBe(st.step);
    expect((await store.getRun(info.id))!.checkpoints.map((c) => c.step)).toEqual([6, st.step]);
  }, 120_000);
});

/** Flips a byte in a stored checkpoint's first chunk, as a failing disk would. */
async function flipChunkByte(factory: IDBFactory, checkpointId: string): Promise<void> {
  const db = await openKilnDB(factory);
  const key: [string, number] = [checkpointId, 0];
  const chunk = (await db.get('chunks', key))!;
  const copy = chunk.slice();
  copy[copy.length >> 1] ^= 0xff;
  await db.put('chunks', copy, key);
  db.close();
}
