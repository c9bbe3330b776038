// `kiln serve` as a person meets it (issue 16), in real Chromium: the test builds the lab
// (as `npm run build`), starts `kiln serve --backend webgpu` (Dawn in Node, on SwiftShader
// where there is no GPU), opens the URL it prints, and trains tiny 20 steps from the
// page's own controls: the chart fills, samples stream in, and the checkpoint in --out
// loads in `kiln eval`. The page is closed and the URL opened again: the run is open
// again (lab.run), listed, and its curve is back; a text of --data is offered and read. A longer run is stopped by Ctrl-C on the server: exit 130 and a
// checkpoint that loads. Screenshots go to test-results/serve/.
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { LAB_DIR_ENV } from '../../src/cli/serve-command.ts';
import type { RunRecord } from '../../src/core/run-record.ts';
import { browserSkipReason, openBrowser, ROOT, screenshotBothSizes, type BrowserPage } from '../helpers/browser.ts';
import { buildSite } from '../helpers/built-site.ts';
import { readMetrics, runKiln, spawnKiln, tempDir } from '../helpers/cli.ts';

const skip = browserSkipReason();
const SHOTS = join(ROOT, 'test-results/serve');
const URL_LINE = /^kiln serve: open (http:\/\/127\.0\.0\.1:\d+\/#kiln-token=[A-Za-z0-9_-]+)$/m;

interface View {
  served: { connected: boolean; controlling: boolean; closed: string | null } | null;
  phase: string | null;
  step: number;
  savedStep: number | null;
  saving: boolean;
  error: string | null;
  backend: string | null;
  runId: string | null;
  runs: Array<{ id: string; name: string; step: number }>;
  metrics: number[];
  chartRows: number;
  samples: number[];
}

function view(page: Page): Promise<View> {
  return page.evaluate(() => {
    type Lab = {
      served: { connected: boolean; controlling: boolean; closed: { message: string } | null } | null;
      status: { phase: string; step: number; savedStep: number | null; saving: boolean } | null;
      error: { message: string } | null;
      run: { id: string; backend: string } | null;
      runs: Array<{ id: string; name: string; step: number }> | null;
      metrics: Array<{ step: number }>;
      samples: Array<{ step: number }>;
    };
    const app = document.querySelector('kiln-app') as unknown as { lab: Lab; shadowRoot: ShadowRoot };
    const lab = app.lab;
    const chart = app.shadowRoot.querySelector('kiln-loss-chart') as unknown as { metrics: unknown[] } | null;
    return {
      served: lab.served ? { connected: lab.served.connected, controlling: lab.served.controlling, closed: lab.served.closed?.message ?? null } : null,
      phase: lab.status?.phase ?? null, step: lab.status?.step ?? 0, savedStep: lab.status?.savedStep ?? null, saving: lab.status?.saving ?? false,
      error: lab.error?.message ?? null, backend: lab.run?.backend ?? null, runId: lab.run?.id ?? null,
      runs: (lab.runs ?? []).map((r) => ({ id: r.id, name: r.name, step: r.step })),
      metrics: lab.metrics.map((m) => m.step), chartRows: chart?.metrics.length ?? 0, samples: lab.samples.map((s) => s.step),
    };
  });
}

async function until(page: Page, what: string, ok: (v: View) => boolean, timeoutMs: number, report: () => string): Promise<View> {
  const end = Date.now() + timeoutMs;
  let v = await view(page);
  while (!ok(v)) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; last view: ${JSON.stringify({ ...v, metrics: v.metrics.length })}${report()}`);
    if (v.phase === 'error') throw new Error(`the run failed while waiting for ${what}: ${JSON.stringify(v.error)}${report()}`);
    await page.waitForTimeout(100);
    v = await view(page);
  }
  return v;
}

/** tiny with these settings, on the English first names, until Train is enabled (as library.test.ts). */
async function setUp(page: Page, fields: Record<string, string>): Promise<void> {
  await page.getByLabel('Preset').selectOption('tiny');
  for (const [key, value] of Object.entries(fields)) {
    const f = page.locator(`#f-${key}`);
    if (await f.isHidden()) {
      const section = await f.evaluate((el) => el.closest('.grid')!.id);
      await page.locator(`button[aria-controls="${section}"]`).click();
    }
    await f.fill(value);
    await f.blur();
  }
  await page.getByRole('radio', { name: /English first names/ }).check();
  await expect.poll(() => trainButton(page).isEnabled(), { timeout: 60_000 }).toBe(true);
}

function trainButton(page: Page) {
  return page.getByRole('button', { name: /^(Train|New run)$/ });
}

/** The run's folder in --out: the one whose name ends with the start of its id. */
function folderOf(out: string, id: string): string {
  const name = readdirSync(out).find((f) => f.endsWith(`-${id.slice(0, 8)}`));
  if (!name) throw new Error(`no folder for run ${id} in ${out}: ${readdirSync(out).join(', ')}`);
  return join(out, name);
}

