// The run library on the file system (kiln serve's RunStore): the IndexedDB store's key
// behaviours (round trip, pruning, damaged checkpoints, metrics, delete), a save stopped
// at each of its points as a kill -9 would stop it, no writes through links, the run
// folder's lock, and a folder the lab's session wrote read by `kiln eval` and continued
// by `kiln train --resume` (it is the CLI's format).
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/core/checkpoint.ts';
import type { RunConfig } from '../../src/core/config.ts';
import { formatBytes } from '../../src/core/model-spec.ts';
import { findPreset } from '../../src/core/presets.ts';
import type { RunRecord } from '../../src/core/run-record.ts';
import type { DatasetRef } from '../../src/core/run-spec.ts';
import { createNodeLab, type NodeLab } from '../../src/serve/node-lab.ts';
import { CHECKPOINT_FILE, folderSlug, METRICS_FILE, openFsRunStore, RUN_FILE, stepFile, type FsRunStore, type FsRunStoreOptions, type SaveStep } from '../../src/store/fs-store.ts';
import type { SaveRequest } from '../../src/store/run-store.ts';
import type { StepMetrics } from '../../src/train/trainer.ts';
import { readMetrics, runKiln, tempDir } from '../helpers/cli.ts';
import { expectKilnRejection } from '../helpers/kiln-error.ts';

const config: RunConfig = { ...findPreset('tiny')!.config, nLayer: 1, nHead: 2, nEmbd: 8, blockSize: 4 };
const UUID = (n: number) => `${String(n).padStart(8, '0')}-0000-4000-8000-000000000000`;

function record(id: string, fields: Partial<RunRecord> = {}, data: DatasetRef | null = { kind: 'bundled', id: 'names' }): RunRecord {
  return {
    id, name: `run ${id.slice(0, 8)}`, createdAt: 1000, updatedAt: 1000, spec: { preset: 'tiny', config, data },
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

/** Deterministic bytes that differ per seed. */
function bytesOf(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed * 7 + (i >> 8)) & 255);
}

const dirs: string[] = [];
const opened: FsRunStore[] = [];
const labs: NodeLab[] = [];

