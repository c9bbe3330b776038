// kiln serve lists run folders in --out that the lab did not write (src/store/foreign-folder.ts):
// a folder `kiln train --out` wrote, and a `kiln scale` folder after torchrun trained it.
// The folders are made by the CLI's own writers (kiln train; kiln scale, then the files a
// finished or stopped train_ddp.py leaves, written here byte for byte as it writes them:
// metrics.jsonl by Python's json.dumps, checkpoints/step_N/ as its safetensors_bytes() and
// copies of init/'s config.json and kiln_tokenizer.json, plus a train_state.pt). Checked:
// listing (names, configs, curves, origins) writes nothing; a kiln train run opens for
// sampling, and training it on makes its folder a lab run folder that kiln train --resume
// still continues; a scaled run opens from its newest HF checkpoint and every write to it
// is refused with the reason; a folder a live kiln train holds is listed as busy and not
// written; broken and partial folders are listed with what is wrong or skipped with one
// log line.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { acquireRunLock, type RunLock } from '../../src/cli/run-lock.ts';
import { decodeCheckpoint } from '../../src/core/checkpoint.ts';
import { importHF, KILN_TOKENIZER_FILE } from '../../src/core/hf.ts';
import { modelSpec, paramViews, type ModelConfig } from '../../src/core/model-spec.ts';
import type { RunRecord } from '../../src/core/run-record.ts';
import { createNodeLab, type NodeLab } from '../../src/serve/node-lab.ts';
import { openFsRunStore, type FsRunStore } from '../../src/store/fs-store.ts';
import { foreignId, SCALE_READ_ONLY } from '../../src/store/foreign-folder.ts';
import type { StepMetrics } from '../../src/train/trainer.ts';
import { phaseBadge, provenance } from '../../src/ui/kiln-run-list.ts';
import type { LabSession } from '../../src/worker/lab-session.ts';
import { bytesOf, readMetrics, runKiln, tempDir } from '../helpers/cli.ts';
import { expectKilnRejection } from '../helpers/kiln-error.ts';

const base = tempDir('kiln-foreign-');
/** Made once: a finished kiln train run (tiny, 6 steps, checkpoints at 3 and 6). */
const TRAINED = join(base, 'made', 'cli-run');
/** Made once: kiln scale's folder for tiny over 20 steps, which torchrun trained to step 10 of 20 and was stopped. */
const SCALED = join(base, 'made', 'scaled');
const SCALE_ROWS = 10;
const SCALE_CHECKPOINTS = [5, 10];

const dirs: string[] = [];
const stores: FsRunStore[] = [];
const labs: NodeLab[] = [];
const locks: RunLock[] = [];

