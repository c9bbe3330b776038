// Train follows what the page shows, in real Chromium: a field in red turns Train off (it
// never trains the last valid value instead), and says why beside it; a second text file
// is read like the first (the summary names it); a file the lab refuses leaves nothing to
// train on, not the dataset prepared before it; Enter on Train leaves the focus on Pause;
// a file that is no checkpoint is refused under Import with what it looks like. Only one
// short run trains (the keyboard check). Screenshots at 1280x800 and 390x844 go to
// test-results/lab-inputs/.
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { browserSkipReason, openBrowser, ROOT, screenshotBothSizes, startDevServer, type BrowserPage, type DevServer } from '../helpers/browser.ts';

const skip = browserSkipReason();
const SHOTS = join(ROOT, 'test-results/lab-inputs');

const trainButton = (page: Page) => page.getByRole('button', { name: 'Train', exact: true });
const why = (page: Page) => page.locator('kiln-run-bar #train-why');
const picker = (page: Page) => page.locator('kiln-data-picker input[type=file]');
const textFile = (name: string, text: string) => ({ name, mimeType: 'text/plain', buffer: Buffer.from(text) });

describe.skipIf(skip !== null)(`the lab's inputs in Chromium${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let server: DevServer | null = null;
  let b: BrowserPage | null = null;

  afterAll(async () => {
    await b?.close();
    await server?.close();
  }, 60_000);

  /** A fresh load of the lab with tiny on the bundled names, once Train is on. */
  async function readyPage(): Promise<Page> {
    server ??= await startDevServer();
    b ??= await openBrowser();
    const { page } = b;
    await page.goto(server.url);
    await page.getByLabel('Preset').selectOption('tiny');
    await page.getByRole('radio', { name: /English first names/ }).check();
    await expect.poll(() => trainButton(page).isEnabled(), { timeout: 60_000 }).toBe(true);
    return page;
  }

  it('a field in red turns Train off and says why; fixing it turns Train back on', async () => {
    const page = await readyPage();
    expect(await why(page).count()).toBe(0);

    for (const [field, bad] of [['#f-lr', '-1'], ['#f-nLayer', '1000000'], ['#f-batchSize', '1.5']] as const) {
      const input = page.locator(field);
      const good = await input.inputValue();
      await input.fill(bad);
      await input.blur();
      await expect.poll(() => trainButton(page).isEnabled(), { timeout: 10_000 }).toBe(false);
      expect(await why(page).textContent()).toMatch(/Fix the settings marked in red/);
      if (field === '#f-lr') await screenshotBothSizes(page, SHOTS, 'field-in-red');
      await input.fill(good);
      await input.blur();
      await expect.poll(() => trainButton(page).isEnabled(), { timeout: 10_000 }).toBe(true);
    }
    expect(b!.problems).toEqual([]);
  }, 300_000);

  it('a second text file is read like the first; a refused file leaves nothing to train on', async () => {
    const page = await readyPage();

    await picker(page).setInputFiles(textFile('first.txt', 'the first text, about cats and dogs.\n'.repeat(400)));
    await page.locator('kiln-data-picker').getByText('first.txt').first().waitFor({ timeout: 60_000 });
    await picker(page).setInputFiles(textFile('second.txt', 'a second text, about ships at sea.\n'.repeat(400)));
    await page.locator('kiln-data-picker').getByText('second.txt').first().waitFor({ timeout: 60_000 });
    await expect.poll(() => page.locator('kiln-data-picker').getByText('first.txt').count(), { timeout: 10_000 }).toBe(0);
    await expect.poll(() => trainButton(page).isEnabled(), { timeout: 60_000 }).toBe(true);

    // Refused after a good one: the good one's data is not trained on behind the message.
    await picker(page).setInputFiles({ name: 'picture.png', mimeType: 'image/png', buffer: Buffer.from(new Uint8Array(4096).map((_, i) => (i * 37) % 256)) });
    await page.getByRole('alert').filter({ hasText: 'picture.png' }).waitFor({ timeout: 60_000 });
    await expect.poll(() => trainButton(page).isEnabled(), { timeout: 10_000 }).toBe(false);
    expect(await why(page).textContent()).toMatch(/Choose a text file that reads, or a bundled dataset/);
    expect(await page.locator('kiln-data-picker').getByText('second.txt').count()).toBe(0);
    await screenshotBothSizes(page, SHOTS, 'file-refused');

    // The same on a fresh page, where the preset's dataset was prepared first.
    await page.goto('about:blank');
    await page.goto(server!.url);
    await page.getByLabel('Preset').selectOption('tiny');
    await expect.poll(() => trainButton(page).isEnabled(), { timeout: 60_000 }).toBe(true);
    await picker(page).setInputFiles(textFile('empty.txt', ''));
    await page.getByRole('alert').filter({ hasText: 'empty.txt' }).waitFor({ timeout: 60_000 });
    await expect.poll(() => trainButton(page).isEnabled(), { timeout: 10_000 }).toBe(false);
    expect(await page.locator('kiln-data-picker').getByText(/Training on/).count()).toBe(0);

    // A bundled dataset again: Train is back.
    await page.getByRole('radio', { name: /English first names/ }).check();
    await expect.poll(() => trainButton(page).isEnabled(), { timeout: 60_000 }).toBe(true);
    expect(b!.problems).toEqual([]);
  }, 300_000);

  it('from the keyboard: Enter on Train starts a run and the focus goes to Pause, not to the page', async () => {
    const page = await readyPage();
    await trainButton(page).focus();
    await page.keyboard.press('Enter');
    const focused = () => page.evaluate(() => {
      let el: Element | null = document.activeElement;
      while (el?.shadowRoot?.activeElement) el = el.shadowRoot.activeElement;
      return el?.textContent?.trim() ?? el?.tagName ?? null;
    });
    await expect.poll(focused, { timeout: 120_000 }).toBe('Pause');
    await page.keyboard.press('Enter');
    await page.getByRole('button', { name: 'Resume' }).waitFor({ timeout: 120_000 });
    await page.getByRole('button', { name: 'Stop' }).click();
  }, 300_000);

  it('a file that is no checkpoint, imported, is refused under the Import button with what it looks like', async () => {
    server ??= await startDevServer();
    b ??= await openBrowser();
    const { page } = b;
    await page.goto(server.url);
    await page.getByRole('button', { name: 'Import checkpoint…' }).waitFor({ timeout: 60_000 });
    const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(200, 7)]);
    await page.locator('kiln-run-list input[type=file]').setInputFiles({ name: 'cat.png', mimeType: 'image/png', buffer: png });
    const alert = page.locator('kiln-run-list').getByRole('alert');
    await alert.waitFor({ timeout: 60_000 });
    expect(await alert.textContent()).toMatch(/cat\.png was not imported: this is not a safetensors checkpoint: it looks like a PNG image/);
    // Said there, not as the page's banner.
    expect(await page.locator('kiln-banners').getByText('not a safetensors checkpoint').count()).toBe(0);
    await screenshotBothSizes(page, SHOTS, 'import-refused');
  }, 120_000);
});
