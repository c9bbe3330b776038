// The run library on fake-indexeddb: the same code the lab runs on the browser's
// IndexedDB. Each test gets its own factory, so nothing leaks between them.
import 'fake-indexeddb/auto'; // idb checks values against the global IDB* classes
import { IDBFactory } from 'fake-indexeddb';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeCheckpoint, encodeCheckpoint, sha256Hex, type CheckpointData } from '../../src/core/checkpoint.ts';
import type { RunConfig } from '../../src/core/config.ts';
import { formatBytes, initParams, modelSpec, resolveModel } from '../../src/core/model-spec.ts';
import { findPreset } from '../../src/core/presets.ts';
import { Rng } from '../../src/core/rng.ts';
import type { RunRecord } from '../../src/core/run-record.ts';
import type { DatasetRef } from '../../src/core/run-spec.ts';
import { openRunStore, type RunStoreOptions } from '../../src/store/idb-store.ts';
import type { RunStore, SaveRequest } from '../../src/store/run-store.ts';
import { DB_VERSION, openKilnDB, type KilnDatabase } from '../../src/store/schema.ts';
import type { StepMetrics } from '../../src/train/trainer.ts';
import { expectKilnRejection } from '../helpers/kiln-error.ts';

const NAME = 'kiln-test';
const config: RunConfig = { ...findPreset('tiny')!.config, nLayer: 1, nHead: 2, nEmbd: 8, blockSize: 4 };

function record(id: string, fields: Partial<RunRecord> = {}, data: DatasetRef | null = { kind: 'bundled', id: 'names' }): RunRecord {
  return {
    id, name: `run ${id}`, createdAt: 1000, updatedAt: 1000, spec: { preset: 'tiny', config, data },
    backend: 'cpu', device: 'test CPU', numParams: 100, step: 0, phase: 'ready',
    lastLoss: null, lastValLoss: null, bestValLoss: null, elapsedS: 0, checkpoints: [], bytesOnDisk: 0, ...fields,
  };
}

function row(step: number, loss = 3 - step / 100): StepMetrics {
  return { step, loss, lr: 1e-3, grad_norm: 1, tokens_per_s: 1000, elapsed_s: step / 10 };
}

function save(step: number, metrics: StepMetrics[] = [], patch: SaveRequest['patch'] = {}): SaveRequest {
  return { step, valLoss: null, patch: { phase: 'paused', ...patch }, metrics };
}

/** Deterministic bytes that differ per seed, so a mixed-up chunk shows. */
function bytesOf(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed * 7 + (i >> 8)) & 255);
}

let factory: IDBFactory;
const opened: { close(): void }[] = [];

async function openStore(opts: Partial<RunStoreOptions> = {}): Promise<RunStore> {
  const s = await openRunStore({ name: NAME, idbFactory: factory, chunkBytes: 1000, ...opts });
  opened.push(s);
  return s;
}

async function raw(version = DB_VERSION): Promise<KilnDatabase> {
  const db = await openKilnDB(factory, NAME, version);
  opened.push(db);
  return db;
}

async function chunkKeys(): Promise<[string, number][]> {
  const db = await raw();
  const keys = await db.getAllKeys('chunks');
  db.close();
  return keys;
}

afterEach(() => {
  for (const s of opened.splice(0)) s.close();
});

function fresh(): void {
  factory = new IDBFactory();
}