afterEach(async () => {
  for (const s of opened.splice(0)) await s.release();
  for (const l of labs.splice(0)) await l.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function outDir(): string {
  const d = tempDir('kiln-fs-store-');
  dirs.push(d);
  return join(d, 'runs');
}

async function openStore(out: string, opts: FsRunStoreOptions = {}): Promise<FsRunStore> {
  const s = await openFsRunStore(out, { note: () => {}, ...opts });
  opened.push(s);
  return s;
}

/** The files of a run's folder, sorted (the lock's folder left out). */
function filesOf(folder: string): string[] {
  return readdirSync(folder).filter((f) => f !== '.kiln.lock').sort();
}

describe('the layout', () => {
  it('a run is a folder named after it: run.json, checkpoint.safetensors (the exact bytes), metrics.jsonl as kiln train writes it', async () => {
    const out = outDir();
    const store = await openStore(out);
    const id = UUID(1);
    await store.putRun(record(id, { name: 'tiny · English first names' }));
    const folder = (await store.folderOf(id))!;
    expect(folder).toBe(join(out, 'tiny-English-first-names-00000001'));
    const bytes = bytesOf(3500, 2);
    const rec = await store.saveCheckpoint(id, bytes, save(100, [row(50), row(100)], { lastLoss: 2.5 }));
    expect(rec.checkpoints).toHaveLength(1);
    expect(rec.checkpoints[0]).toMatchObject({ step: 100, bytes: 3500, sha256: await sha256Hex(bytes) });
    expect(rec).toMatchObject({ step: 100, lastLoss: 2.5, phase: 'paused' });
    expect(filesOf(folder)).toEqual([CHECKPOINT_FILE, METRICS_FILE, RUN_FILE]);
    expect(new Uint8Array(readFileSync(join(folder, CHECKPOINT_FILE)))).toEqual(bytes);
    // kiln train's MetricsLog: JSON.stringify of each row, one a line.
    expect(readFileSync(join(folder, METRICS_FILE), 'utf8')).toBe(`${JSON.stringify(row(50))}\n${JSON.stringify(row(100))}\n`);
    expect(readMetrics(folder)).toEqual([row(50), row(100)]);
    const file = JSON.parse(readFileSync(join(folder, RUN_FILE), 'utf8')) as { record: RunRecord; metricsBytes: number };
    expect(file.record).toEqual(rec);
    expect(rec.bytesOnDisk).toBe(3500 + file.metricsBytes);
    expect(await store.loadCheckpoint(id, rec.checkpoints[0])).toEqual(bytes);
    expect(await store.getRun(id)).toEqual(rec);

    // Another process (a restarted kiln serve) reads the same library.
    await store.release();
    const again = await openStore(out);
    expect(await again.listRuns()).toEqual([rec]);
    expect(await again.loadCheckpoint(id, rec.checkpoints[0])).toEqual(bytes);
    expect(await again.metrics(id)).toEqual([row(50), row(100)]);
  });

  it('folder names are safe and unique; runs list most recently updated first', async () => {
    expect(folderSlug('../../etc/passwd')).toBe('etc-passwd');
    expect(folderSlug('Ünïcode · naïve run')).toBe('Unicode-naive-run');
    expect(folderSlug('...')).toBe('run');
    expect(folderSlug('.hidden')).toBe('hidden');
    const out = outDir();
    const store = await openStore(out);
    mkdirSync(join(out, 'same-00000001'), { recursive: true });
    await store.putRun(record(UUID(1), { name: 'same', updatedAt: 10 }));
    await store.putRun(record(UUID(2), { name: 'same', updatedAt: 30 }));
    await store.putRun(record(UUID(3), { name: 'other', updatedAt: 20 }));
    expect(await store.folderOf(UUID(1))).toBe(join(out, 'same-00000001-2'));
    expect((await store.listRuns()).map((r) => r.id)).toEqual([UUID(2), UUID(3), UUID(1)]);
    await store.saveCheckpoint(UUID(1), bytesOf(10, 0), save(1));
    expect((await store.listRuns()).map((r) => r.id)).toEqual([UUID(1), UUID(2), UUID(3)]);
    // A folder that is not a run (the user's, a kiln train run) is not listed; neither is a link to a run.
    mkdirSync(join(out, 'mine'));
    writeFileSync(join(out, 'mine', 'notes.txt'), 'hi');
    symlinkSync(join(out, 'other-00000003'), join(out, 'a-link'));
    expect((await store.listRuns()).map((r) => r.id)).toHaveLength(3);
  });

  it('keeps the newest keepCheckpoints: the newest as checkpoint.safetensors, older ones by step', async () => {
    const out = outDir();
    const store = await openStore(out, { keepCheckpoints: 2 });
    const id = UUID(1);
    await store.putRun(record(id));
    for (const step of [10, 20, 30, 40]) await store.saveCheckpoint(id, bytesOf(1500, step), save(step, [row(step)]));
    const rec = (await store.getRun(id))!;
    expect(rec.checkpoints.map((c) => c.step)).toEqual([30, 40]);
    const folder = (await store.folderOf(id))!;
    expect(filesOf(folder)).toEqual([CHECKPOINT_FILE, stepFile(30), METRICS_FILE, RUN_FILE].sort());
    expect(await store.loadCheckpoint(id, rec.checkpoints[0])).toEqual(bytesOf(1500, 30));
    expect(await store.loadCheckpoint(id, rec.checkpoints[1])).toEqual(bytesOf(1500, 40));
    expect(new Uint8Array(readFileSync(join(folder, CHECKPOINT_FILE)))).toEqual(bytesOf(1500, 40));
    // A second save at the same step (save() while paused) replaces the first.
    const same = await store.saveCheckpoint(id, bytesOf(1500, 41), save(40));
    expect(same.checkpoints.map((c) => c.step)).toEqual([30, 40]);
    expect(await store.loadCheckpoint(id, same.checkpoints[1])).toEqual(bytesOf(1500, 41));
    expect(filesOf(folder)).toEqual([CHECKPOINT_FILE, stepFile(30), METRICS_FILE, RUN_FILE].sort());
  });

  it('keeps checkpoints and bytesOnDisk when putRun is given a stale record; refuses a save for a run it has not got', async () => {
    const out = outDir();
    const store = await openStore(out);
    const stale = record(UUID(1));
    await store.putRun(stale);
    await store.saveCheckpoint(UUID(1), bytesOf(1200, 0), save(5));
    await store.putRun({ ...stale, phase: 'stopped' });
    const rec = (await store.getRun(UUID(1)))!;
    expect(rec.phase).toBe('stopped');
    expect(rec.checkpoints).toHaveLength(1);
    expect(rec.bytesOnDisk).toBe(1200);
    await expectKilnRejection(store.saveCheckpoint(UUID(9), bytesOf(100, 0), save(1)), 'storage', /not in the library/);
  });
});

describe('damaged checkpoints', () => {
  it('a changed byte: refused naming the earlier step, which still loads', async () => {
    const out = outDir();
    const store = await openStore(out);
    const id = UUID(1);
    await store.putRun(record(id, { name: 'names run' }));
    await store.saveCheckpoint(id, bytesOf(2500, 1), save(100));
    const rec = await store.saveCheckpoint(id, bytesOf(2500, 2), save(200));
    const folder = (await store.folderOf(id))!;
    const file = join(folder, CHECKPOINT_FILE);
    const b = readFileSync(file);
    b[17] ^= 1;
    writeFileSync(file, b);
    const e = await expectKilnRejection(store.loadCheckpoint(id, rec.checkpoints[1]), 'checkpoint', /step 200 of "names run" is damaged \(the SHA-256 of checkpoint\.safetensors does not match/);
    expect(e.hint).toBe('open the run at an earlier checkpoint (step 100)');
    expect(await store.loadCheckpoint(id, rec.checkpoints[0])).toEqual(bytesOf(2500, 1));
  });

  it('a missing file, a short one, a link: each refused with what is wrong', async () => {
    const out = outDir();
    const store = await openStore(out);
    const id = UUID(1);
    await store.putRun(record(id));
    const rec = await store.saveCheckpoint(id, bytesOf(2500, 3), save(50));
    const file = join((await store.folderOf(id))!, CHECKPOINT_FILE);
    writeFileSync(file, bytesOf(2400, 3));
    await expectKilnRejection(store.loadCheckpoint(id, rec.checkpoints[0]), 'checkpoint', /has 2400 bytes, not the 2500 recorded/);
    rmSync(file);
    const e = await expectKilnRejection(store.loadCheckpoint(id, rec.checkpoints[0]), 'checkpoint', /step 50 .* is damaged \(checkpoint\.safetensors is missing\)/);
    expect(e.hint).toMatch(/no earlier checkpoint: delete it, or import its downloaded file/);
    const elsewhere = join(out, '..', 'elsewhere.safetensors');
    writeFileSync(elsewhere, bytesOf(2500, 3));
    symlinkSync(elsewhere, file);
    await expectKilnRejection(store.loadCheckpoint(id, rec.checkpoints[0]), 'checkpoint', /checkpoint\.safetensors is a symbolic link/);
  });
});

describe('a save stopped part-way (as by kill -9)', () => {
  const STEPS: SaveStep[] = ['write', 'move', 'place', 'metrics', 'record', 'prune'];

  it.each(STEPS)('stopped before "%s": the library reads as the record says, and the next save puts the folder in order', async (at) => {
    const out = outDir();
    const id = UUID(1);
    let crashAt: SaveStep | null = null;
    const first = await openStore(out, { keepCheckpoints: 2, faults: { beforeSaveStep: (s) => { if (s === crashAt) throw new Error(`killed before ${s}`); } } });
    await first.putRun(record(id));
    await first.saveCheckpoint(id, bytesOf(1500, 10), save(10, [row(5), row(10)]));
    const before = await first.saveCheckpoint(id, bytesOf(1500, 20), save(20, [row(15), row(20)]));
    crashAt = at;
    // Once run.json is written the save is committed: a failure to prune does not undo it.
    const outcome = await first.saveCheckpoint(id, bytesOf(1500, 30), save(30, [row(25), row(30)])).then(() => 'saved', () => 'failed');
    expect(outcome).toBe(at === 'prune' ? 'saved' : 'failed');
    await first.release(); // the lock only: what the "killed" save left stays as it is

    const store = await openStore(out, { keepCheckpoints: 2 });
    const rec = (await store.getRun(id))!;
    const committed = at === 'prune';
    expect(rec.checkpoints.map((c) => c.step)).toEqual(committed ? [20, 30] : [10, 20]);
    if (!committed) expect(rec).toEqual(before);
    for (const c of rec.checkpoints) expect(await store.loadCheckpoint(id, c)).toEqual(bytesOf(1500, c.step));
    expect((await store.metrics(id)).map((r) => r.step)).toEqual(committed ? [5, 10, 15, 20, 25, 30] : [5, 10, 15, 20]);

    // Training goes on from the record's newest: the next save commits, and the folder holds only what the record names.
    const next = await store.saveCheckpoint(id, bytesOf(1500, 40), save(40, [row(35), row(40)]));
    const kept = committed ? [30, 40] : [20, 40];
    expect(next.checkpoints.map((c) => c.step)).toEqual(kept);
    const folder = (await store.folderOf(id))!;
    expect(filesOf(folder)).toEqual([CHECKPOINT_FILE, stepFile(kept[0]), METRICS_FILE, RUN_FILE].sort());
    for (const c of next.checkpoints) expect(await store.loadCheckpoint(id, c)).toEqual(bytesOf(1500, c.step));
    expect((await store.metrics(id)).map((r) => r.step)).toEqual(committed ? [5, 10, 15, 20, 25, 30, 35, 40] : [5, 10, 15, 20, 35, 40]);
    expect(readMetrics(folder).map((r) => r.step)).toEqual((await store.metrics(id)).map((r) => r.step));
  });

  it('a full disk becomes a storage error with the size needed; the previous checkpoint and rows are untouched', async () => {
    const out = outDir();
    let full = false;
    const enospc = () => Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
    const store = await openStore(out, { freeBytes: async () => 1000, faults: { beforeSaveStep: (s) => { if (full && s === 'write') throw enospc(); } } });
    await store.putRun(record(UUID(1), { name: 'this run' }));
    await store.putRun(record(UUID(2), { name: 'the big one' }));
    await store.saveCheckpoint(UUID(2), bytesOf(5000, 9), save(10));
    const before = await store.saveCheckpoint(UUID(1), bytesOf(2500, 1), save(100, [row(100)]));
    full = true;
    const e = await expectKilnRejection(store.saveCheckpoint(UUID(1), bytesOf(3500, 2), save(200, [row(200)])), 'storage');
    expect(e.message).toBe(`the disk is full: saving this checkpoint needs ${formatBytes(2500)} more`);
    expect(e.hint).toContain('largest: "the big one"');
    expect(e.hint).toContain('nothing was lost');
    expect(await store.getRun(UUID(1))).toEqual(before);
    expect(await store.loadCheckpoint(UUID(1), before.checkpoints[0])).toEqual(bytesOf(2500, 1));
    expect((await store.metrics(UUID(1))).map((r) => r.step)).toEqual([100]);
  });
});

describe('metrics, rewind, delete, datasets', () => {
  it('appends metrics per save, keeps the latest row of a repeated step, replaces them', async () => {
    const out = outDir();
    const store = await openStore(out);
    const id = UUID(1);
    await store.putRun(record(id));
    await store.saveCheckpoint(id, bytesOf(10, 0), save(20, [row(10), row(20)]));
    await store.saveCheckpoint(id, bytesOf(10, 1), save(30, [row(30), row(25)]));
    await store.saveCheckpoint(id, bytesOf(10, 2), save(40, [row(30, 1.5), row(40)]));
    const rows = await store.metrics(id);
    expect(rows.map((r) => r.step)).toEqual([10, 20, 25, 30, 40]);
    expect(rows.find((r) => r.step === 30)!.loss).toBe(1.5);
    await store.replaceMetrics(id, [row(20), row(10)]);
    expect((await store.metrics(id)).map((r) => r.step)).toEqual([10, 20]);
    expect((await store.getRun(id))!.bytesOnDisk).toBe(30 + (JSON.stringify(row(20)) + '\n' + JSON.stringify(row(10)) + '\n').length);
    await store.saveCheckpoint(id, bytesOf(10, 3), save(50, [row(50)]));
    expect((await store.metrics(id)).map((r) => r.step)).toEqual([10, 20, 50]);
    await store.replaceMetrics(id, []);
    expect(await store.metrics(id)).toEqual([]);
  });

  it('rewind goes back to a checkpoint: later checkpoints and rows go, it becomes checkpoint.safetensors', async () => {
    const out = outDir();
    const store = await openStore(out);
    const id = UUID(1);
    await store.putRun(record(id, { name: 'r' }));
    for (const step of [10, 20, 30]) await store.saveCheckpoint(id, bytesOf(1500, step), save(step, [row(step - 5), row(step)]));
    const rec = await store.rewind(id, 20);
    expect(rec).toMatchObject({ step: 20, phase: 'paused' });
    expect(rec.checkpoints.map((c) => c.step)).toEqual([10, 20]);
    expect((await store.metrics(id)).map((r) => r.step)).toEqual([5, 10, 15, 20]);
    const folder = (await store.folderOf(id))!;
    expect(filesOf(folder)).toEqual([CHECKPOINT_FILE, stepFile(10), METRICS_FILE, RUN_FILE].sort());
    expect(new Uint8Array(readFileSync(join(folder, CHECKPOINT_FILE)))).toEqual(bytesOf(1500, 20));
    expect(await store.loadCheckpoint(id, rec.checkpoints[1])).toEqual(bytesOf(1500, 20));
    await expectKilnRejection(store.rewind(id, 30), 'usage', /"r" has no checkpoint at step 30/);
    const next = await store.saveCheckpoint(id, bytesOf(1500, 31), save(30, [row(25, 9), row(30, 9)]));
    expect(next.checkpoints.map((c) => c.step)).toEqual([10, 20, 30]);
    expect((await store.metrics(id)).filter((r) => r.step > 20).map((r) => r.loss)).toEqual([9, 9]);
  });

  it('deleteRun removes the files it wrote and the folder; a file of the user stays, with its folder; unshared datasets go', async () => {
    const out = outDir();
    const store = await openStore(out);
    const text = (s: string) => new TextEncoder().encode(s);
    const shared = text('shared text\n');
    const own = text('only mine\n');
    const ref = async (b: Uint8Array, name: string): Promise<Extract<DatasetRef, { kind: 'file' }>> => ({ kind: 'file', name, bytes: b.length, sha256: await sha256Hex(b) });
    const sharedRef = await ref(shared, 'shared.txt');
    const ownRef = await ref(own, 'own.txt');
    await store.putRun(record(UUID(1), {}, sharedRef));
    await store.putRun(record(UUID(2), {}, sharedRef));
    await store.putRun(record(UUID(3), {}, ownRef));
    await store.putDataset(sharedRef.sha256, 'shared.txt', shared);
    await store.putDataset(ownRef.sha256, 'own.txt', own);
    for (const n of [1, 2, 3]) await store.saveCheckpoint(UUID(n), bytesOf(1500, n), save(10, [row(10)]));
    const [f1, f3] = [(await store.folderOf(UUID(1)))!, (await store.folderOf(UUID(3)))!];
    writeFileSync(join(f3, 'notes.txt'), 'the user\'s own');

    await store.deleteRun(UUID(1));
    await store.deleteRun(UUID(3));
    expect((await store.listRuns()).map((r) => r.id)).toEqual([UUID(2)]);
    expect(existsSync(f1)).toBe(false);
    expect(readdirSync(f3)).toEqual(['notes.txt']);
    expect(await store.getDataset(sharedRef.sha256)).toEqual({ name: 'shared.txt', bytes: shared });
    expect(await store.getDataset(ownRef.sha256)).toBeNull();
    expect(await store.metrics(UUID(1))).toEqual([]);

    await store.deleteRun(UUID(2));
    expect(await store.getDataset(sharedRef.sha256)).toBeNull();
    expect((await store.usage()).datasetsBytes).toBe(0);
    expect(readdirSync(out).filter((f) => !f.startsWith('.')).sort()).toEqual([f3.split('/').at(-1)]);
  });

  it('datasets: refused when the hash is wrong, read back by hash, and usage counts them', async () => {
    const out = outDir();
    const store = await openStore(out, { freeBytes: async () => 1e9 });
    await expect(store.putDataset('0'.repeat(64), 'x.txt', bytesOf(10, 0))).rejects.toThrow(/hash to/);
    const file = new TextEncoder().encode('hello world\n');
    const sha = await sha256Hex(file);
    await store.putDataset(sha, 'hello.txt', file);
    expect(await store.getDataset(sha)).toEqual({ name: 'hello.txt', bytes: file });
    expect(await store.getDataset('../../etc/passwd')).toBeNull();
    await store.putRun(record(UUID(1)));
    await store.saveCheckpoint(UUID(1), bytesOf(1500, 0), save(1, [row(1)]));
    const runsBytes = 1500 + JSON.stringify(row(1)).length + 1;
    expect(await store.usage()).toEqual({ runsBytes, datasetsBytes: file.length, usage: runsBytes + file.length, quota: runsBytes + file.length + 1e9 });
  });

  it('renames with the name trimmed (the folder keeps its name), refusing empty, long or control-character names', async () => {
    const out = outDir();
    const store = await openStore(out);
    await store.putRun(record(UUID(1)));
    const folder = await store.folderOf(UUID(1));
    expect((await store.renameRun(UUID(1), '  my run  ')).name).toBe('my run');
    expect((await store.getRun(UUID(1)))!.name).toBe('my run');
    expect(await store.folderOf(UUID(1))).toBe(folder);
    await expectKilnRejection(store.renameRun(UUID(1), '   '), 'usage', /needs a name/);
    await expectKilnRejection(store.renameRun(UUID(1), 'x'.repeat(121)), 'usage', /at most 120/);
    await expectKilnRejection(store.renameRun(UUID(1), 'two\nlines'), 'usage', /control characters/);
    await expectKilnRejection(store.renameRun(UUID(9), 'fine'), 'usage', /no run/);
  });
});

describe('links and locks', () => {
  it('never writes through a link planted in a run folder', async () => {
    const out = outDir();
    const store = await openStore(out);
    const id = UUID(1);
    await store.putRun(record(id));
    await store.saveCheckpoint(id, bytesOf(100, 1), save(1, [row(1)]));
    const folder = (await store.folderOf(id))!;
    const target = join(out, '..', 'target.txt');
    writeFileSync(target, 'precious\n');
    rmSync(join(folder, METRICS_FILE));
    symlinkSync(target, join(folder, METRICS_FILE));
    await expectKilnRejection(store.saveCheckpoint(id, bytesOf(100, 2), save(2, [row(2)])), 'storage', /symbolic link/);
    expect(readFileSync(target, 'utf8')).toBe('precious\n');
    // A whole-file write replaces the link itself, never its target.
    await store.replaceMetrics(id, [row(1)]);
    expect(lstatSync(join(folder, METRICS_FILE)).isSymbolicLink()).toBe(false);
    expect(readFileSync(target, 'utf8')).toBe('precious\n');
  });

  it('holds the lock of each run folder it wrote until released: kiln train on it is refused meanwhile', async () => {
    const out = outDir();
    const store = await openStore(out);
    await store.putRun(record(UUID(1)));
    const folder = (await store.folderOf(UUID(1)))!;
    const refused = await runKiln(['train', '--preset', 'tiny', '--data', 'names', '--backend', 'cpu', '--steps', '2', '--out', folder]);
    expect(refused.code, refused.stderr).toBe(1);
    expect(refused.stderr).toMatch(/is being written by another kiln \(pid \d+, this process/);
    await store.release();
    expect(existsSync(join(folder, '.kiln.lock'))).toBe(false);
  });
});

describe('a run the lab trained through kiln serve is a kiln train run folder', () => {
  it('kiln eval reads its checkpoint and kiln train --resume continues its curve', async () => {
    const out = outDir();
    const lab = await createNodeLab({ out, backend: 'cpu', note: () => {} });
    labs.push(lab);
    const { session } = lab;
    const cfg: RunConfig = { ...findPreset('tiny')!.config, steps: 10, checkpointEvery: 5, evalEvery: 5 };
    const data = await session.prepareData({ kind: 'bundled', id: 'names' }, cfg);
    const info = await session.createRun({ preset: 'tiny', config: cfg, data: data.ref }, 'cpu');
    await session.start();
    const deadline = Date.now() + 120_000;
    for (let s = await session.status(); !(s.phase === 'done' && s.savedStep === 10 && !s.saving); s = await session.status()) {
      if (s.phase === 'error' || Date.now() > deadline) throw new Error(`training stopped: ${JSON.stringify(s)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const store = await lab.store();
    const folder = (await store.folderOf(info.id))!;
    expect(readMetrics(folder).map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(filesOf(folder)).toEqual([CHECKPOINT_FILE, stepFile(5), METRICS_FILE, RUN_FILE, 'tensorboard'].sort());
    await lab.close();

    const scored = await runKiln(['eval', '--checkpoint', join(folder, CHECKPOINT_FILE), '--backend', 'cpu']);
    expect(scored.code, scored.stderr).toBe(0);
    expect(JSON.parse(scored.stdout)).toMatchObject({ step: 10, split: 'val' });

    const resumed = await runKiln(['train', '--resume', '--out', folder, '--steps', '15', '--backend', 'cpu']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toContain('resuming from step 10 of 15');
    expect(readMetrics(folder).map((r) => r.step)).toEqual(Array.from({ length: 15 }, (_, i) => i + 1));
  });
});
