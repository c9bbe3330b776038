// `kiln serve` as a person runs it (issue 16): the real process (`--backend cpu --port 0`),
// its one URL read from stdout, a page's side of the protocol spoken over `ws`: prepare
// the bundled names, make a tiny run, train it to the end with metrics and samples
// streaming, its folder in --out read by `kiln eval`; a page that goes and comes back
// finds the curve; Ctrl-C mid-run saves a checkpoint that loads and exits 130. The token
// shows nowhere but in that URL. The lab served is a stand-in folder (KILN_LAB_DIR):
// what the page does with it is the e2e test's (tests/e2e/serve.test.ts).
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LAB_DIR_ENV } from '../../src/cli/serve-command.ts';
import type { RunConfig } from '../../src/core/config.ts';
import { findPreset } from '../../src/core/presets.ts';
import type { RunRecord } from '../../src/core/run-record.ts';
import type { DataSummary, LabMetrics, RunInfo, RunStatus } from '../../src/worker/api.ts';
import { expectKilnError, readMetrics, runKiln, tempDir } from '../helpers/cli.ts';
import { Page, startServe, type Server } from '../helpers/serve-page.ts';

const INDEX = '<!doctype html><title>the kiln lab (test stand-in)</title>\n';
const tiny = (fields: Partial<RunConfig>): RunConfig => ({ ...findPreset('tiny')!.config, ...fields });

/** The run's folder in --out: the one whose name ends with the start of its id. */
function folderOf(out: string, id: string): string {
  const name = readdirSync(out).find((f) => f.endsWith(`-${id.slice(0, 8)}`));
  if (!name) throw new Error(`no folder for run ${id} in ${out}: ${readdirSync(out).join(', ')}`);
  return join(out, name);
}

