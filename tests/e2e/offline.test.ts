// The lab as an installable, offline app (vite-plugin-pwa): the production build,
// served from /kiln/ by a plain static server, registers its service worker, which
// precaches the page, the worker, the chunks, the icons and the bundled datasets. A new
// version waits for the person's click (registerType 'prompt') instead of replacing a
// page that may be training. Then, with the browser offline and the server stopped, a
// reload opens the lab, reads the bundled names and trains a few steps. Screenshots of
// the two messages at 1280x800 and 390x844 go to test-results/pwa/ (not committed).
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { browserSkipReason, openBrowser, ROOT, type BrowserPage } from '../helpers/browser.ts';
import { buildSite, serveStatic, type StaticServer } from '../helpers/built-site.ts';

const skip = browserSkipReason();
const SHOTS = join(ROOT, 'test-results/pwa');
const STEPS = 3;

interface Manifest {
  name: string;
  short_name: string;
  start_url: string;
  scope: string;
  display: string;
  background_color: string;
  theme_color: string;
  icons: Array<{ src: string; sizes: string; type: string; purpose?: string }>;
}

/** The URLs (relative to the site) that the generated sw.js precaches. */
function precacheList(sw: string): string[] {
  return [...sw.matchAll(/\{url:"([^"]+)",revision:/g)].map((m) => m[1]);
}

function promptKind(page: Page): Promise<string | null> {
  return page.evaluate(() => document.querySelector('kiln-update-prompt')?.kind ?? null);
}

/** The run bar's phase and step, e.g. "done 3". */
function runState(page: Page): Promise<string> {
  return page.evaluate(() => {
    const bar = document.querySelector('kiln-app')!.shadowRoot!.querySelector('kiln-run-bar') as unknown as { status: { phase: string; step: number } | null };
    return bar.status ? `${bar.status.phase} ${bar.status.step}` : 'none';
  });
}

/** Waits until the lab is ready to train (its worker up, the data read): reloading before that would abort the worker's own loading. */
async function trainable(page: Page): Promise<void> {
  const train = page.getByRole('button', { name: 'Train', exact: true });
  await expect.poll(() => train.isEnabled(), { timeout: 120_000 }).toBe(true);
}

async function shots(page: Page, name: string): Promise<void> {
  mkdirSync(SHOTS, { recursive: true });
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.screenshot({ path: join(SHOTS, `${name}-1280x800.png`) });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: join(SHOTS, `${name}-390x844.png`) });
  await page.setViewportSize({ width: 1280, height: 800 });
}

