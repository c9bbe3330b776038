// The LabApi's implementation (src/worker/lab-session.ts) in Node on the CPU backend:
// the same session the browser worker exposes, without the worker. Pause/resume and
// extend leave the curve of an uninterrupted run; sampling works between steps, while
// paused and when done; a lost device is recovered from the last snapshot; a NaN says
// its step; bad data is refused with the core's message.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Backend } from '../../src/backends/backend.ts';
import { CpuBackend } from '../../src/backends/cpu.ts';
import { findPreset } from '../../src/core/presets.ts';
import { KilnError } from '../../src/core/errors.ts';
import type { RunConfig } from '../../src/core/config.ts';
import type { LabEvent, LabMetrics, RunStatus } from '../../src/worker/api.ts';
import { LabSession, type LabSessionDeps } from '../../src/worker/lab-session.ts';
import { configFit } from '../../src/worker/config-fit.ts';

function deps(make: () => Backend = () => new CpuBackend()): LabSessionDeps {
  return {
    environment: async () => ({ webgpu: false, webgpuWhy: 'Node test', device: '', isSoftware: false, limits: { maxStorageBufferBindingSize: 0, maxBufferSize: 0 } }),
    createBackend: async () => make(),
    loadBundled: async (file) => new Uint8Array(readFileSync(new URL(`../../public/datasets/${file}`, import.meta.url))),
    sha256: async () => '0'.repeat(64),
  };
}

const tiny = (over: Partial<RunConfig> = {}): RunConfig => ({ ...findPreset('tiny')!.config, steps: 12, evalEvery: 4, checkpointEvery: 5, ...over });

async function session(config: RunConfig, d = deps()) {
  const s = new LabSession(d, { flushMs: 1 });
  const events: LabEvent[] = [];
  await s.subscribe((e) => events.push(e));
  await s.prepareData({ kind: 'bundled', id: 'names' }, config);
  await s.createRun({ preset: 'tiny', config, data: null }, 'cpu');
  return { s, events };
}

