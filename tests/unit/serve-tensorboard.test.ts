// `kiln serve`'s TensorBoard logs (issue 16 item 6, src/serve/serve-tensorboard.ts): the
// real process (`--backend cpu`), a page's side of the protocol over `ws`. A run made
// and trained to step 12, opened again and extended by 8 has one log in
// OUT/<folder>/tensorboard/ with each step 1..20 once, its scalars metrics.jsonl's; a run
// killed (kill -9) past its checkpoint, opened in a new kiln serve and trained on, has
// its log cut back to the checkpoint and continued, each step once again; a deleted run
// takes its log with it; --no-tensorboard writes none. In process, with a stand-in
// session: a step that goes back (recover) cuts the log there, and a log that cannot be
// written is said once while the rows keep coming. The event files are read here
// with a framing and CRC check of this file's own (the schema is the writer's proto text).
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32c } from '@aws-crypto/crc32c';
import protobuf from 'protobufjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attachTensorBoard } from '../../src/serve/serve-tensorboard.ts';
import type { LabSession } from '../../src/worker/lab-session.ts';
import { TENSORBOARD_PROTO } from '../../src/cli/tensorboard-proto.ts';
import type { RunConfig } from '../../src/core/config.ts';
import { findPreset } from '../../src/core/presets.ts';
import type { RunRecord } from '../../src/core/run-record.ts';
import type { DataSummary, LabEvent, LabMetrics, RunInfo, RunStatus } from '../../src/worker/api.ts';
import { readMetrics, tempDir } from '../helpers/cli.ts';
import { Page, startServe as startServeProcess, type Server } from '../helpers/serve-page.ts';

const children: ChildProcess[] = [];

/** The shared serve helper, with every child kept for the afterAll's cleanup. */
async function startServe(lab: string, out: string, ...more: string[]): Promise<Server> {
  const server = await startServeProcess(lab, out, more);
  children.push(server.child);
  return server;
}

/** The step of the newest metrics row the page has heard of. */
function lastStep(page: Page): number {
  return page.metrics().at(-1)?.step ?? 0;
}

async function interrupt(server: Server): Promise<string> {
  server.child.kill('SIGINT');
  const exit = await server.exit;
  const { stderr } = server.output();
  expect(exit.code, stderr).toBe(130);
  return stderr;
}

const tiny = (fields: Partial<RunConfig>): RunConfig => ({ ...findPreset('tiny')!.config, ...fields });

function folderOf(out: string, id: string): string {
  const name = readdirSync(out).find((f) => f.endsWith(`-${id.slice(0, 8)}`));
  if (!name) throw new Error(`no folder for run ${id} in ${out}: ${readdirSync(out).join(', ')}`);
  return join(out, name);
}

/** A new run on the bundled names, subscribed, not started. */
async function newRun(page: Page, config: RunConfig): Promise<RunInfo> {
  await page.call('subscribe');
  const data = await page.call<DataSummary>('prepareData', { kind: 'bundled', id: 'names' }, config);
  return page.call<RunInfo>('createRun', { preset: 'tiny', config, data: data.ref }, 'cpu');
}

// --- an independent reader of event files ----------------------------------------------

const EventType = protobuf.parse(TENSORBOARD_PROTO, { keepCase: true }).root.lookupType('tensorboard.Event');

/** TensorFlow's CRC mask (crc32c.h), in BigInt: no code shared with the writer's. */
function mask(crc: number): number {
  const c = BigInt(crc);
  return Number(((((c >> 15n) | (c << 17n)) & 0xffffffffn) + 0xa282ead8n) & 0xffffffffn);
}

interface ReadEvent {
  step: number;
  file_version?: string;
  summary?: { value: Array<{ tag: string; simple_value?: number; tensor?: { dtype: string; string_val?: Uint8Array[] } }> };
}

