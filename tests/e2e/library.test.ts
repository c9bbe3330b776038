// The run library as a person meets it, in real Chromium on SwiftShader WebGPU: train
// tiny 20 steps, reload, the run is listed, open it and extend to 40: the losses equal a
// 40-step run's; download a checkpoint and `kiln eval` reads it; import a CLI checkpoint
// and sample from it; two runs with different learning rates on one chart with a table
// of only `lr`; branch at step 20 with another rate; a page closed while saving comes back
// to that run by itself; a full quota (Chromium's own, lowered through CDP) pauses it with
// a message and loses nothing. Screenshots go to test-results/library/.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { browserSkipReason, openBrowser, ROOT, screenshotBothSizes, startDevServer, type BrowserPage, type DevServer } from '../helpers/browser.ts';
import { runKiln, tempDir } from '../helpers/cli.ts';

const skip = browserSkipReason();
const SHOTS = join(ROOT, 'test-results/library');

interface LibView {
  phase: string | null;
  step: number;
  stopAt: number;
  savedStep: number | null;
  saving: boolean;
  saveError: string | null;
  error: string | null;
  runId: string | null;
  runName: string | null;
  runs: Array<{ id: string; name: string; step: number; phase: string; checkpoints: number[]; lr: number }>;
  metrics: Array<{ step: number; loss: number; val_loss?: number }>;
  sampleOutput: string;
}

function view(page: Page): Promise<LibView> {
  return page.evaluate(() => {
    type Lab = {
      status: { phase: string; step: number; stopAt: number; savedStep: number | null; saving: boolean; saveError?: { message: string } } | null;
      error: { message: string } | null;
      run: { id: string; name: string } | null;
      runs: Array<{ id: string; name: string; step: number; phase: string; checkpoints: Array<{ step: number }>; spec: { config: { lr: number } } }> | null;
      metrics: Array<{ step: number; loss: number; val_loss?: number }>;
    };
    const app = document.querySelector('kiln-app') as unknown as { lab: Lab; shadowRoot: ShadowRoot };
    const lab = app.lab;
    const sp = app.shadowRoot.querySelector('kiln-sample-panel') as unknown as { output: string };
    return {
      phase: lab.status?.phase ?? null, step: lab.status?.step ?? 0, stopAt: lab.status?.stopAt ?? 0, savedStep: lab.status?.savedStep ?? null,
      saving: lab.status?.saving ?? false, saveError: lab.status?.saveError?.message ?? null, error: lab.error?.message ?? null,
      runId: lab.run?.id ?? null, runName: lab.run?.name ?? null,
      runs: (lab.runs ?? []).map((r) => ({ id: r.id, name: r.name, step: r.step, phase: r.phase, checkpoints: r.checkpoints.map((c) => c.step), lr: r.spec.config.lr })),
      metrics: lab.metrics.map((m) => ({ step: m.step, loss: m.loss, val_loss: m.val_loss })),
      sampleOutput: sp.output,
    };
  });
}