/** Resolves when the session's status satisfies ok (polling its own status()). */
async function until(s: LabSession, ok: (st: RunStatus) => boolean, ms = 60_000): Promise<RunStatus> {
  const end = Date.now() + ms;
  for (;;) {
    const st = await s.status();
    if (ok(st)) return st;
    if (Date.now() > end) throw new Error(`timed out; status ${JSON.stringify(st)}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

const losses = (rows: LabMetrics[]) => rows.map((m) => [m.step, m.loss, m.val_loss ?? null]);

describe('LabSession', () => {
  it('sizes a run with the budget it is given (kiln serve passes the machine\'s memory), in the settings panel and before allocating', async () => {
    const d = deps();
    d.budget = () => ({ memoryBytes: 1 << 20, where: 'the 1 MiB of a test machine', memoryName: 'memory' });
    const s = new LabSession(d);
    const config = tiny({ nEmbd: 128, nHead: 4 });
    await s.prepareData({ kind: 'bundled', id: 'names' }, config);
    const fit = await s.checkConfig(config, 27, 'cpu');
    expect(fit.fits).toBe(false);
    expect(fit.problems.map((p) => p.message).join(' ')).toMatch(/the 1 MiB of a test machine/);
    await expect(s.createRun({ preset: 'tiny', config, data: null }, 'cpu')).rejects.toMatchObject({ code: 'config', message: expect.stringMatching(/the 1 MiB of a test machine/) });
    // Without the hook: a browser tab's budget, which this small model fits.
    expect((await new LabSession(deps()).checkConfig(config, 27, 'cpu')).fits).toBe(true);
  });

  it('summarises the bundled data and refuses a binary file with the core message', async () => {
    const s = new LabSession(deps());
    const d = await s.prepareData({ kind: 'bundled', id: 'names' }, tiny());
    expect(d).toMatchObject({ ref: { kind: 'bundled', id: 'names' }, bytes: 228145, tokenizer: 'char' });
    expect(d.vocabSize).toBe(d.distinctChars);
    expect(d.trainTokens + d.valTokens).toBe(d.tokens);
    const bin = new Uint8Array([1, 2, 0, 4]);
    await expect(s.prepareData({ kind: 'file', name: 'x.bin', bytes: bin }, tiny())).rejects.toThrow(/x\.bin looks like a binary file/);
    await expect(s.prepareData({ kind: 'bundled', id: 'nope' }, tiny())).rejects.toThrow(/no bundled dataset "nope"/);
  });

  it('current() is null before a run is made, then the run (its current name); dataFiles() is empty without a data folder', async () => {
    const s = new LabSession(deps());
    expect(await s.current()).toBeNull();
    expect(await s.dataFiles()).toEqual([]);
    const config = tiny();
    await s.prepareData({ kind: 'bundled', id: 'names' }, config);
    const info = await s.createRun({ preset: 'tiny', config, data: null }, 'cpu');
    expect(await s.current()).toEqual(info);
    expect((await s.current())!.data).toMatchObject({ ref: { kind: 'bundled', id: 'names' } });
    await s.dispose();
  });

  it("a 'server' source (kiln serve --data) is refused without a data folder, and read through it as the user's file with one", async () => {
    await expect(new LabSession(deps()).prepareData({ kind: 'server', path: 'a.txt' }, tiny())).rejects.toMatchObject({
      code: 'data', message: 'this lab has no data folder', hint: expect.stringMatching(/--data/),
    });
    const read: string[] = [];
    const d = deps();
    d.readDataFile = async (path) => {
      read.push(path);
      return { name: 'b.txt', bytes: new TextEncoder().encode('hello there, hello world\n'.repeat(40)) };
    };
    d.dataFiles = async () => [{ path: 'sub/b.txt', bytes: 1000 }];
    const s = new LabSession(d);
    expect(await s.dataFiles()).toEqual([{ path: 'sub/b.txt', bytes: 1000 }]);
    const summary = await s.prepareData({ kind: 'server', path: 'sub/b.txt' }, tiny());
    expect(read).toEqual(['sub/b.txt']);
    expect(summary).toMatchObject({ name: 'b.txt', bytes: 1000, ref: { kind: 'file', name: 'b.txt', bytes: 1000, sha256: '0'.repeat(64) } });
  });

  it('trains a BPE tokenizer on a dropped file, reporting progress', async () => {
    const s = new LabSession(deps());
    const progress: Array<[number, number]> = [];
    await s.subscribe((e) => {
      if (e.type === 'progress' && e.what === 'tokenizer') progress.push([e.done, e.total]);
    });
    const text = 'the cat sat on the mat. the dog sat on the log. '.repeat(200);
    const d = await s.prepareData({ kind: 'file', name: 'cats.txt', bytes: new TextEncoder().encode(text) }, tiny({ tokenizer: 'bpe', bpeVocab: 300 }));
    expect(d).toMatchObject({ tokenizer: 'bpe', name: 'cats.txt', ref: { kind: 'file', name: 'cats.txt', bytes: text.length } });
    expect(d.vocabSize).toBeGreaterThan(256);
    expect(d.tokens).toBeLessThan(text.length / 2);
    expect(progress.length).toBeGreaterThan(0);
    // Monotone, within its total (merges may run out before the vocabulary is full).
    for (let i = 1; i < progress.length; i++) expect(progress[i][0]).toBeGreaterThanOrEqual(progress[i - 1][0]);
    for (const [done, total] of progress) expect(done).toBeLessThanOrEqual(total);
  });

  it('pause and resume leave the same curve as an uninterrupted run, and extend goes on from the end', async () => {
    const straight = await session(tiny({ steps: 16 }));
    await straight.s.start();
    await until(straight.s, (st) => st.phase === 'done');
    const want = await straight.s.history();
    expect(want.map((m) => m.step)).toEqual(Array.from({ length: 16 }, (_, i) => i + 1));

    const { s, events } = await session(tiny());
    await s.start();
    await until(s, (st) => st.step >= 3);
    await s.pause();
    const paused = await s.status();
    expect(paused.phase).toBe('paused');
    expect(paused.step).toBeLessThan(12);
    // Sampling from the paused model, streamed.
    const pieces: string[] = [];
    const text = await s.sample({ prompt: 'ma', maxTokens: 12, temperature: 1, topK: 0, topP: 1, seed: 3 }, (t) => pieces.push(t));
    expect(pieces.join('')).toBe(text);
    expect(text.length).toBeGreaterThan(0);
    await s.resume();
    await until(s, (st) => st.phase === 'done');
    expect((await s.status()).step).toBe(12);
    await s.extend(4);
    await until(s, (st) => st.phase === 'done' && st.step === 16);
    expect(losses(await s.history())).toEqual(losses(want));
    // Metrics reached the listener in batches, in order, all of them.
    const sent = events.flatMap((e) => (e.type === 'metrics' ? e.metrics : []));
    expect(sent.map((m) => m.step)).toEqual(want.map((m) => m.step));
    expect(events.some((e) => e.type === 'status' && e.status.phase === 'paused')).toBe(true);
  });

  it('samples between steps while training, and on its own at the sampling cadence', async () => {
    const { s, events } = await session(tiny({ steps: 40, sampleEvery: 10 }));
    await s.start();
    await until(s, (st) => st.step >= 2);
    const text = await s.sample({ prompt: '', maxTokens: 8, temperature: 0.8, topK: 5, topP: 0.9, seed: 1 });
    const st = await s.status();
    expect(text.length).toBeGreaterThan(0);
    expect(st.phase).toBe('training');
    await until(s, (x) => x.phase === 'done');
    expect(events.filter((e) => e.type === 'sample').map((e) => (e as { step: number }).step)).toEqual([10, 20, 30, 40]);
    await expect(s.sample({ prompt: '', maxTokens: 0, temperature: 1, topK: 0, topP: 1, seed: 1 })).rejects.toThrow(/length must be 1 to 4096/);
  });

  it('extend while training moves the end; stretch moves the decay with it', async () => {
    const { s } = await session(tiny({ steps: 10 }));
    await s.start();
    await until(s, (st) => st.step >= 2);
    await s.extend(5, { schedule: 'stretch' });
    const st = await until(s, (x) => x.phase === 'done');
    expect(st.step).toBe(15);
    expect(st.decaySteps).toBe(Math.max(tiny().decaySteps, 15));
  });

  it('after a lost device, recover() continues from the last snapshot on a new backend', async () => {
    let made = 0;
    const lose = () => {
      const b = new CpuBackend();
      if (++made === 1) {
        let calls = 0;
        const step = b.step.bind(b);
        b.step = (...a) => (++calls === 8 ? Promise.reject(new KilnError('device_lost', 'the GPU device was lost', '')) : step(...a));
      }
      return b;
    };
    const { s } = await session(tiny(), deps(lose));
    await s.start();
    const failed = await until(s, (st) => st.phase === 'error');
    expect(failed.error?.code).toBe('device_lost');
    expect(failed.recoverable).toBe(true);
    expect(failed.snapshotStep).toBe(5);
    expect(failed.error?.hint).toMatch(/step 5/);
    await s.recover();
    const back = await s.status();
    expect(back).toMatchObject({ phase: 'paused', step: 5 });
    expect((await s.history()).map((m) => m.step)).toEqual([1, 2, 3, 4, 5]);
    await s.resume();
    await until(s, (st) => st.phase === 'done');

    const straight = await session(tiny());
    await straight.s.start();
    await until(straight.s, (st) => st.phase === 'done');
    expect(losses(await s.history())).toEqual(losses(await straight.s.history()));
  });

  it('a NaN loss stops the run and says at which step', async () => {
    const nanAt3 = () => {
      const b = new CpuBackend();
      let calls = 0;
      const step = b.step.bind(b);
      b.step = async (...a) => {
        const st = await step(...a);
        return ++calls === 3 ? { ...st, loss: NaN } : st;
      };
      return b;
    };
    const { s } = await session(tiny(), deps(nanAt3));
    await s.start();
    const st = await until(s, (x) => x.phase === 'error');
    expect(st.error?.code).toBe('numerical');
    expect(st.error?.message).toMatch(/the loss became NaN at step 3/);
    expect(st.recoverable).toBe(true);
  });

  it('checkConfig reports sizes, and refuses an invalid config with the core message', async () => {
    const s = new LabSession(deps());
    const fit = await s.checkConfig(tiny(), 30, 'cpu');
    expect(fit.numParams).toBeGreaterThan(20_000);
    expect(fit.fits).toBe(true);
    await expect(s.checkConfig(tiny({ nEmbd: 100, nHead: 3 }), 30, 'cpu')).rejects.toThrow(/nEmbd 100 is not divisible by nHead 3/);
  });
});

describe('configFit', () => {
  const limits = { maxStorageBufferBindingSize: 128 * 1024 * 1024, maxBufferSize: 256 * 1024 * 1024 };

  it('names the limit a tensor breaks and by how much', () => {
    const big = { ...findPreset('gpt2-124m')!.config, batchSize: 1, blockSize: 64 };
    const fit = configFit(big, 50257, limits);
    expect(fit.fits).toBe(false);
    expect(fit.problems[0]).toMatchObject({ limit: 'maxStorageBufferBindingSize' });
    expect(fit.problems[0].message).toMatch(/transformer\.wte\.weight tensor needs 147 MiB \(154389504 bytes\), 19 MiB more than this GPU's maxStorageBufferBindingSize of 128 MiB/);
    expect(fit.numParams).toBe(124_439_808 - (1024 - 64) * 768); // GPT-2 small with a 64-token wpe
  });

  it('flags a plan past what a browser tab gets, and lets tiny through', () => {
    const wide = { ...findPreset('char-shakespeare')!.config, batchSize: 512 };
    const fit = configFit(wide, 65, { maxStorageBufferBindingSize: 2 ** 31, maxBufferSize: 2 ** 32 });
    expect(fit.problems.map((p) => p.limit)).toContain('memory');
    expect(fit.problems.find((p) => p.limit === 'memory')!.message).toMatch(/training needs \d+\.\d GiB of GPU memory, \d+\.\d GiB more than the 4\.0 GiB/);
    expect(configFit(tiny(), 30, limits)).toMatchObject({ fits: true, problems: [] });
    expect(configFit(tiny(), 30, null).memoryBytes).toBeGreaterThan(0);
  });
});