describe('kiln serve', () => {
  let dir: string;
  let lab: string;
  let out: string;
  let server: Server | null = null;
  const children: ChildProcess[] = [];

  beforeAll(() => {
    dir = tempDir('kiln-serve-');
    lab = join(dir, 'lab');
    out = join(dir, 'runs');
    mkdirSync(lab);
    writeFileSync(join(lab, 'index.html'), INDEX);
  });

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a bad --port, and a lab folder with no index.html, before listening', async () => {
    expectKilnError(await runKiln(['serve', '--port', '70000']), 1, /--port 70000: a port is a whole number from 0 to 65535/);
    const before = process.env[LAB_DIR_ENV];
    process.env[LAB_DIR_ENV] = join(dir, 'nothing-here');
    try {
      expectKilnError(await runKiln(['serve', '--backend', 'cpu', '--out', out]), 1, /holds no built lab \(no index\.html\)/);
    } finally {
      if (before === undefined) delete process.env[LAB_DIR_ENV];
      else process.env[LAB_DIR_ENV] = before;
    }
  });

  it('serves the lab, trains a run the page makes into a kiln train run folder, and keeps it for a page that comes back', async () => {
    server = await startServe(lab, out);
    children.push(server.child);
    const { port, token } = server;

    // GET / is the lab's index.html.
    const res = await fetch(`http://127.0.0.1:${port}/`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(INDEX);

    const page = await Page.open(port, token);
    expect(await page.hello).toMatchObject({ t: 'hello', protocol: 'kiln.v1', controlling: true });
    await expect.poll(() => server!.output().stderr).toContain('kiln serve: page 1 connected');
    const env = await page.call<{ webgpu: boolean; webgpuWhy?: string }>('environment');
    expect(env.webgpu).toBe(false);
    expect(env.webgpuWhy).toMatch(/--backend cpu/);

    const config = tiny({ steps: 20, checkpointEvery: 10, evalEvery: 10 });
    await page.call('subscribe');
    const data = await page.call<DataSummary>('prepareData', { kind: 'bundled', id: 'names' }, config);
    expect(data).toMatchObject({ ref: { kind: 'bundled', id: 'names' }, name: 'English first names' });
    const info = await page.call<RunInfo>('createRun', { preset: 'tiny', config, data: data.ref }, 'cpu');
    expect(info).toMatchObject({ backend: 'cpu', name: 'tiny · English first names' });
    await page.call('start');
    await page.until('step 20 saved', () => {
      const s = page.status();
      return s?.phase === 'done' && s.savedStep === 20 && !s.saving;
    });
    expect(page.metrics().map((m) => m.step)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    // The session samples every 10 steps for the page, as in the browser.
    expect(page.events.filter((e) => e.type === 'sample').map((e) => (e as { step: number }).step)).toEqual([10, 20]);

    const folder = folderOf(out, info.id);
    expect(readMetrics(folder).map((m) => m.step)).toEqual(page.metrics().map((m) => m.step));
    const scored = await runKiln(['eval', '--checkpoint', join(folder, 'checkpoint.safetensors'), '--backend', 'cpu']);
    expect(scored.code, scored.stderr).toBe(0);
    expect(JSON.parse(scored.stdout)).toMatchObject({ step: 20, split: 'val' });

    // The page goes; another comes: the run is listed with its curve, and the session still has it open.
    await page.close();
    await expect.poll(() => server!.output().stderr).toContain('kiln serve: page 1 disconnected');
    const again = await Page.open(port, token);
    expect(await again.hello).toMatchObject({ controlling: true });
    expect((await again.call<LabMetrics[]>('history')).map((m) => m.step)).toEqual(page.metrics().map((m) => m.step));
    expect(await again.call<RunStatus>('status')).toMatchObject({ phase: 'done', step: 20, savedStep: 20 });
    expect(await again.call<RunInfo | null>('current')).toEqual(info);
    // Without --data: no files offered.
    expect(await again.call('dataFiles')).toEqual([]);
    const runs = await again.call<RunRecord[]>('listRuns');
    expect(runs.map((r) => [r.id, r.step, r.phase])).toEqual([[info.id, 20, 'done']]);
    expect((await again.call<LabMetrics[]>('runMetrics', info.id)).map((m) => m.step)).toEqual(page.metrics().map((m) => m.step));
    await again.close();

    // The token is in the one URL on stdout, nowhere else.
    const { stdout, stderr } = server.output();
    expect(stdout.split(token)).toHaveLength(2);
    expect(stderr).not.toContain(token);
  });

  it('Ctrl-C mid-run saves the run where it is and exits 130; the checkpoint loads', async () => {
    if (!server) throw new Error('the previous test starts the server');
    const page = await Page.open(server.port, server.token);
    await page.call('subscribe');
    const config = tiny({ steps: 5000, decaySteps: 5000, checkpointEvery: 1000, evalEvery: 1000 });
    const data = await page.call<DataSummary>('prepareData', { kind: 'bundled', id: 'names' }, config);
    const info = await page.call<RunInfo>('createRun', { preset: 'tiny', config, data: data.ref }, 'cpu');
    await page.call('start');
    await page.until('a few steps', () => (page.metrics().at(-1)?.step ?? 0) >= 5);
    server.child.kill('SIGINT');
    const exit = await server.exit;
    const { stderr } = server.output();
    expect(exit.code, stderr).toBe(130);
    expect(stderr).toContain('kiln serve: stopping: saving the open run');
    const folder = folderOf(out, info.id);
    expect(stderr).toContain(`the last run saved is ${join(folder, 'checkpoint.safetensors')}`);
    const rec = (JSON.parse(readFileSync(join(folder, 'run.json'), 'utf8')) as { record: RunRecord }).record;
    expect(rec.phase).toBe('paused');
    expect(rec.step).toBeGreaterThanOrEqual(5);
    expect(rec.step).toBeLessThan(5000);
    expect(readMetrics(folder).at(-1)!.step).toBe(rec.step);
    // The lock is given back: the CLI may take the folder.
    expect(readdirSync(folder)).not.toContain('.kiln.lock');
    const scored = await runKiln(['eval', '--checkpoint', folder, '--backend', 'cpu']);
    expect(scored.code, scored.stderr).toBe(0);
    expect(JSON.parse(scored.stdout)).toMatchObject({ step: rec.step });
  });
});
