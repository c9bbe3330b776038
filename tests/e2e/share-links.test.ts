// Hostile share links in the lab (real Chromium against the dev server): each shows the
// "This link could not be opened" banner, throws nothing uncaught, opens no dialog, and
// leaves a page that works (Train is there, the preset can be chosen). One browser and
// one page: each link is opened fresh (about:blank, then the URL), and a hash-only
// change at the end goes through hashchange.
import { afterAll, describe, expect, it } from 'vitest';
import { browserSkipReason, openBrowser, type BrowserPage, type DevServer, startDevServer } from '../helpers/browser.ts';

const skip = browserSkipReason();
const sha = 'a'.repeat(64);

const HOSTILE: Array<[string, string]> = [
  ['a newer version', 'v=2&preset=tiny'],
  ['a prototype key', '__proto__=1'],
  ['5000 characters', `v=1&preset=tiny&data=${'x'.repeat(5000)}`],
  ['NaN', 'v=1&preset=tiny&lr=NaN'],
  ['a javascript: file name', `v=1&preset=tiny&file=javascript%3A%2F%2F%0Aalert(document.domain)&bytes=5&sha256=${sha}`],
];

describe.skipIf(skip !== null)(`share links in the lab${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let server: DevServer | null = null;
  let b: BrowserPage | null = null;

  afterAll(async () => {
    await b?.close();
    await server?.close();
  }, 60_000);

  it('refuses hostile links with a banner and keeps working', async () => {
    server = await startDevServer();
    b = await openBrowser();
    const { page } = b;
    const dialogs: string[] = [];
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    const banner = page.getByRole('alert').filter({ hasText: 'This link could not be opened' });
    const preset = page.getByLabel('Preset');

    for (const [what, fragment] of HOSTILE) {
      await page.goto('about:blank');
      await page.goto(`${server.url}#${fragment}`);
      await banner.waitFor({ timeout: 60_000 });
      const text = (await banner.textContent()) ?? '';
      expect(text.trim(), what).toMatch(/^This link could not be opened: /);
      expect(text.length, what).toBeLessThan(600);
      await page.getByRole('button', { name: 'Train', exact: true }).waitFor({ timeout: 30_000 });
      await preset.selectOption('names');
      expect(await preset.inputValue(), what).toBe('names');
    }

    // A hash-only change: a good link clears the banner and sets the preset; a bad one brings it back.
    await page.evaluate(() => (location.hash = '#v=1&preset=char-shakespeare'));
    await banner.waitFor({ state: 'detached', timeout: 10_000 });
    await expect.poll(() => preset.inputValue()).toBe('char-shakespeare');
    await page.evaluate(() => (location.hash = '#v=1&preset=tiny&constructor=x'));
    await banner.waitFor({ timeout: 10_000 });
    expect(await banner.textContent()).toMatch(/unknown setting "constructor"/);

    expect(dialogs).toEqual([]);
    // Loads cut short by the next navigation (the worker's modules) are this test's doing, not the page's.
    const problems = b.problems.filter((p) => !/^\[request failed\] .*net::ERR_ABORTED$/.test(p));
    expect(problems, b.report()).toEqual([]);
  }, 180_000);
});