afterEach(async () => {
  for (const l of locks.splice(0)) await l.release();
  for (const s of stores.splice(0)) await s.release();
  for (const l of labs.splice(0)) await l.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

/** A row as train_ddp.py writes it: Python's json.dumps (", " and ": " separators), keys in its order. */
function pythonRow(r: StepMetrics): string {
  const keys = ['step', 'loss', ...(r.val_loss !== undefined ? ['val_loss'] : []), 'lr', 'grad_norm', 'tokens_per_s', 'elapsed_s'] as const;
  return `{${keys.map((k) => `"${k}": ${JSON.stringify(r[k as keyof StepMetrics])}`).join(', ')}}`;
}

function scaleRow(step: number): StepMetrics {
  const r: StepMetrics = { step, loss: 3.3 - step * 0.05, lr: 0.003 * Math.min(1, (step + 1) / 6), grad_norm: 1 + 1 / step, tokens_per_s: 51234.5 + step, elapsed_s: step * 0.25 };
  if (step % 5 === 0) r.val_loss = 3.35 - step * 0.04;
  return r;
}

/** train_ddp.py's safetensors_bytes(): F32 tensors in state-dict order, compact JSON header padded with spaces to 8 bytes. */
function torchSafetensors(model: ModelConfig, params: Float32Array): Uint8Array {
  const spec = modelSpec(model);
  const views = paramViews(spec, params);
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let at = 0;
  for (const p of spec.params) {
    const n = views.get(p.name)!.length * 4;
    header[p.name] = { dtype: 'F32', shape: p.shape, data_offsets: [at, at + n] };
    at += n;
  }
  let h = JSON.stringify(header);
  h += ' '.repeat((8 - ((8 + h.length) % 8)) % 8);
  const out = new Uint8Array(8 + h.length + at);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, h.length, true);
  out.set(Buffer.from(h, 'latin1'), 8);
  let off = 8 + h.length;
  for (const p of spec.params) {
    for (const x of views.get(p.name)!) {
      dv.setFloat32(off, x, true);
      off += 4;
    }
  }
  return out;
}

/** The starting weights kiln scale wrote (init/), read as the HF import reads them. */
function initWeights(dir: string): { model: ModelConfig; params: Float32Array } {
  const { model, params } = importHF({
    modelSafetensors: bytesOf(join(dir, 'init', 'model.safetensors')),
    configJson: readFileSync(join(dir, 'init', 'config.json'), 'utf8'),
    kilnTokenizer: readFileSync(join(dir, 'init', KILN_TOKENIZER_FILE), 'utf8'),
  });
  return { model, params };
}

/** The weights train_ddp.py "saved" at `step` (the start's, moved by the step, so each checkpoint differs). */
function weightsAt(dir: string, step: number): Float32Array {
  return initWeights(dir).params.map((x, i) => x * (1 - step / 100) + ((i % 7) - 3) * 1e-3 * step);
}

/** What a torchrun of train_ddp.py leaves in its folder when stopped after `rows` steps with checkpoints at `steps`. */
function writeTorchrunOutput(dir: string, rows: number, steps: number[]): void {
  const { model } = initWeights(dir);
  writeFileSync(join(dir, 'metrics.jsonl'), Array.from({ length: rows }, (_, i) => pythonRow(scaleRow(i + 1)) + '\n').join(''));
  for (const step of steps) {
    const ck = join(dir, 'checkpoints', `step_${step}`);
    mkdirSync(ck, { recursive: true });
    writeFileSync(join(ck, 'model.safetensors'), torchSafetensors(model, weightsAt(dir, step)));
    for (const f of ['config.json', KILN_TOKENIZER_FILE]) cpSync(join(dir, 'init', f), join(ck, f));
    // torch.save's pickle: the listing only asks that it is there (train_ddp.py writes it last).
    writeFileSync(join(ck, 'train_state.pt'), Buffer.from('PK\u0003\u0004 torch.save of the optimizer and sampler state'));
  }
}

beforeAll(async () => {
  const trained = await runKiln(['train', '--preset', 'tiny', '--data', 'names', '--backend', 'cpu', '--set', 'steps=6', '--set', 'evalEvery=3', '--set', 'checkpointEvery=3', '--out', TRAINED]);
  expect(trained.code, trained.stderr).toBe(0);
  const scaled = await runKiln(['scale', '--preset', 'tiny', '--set', 'steps=20', '--data', 'names', '--out', SCALED]);
  expect(scaled.code, scaled.stderr).toBe(0);
  writeTorchrunOutput(SCALED, SCALE_ROWS, SCALE_CHECKPOINTS);
}, 300_000);

/** A fresh --out holding copies of the made folders (and whatever `extra` adds). */
function outWith(folders: Record<string, string>): string {
  const d = tempDir('kiln-foreign-out-');
  dirs.push(d);
  const out = join(d, 'runs');
  mkdirSync(out);
  for (const [name, from] of Object.entries(folders)) cpSync(from, join(out, name), { recursive: true });
  return out;
}

/** Every file under `dir` with its size and modification time: what "nothing was written" compares. */
function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = lstatSync(p);
      out.push(`${relative(dir, p)} ${st.isDirectory() ? 'dir' : st.size} ${st.mtimeMs}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}

async function openStore(out: string, lines: string[] = []): Promise<FsRunStore> {
  const s = await openFsRunStore(out, { note: (l) => lines.push(l) });
  stores.push(s);
  return s;
}

async function openLab(out: string, lines: string[] = []): Promise<NodeLab> {
  const lab = await createNodeLab({ out, backend: 'cpu', note: (l) => lines.push(l), sessionOptions: { autoSampleEvery: 0 } });
  labs.push(lab);
  return lab;
}

function byName(runs: RunRecord[], name: string): RunRecord {
  const r = runs.find((x) => x.name === name);
  if (!r) throw new Error(`no run "${name}" in ${JSON.stringify(runs.map((x) => x.name))}`);
  return r;
}

async function waitSaved(session: LabSession, step: number): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (let s = await session.status(); !(s.phase === 'done' && s.savedStep === step && !s.saving); s = await session.status()) {
    if (s.phase === 'error' || Date.now() > deadline) throw new Error(`training stopped: ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const SAMPLE = { prompt: '', maxTokens: 24, temperature: 0.8, topK: 0, topP: 1, seed: 7 };

describe('listing folders the lab did not write', () => {
  it('a kiln train folder and a scaled one are runs named after their folders, with their configs, curves and origins; nothing is written', async () => {
    const out = outWith({ 'cli-run': TRAINED, scaled: SCALED });
    // A folder of the user's that is no run: neither listed nor said.
    mkdirSync(join(out, 'notes'));
    writeFileSync(join(out, 'notes', 'todo.txt'), 'train more\n');
    const before = snapshot(out);
    const lines: string[] = [];
    const store = await openStore(out, lines);
    const runs = await store.listRuns();
    expect(runs.map((r) => r.name).sort()).toEqual(['cli-run', 'scaled']);

    const cli = byName(runs, 'cli-run');
    const ckpt = await decodeCheckpoint(bytesOf(join(TRAINED, 'checkpoint.safetensors')));
    expect(cli.id).toBe(foreignId('train', 'cli-run'));
    expect(cli.spec.config).toEqual(ckpt.config);
    expect(cli.spec.data).toEqual({ kind: 'bundled', id: 'names' });
    expect(cli).toMatchObject({ step: 6, phase: 'done', source: { kind: 'train', folder: 'cli-run' } });
    expect(cli.source!.readOnly).toBeUndefined();
    expect(cli.source!.problem).toBeUndefined();
    expect(cli.checkpoints.map((c) => c.step)).toEqual([6]);
    expect(cli.lastValLoss).toBe(Number(ckpt.extra!['kiln.val_loss']));
    expect((await store.metrics(cli.id)).map((m) => m.step)).toEqual(readMetrics(TRAINED).map((m) => m.step));
    expect(await store.metrics(cli.id)).toEqual(readMetrics(TRAINED));
    expect(provenance(cli)).toBe('from kiln train (cli-run)');

    const scaled = byName(runs, 'scaled');
    const spec = JSON.parse(readFileSync(join(SCALED, 'spec.json'), 'utf8')) as { spec: RunRecord['spec'] };
    expect(scaled.id).toBe(foreignId('scale', 'scaled'));
    expect(scaled.spec).toEqual({ preset: 'tiny', config: spec.spec.config, data: { kind: 'bundled', id: 'names' } });
    expect(scaled).toMatchObject({ step: 10, phase: 'paused', device: 'torchrun', source: { kind: 'scale', folder: 'scaled', readOnly: SCALE_READ_ONLY } });
    expect(scaled.checkpoints.map((c) => [c.step, c.valLoss])).toEqual([[10, scaleRow(10).val_loss]]);
    expect(scaled.bestValLoss).toBe(scaleRow(10).val_loss);
    // The curve is the rows torchrun's rank 0 logged, read from Python's json.dumps lines.
    expect(await store.metrics(scaled.id)).toEqual(Array.from({ length: SCALE_ROWS }, (_, i) => scaleRow(i + 1)));
    expect(provenance(scaled)).toBe(`from kiln scale (scaled), trained by torchrun: read-only here`);

    expect((await store.usage()).runsBytes).toBe(cli.bytesOnDisk + scaled.bytesOnDisk);
    expect(await store.getRun(cli.id)).toEqual(cli);
    expect(await store.folderOf(scaled.id)).toBe(join(out, 'scaled'));
    expect(lines).toEqual([]);
    await store.release();
    // Listed, read, and not touched: no run.json, no lock, no file changed.
    expect(snapshot(out)).toEqual(before);
  });
});

describe('a kiln train folder through kiln serve', () => {
  it('opens for sampling without writing; trained on, it becomes a lab run folder, and kiln train --resume still continues it', async () => {
    const out = outWith({ 'cli-run': TRAINED });
    const folder = join(out, 'cli-run');
    const before = snapshot(out);
    const lines: string[] = [];
    const lab = await openLab(out, lines);
    const { session } = lab;
    const rec = byName(await session.listRuns(), 'cli-run');
    const info = await session.openRun(rec.id, 'cpu');
    expect(info).toMatchObject({ id: rec.id, name: 'cli-run' });
    expect(info.spec.config).toEqual(rec.spec.config);
    expect(await session.status()).toMatchObject({ phase: 'done', step: 6, savedStep: 6 });
    expect((await session.history()).map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6]);
    // The checkpoint the lab loaded is kiln train's file, byte for byte.
    const exported = await session.exportCheckpoint(rec.id);
    expect(Buffer.from(exported.bytes).equals(readFileSync(join(folder, 'checkpoint.safetensors')))).toBe(true);
    expect((await session.sample(SAMPLE)).length).toBeGreaterThan(0);
    expect(snapshot(out)).toEqual(before);

    // The person trains it on: the folder is the lab's from then on (run.json beside kiln train's files).
    await session.extend(4);
    await waitSaved(session, 10);
    expect(existsSync(join(folder, 'run.json'))).toBe(true);
    expect(lines.some((l) => l.includes('(written by kiln train) is a run of the lab now'))).toBe(true);
    expect(readMetrics(folder).map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    // kiln train's own rows are kept as they were.
    expect(readMetrics(folder).slice(0, 6)).toEqual(readMetrics(TRAINED));
    expect(readdirSync(folder)).toEqual(expect.arrayContaining(['best.safetensors', 'checkpoint.safetensors', 'checkpoint-step6.safetensors', 'checkpoint-step9.safetensors', 'metrics.jsonl', 'run.json']));
    const now = byName(await session.listRuns(), 'cli-run');
    expect(now.id).toBe(rec.id);
    expect(now.source).toBeUndefined();
    expect(now).toMatchObject({ step: 10, phase: 'done' });
    // kiln train's checkpoint is the first the record names; the lab's saves (every 3 steps, and the end) follow.
    expect(now.checkpoints.map((c) => c.step)).toEqual([6, 9, 10]);
    await lab.close();

    const resumed = await runKiln(['train', '--resume', '--out', folder, '--steps', '12', '--backend', 'cpu']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toContain('resuming from step 10 of 12');
    expect(readMetrics(folder).map((m) => m.step)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
  });

  it('a folder a live kiln train holds is listed as training, opens for sampling, and is not written until it is let go', async () => {
    const out = outWith({ 'cli-run': TRAINED });
    const folder = join(out, 'cli-run');
    locks.push(await acquireRunLock(folder, { command: 'kiln train --resume --out runs/cli-run' }));
    const lab = await openLab(out);
    const { session } = lab;
    const rec = byName(await session.listRuns(), 'cli-run');
    expect(rec.phase).toBe('training');
    expect(rec.source!.busy).toMatch(/^being written by pid \d+ \(kiln train --resume --out runs\/cli-run\)$/);
    expect(phaseBadge(rec, null)).toBe('training');
    expect(provenance(rec)).toMatch(/^from kiln train \(cli-run\) · being written by pid \d+/);
    await session.openRun(rec.id, 'cpu');
    expect((await session.sample(SAMPLE)).length).toBeGreaterThan(0);
    await expectKilnRejection(session.extend(2), 'usage', /is being written by another kiln \(pid \d+/);
    const store = await lab.store();
    await expectKilnRejection(store.renameRun(rec.id, 'mine now'), 'usage', /is being written by another kiln/);
    await expectKilnRejection(store.deleteRun(rec.id), 'usage', /is being written by another kiln/);
    expect(existsSync(join(folder, 'run.json'))).toBe(false);
    expect(readdirSync(folder).sort()).toEqual(readdirSync(TRAINED).concat('.kiln.lock').sort());

    // Its kiln is done: the lab may have it (the person renames it).
    await locks.pop()!.release();
    expect(byName(await session.listRuns(), 'cli-run').phase).toBe('done');
    // A lock left behind by a kiln that is gone (kill -9) is no writer: listed as it stands, the lock left where it is.
    const gone = spawnSync(process.execPath, ['-e', '']).pid!;
    mkdirSync(join(folder, '.kiln.lock'));
    writeFileSync(join(folder, '.kiln.lock', 'holder.json'), JSON.stringify({ pid: gone, host: hostname(), command: 'kiln train --out runs/cli-run', started: new Date().toISOString() }));
    const stale = byName(await session.listRuns(), 'cli-run');
    expect(stale.phase).toBe('done');
    expect(stale.source!.busy).toBeUndefined();
    expect(existsSync(join(folder, '.kiln.lock', 'holder.json'))).toBe(true);
    const renamed = await store.renameRun(rec.id, 'mine now');
    expect(renamed).toMatchObject({ id: rec.id, name: 'mine now' });
    expect(renamed.source).toBeUndefined();
    expect(existsSync(join(folder, 'run.json'))).toBe(true);
  });
});

describe('a scaled folder through kiln serve', () => {
  it('opens for sampling from its newest HF checkpoint; training, saving, renaming or deleting it is refused with the reason, and nothing is written', async () => {
    const out = outWith({ scaled: SCALED });
    const before = snapshot(out);
    const lab = await openLab(out);
    const { session } = lab;
    const rec = byName(await session.listRuns(), 'scaled');
    const info = await session.openRun(rec.id, 'cpu');
    expect(info.spec.config.steps).toBe(20);
    expect(await session.status()).toMatchObject({ phase: 'paused', step: 10, stopAt: 20 });
    expect((await session.history()).map((m) => m.step)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    expect((await session.sample(SAMPLE)).length).toBeGreaterThan(0);

    // What the lab loaded is torchrun's step_10 weights, through the HF import.
    const ck = await decodeCheckpoint((await session.exportCheckpoint(rec.id)).bytes);
    expect(ck.step).toBe(10);
    expect(ck.config).toEqual(rec.spec.config);
    expect(Array.from(ck.state.params)).toEqual(Array.from(weightsAt(SCALED, 10)));

    const why = /^"scaled" is trained by torchrun: continue it with run\.sh --resume, or import its checkpoint$/;
    const refused = await expectKilnRejection(session.start(), 'usage', why);
    expect(refused.hint).toMatch(/run\.sh --resume/);
    await expectKilnRejection(session.resume(), 'usage', why);
    await expectKilnRejection(session.extend(5), 'usage', why);
    await expectKilnRejection(session.save(), 'usage', why);
    await expectKilnRejection(session.renameRun(rec.id, 'other'), 'usage', why);
    await expectKilnRejection(session.deleteRun(rec.id), 'usage', why);
    const store = await lab.store();
    await expectKilnRejection(store.adopt(rec.id), 'usage', why);
    await expectKilnRejection(store.replaceMetrics(rec.id, []), 'usage', why);
    expect(await session.status()).toMatchObject({ phase: 'paused', step: 10 });
    await lab.close();
    expect(snapshot(out)).toEqual(before);
  });

  it('its checkpoint, downloaded from the lab, is a Kiln checkpoint that kiln eval reads', async () => {
    const out = outWith({ scaled: SCALED });
    const lab = await openLab(out);
    const rec = byName(await lab.session.listRuns(), 'scaled');
    const { fileName, bytes } = await lab.session.exportCheckpoint(rec.id);
    expect(fileName).toBe('scaled-step10.safetensors');
    const file = join(out, '..', fileName);
    writeFileSync(file, bytes);
    const ev = await runKiln(['eval', '--checkpoint', file, '--backend', 'cpu']);
    expect(ev.code, ev.stderr).toBe(0);
    expect(JSON.parse(ev.stdout)).toMatchObject({ step: 10, split: 'val' });
  });
});

describe('broken and partial folders', () => {
  it('are listed with what is wrong, or skipped with one log line; the listing never fails', async () => {
    const out = outWith({
      torn: TRAINED, 'bad-line': TRAINED, 'no-checkpoint': TRAINED, 'cut-checkpoint': TRAINED, 'garbage-checkpoint': TRAINED,
      'bad-spec': SCALED, 'not-run-yet': SCALED, 'cut-newest': SCALED, 'no-spec': SCALED,
    });
    const metrics = readFileSync(join(TRAINED, 'metrics.jsonl'), 'utf8');
    // A kiln train killed mid-line.
    writeFileSync(join(out, 'torn', 'metrics.jsonl'), metrics.slice(0, metrics.length - 20));
    const lines = metrics.split('\n');
    lines.splice(2, 0, '{"step": 2.5, "loss": "high"}');
    writeFileSync(join(out, 'bad-line', 'metrics.jsonl'), lines.join('\n'));
    // Stopped before its first checkpoint: its config is unknown.
    rmSync(join(out, 'no-checkpoint', 'checkpoint.safetensors'));
    rmSync(join(out, 'no-checkpoint', 'best.safetensors'));
    const ckSize = lstatSync(join(TRAINED, 'checkpoint.safetensors')).size;
    truncateSync(join(out, 'cut-checkpoint', 'checkpoint.safetensors'), Math.floor(ckSize / 2));
    writeFileSync(join(out, 'garbage-checkpoint', 'checkpoint.safetensors'), 'this is not a checkpoint at all, just text\n');
    writeFileSync(join(out, 'bad-spec', 'spec.json'), '{"spec": [1, 2');
    rmSync(join(out, 'not-run-yet', 'metrics.jsonl'));
    rmSync(join(out, 'not-run-yet', 'checkpoints'), { recursive: true });
    const newest = join(out, 'cut-newest', 'checkpoints', 'step_10', 'model.safetensors');
    truncateSync(newest, lstatSync(newest).size - 100);
    rmSync(join(out, 'no-spec', 'spec.json'));

    const logged: string[] = [];
    const lab = await openLab(out, logged);
    const { session } = lab;
    const runs = await session.listRuns();
    expect(runs.map((r) => r.name).sort()).toEqual(['bad-line', 'cut-checkpoint', 'cut-newest', 'not-run-yet', 'torn']);

    const torn = byName(runs, 'torn');
    expect(torn.source!.problem).toBe('metrics.jsonl ends in a cut-off line, skipped');
    expect((await session.runMetrics(torn.id)).map((m) => m.step)).toEqual([1, 2, 3, 4, 5]);
    expect(byName(runs, 'bad-line').source!.problem).toBe('metrics.jsonl line 3 is not a metrics row, skipped');
    expect((await session.runMetrics(byName(runs, 'bad-line').id)).map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6]);

    // Its config is in the header, its tensors are not all there: listed, and not opened.
    const cut = byName(runs, 'cut-checkpoint');
    expect(cut.source!.problem).toMatch(/^checkpoint\.safetensors is damaged \(cut short: its header names [\d.]+ KiB of tensors, the file holds [\d.]+ KiB\)$/);
    expect(cut.checkpoints).toEqual([]);
    await expectKilnRejection(session.openRun(cut.id, 'cpu'), 'checkpoint', /^"cut-checkpoint" has no checkpoint to open \(checkpoint\.safetensors is damaged/);
    await expectKilnRejection(session.exportCheckpoint(cut.id), 'usage', /has no checkpoint yet/);

    // Never run: the spec's config, no curve, nothing to open.
    expect(byName(runs, 'not-run-yet')).toMatchObject({ phase: 'ready', step: 0, checkpoints: [] });
    expect(byName(runs, 'not-run-yet').source!.problem).toBeUndefined();
    // The newest checkpoint is damaged: the one before it opens.
    const older = byName(runs, 'cut-newest');
    expect(older.checkpoints.map((c) => c.step)).toEqual([5]);
    expect(older.source!.problem).toMatch(/^checkpoints\/step_10 model\.safetensors is damaged \(cut short: its header names [\d.]+ KiB of tensors, the file holds [\d.]+ KiB\)$/);
    await session.openRun(older.id, 'cpu');
    expect(await session.status()).toMatchObject({ step: 5 });

    const skipped = ['no-checkpoint', 'garbage-checkpoint', 'bad-spec', 'no-spec'];
    const said = (name: string) => logged.filter((l) => l.startsWith(`kiln serve: not listing ${join(out, name)}: `));
    for (const name of skipped) expect(said(name), `${name}: ${logged.join('\n')}`).toHaveLength(1);
    expect(said('no-checkpoint')[0]).toMatch(/metrics\.jsonl but no checkpoint\.safetensors yet, so its config is unknown/);
    expect(said('garbage-checkpoint')[0]).toMatch(/checkpoint\.safetensors is damaged \(.*\), so its config is unknown/);
    expect(said('bad-spec')[0]).toMatch(/spec\.json is not the file kiln scale writes/);
    expect(said('no-spec')[0]).toMatch(/no spec\.json, so its config is unknown/);
    // Listed again (every page asks): nothing is said twice.
    await session.listRuns();
    await session.listRuns();
    for (const name of skipped) expect(said(name)).toHaveLength(1);
    expect(logged.filter((l) => l.includes('not listing'))).toHaveLength(skipped.length);
  });
});