function readEventFile(path: string): ReadEvent[] {
  const buf = readFileSync(path);
  const events: ReadEvent[] = [];
  let at = 0;
  while (at < buf.length) {
    expect(buf.length - at, `${path}: a record header at ${at}`).toBeGreaterThanOrEqual(16);
    const len = Number(buf.readBigUInt64LE(at));
    expect(buf.readUInt32LE(at + 8), `${path}: length CRC at ${at}`).toBe(mask(crc32c(buf.subarray(at, at + 8))));
    const data = buf.subarray(at + 12, at + 12 + len);
    expect(data.length, `${path}: the record at ${at} is cut short`).toBe(len);
    expect(buf.readUInt32LE(at + 12 + len), `${path}: data CRC at ${at}`).toBe(mask(crc32c(data)));
    const e = EventType.toObject(EventType.decode(data), { longs: Number, enums: String }) as Partial<ReadEvent>;
    events.push({ ...e, step: e.step ?? 0 });
    at += 16 + len;
  }
  return events;
}

/** Every event of a run folder's log, its files in TensorBoard's order (by name), each opening with its version record. */
function readLog(folder: string): ReadEvent[] {
  const dir = join(folder, 'tensorboard');
  const all: ReadEvent[] = [];
  for (const name of readdirSync(dir).filter((n) => n.includes('tfevents')).sort()) {
    const events = readEventFile(join(dir, name));
    expect(events[0]?.file_version, name).toBe('brain.Event:2');
    all.push(...events.slice(1));
  }
  return all;
}

const TAGS: Array<[keyof LabMetrics, string]> = [
  ['loss', 'loss/train'], ['val_loss', 'loss/val'], ['lr', 'lr'], ['grad_norm', 'grad_norm'], ['tokens_per_s', 'tokens_per_s'], ['mfu', 'mfu'],
];

/** The steps of the scalar events in the order read, and each tag's [step, value] series. */
function scalarsOf(events: ReadEvent[]): { steps: number[]; series: Map<string, Array<[number, number]>> } {
  const steps: number[] = [];
  const series = new Map<string, Array<[number, number]>>();
  for (const e of events) {
    const values = (e.summary?.value ?? []).filter((v) => v.simple_value !== undefined);
    if (values.length) steps.push(e.step);
    for (const v of values) {
      if (!series.has(v.tag)) series.set(v.tag, []);
      series.get(v.tag)!.push([e.step, v.simple_value!]);
    }
  }
  return { steps, series };
}

function expectedSeries(rows: LabMetrics[]): Map<string, Array<[number, number]>> {
  const out = new Map<string, Array<[number, number]>>();
  for (const [k, tag] of TAGS) {
    const s = rows.filter((r) => typeof r[k] === 'number').map((r): [number, number] => [r.step, Math.fround(r[k] as number)]);
    if (s.length) out.set(tag, s);
  }
  return out;
}

function configTexts(events: ReadEvent[]): string[] {
  return events.flatMap((e) => (e.summary?.value ?? []).filter((v) => v.tag === 'config').map((v) => {
    expect(e.step).toBe(0);
    expect(v.tensor?.dtype).toBe('DT_STRING');
    return new TextDecoder().decode(v.tensor!.string_val![0]);
  }));
}