async function until(page: Page, what: string, ok: (v: LibView) => boolean, timeoutMs: number, report: () => string): Promise<LibView> {
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

function shot(page: Page, name: string): Promise<void> {
  return screenshotBothSizes(page, SHOTS, name);
}

/** Sets form fields of the settings panel (tiny, names) and waits until Train is enabled. */
async function setUp(page: Page, fields: Record<string, string>): Promise<void> {
  await page.getByLabel('Preset').selectOption('tiny');
  for (const [key, value] of Object.entries(fields)) {
    const f = page.locator(`#f-${key}`);
    if (await f.isHidden()) {
      // A closed section of the settings: open it, as a person would.
      const section = await f.evaluate((el) => el.closest('.grid')!.id);
      await page.locator(`button[aria-controls="${section}"]`).click();
    }
    await f.fill(value);
    await f.blur();
  }
  await page.getByRole('radio', { name: /English first names/ }).check();
  await expect.poll(() => trainButton(page).isEnabled(), { timeout: 60_000 }).toBe(true);
}

/** "Train", or "New run" once a run is open. */
function trainButton(page: Page) {
  return page.getByRole('button', { name: /^(Train|New run)$/ });
}

async function trainTo(page: Page, steps: number, report: () => string): Promise<LibView> {
  const before = (await view(page)).runId;
  await trainButton(page).click();
  // A new run, not the one open before (which may well be done at the same step).
  return until(page, `step ${steps} saved`, (v) => v.runId !== before && v.phase === 'done' && v.step === steps && v.savedStep === steps && !v.saving, 300_000, report);
}

/** The run list's entry whose name is exactly `name` (default names differ only by a trailing number). */
function row(page: Page, name: string) {
  const exact = new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
  return page.locator('kiln-run-list li').filter({ has: page.locator('span.name', { hasText: exact }) });
}

describe.skipIf(skip !== null)(`the run library in Chromium${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let server: DevServer | null = null;
  let b: BrowserPage | null = null;
  const dirs: string[] = [];

  afterAll(async () => {
    await b?.close();
    await server?.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }, 60_000);

  it('keeps runs across a reload, resumes them on the same curve, compares, branches, downloads and imports', async () => {
    server ??= await startDevServer();
    b = await openBrowser();
    const { page, report } = b;
    await page.goto(server.url);
    await page.getByRole('button', { name: 'Train', exact: true }).waitFor({ timeout: 60_000 });

    // A 40-step run in one go, saving every 20 steps.
    await setUp(page, { steps: '40', checkpointEvery: '20' });
    const straight = await trainTo(page, 40, report);
    const straightName = straight.runName!;
    // The list is read again after each save: it catches up with the run.
    const listedStraight = await until(page, 'the list at step 40', (v) => v.runs.find((r) => r.id === straight.runId)?.step === 40, 30_000, report);
    expect(listedStraight.runs.find((r) => r.id === straight.runId)).toMatchObject({ step: 40, checkpoints: [20, 40] });

    // The same run stopped at 20; after a reload it is listed, opens at 20 and extends to 40.
    await setUp(page, { steps: '20', checkpointEvery: '20' });
    const short = await trainTo(page, 20, report);
    await page.reload();
    const listed = await until(page, 'the run list', (v) => v.runs.length === 2, 60_000, report);
    expect(listed.runs.map((r) => r.name).sort()).toEqual([short.runName!, straightName].sort());
    await shot(page, '1-after-reload');
    await row(page, short.runName!).getByRole('button', { name: /^(Open|Resume)$/ }).click();
    const opened = await until(page, 'the run opened', (v) => v.runId === short.runId && v.phase === 'done', 60_000, report);
    expect(opened.metrics.map((m) => m.step)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    const extendBy = page.getByLabel('Steps to extend by');
    await extendBy.fill('20');
    await extendBy.dispatchEvent('change');
    await page.getByRole('button', { name: 'Extend' }).click();
    const resumed = await until(page, 'step 40 after the reload', (v) => v.phase === 'done' && v.step === 40 && v.savedStep === 40 && !v.saving, 300_000, report);
    expect(resumed.metrics.map((m) => [m.step, m.loss])).toEqual(straight.metrics.map((m) => [m.step, m.loss]));
    // Val losses agree wherever the straight run measured one (the 20-step run also measured at its end, step 20).
    const vals = (v: LibView) => v.metrics.filter((m) => m.val_loss !== undefined).map((m) => [m.step, m.val_loss]);
    expect(vals(resumed).filter(([step]) => step !== 20)).toEqual(vals(straight));

    // A run with another learning rate, compared with the 40-step one: the table shows only lr.
    await setUp(page, { steps: '40', checkpointEvery: '20', lr: '0.001' });
    const lowLr = await trainTo(page, 40, report);
    await row(page, straightName).getByRole('checkbox').check();
    const table = page.locator('kiln-compare-table');
    await table.waitFor({ timeout: 30_000 });
    await expect.poll(() => table.locator('tbody tr').count(), { timeout: 30_000 }).toBe(1);
    expect(await table.locator('tbody tr').first().innerText()).toMatch(/^lr/);
    const drawn = await page.evaluate(() => {
      const chart = document.querySelector('kiln-app')!.shadowRoot!.querySelector('kiln-loss-chart') as unknown as { compare: Array<{ name: string; rows: unknown[] }> };
      return chart.compare.map((c) => [c.name, c.rows.length]);
    });
    expect(drawn, JSON.stringify({ straightName, runs: (await view(page)).runs.map((r) => [r.id, r.name]) })).toEqual([[straightName, 40]]);
    await shot(page, '2-compare');
    await row(page, straightName).getByRole('checkbox').uncheck();

    // Branch the 40-step run at step 20 with a lower rate: it keeps the parent's 20 steps.
    await row(page, straightName).getByRole('button', { name: 'Branch…' }).click();
    const dialog = page.locator('kiln-branch-dialog dialog');
    await dialog.waitFor({ state: 'visible', timeout: 30_000 });
    await dialog.locator('#b-step').selectOption('20');
    const lr = dialog.locator('#b-lr');
    await lr.fill('0.0005');
    await lr.blur();
    await dialog.getByRole('button', { name: 'Branch', exact: true }).click();
    const branched = await until(page, 'the branch opened', (v) => !!v.runId && ![straight.runId, short.runId, lowLr.runId].includes(v.runId) && v.step === 20, 60_000, report);
    expect(branched.metrics.map((m) => [m.step, m.loss])).toEqual(straight.metrics.slice(0, 20).map((m) => [m.step, m.loss]));
    await page.getByRole('button', { name: 'Resume' }).click();
    const branchDone = await until(page, 'the branch at 40', (v) => v.phase === 'done' && v.step === 40 && v.savedStep === 40 && !v.saving, 300_000, report);
    expect(branchDone.metrics[25]!.loss).not.toBe(straight.metrics[25]!.loss);
    expect(branchDone.runs.find((r) => r.id === branchDone.runId)!.lr).toBe(0.0005);
    await shot(page, '3-branch');

    // Download the 40-step run's checkpoint: the CLI evaluates it.
    const dir = tempDir('kiln-lib-e2e-');
    dirs.push(dir);
    const [download] = await Promise.all([page.waitForEvent('download', { timeout: 60_000 }), row(page, straightName).getByRole('button', { name: 'Download' }).click()]);
    expect(download.suggestedFilename()).toMatch(/-step40\.safetensors$/);
    const file = join(dir, download.suggestedFilename());
    await download.saveAs(file);
    const evalRun = await runKiln(['eval', '--checkpoint', file, '--backend', 'cpu']);
    expect(evalRun.code, evalRun.stderr).toBe(0);
    const scored = JSON.parse(evalRun.stdout) as { loss: number; step: number; split: string };
    expect(scored).toMatchObject({ step: 40, split: 'val' });
    expect(scored.loss).toBeGreaterThan(0);

    // A checkpoint made by `kiln train` imports and samples.
    const cliOut = join(dir, 'cli-run');
    const made = await runKiln(['train', '--preset', 'tiny', '--steps', '5', '--data', 'names', '--backend', 'cpu', '--out', cliOut]);
    expect(made.code, made.stderr).toBe(0);
    await page.locator('kiln-run-list input[type=file]').setInputFiles(join(cliOut, 'checkpoint.safetensors'));
    const imported = await until(page, 'the import listed', (v) => v.runs.some((r) => r.name === 'checkpoint'), 60_000, report);
    expect(imported.runs.find((r) => r.name === 'checkpoint')).toMatchObject({ step: 5 });
    await row(page, 'checkpoint').getByRole('button', { name: /^(Open|Resume)$/ }).click();
    await until(page, 'the import opened', (v) => v.runName === 'checkpoint' && v.step === 5, 60_000, report);
    await page.getByRole('button', { name: 'Generate' }).click();
    await until(page, 'a sample from the import', (v) => v.sampleOutput.length > 10 && !v.sampleOutput.includes('Sampling'), 120_000, report);
    expect(b.problems).toEqual([]);
  }, 1_200_000);

  it('Share makes a link that a fresh browser opens with the config and the sharer\'s curve; a link to a user file checks its hash', async () => {
    server ??= await startDevServer();
    b ??= await openBrowser();
    const { report } = b;
    const page = await b.context.newPage();
    await page.goto(server.url);
    await trainButton(page).waitFor({ timeout: 60_000 });
    await setUp(page, { steps: '12', evalEvery: '4', lr: '0.002' });
    await trainTo(page, 12, report);
    await page.getByRole('button', { name: 'Share' }).click();
    const link = await page.getByLabel('Share link').inputValue();
    expect(link).toMatch(/#v=1&preset=tiny&.*lr=0\.002.*&data=names.*r\.curve=4:/);
    await page.close();

    // Another person: a fresh context (no storage, no runs).
    const other = await b.browser.newContext({ viewport: { width: 1280, height: 800 } });
    const p2 = await other.newPage();
    await p2.goto(link);
    await trainButton(p2).waitFor({ timeout: 60_000 });
    await p2.getByText('A shared experiment').waitFor({ timeout: 30_000 });
    expect(await p2.locator('#f-lr').inputValue()).toBe('0.002');
    expect(await p2.getByLabel('Preset').inputValue()).toBe('tiny');
    const shared = await p2.evaluate(() => {
      const chart = document.querySelector('kiln-app')!.shadowRoot!.querySelector('kiln-loss-chart') as unknown as { sharedCurve: { points: number[][] } | null };
      return chart.sharedCurve?.points.map((p) => p[0]) ?? null;
    });
    expect(shared).toEqual([4, 8, 12]);
    await shot(p2, '5-shared-link');

    // A link that names the sharer's own file: the page asks for it and checks it.
    const text = new TextEncoder().encode('alpha beta gamma delta\n'.repeat(400));
    const digest = Buffer.from(await crypto.subtle.digest('SHA-256', text)).toString('hex');
    const fileLink = `${server!.url}#v=1&preset=tiny&steps=4&file=mine.txt&bytes=${text.length}&sha256=${digest}`;
    await p2.goto('about:blank');
    await p2.goto(fileLink);
    await p2.getByText('This run trains on your file mine.txt').waitFor({ timeout: 60_000 });
    const picker = p2.locator('kiln-data-picker input[type=file]');
    await picker.setInputFiles({ name: 'mine.txt', mimeType: 'text/plain', buffer: Buffer.from('some other text entirely\n'.repeat(50)) });
    await p2.getByText(/not the file the run was trained on/).waitFor({ timeout: 60_000 });
    expect(await trainButton(p2).isEnabled()).toBe(false);
    await picker.setInputFiles({ name: 'mine.txt', mimeType: 'text/plain', buffer: Buffer.from(text) });
    await expect.poll(() => trainButton(p2).isEnabled(), { timeout: 60_000 }).toBe(true);
    await expect.poll(() => p2.getByText('This run trains on your file').count(), { timeout: 10_000 }).toBe(0);
    await other.close();
  }, 600_000);

  it('a page closed while saving leaves a run that opens; a full quota pauses with a message and keeps the last checkpoint', async () => {
    server ??= await startDevServer();
    b ??= await openBrowser();
    const { context, report } = b;
    let page = await context.newPage();
    await page.goto(server.url);
    await page.getByRole('button', { name: 'Train', exact: true }).waitFor({ timeout: 60_000 });
    await setUp(page, { steps: '400', checkpointEvery: '1' });
    await trainButton(page).click();
    const mid = await until(page, 'a save in flight', (v) => (v.savedStep ?? 0) >= 3 && v.saving, 300_000, report);
    await page.close();

    page = await context.newPage();
    await page.goto(server.url);
    const listed = await until(page, 'the run list', (v) => v.runs.some((r) => r.id === mid.runId), 60_000, report);
    const rec = listed.runs.find((r) => r.id === mid.runId)!;
    expect(rec.step).toBeGreaterThanOrEqual(mid.savedStep!);
    expect(rec.phase).toBe('training');
    // The page comes back to the run it was training, by itself (opened, not trained).
    const reopened = await until(page, 'the closed run reopened', (v) => v.runId === mid.runId && (v.phase === 'training' || v.phase === 'paused'), 60_000, report);
    expect(await row(page, rec.name).getByRole('button', { name: /^(Open|Resume)$/ }).count()).toBe(0);
    expect(reopened.error).toBeNull();
    expect(reopened.metrics.at(-1)!.step).toBeGreaterThanOrEqual(rec.step);
    await page.getByRole('button', { name: 'Pause' }).click().catch(() => {});
    const paused = await until(page, 'paused', (v) => v.phase === 'paused' && !v.saving, 120_000, report);

    // Chromium's quota, lowered to what is used now: the next save cannot fit.
    const cdp = await context.newCDPSession(page);
    const origin = new URL(server.url).origin;
    const used = await page.evaluate(async () => (await navigator.storage.estimate()).usage ?? 0);
    await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: used + 1000 });
    await page.getByRole('button', { name: 'Resume' }).click();
    const full = await until(page, 'the save to fail', (v) => v.phase === 'paused' && v.saveError !== null, 120_000, report);
    expect(full.saveError).toMatch(/storage is full/);
    expect(full.step).toBeGreaterThan(paused.step);
    await page.getByText('Saving failed').waitFor({ timeout: 10_000 });
    await shot(page, '4-quota');
    await cdp.send('Storage.overrideQuotaForOrigin', { origin });
    // Nothing lost: the run reopens at its last good checkpoint.
    await page.reload();
    await until(page, 'the run list', (v) => v.runs.some((r) => r.id === mid.runId), 60_000, report);
    const after = (await view(page)).runs.find((r) => r.id === mid.runId)!;
    expect(after.step).toBeGreaterThanOrEqual(paused.step);
    await until(page, 'reopened after the quota', (v) => v.runId === mid.runId && v.error === null && v.step >= after.step, 60_000, report);
    await page.close();
  }, 900_000);
});
