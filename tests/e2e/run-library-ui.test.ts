// The run library's elements in real Chromium, without a worker: tests/e2e/pages/run-library.html
// mounts <kiln-run-list>, <kiln-loss-chart> (two compared runs and a share link's curve),
// <kiln-compare-table> and <kiln-branch-dialog> with made-up runs, and plays the lab's part
// (it answers their events as the lab does). The test clicks through rename, compare,
// delete with its confirm, import, open, download and branch, checks each event's detail,
// checks that a phone never scrolls sideways, and saves screenshots at 1280x800 and
// 390x844 to test-results/run-library/ (not committed).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { browserSkipReason, openBrowser, ROOT, startDevServer, type BrowserPage, type DevServer } from '../helpers/browser.ts';

const skip = browserSkipReason();
const PAGE = 'tests/e2e/pages/run-library.html';
const SHOTS = join(ROOT, 'test-results/run-library');

type Events = Array<{ type: string; detail: unknown }>;

/** The events recorded since the last call. */
async function takeEvents(page: Page): Promise<Events> {
  return page.evaluate(() => window.__events.splice(0));
}

/** An element's text, its shadow root's included, spaces folded. */
async function textOf(page: Page, selector: string): Promise<string> {
  const t = await page.evaluate((sel) => document.querySelector(sel)!.shadowRoot!.textContent ?? '', selector);
  return t.replace(/\s+/g, ' ');
}

async function shots(b: BrowserPage, name: string, phoneFull = true): Promise<void> {
  mkdirSync(SHOTS, { recursive: true });
  await b.page.setViewportSize({ width: 1280, height: 800 });
  await b.page.waitForTimeout(150); // the chart follows its box on the next frame
  await b.page.screenshot({ path: join(SHOTS, `${name}-1280x800.png`) });
  await b.page.setViewportSize({ width: 390, height: 844 });
  await b.page.waitForTimeout(150);
  await b.page.screenshot({ path: join(SHOTS, `${name}-390x844.png`), fullPage: phoneFull });
  const wide = await b.page.evaluate(() => document.documentElement.scrollWidth);
  expect(wide, `${name}: the page is ${wide}px wide at 390px`).toBeLessThanOrEqual(390);
  await b.page.setViewportSize({ width: 1280, height: 800 });
}