/** The log of a run folder holds each of metrics.jsonl's steps once, in order, with its values, and the config once. */
function expectLogMatchesMetrics(folder: string, steps: number[]): void {
  const rows = readMetrics(folder);
  expect(rows.map((r) => r.step)).toEqual(steps);
  const events = readLog(folder);
  const got = scalarsOf(events);
  expect(got.steps).toEqual(steps);
  expect(got.series).toEqual(expectedSeries(rows));
  const texts = configTexts(events);
  expect(texts).toHaveLength(1);
  expect(texts[0]).toMatch(/^\| setting \| value \|\n\|---\|---\|\n/);
  expect(texts[0]).toContain('| nEmbd | 32 |');
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('kiln serve: TensorBoard logs', () => {
  let dir: string;
  let lab: string;

  beforeAll(() => {
    dir = tempDir('kiln-serve-tb-');
    lab = join(dir, 'lab');
    mkdirSync(lab);
    writeFileSync(join(lab, 'index.html'), '<!doctype html><title>stand-in</title>\n');
  });

  afterAll(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('a run made, trained to 12, opened again and extended by 8: one log, steps 1..20 once, equal to metrics.jsonl', async () => {
    const out = join(dir, 'runs-a');
    const server = await startServe(lab, out);
    expect(server.output().stderr).toContain(`tensorboard --logdir ${out}`);
    const page = await Page.open(server.port, server.token);
    const info = await newRun(page, tiny({ steps: 12, checkpointEvery: 100, evalEvery: 5 }));
    await page.call('start');
    await page.until('step 12 saved', () => page.status()?.phase === 'done' && page.status()?.savedStep === 12 && !page.status()?.saving);

    const opened = await page.call<RunInfo>('openRun', info.id, 'cpu');
    expect(opened.id).toBe(info.id);
    await page.call('extend', 8);
    await page.until('step 20 saved', () => page.status()?.phase === 'done' && page.status()?.savedStep === 20 && !page.status()?.saving);

    // Another run, trained a little and deleted: its folder goes, log and all.
    const other = await newRun(page, tiny({ steps: 3, checkpointEvery: 100, evalEvery: 100 }));
    await page.call('start');
    await page.until('the other run done', () => page.status()?.phase === 'done' && page.status()?.savedStep === 3 && !page.status()?.saving);
    const otherFolder = folderOf(out, other.id);
    expect(scalarsOf(readLog(otherFolder)).steps).toEqual([1, 2, 3]);
    await page.call('deleteRun', other.id);
    expect(existsSync(otherFolder)).toBe(false);

    const stderr = await interrupt(server);
    expect(stderr).not.toMatch(/TensorBoard log .* could not be written/);
    const folder = folderOf(out, info.id);
    expect(readdirSync(join(folder, 'tensorboard')).filter((n) => n.includes('tfevents')).length).toBeGreaterThanOrEqual(2);
    expectLogMatchesMetrics(folder, range(1, 20));
  });

  it('a run killed past its checkpoint and opened in a new kiln serve: the log is cut back to the checkpoint and goes on, each step once', async () => {
    const out = join(dir, 'runs-b');
    let server = await startServe(lab, out);
    let page = await Page.open(server.port, server.token);
    const info = await newRun(page, tiny({ steps: 5000, decaySteps: 5000, checkpointEvery: 1000, evalEvery: 4 }));
    await page.call('start');
    await page.until('a few steps', () => lastStep(page) >= 5);
    await page.call('pause');
    const saved = (await page.call<RunStatus>('status')).savedStep!;
    expect(saved).toBeGreaterThanOrEqual(5);
    await page.call('start');
    await page.until('steps past the checkpoint', () => lastStep(page) >= saved + 5);
    const folder = folderOf(out, info.id);
    // The page hears of a step before the server's log writer has written it: wait for the log itself.
    const logPast = () => {
      try {
        return Math.max(...scalarsOf(readLog(folder)).steps) > saved;
      } catch {
        return false;
      }
    };
    for (const end = Date.now() + 60_000; !logPast() && Date.now() < end; ) await new Promise((r) => setTimeout(r, 50));
    server.child.kill('SIGKILL');
    await server.exit;

    const rec = (JSON.parse(readFileSync(join(folder, 'run.json'), 'utf8')) as { record: RunRecord }).record;
    expect(rec.step).toBe(saved);
    // The log went past the checkpoint (each event was written at once).
    expect(Math.max(...scalarsOf(readLog(folder)).steps)).toBeGreaterThan(saved);

    server = await startServe(lab, out);
    page = await Page.open(server.port, server.token);
    await page.call('subscribe');
    await page.call<RunInfo>('openRun', info.id, 'cpu');
    expect((await page.call<RunStatus>('status')).step).toBe(saved);
    await page.call('start');
    await page.until('training on', () => lastStep(page) >= saved + 6);
    await interrupt(server);

    const last = readMetrics(folder).at(-1)!.step;
    expect(last).toBeGreaterThanOrEqual(saved + 6);
    expectLogMatchesMetrics(folder, range(1, last));
  });

  it('--no-tensorboard writes no log', async () => {
    const out = join(dir, 'runs-c');
    const server = await startServe(lab, out, '--no-tensorboard');
    const page = await Page.open(server.port, server.token);
    const info = await newRun(page, tiny({ steps: 3, checkpointEvery: 100, evalEvery: 100 }));
    await page.call('start');
    await page.until('done', () => page.status()?.phase === 'done' && page.status()?.savedStep === 3 && !page.status()?.saving);
    const stderr = await interrupt(server);
    expect(stderr).not.toContain('tensorboard --logdir');
    const folder = folderOf(out, info.id);
    expect(readMetrics(folder).map((r) => r.step)).toEqual([1, 2, 3]);
    expect(existsSync(join(folder, 'tensorboard'))).toBe(false);
  });
});

/** What attachTensorBoard uses of a LabSession, with events sent by the test. */
function standInSession() {
  const listeners = new Map<number, (e: LabEvent) => void>();
  let n = 0;
  const run = (id: string): RunInfo => ({ id, spec: { preset: 'tiny', config: tiny({}), data: null } } as unknown as RunInfo);
  const session = {
    subscribe: async (l: (e: LabEvent) => void) => (listeners.set(++n, l), n),
    unsubscribe: async (id: number) => void listeners.delete(id),
    createRun: async () => run('run-a'),
    openRun: async (id: string) => run(id),
    branchRun: async (id: string) => run(id),
    deleteRun: async () => {},
    dispose: async () => {},
  };
  const rows = (...steps: number[]) => {
    const metrics = steps.map((step) => ({ step, loss: 3 - step / 10, lr: 1e-3, grad_norm: 1, tokens_per_s: 100, elapsed_s: step } as LabMetrics));
    for (const l of listeners.values()) l({ type: 'metrics', metrics });
  };
  return { session: session as unknown as LabSession, rows };
}

describe('attachTensorBoard', () => {
  let dir: string;
  beforeAll(() => {
    dir = tempDir('kiln-serve-tb-unit-');
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('a step that goes back cuts the log there; dispose closes it', async () => {
    const folder = join(dir, 'a');
    mkdirSync(folder);
    const { session, rows } = standInSession();
    const notes: string[] = [];
    attachTensorBoard(session, async () => ({ folderOf: async () => folder }), (l) => notes.push(l));
    await session.createRun({} as never, 'cpu');
    rows(1, 2, 3, 4, 5);
    rows(4, 5, 6);
    await session.dispose();
    expect(notes).toEqual([]);
    const got = scalarsOf(readLog(folder));
    expect(got.steps).toEqual([1, 2, 3, 4, 5, 6]);
    expect(configTexts(readLog(folder))).toHaveLength(1);
  });

  it('a log that cannot be written is said once; the rows keep coming without an error', async () => {
    const folder = join(dir, 'b');
    mkdirSync(folder);
    writeFileSync(join(folder, 'tensorboard'), 'in the way\n');
    const { session, rows } = standInSession();
    const notes: string[] = [];
    attachTensorBoard(session, async () => ({ folderOf: async () => folder }), (l) => notes.push(l));
    await session.createRun({} as never, 'cpu');
    rows(1, 2);
    rows(3);
    await session.dispose();
    expect(notes).toHaveLength(1);
    expect(notes[0]).toMatch(/^kiln serve: warning: the TensorBoard log in .* could not be written .*training goes on/);
  });
});