describe.skipIf(skip !== null)(`kiln serve in Chromium${skip ? ` (skipped: ${skip})` : ''}`, () => {
  const dir = tempDir('kiln-serve-e2e-');
  const children: ChildProcess[] = [];
  let b: BrowserPage | null = null;

  afterAll(async () => {
    await b?.close();
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('the page from its URL trains on the server, keeps the run across a reopened page, and Ctrl-C leaves a checkpoint', async () => {
    const lab = join(dir, 'lab');
    const out = join(dir, 'runs');
    const data = join(dir, 'data');
    mkdirSync(data);
    writeFileSync(join(data, 'a.txt'), 'anna\nbob\ncarla\n'.repeat(200));
    await buildSite(lab);
    const before = process.env[LAB_DIR_ENV];
    process.env[LAB_DIR_ENV] = lab;
    let serve: ReturnType<typeof spawnKiln>;
    try {
      serve = spawnKiln(['serve', '--backend', 'webgpu', '--out', out, '--port', '0', '--data', data]);
    } finally {
      if (before === undefined) delete process.env[LAB_DIR_ENV];
      else process.env[LAB_DIR_ENV] = before;
    }
    children.push(serve.child);
    await expect.poll(() => URL_LINE.test(serve.output().stdout), { timeout: 60_000, interval: 50 }).toBe(true);
    const url = URL_LINE.exec(serve.output().stdout)![1];
    const token = url.split('#kiln-token=')[1];
    const report = () => `${b?.report() ?? ''}\n--- kiln serve stderr ---\n${serve.output().stderr}`;

    b = await openBrowser();
    let page = b.page;
    await page.goto(url);
    await trainButton(page).waitFor({ timeout: 60_000 });
    await until(page, 'the connection to kiln serve', (v) => v.served?.connected === true && v.served.controlling, 60_000, report);
    // The token leaves the address bar at once (it stays in this tab's sessionStorage).
    expect(page.url()).not.toContain(token);

    await setUp(page, { steps: '20', checkpointEvery: '10', evalEvery: '10' });
    await trainButton(page).click();
    const done = await until(page, 'step 20 saved', (v) => v.phase === 'done' && v.step === 20 && v.savedStep === 20 && !v.saving, 300_000, report);
    expect(done.backend).toBe('webgpu');
    expect(done.metrics).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(done.chartRows).toBe(20);
    expect(done.samples.length).toBeGreaterThanOrEqual(1);
    await screenshotBothSizes(page, SHOTS, '1-trained-on-server');

    const folder = folderOf(out, done.runId!);
    expect(readMetrics(folder).map((m) => m.step)).toEqual(done.metrics);
    const scored = await runKiln(['eval', '--checkpoint', join(folder, 'checkpoint.safetensors'), '--backend', 'cpu']);
    expect(scored.code, scored.stderr).toBe(0);
    expect(JSON.parse(scored.stdout)).toMatchObject({ step: 20, split: 'val' });

    // The page goes and comes back through the printed URL: the run is listed, its curve is back.
    await page.close();
    await expect.poll(() => serve.output().stderr, { timeout: 10_000 }).toContain('disconnected');
    page = await b.context.newPage();
    await page.goto(url);
    const back = await until(page, 'the run listed again', (v) => v.served?.connected === true && v.runs.some((r) => r.id === done.runId), 60_000, report);
    // The page shows the run where it is (kiln serve's current()), not only the list.
    await until(page, 'the run open again', (v) => v.runId === done.runId && v.phase === 'done', 60_000, report);
    expect(back.runs.find((r) => r.id === done.runId)).toMatchObject({ step: 20 });
    const curve = await until(page, 'the curve back', (v) => v.chartRows === 20, 60_000, report);
    expect(curve.metrics).toEqual(done.metrics);
    await screenshotBothSizes(page, SHOTS, '2-reopened');

    // --data's files are offered beside the bundled ones; one picked is read by the server.
    await page.getByRole('group', { name: 'On this machine (kiln serve --data)' }).getByRole('radio', { name: /a\.txt/ }).check();
    await expect.poll(() => page.evaluate(() => (document.querySelector('kiln-app') as unknown as { lab: { data: { name: string } | null } }).lab.data?.name), { timeout: 30_000 }).toBe('a.txt');

    // A longer run, stopped by Ctrl-C on the server.
    await setUp(page, { steps: '2000', checkpointEvery: '1000', evalEvery: '1000', decaySteps: '2000' });
    await trainButton(page).click();
    const running = await until(page, 'a few steps of the long run', (v) => v.runId !== done.runId && v.phase === 'training' && v.step >= 5, 300_000, report);
    serve.child.kill('SIGINT');
    const exit = await serve.exit;
    expect(exit.code, serve.output().stderr).toBe(130);
    const long = folderOf(out, running.runId!);
    const rec = (JSON.parse(readFileSync(join(long, 'run.json'), 'utf8')) as { record: RunRecord }).record;
    expect(rec.step).toBeGreaterThanOrEqual(5);
    expect(rec.phase).toBe('paused');
    const stopped = await runKiln(['eval', '--checkpoint', long, '--backend', 'cpu']);
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(JSON.parse(stopped.stdout)).toMatchObject({ step: rec.step });
    // The page says the server went, rather than failing silently.
    await until(page, 'the page to see the server gone', (v) => v.served?.closed !== null, 30_000, report);
    expect(serve.output().stderr).not.toContain(token);
  }, 900_000);
});