describe('schema', () => {
  it('upgrades a version-1 library: runs, checkpoints and metrics survive; datasets and the index appear', async () => {
    fresh();
    const bytes = bytesOf(2500, 1);
    const id = 'ckpt-v1';
    const run = record('old', {
      step: 40, updatedAt: 5000, bytesOnDisk: 2500,
      checkpoints: [{ id, step: 40, bytes: 2500, sha256: await sha256Hex(bytes), chunks: 3, savedAt: 5000, valLoss: 2.5 }],
    });
    const v1 = await raw(1);
    expect([...v1.objectStoreNames].sort()).toEqual(['chunks', 'metrics', 'runs']);
    await v1.put('runs', run);
    for (let i = 0; i < 3; i++) await v1.put('chunks', bytes.slice(i * 1000, (i + 1) * 1000), [id, i]);
    await v1.put('metrics', { runId: 'old', seq: 0, rows: [row(10), row(20)] });
    await v1.put('metrics', { runId: 'old', seq: 1, rows: [row(30), row(40)] });
    v1.close();

    const store = await openStore();
    const runs = await store.listRuns();
    expect(runs.map((r) => r.id)).toEqual(['old']);
    expect(await store.loadCheckpoint('old', runs[0].checkpoints[0])).toEqual(bytes);
    expect((await store.metrics('old')).map((r) => r.step)).toEqual([10, 20, 30, 40]);
    store.close();

    const v2 = await raw();
    expect(v2.version).toBe(2);
    expect([...v2.objectStoreNames].sort()).toEqual(['chunks', 'datasets', 'metrics', 'runs']);
    const tx = v2.transaction('runs');
    expect([...tx.store.indexNames]).toEqual(['by-updated']);
    expect(tx.store.index('by-updated').keyPath).toBe('updatedAt');
    expect(await tx.store.index('by-updated').getAllKeys()).toEqual(['old']);
  });

  it('lists runs most recently updated first', async () => {
    fresh();
    const store = await openStore();
    await store.putRun(record('a', { updatedAt: 10 }));
    await store.putRun(record('b', { updatedAt: 30 }));
    await store.putRun(record('c', { updatedAt: 20 }));
    expect((await store.listRuns()).map((r) => r.id)).toEqual(['b', 'c', 'a']);
    await store.saveCheckpoint('a', bytesOf(10, 0), save(1));
    expect((await store.listRuns()).map((r) => r.id)).toEqual(['a', 'b', 'c']);
  });
});