describe.skipIf(skip !== null)(`the lab offline, as an installed app${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let out = '';
  let server: StaticServer | null = null;
  let b: BrowserPage | null = null;

  afterAll(async () => {
    await b?.close();
    await server?.close();
    if (out) await rm(out, { recursive: true, force: true });
  }, 60_000);

  it('builds a manifest and a prompt-mode service worker that precaches the app and its datasets', async () => {
    out = await mkdtemp(join(tmpdir(), 'kiln-pwa-'));
    await buildSite(out);

    const manifest = JSON.parse(readFileSync(join(out, 'manifest.webmanifest'), 'utf8')) as Manifest;
    expect(manifest).toMatchObject({ name: 'Kiln', short_name: 'Kiln', start_url: './', scope: './', display: 'standalone', background_color: '#faf8f5' });
    expect(manifest.icons.map((i) => `${i.sizes} ${i.purpose ?? 'any'}`).sort()).toEqual(['192x192 any', '512x512 any', '512x512 maskable']);
    for (const icon of manifest.icons) expect(existsSync(join(out, icon.src)), icon.src).toBe(true);
    expect(readFileSync(join(out, 'index.html'), 'utf8')).toContain('<link rel="manifest" href="./manifest.webmanifest">');

    const sw = readFileSync(join(out, 'sw.js'), 'utf8');
    // Prompt mode: the only skipWaiting() is the answer to the page's SKIP_WAITING
    // message (sent when the person clicks Reload); no clientsClaim either.
    expect(sw.match(/skipWaiting\(\)/g) ?? []).toHaveLength(1);
    expect(sw).toMatch(/addEventListener\(\s*["']message["'][\s\S]{0,120}["']SKIP_WAITING["'][\s\S]{0,40}self\.skipWaiting\(\)/);
    expect(sw).not.toContain('clientsClaim');

    const list = precacheList(sw);
    expect(new Set(list).size, 'no entry twice').toBe(list.length);
    const chunks = readdirSync(join(out, 'assets')).map((f) => `assets/${f}`);
    expect(chunks.some((c) => /lab-worker-.*\.js$/.test(c))).toBe(true);
    for (const want of ['index.html', 'manifest.webmanifest', 'favicon.svg', 'datasets/names.txt', 'datasets/shakespeare.txt', ...manifest.icons.map((i) => i.src), ...chunks]) {
      expect(list, want).toContain(want);
    }
  }, 120_000);

  it('installs, waits for Reload to update, then opens and trains with no network', async () => {
    expect(out, 'the build of the first test').not.toBe('');
    server = await serveStatic(out, '/kiln/');
    const base = server.url;
    b = await openBrowser();
    const { page, context } = b;
    const link = `${base}#v=1&preset=tiny&steps=${STEPS}&data=names`;

    // First visit: the service worker installs (precaching everything) and the page says
    // once that Kiln works offline now.
    await page.goto(link);
    await page.evaluate(async () => {
      await navigator.serviceWorker.ready;
    });
    await expect.poll(() => promptKind(page), { timeout: 5000 }).toBe('offline');
    await shots(page, 'offline-ready');
    const precached = precacheList(readFileSync(join(out, 'sw.js'), 'utf8')).map((u) => new URL(u, base).href);
    const cached = await page.evaluate(async () => {
      const urls: string[] = [];
      for (const name of await caches.keys()) {
        for (const req of await (await caches.open(name)).keys()) urls.push(req.url.replace(/\?.*$/, ''));
      }
      return urls;
    });
    expect([...cached].sort()).toEqual([...precached].sort());

    // The manifest the page links, and its icons, load and decode at their sizes.
    const icons = await page.evaluate(async () => {
      const href = document.querySelector<HTMLLinkElement>('link[rel="manifest"]')!.href;
      const m = (await (await fetch(href)).json()) as Manifest;
      return Promise.all(m.icons.map(async (i) => {
        const res = await fetch(new URL(i.src, href));
        const bmp = await createImageBitmap(await res.blob());
        return `${res.headers.get('content-type')} ${bmp.width}x${bmp.height} ${i.sizes}`;
      }));
    });
    for (const line of icons) {
      const [type, got, want] = line.split(' ');
      expect(type, line).toBe('image/png');
      expect(got, line).toBe(want);
    }

    // The second visit is served by the service worker.
    await trainable(page);
    await page.reload();
    expect(await page.evaluate(() => navigator.serviceWorker.controller?.scriptURL ?? null)).toBe(`${base}sw.js`);

    // A new version (any change to sw.js) installs and waits: the page shows the prompt
    // and keeps running until the person clicks Reload.
    await trainable(page);
    await page.evaluate(() => {
      (window as unknown as { beforeUpdate: boolean }).beforeUpdate = true;
    });
    appendFileSync(join(out, 'sw.js'), '\n// the next version\n');
    await page.evaluate(async () => {
      await (await navigator.serviceWorker.getRegistration())!.update();
    });
    await expect.poll(() => promptKind(page), { timeout: 30_000 }).toBe('update');
    await page.waitForTimeout(1000);
    expect(await page.evaluate(async () => {
      const reg = await navigator.serviceWorker.getRegistration();
      return { waiting: !!reg?.waiting, same: (window as unknown as { beforeUpdate?: boolean }).beforeUpdate === true };
    })).toEqual({ waiting: true, same: true });
    const status = page.locator('kiln-update-prompt [role="status"]');
    await expect.poll(() => status.innerText()).toContain('A new version of Kiln is ready');
    await shots(page, 'update-prompt');
    await Promise.all([
      page.waitForEvent('load', { timeout: 30_000 }),
      page.getByRole('button', { name: 'Reload', exact: true }).click(),
    ]);
    await expect.poll(() => page.evaluate(async () => {
      const reg = await navigator.serviceWorker.getRegistration();
      return { waiting: !!reg?.waiting, controlled: !!navigator.serviceWorker.controller, fresh: !(window as unknown as { beforeUpdate?: boolean }).beforeUpdate };
    }), { timeout: 10_000 }).toEqual({ waiting: false, controlled: true, fresh: true });

    // Offline: the browser has no network and the server is gone. Every response now
    // must come from the service worker's cache, the page's and the lab worker's alike.
    await trainable(page);
    await context.setOffline(true);
    await server.close();
    server = null;
    const fromCache: string[] = [];
    const fromNetwork: string[] = [];
    page.on('response', (r) => (r.fromServiceWorker() ? fromCache : fromNetwork).push(r.url()));
    await page.reload();
    const summary = page.locator('dl[aria-label="The training text"]');
    await summary.waitFor({ timeout: 120_000 });
    expect(await page.evaluate(() => {
      const picker = document.querySelector('kiln-app')!.shadowRoot!.querySelector('kiln-data-picker') as unknown as { summary: { ref: { kind: string; id?: string }; chars: number } | null };
      return picker.summary && `${picker.summary.ref.kind}:${picker.summary.ref.id} ${picker.summary.chars > 100_000}`;
    })).toBe('bundled:names true');
    await trainable(page);
    await page.getByRole('button', { name: 'Train', exact: true }).click();
    await expect.poll(() => runState(page), { timeout: 240_000, interval: 250 }).toBe(`done ${STEPS}`);
    expect(fromNetwork.filter((u) => u.startsWith('http')), 'responses not from the service worker').toEqual([]);
    for (const want of ['', 'datasets/names.txt']) expect(fromCache, want).toContain(`${base}${want}`);
    expect(fromCache.some((u) => /assets\/lab-worker-.*\.js$/.test(u)), 'the lab worker from the cache').toBe(true);
    expect(b.problems, b.report()).toEqual([]);
  }, 600_000);
});