describe.skipIf(skip !== null)(`the run library's elements in Chromium${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let server: DevServer | null = null;
  let b: BrowserPage | null = null;

  afterAll(async () => {
    await b?.close();
    await server?.close();
  }, 60_000);

  it('shows the runs, fires each action\'s event with its detail, and fits a phone', async () => {
    server = await startDevServer();
    b = await openBrowser({ width: 1280, height: 800 });
    const { page, report } = b;
    await page.goto(`${server.url}${PAGE}`);
    await page.waitForFunction(() => window.__ready === true, null, { timeout: 60_000 });

    // What the list says about each run.
    const list = page.locator('kiln-run-list');
    await expect.poll(() => list.locator('li').count()).toBe(5);
    const text = await textOf(page, 'kiln-run-list');
    expect(text).toContain('branched from shakespeare · craft-1m at step 1,500');
    expect(text).toContain('imported from kiln-shakespeare-5000.safetensors');
    expect(text).toContain('interrupted');
    expect(text).toContain('best val 1.5123');
    expect(text).toContain('12 Mar');
    expect(text).toMatch(/Runs use 206 MiB, your texts 1\.1 MiB · 212 MiB of 2\.1 GiB used by this site/);
    expect(text).toContain('The browser may clear this storage when space runs low');
    expect(await list.locator('li.current .name').textContent()).toBe('shakespeare · craft-1m · lr 1e-3');

    // The chart: the open run's three series, two compared runs' two each, the shared curve.
    const chartSeries = () => page.evaluate(() => {
      const c = document.querySelector('kiln-loss-chart') as unknown as { plot: { series: Array<{ label: string }> } };
      return c.plot.series.map((s) => s.label);
    });
    expect(await chartSeries()).toEqual(['step', 'train (raw)', 'train', 'val', 'shakespeare · craft-1m', 'shakespeare · craft-1m val', 'shakespeare · lr 4e-3', 'shakespeare · lr 4e-3 val', 'shared run (val)']);
    // A new compare array holding the same rows arrays (the parent re-rendering) keeps the plot and draws nothing.
    const kept = await page.evaluate(async () => {
      const c = document.querySelector('kiln-loss-chart') as unknown as { plot: object; compare: unknown[]; updateComplete: Promise<unknown> };
      const before = c.plot;
      let draws = 0;
      (before as { hooks: { draw?: Array<() => void> } }).hooks.draw?.push(() => draws++);
      c.compare = [...c.compare];
      await c.updateComplete;
      await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
      return { same: c.plot === before, draws };
    });
    expect(kept).toEqual({ same: true, draws: 0 });

    // The compare table: only lr differs between the open run and the two compared.
    const table = page.locator('kiln-compare-table');
    expect(await table.locator('tbody tr').count()).toBe(1);
    expect(await table.locator('tbody tr > *').allTextContents()).toEqual(['lr', '0.001', '0.002', '0.004']);

    await shots(b, '1-library');
    // On a phone the three runs' columns share the width without a sideways scroll.
    await page.setViewportSize({ width: 390, height: 844 });
    await table.screenshot({ path: join(SHOTS, '1-compare-table-390.png') });
    const tableOverflow = await page.evaluate(() => {
      const box = document.querySelector('kiln-compare-table')!.shadowRoot!.querySelector('.scroll')!;
      return box.scrollWidth - box.clientWidth;
    });
    expect(tableOverflow).toBeLessThanOrEqual(0);
    await page.setViewportSize({ width: 1280, height: 800 });
    // A close look at where the curves meet: the chart zoomed to steps 1000-2500 (as a drag would).
    await page.evaluate(() => {
      const c = document.querySelector('kiln-loss-chart') as unknown as { plot: { setScale(k: string, r: { min: number; max: number }): void } };
      c.plot.setScale('x', { min: 1000, max: 2500 });
    });
    await page.locator('kiln-loss-chart').screenshot({ path: join(SHOTS, '1-chart-zoomed.png') });
    await page.locator('kiln-loss-chart').dblclick({ position: { x: 300, y: 150 } }); // uPlot: double-click zooms out

    // Rename: the pencil, a new name, Enter; Escape leaves the name alone.
    await takeEvents(page);
    await page.getByRole('button', { name: 'Rename shakespeare · lr 4e-3' }).click();
    const nameInput = page.getByRole('textbox', { name: 'New name for shakespeare · lr 4e-3' });
    await nameInput.fill('hot lr');
    await nameInput.press('Enter');
    expect(await takeEvents(page)).toEqual([{ type: 'run-rename', detail: { id: 'r-m3j9-hot', name: 'hot lr' } }]);
    await page.getByRole('button', { name: 'Rename hot lr' }).click();
    await page.getByRole('textbox', { name: 'New name for hot lr' }).fill('something else');
    await page.getByRole('textbox', { name: 'New name for hot lr' }).press('Escape');
    expect(await takeEvents(page)).toEqual([]);
    expect(await list.locator('.name', { hasText: 'hot lr' }).count()).toBe(1);
    // The chart's legend follows the new name (a new series label: a new plot).
    expect((await chartSeries())[6]).toBe('hot lr');

    // Compare: untick one, tick another.
    await page.getByRole('checkbox', { name: 'Show hot lr on the loss chart' }).uncheck();
    await page.getByRole('checkbox', { name: /Show Tiny Shakespeare, six layers/ }).check();
    expect(await takeEvents(page)).toEqual([
      { type: 'run-compare', detail: { id: 'r-m3j9-hot', on: false } },
      { type: 'run-compare', detail: { id: 'r-m2x0-long', on: true } },
    ]);
    // The open run is always on the chart: no toggle.
    expect(await list.locator('li.current input[type=checkbox]').count()).toBe(0);

    // Open, Resume, Download.
    const card = (name: string | RegExp) =>
      list.locator('li').filter({ has: page.locator('.name', { hasText: typeof name === 'string' ? new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) : name }) });
    await card('shakespeare · craft-1m').getByRole('button', { name: 'Open' }).click();
    await card(/Tiny Shakespeare/).getByRole('button', { name: 'Resume' }).click();
    await card('kiln-shakespeare-5000').getByRole('button', { name: 'Download' }).click();
    expect(await takeEvents(page)).toEqual([
      { type: 'run-open', detail: { id: 'r-m3k1-base' } },
      { type: 'run-open', detail: { id: 'r-m2x0-long' } },
      { type: 'run-download', detail: { id: 'r-m1q4-import' } },
    ]);

    // Delete asks first, inline; Cancel keeps the run, Delete sends the event.
    const hot = card('hot lr');
    await hot.getByRole('button', { name: 'Delete hot lr' }).click();
    expect(((await hot.locator('.confirm').textContent()) ?? '').replace(/\s+/g, ' ')).toContain('Delete hot lr? Its checkpoints (9.3 MiB) are removed.');
    await shots(b, '2-confirm-delete');
    await hot.getByRole('button', { name: 'Cancel' }).click();
    expect(await takeEvents(page)).toEqual([]);
    await hot.getByRole('button', { name: 'Delete hot lr' }).click();
    await hot.locator('.confirm').getByRole('button', { name: 'Delete' }).click();
    expect(await takeEvents(page)).toEqual([{ type: 'run-delete', detail: { id: 'r-m3j9-hot' } }]);
    await expect.poll(() => list.locator('li').count()).toBe(4);

    // Import: the hidden file input, a .safetensors file.
    await list.locator('input[type=file]').setInputFiles({ name: 'model.safetensors', mimeType: 'application/octet-stream', buffer: Buffer.from([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]) });
    const imported = (await takeEvents(page)) as Array<{ type: string; detail: { fileName: string; bytes: Record<string, number> } }>;
    expect(imported.map((e) => [e.type, e.detail.fileName, Object.keys(e.detail.bytes).length])).toEqual([['run-import', 'model.safetensors', 16]]);

    // Branch: the dialog opens on the newest checkpoint; lr 1e-4 names the branch.
    await card('shakespeare · craft-1m').getByRole('button', { name: 'Branch…' }).click();
    expect(await takeEvents(page)).toEqual([{ type: 'run-branch', detail: { id: 'r-m3k1-base' } }]);
    const dlg = page.getByRole('dialog');
    await dlg.waitFor();
    expect(await dlg.getByLabel('Start from checkpoint').inputValue()).toBe('3000');
    await dlg.getByLabel('steps (end)').fill('3000');
    expect(await dlg.locator('.error').first().textContent()).toMatch(/not past the checkpoint's step 3000/);
    expect(await dlg.getByRole('button', { name: 'Branch' }).isDisabled()).toBe(true);
    await dlg.getByLabel('Start from checkpoint').selectOption('1500');
    await dlg.getByLabel('lr', { exact: true }).fill('1e-4');
    expect(await dlg.getByLabel('Name').inputValue()).toBe('shakespeare · craft-1m · lr 1e-4');
    // craft-1m's minLr 2e-4 is now above lr: validate()'s message, under minLr.
    expect(await dlg.locator('.error').allTextContents()).toEqual(['minLr 0.0002 is above lr 0.0001: set minLr <= lr']);
    await shots(b, '3-branch-dialog', false);
    await dlg.getByLabel('minLr').fill('1e-5');
    expect(await dlg.locator('.error').count()).toBe(0);
    await dlg.getByRole('button', { name: 'Branch' }).click();
    const confirmed = (await takeEvents(page)) as Array<{ type: string; detail: { id: string; step: number; name: string; config: Record<string, number> } }>;
    expect(confirmed).toHaveLength(1);
    expect(confirmed[0].type).toBe('branch-confirm');
    expect(confirmed[0].detail).toMatchObject({ id: 'r-m3k1-base', step: 1500, name: 'shakespeare · craft-1m · lr 1e-4' });
    expect(confirmed[0].detail.config).toMatchObject({ lr: 1e-4, minLr: 1e-5, steps: 3000, nLayer: 6, nEmbd: 128 });
    await expect.poll(() => dlg.isVisible()).toBe(false);

    // Escape cancels.
    await card(/Tiny Shakespeare/).getByRole('button', { name: 'Branch…' }).click();
    await dlg.waitFor();
    await page.keyboard.press('Escape');
    expect((await takeEvents(page)).map((e) => e.type)).toEqual(['run-branch', 'branch-cancel']);
    await expect.poll(() => dlg.isVisible()).toBe(false);

    // The list in the lab's narrowest left column, and alone with no runs.
    const fits = await page.evaluate(async () => {
      const l = document.querySelector('kiln-run-list')!;
      const main = document.querySelector('main')!;
      main.style.gridTemplateColumns = '300px minmax(0, 1fr)';
      await new Promise((r) => requestAnimationFrame(r));
      const widest = Math.max(...[...l.shadowRoot!.querySelectorAll('li, .head, .storage')].map((e) => e.scrollWidth - e.clientWidth));
      main.style.gridTemplateColumns = '';
      return widest;
    });
    expect(fits, 'nothing in the list overflows a 300px column').toBeLessThanOrEqual(0);
    await page.evaluate(async () => {
      const l = document.querySelector('kiln-run-list')!;
      l.runs = [];
      l.usage = null;
      l.persisted = true;
      await l.updateComplete;
    });
    expect(await textOf(page, 'kiln-run-list')).toContain('No saved runs yet. Runs are saved as they train. Storage is persistent');

    expect(b.problems, `the page logged errors${report()}`).toEqual([]);
  }, 180_000);
});
