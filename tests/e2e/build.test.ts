// The production build (what `npm run build` makes) served by a plain static file
// server under a sub-path (/kiln/, as GitHub Pages and most hosts do): the page, its
// module worker, the shaders and the bundled datasets must all load from there, and a
// short run must train. A static host knows nothing of Vite, so this is the test that
// catches a root-relative URL.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { browserSkipReason, openBrowser, type BrowserPage } from '../helpers/browser.ts';
import { buildSite, serveStatic, type StaticServer } from '../helpers/built-site.ts';

const skip = browserSkipReason();

describe.skipIf(skip !== null)(`the production build from a sub-path${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let out = '';
  let server: StaticServer | null = null;
  let b: BrowserPage | null = null;

  afterAll(async () => {
    await b?.close();
    await server?.close();
    if (out) await rm(out, { recursive: true, force: true });
  }, 60_000);

  it('loads from /kiln/ without errors and trains 5 steps', async () => {
    out = await mkdtemp(join(tmpdir(), 'kiln-build-'));
    await buildSite(out);
    expect(existsSync(join(out, 'index.html'))).toBe(true);
    expect(existsSync(join(out, 'datasets/names.txt'))).toBe(true);
    server = await serveStatic(out, '/kiln/');
    b = await openBrowser();
    const { page } = b;
    await page.goto(`${server.url}#v=1&preset=tiny&steps=5&data=names`);
    const train = page.getByRole('button', { name: 'Train', exact: true });
    await expect.poll(() => train.isEnabled(), { timeout: 120_000 }).toBe(true);
    await train.click();
    await expect.poll(() => page.evaluate(() => {
      const bar = document.querySelector('kiln-app')!.shadowRoot!.querySelector('kiln-run-bar') as unknown as { status: { phase: string; step: number } | null };
      return bar.status ? `${bar.status.phase} ${bar.status.step}` : 'none';
    }), { timeout: 240_000, interval: 250 }).toBe('done 5');
    expect(b.problems, b.report()).toEqual([]);
  }, 600_000);
});