describe('checkpoints', () => {
  it('stores 3500 bytes as 4 chunks of at most 1000 and reads them back identically', async () => {
    fresh();
    const store = await openStore();
    await store.putRun(record('r'));
    const bytes = bytesOf(3500, 2);
    const rec = await store.saveCheckpoint('r', bytes, save(100, [row(50), row(100)], { lastLoss: 2.5 }));
    expect(rec.checkpoints).toHaveLength(1);
    const meta = rec.checkpoints[0];
    expect(meta).toMatchObject({ step: 100, bytes: 3500, chunks: 4, sha256: await sha256Hex(bytes) });
    expect(rec.step).toBe(100);
    expect(rec.lastLoss).toBe(2.5);
    expect(rec.phase).toBe('paused');
    expect(rec.bytesOnDisk).toBeGreaterThan(3500);
    const keys = await chunkKeys();
    expect(keys).toEqual([0, 1, 2, 3].map((i) => [meta.id, i]));
    const db = await raw();
    expect((await db.get('chunks', [meta.id, 3]))!.length).toBe(500);
    db.close();
    expect(await store.loadCheckpoint('r', meta)).toEqual(bytes);
    expect(await store.getRun('r')).toEqual(rec);
  });

  it('round-trips a real checkpoint that decodeCheckpoint accepts', async () => {
    fresh();
    const chars = ['\n', ' ', 'a', 'b', 'c'];
    const model = resolveModel(config, chars.length);
    const spec = modelSpec(model);
    const rng = new Rng(7);
    const params = initParams(spec, rng);
    const m = new Float32Array(spec.numParams).map(() => rng.normal() * 1e-3);
    const v = new Float32Array(spec.numParams).map(() => rng.next() * 1e-6);
    const data: CheckpointData = {
      config, model, tokenizer: { kind: 'char', chars }, step: 9, rng: '{"s":[1,2]}', state: { params, m, v, step: 9 },
    };
    const bytes = await encodeCheckpoint(data);
    const store = await openStore({ chunkBytes: 4096 });
    await store.putRun(record('real'));
    const rec = await store.saveCheckpoint('real', bytes, save(9));
    expect(rec.checkpoints[0].chunks).toBe(Math.ceil(bytes.length / 4096));
    expect(rec.checkpoints[0].chunks).toBeGreaterThan(1);
    const back = await decodeCheckpoint(await store.loadCheckpoint('real', rec.checkpoints[0]));
    expect(back.step).toBe(9);
    expect(back.state.params).toEqual(params);
    expect(back.state.m).toEqual(m);
    expect(back.state.v).toEqual(v);
  });

  it('says a checkpoint with a changed chunk is damaged and points to the earlier one', async () => {
    fresh();
    const store = await openStore();
    await store.putRun(record('r', { name: 'names run' }));
    await store.saveCheckpoint('r', bytesOf(2500, 1), save(100));
    const rec = await store.saveCheckpoint('r', bytesOf(2500, 2), save(200));
    const [first, second] = rec.checkpoints;
    const db = await raw();
    const chunk = (await db.get('chunks', [second.id, 1]))!;
    chunk[17] ^= 1;
    await db.put('chunks', chunk, [second.id, 1]);
    db.close();
    const e = await expectKilnRejection(store.loadCheckpoint('r', second), 'checkpoint', /step 200 of "names run" is damaged \(its SHA-256/);
    expect(e.hint).toBe('open the run at an earlier checkpoint (step 100)');
    expect(await store.loadCheckpoint('r', first)).toEqual(bytesOf(2500, 1));
  });

  it('says a checkpoint with a missing chunk is damaged; with no earlier one, says what to do', async () => {
    fresh();
    const store = await openStore();
    await store.putRun(record('r'));
    const rec = await store.saveCheckpoint('r', bytesOf(2500, 3), save(50));
    const db = await raw();
    await db.delete('chunks', [rec.checkpoints[0].id, 2]);
    db.close();
    const e = await expectKilnRejection(store.loadCheckpoint('r', rec.checkpoints[0]), 'checkpoint', /step 50 .* is damaged \(part 3 of 3 is missing\)/);
    expect(e.hint).toMatch(/no earlier checkpoint: delete it, or import its downloaded file/);
  });

  it('says a checkpoint whose chunks add up to the wrong length is damaged', async () => {
    fresh();
    const store = await openStore();
    await store.putRun(record('r'));
    const rec = await store.saveCheckpoint('r', bytesOf(2500, 3), save(50));
    const db = await raw();
    await db.put('chunks', bytesOf(400, 3), [rec.checkpoints[0].id, 2]);
    db.close();
    await expectKilnRejection(store.loadCheckpoint('r', rec.checkpoints[0]), 'checkpoint', /has 2400 bytes, not the 2500 recorded/);
  });

  it('keeps the newest keepCheckpoints and deletes the chunks of older ones', async () => {
    fresh();
    const store = await openStore({ keepCheckpoints: 2 });
    await store.putRun(record('r'));
    const ids: string[] = [];
    for (const step of [10, 20, 30, 40]) ids.push((await store.saveCheckpoint('r', bytesOf(1500, step), save(step))).checkpoints.at(-1)!.id);
    const rec = (await store.getRun('r'))!;
    expect(rec.checkpoints.map((c) => c.step)).toEqual([30, 40]);
    expect(rec.bytesOnDisk).toBe(3000);
    const keys = await chunkKeys();
    expect(keys).toHaveLength(4);
    expect(new Set(keys.map((k) => k[0]))).toEqual(new Set(ids.slice(2)));
    expect(await store.loadCheckpoint('r', rec.checkpoints[0])).toEqual(bytesOf(1500, 30));
  });

  it('refuses to save for a run that is not in the library, writing nothing', async () => {
    fresh();
    const store = await openStore();
    await expectKilnRejection(store.saveCheckpoint('ghost', bytesOf(100, 0), save(1)), 'storage', /not in the library/);
    expect(await chunkKeys()).toEqual([]);
  });

  it('keeps checkpoints and bytesOnDisk when putRun is given a stale record', async () => {
    fresh();
    const store = await openStore();
    const stale = record('r');
    await store.putRun(stale);
    await store.saveCheckpoint('r', bytesOf(1200, 0), save(5));
    await store.putRun({ ...stale, phase: 'stopped' });
    const rec = (await store.getRun('r'))!;
    expect(rec.phase).toBe('stopped');
    expect(rec.checkpoints).toHaveLength(1);
    expect(rec.bytesOnDisk).toBe(1200);
  });
});

describe('failed saves', () => {
  it('a save that dies midway leaves the previous checkpoint and record as they were; sweep removes its chunks', async () => {
    fresh();
    let store = await openStore();
    await store.putRun(record('r'));
    const before = await store.saveCheckpoint('r', bytesOf(2500, 1), save(100, [row(100)]));
    store.close();

    // The tab dies after two of four chunks: the connection goes away mid-save, so
    // nothing can clean up.
    let dying: RunStore | null = null;
    const faults = { beforeChunkWrite: (i: number) => { if (i === 2) dying!.close(); } };
    dying = await openStore({ faults });
    await expectKilnRejection(dying.saveCheckpoint('r', bytesOf(3500, 2), save(200, [row(200)])), 'storage');
    expect(await chunkKeys()).toHaveLength(3 + 2);

    const db = await raw();
    expect(await db.get('runs', 'r')).toEqual(before);
    db.close();

    // Opening sweeps; so would an explicit sweep() (checked on fresh orphans below).
    store = await openStore();
    expect(await chunkKeys()).toEqual([0, 1, 2].map((i) => [before.checkpoints[0].id, i]));
    expect(await store.getRun('r')).toEqual(before);
    expect(await store.loadCheckpoint('r', before.checkpoints[0])).toEqual(bytesOf(2500, 1));
    expect((await store.metrics('r')).map((m) => m.step)).toEqual([100]);

    const orphans = await raw();
    await orphans.put('chunks', bytesOf(10, 0), ['orphan-a', 0]);
    await orphans.put('chunks', bytesOf(10, 0), ['orphan-a', 1]);
    await orphans.put('chunks', bytesOf(10, 0), ['orphan-z', 0]);
    orphans.close();
    expect(await store.sweep()).toBe(3);
    expect(await store.sweep()).toBe(0);
    expect(await chunkKeys()).toHaveLength(3);
    expect(await store.loadCheckpoint('r', before.checkpoints[0])).toEqual(bytesOf(2500, 1));
  });

  it('a full disk becomes a storage error with the size needed, leaving no chunks behind', async () => {
    fresh();
    let fail = false;
    const store = await openStore({
      faults: { beforeChunkWrite: (i) => { if (fail && i === 2) throw new DOMException('quota', 'QuotaExceededError'); } },
    });
    await store.putRun(record('r', { name: 'this run' }));
    await store.putRun(record('big', { name: 'the big one' }));
    await store.saveCheckpoint('big', bytesOf(5000, 9), save(10));
    const before = await store.saveCheckpoint('r', bytesOf(2500, 1), save(100));
    fail = true;
    const e = await expectKilnRejection(store.saveCheckpoint('r', bytesOf(3500, 2), save(200, [row(200)])), 'storage');
    expect(e.message).toBe(`the browser's storage is full: saving this checkpoint needs ${formatBytes(1500)} more`);
    expect(e.hint).toContain(`largest: "the big one", ${formatBytes(5000)}`);
    expect(e.hint).toContain('nothing was lost');
    const keys = await chunkKeys();
    expect(keys).toHaveLength(5 + 3);
    expect(keys.filter((k) => k[0] === before.checkpoints[0].id)).toHaveLength(3);
    expect(await store.getRun('r')).toEqual(before);
    expect(await store.metrics('r')).toEqual([]);
    expect(await store.loadCheckpoint('r', before.checkpoints[0])).toEqual(bytesOf(2500, 1));
    expect(await store.sweep()).toBe(0);
  });
});

describe('saves and sweeps together', () => {
  it('a sweep in the saving tab leaves the chunks of a save in flight alone', async () => {
    fresh();
    let store: RunStore | null = null;
    const swept: number[] = [];
    store = await openStore({ faults: { beforeChunkWrite: async (i) => { if (i === 2) swept.push(await store!.sweep()); } } });
    await store.putRun(record('r'));
    const rec = await store.saveCheckpoint('r', bytesOf(3500, 4), save(10));
    expect(swept).toEqual([0]);
    expect(await store.loadCheckpoint('r', rec.checkpoints[0])).toEqual(bytesOf(3500, 4));
  });

  it('a save whose chunks another tab swept away fails instead of committing a damaged checkpoint', async () => {
    fresh();
    let store: RunStore | null = null;
    store = await openStore({ faults: { beforeChunkWrite: async (i) => { if (i === 2) await openStore(); } } });
    await store.putRun(record('r'));
    // The other tab opens without the saving one's hook, so it sweeps chunks 0 and 1.
    const first = await openStore();
    const before = await first.saveCheckpoint('r', bytesOf(1500, 1), save(5));
    await expectKilnRejection(store.saveCheckpoint('r', bytesOf(3500, 4), save(10)), 'storage', /removed before it was committed/);
    expect(await store.getRun('r')).toEqual(before);
    expect(await chunkKeys()).toHaveLength(2);
    expect(await store.loadCheckpoint('r', before.checkpoints[0])).toEqual(bytesOf(1500, 1));
  });
});

describe('runs, metrics and datasets', () => {
  it('deleteRun removes its chunks, metrics and unshared datasets, keeping a dataset another run uses', async () => {
    fresh();
    const store = await openStore();
    const text = (s: string) => new TextEncoder().encode(s);
    const shared = text('shared text\n');
    const own = text('only mine\n');
    const ref = async (b: Uint8Array, name: string): Promise<Extract<DatasetRef, { kind: 'file' }>> => ({ kind: 'file', name, bytes: b.length, sha256: await sha256Hex(b) });
    const sharedRef = await ref(shared, 'shared.txt');
    const ownRef = await ref(own, 'own.txt');
    await store.putRun(record('a', {}, sharedRef));
    await store.putRun(record('b', {}, sharedRef));
    await store.putRun(record('c', {}, ownRef));
    await store.putDataset(sharedRef.sha256, 'shared.txt', shared);
    await store.putDataset(ownRef.sha256, 'own.txt', own);
    for (const id of ['a', 'b', 'c']) await store.saveCheckpoint(id, bytesOf(1500, id.charCodeAt(0)), save(10, [row(10)]));
    const b = (await store.getRun('b'))!;

    await store.deleteRun('a');
    await store.deleteRun('c');
    expect((await store.listRuns()).map((r) => r.id)).toEqual(['b']);
    expect(await store.getDataset(sharedRef.sha256)).toEqual({ name: 'shared.txt', bytes: shared });
    expect(await store.getDataset(ownRef.sha256)).toBeNull();
    expect(await store.metrics('a')).toEqual([]);
    expect((await store.metrics('b')).map((r) => r.step)).toEqual([10]);
    expect(new Set((await chunkKeys()).map((k) => k[0]))).toEqual(new Set([b.checkpoints[0].id]));
    const db = await raw();
    expect(await db.count('metrics')).toBe(1);
    db.close();

    await store.deleteRun('b');
    expect(await store.getDataset(sharedRef.sha256)).toBeNull();
    expect(await chunkKeys()).toEqual([]);
    expect((await store.usage()).datasetsBytes).toBe(0);
  });

  it('refuses a dataset whose bytes do not match its hash', async () => {
    fresh();
    const store = await openStore();
    await expect(store.putDataset('0'.repeat(64), 'x.txt', bytesOf(10, 0))).rejects.toThrow(/hash to/);
  });

  it('renames with the name trimmed, and refuses empty, long or control-character names', async () => {
    fresh();
    const store = await openStore();
    await store.putRun(record('r'));
    expect((await store.renameRun('r', '  my run  ')).name).toBe('my run');
    expect((await store.getRun('r'))!.name).toBe('my run');
    await expectKilnRejection(store.renameRun('r', '   '), 'usage', /needs a name/);
    await expectKilnRejection(store.renameRun('r', 'x'.repeat(121)), 'usage', /at most 120/);
    await expectKilnRejection(store.renameRun('r', 'two\nlines'), 'usage', /control characters/);
    await expectKilnRejection(store.renameRun('r', 'tab\there'), 'usage', /control characters/);
    expect((await store.renameRun('r', 'x'.repeat(120))).name).toHaveLength(120);
    await expectKilnRejection(store.renameRun('nope', 'fine'), 'usage', /no run nope/);
    expect((await store.getRun('r'))!.name).toBe('x'.repeat(120));
  });

  it('appends metrics per save in step order, keeps the latest row of a repeated step, and replaces them', async () => {
    fresh();
    const store = await openStore();
    await store.putRun(record('r'));
    await store.saveCheckpoint('r', bytesOf(10, 0), save(20, [row(10), row(20)]));
    await store.saveCheckpoint('r', bytesOf(10, 1), save(30, [row(30), row(25)]));
    // A resume from step 20 re-runs 30 with different losses.
    await store.saveCheckpoint('r', bytesOf(10, 2), save(40, [row(30, 1.5), row(40)]));
    const rows = await store.metrics('r');
    expect(rows.map((r) => r.step)).toEqual([10, 20, 25, 30, 40]);
    expect(rows.find((r) => r.step === 30)!.loss).toBe(1.5);
    const db = await raw();
    expect((await db.getAll('metrics')).map((m) => [m.runId, m.seq])).toEqual([['r', 0], ['r', 1], ['r', 2]]);
    db.close();

    await store.replaceMetrics('r', [row(20), row(10)]);
    expect((await store.metrics('r')).map((r) => r.step)).toEqual([10, 20]);
    const after = await raw();
    expect(await after.count('metrics')).toBe(1);
    after.close();
    const rec = (await store.getRun('r'))!;
    expect(rec.bytesOnDisk).toBe(30 + JSON.stringify([row(20), row(10)]).length);

    await store.saveCheckpoint('r', bytesOf(10, 3), save(50, [row(50)]));
    expect((await store.metrics('r')).map((r) => r.step)).toEqual([10, 20, 50]);
    await store.replaceMetrics('r', []);
    expect(await store.metrics('r')).toEqual([]);
    expect((await store.getRun('r'))!.bytesOnDisk).toBe(30);
  });

  it('reports usage from the records and the injected storage estimate', async () => {
    fresh();
    const store = await openStore({ storage: { estimate: async () => ({ usage: 12345, quota: 1e9 }) } });
    await store.putRun(record('a'));
    await store.putRun(record('b'));
    await store.saveCheckpoint('a', bytesOf(1500, 0), save(1));
    await store.saveCheckpoint('b', bytesOf(700, 0), save(1, [row(1)]));
    const file = new TextEncoder().encode('hello world\n');
    await store.putDataset(await sha256Hex(file), 'hello.txt', file);
    expect(await store.usage()).toEqual({
      runsBytes: 1500 + 700 + JSON.stringify([row(1)]).length, datasetsBytes: file.length, usage: 12345, quota: 1e9,
    });

    const refusing = await openStore({ storage: { estimate: () => Promise.reject(new Error('no')) } });
    expect(await refusing.usage()).toMatchObject({ datasetsBytes: file.length, usage: null, quota: null });
  });

  it('steps aside when another connection upgrades the database', async () => {
    fresh();
    const store = await openStore();
    await store.putRun(record('r'));
    // A newer Kiln in another tab opens a higher version: this connection must close, not block it.
    const newer = await new Promise<IDBDatabase>((resolve, reject) => {
      const req = factory.open(NAME, DB_VERSION + 1);
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    expect(newer.version).toBe(DB_VERSION + 1);
    newer.close();
    await expectKilnRejection(store.getRun('r'), 'storage', /closed because Kiln was updated/);
  });
});
