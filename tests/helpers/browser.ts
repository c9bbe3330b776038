// Real Chromium for the e2e tests (DESIGN.md, "Testing without a GPU"): Debian's
// chromium with SwiftShader WebGPU, driven by playwright-core, against a Vite dev
// server or any static server. Collects everything the page, its workers and the
// network report as a problem, and measures the main thread's long tasks.
import { existsSync, mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type BrowserContext, type ConsoleMessage, type Page } from 'playwright-core';
import { createServer, type ViteDevServer } from 'vite';

export const CHROMIUM = '/usr/bin/chromium';
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

// playwright-core adds `--headless` for headless: true, so it is not repeated here.
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--use-webgpu-adapter=swiftshader',
  '--enable-webgpu-developer-features',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

/** Why the browser tests cannot run here, or null. Under CI a missing Chromium is a failure. */
export function browserSkipReason(): string | null {
  if (existsSync(CHROMIUM)) return null;
  const why = `${CHROMIUM} not found (apt-get install -y chromium)`;
  if (process.env.CI) throw new Error(`${why}: CI must run the browser tests`);
  return why;
}

export interface DevServer {
  url: string;
  close(): Promise<void>;
}

/** A Vite dev server for the project on 127.0.0.1 (a secure context: navigator.gpu is there). */
export async function startDevServer(): Promise<DevServer> {
  const cacheDir = await mkdtemp(join(tmpdir(), 'kiln-e2e-vite-'));
  const server: ViteDevServer = await createServer({
    root: ROOT,
    configFile: join(ROOT, 'vite.config.ts'),
    cacheDir,
    logLevel: 'warn',
    clearScreen: false,
    optimizeDeps: { noDiscovery: true, include: [] },
    server: { host: '127.0.0.1', port: 0, strictPort: false, hmr: false, watch: null },
  });
  await server.listen();
  const addr = server.httpServer!.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${addr.port}/`,
    async close() {
      await server.close().catch(() => {});
      await rm(cacheDir, { recursive: true, force: true }).catch(() => {});
    },
  };
}

export interface BrowserPage {
  browser: Browser;
  context: BrowserContext;
  page: Page;
  /** Console errors, uncaught exceptions, failed requests, HTTP errors, crashes. */
  problems: string[];
  consoleLines: string[];
  /** The problems and console, for a failure message. */
  report(): string;
  close(): Promise<void>;
}

/** Chromium without WebGPU: none of the flags that turn it on, and the feature itself off. */
export const NO_WEBGPU_ARGS = [...CHROMIUM_ARGS.filter((a) => !/webgpu/i.test(a)), '--disable-features=WebGPU,Vulkan'];

export async function openBrowser(viewport = { width: 1280, height: 800 }, args: string[] = CHROMIUM_ARGS): Promise<BrowserPage> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args, timeout: 60_000 });
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const problems: string[] = [];
  const consoleLines: string[] = [];
  page.on('console', (m: ConsoleMessage) => {
    const line = `[${m.worker() ? 'worker' : 'page'} ${m.type()}] ${m.text()}`;
    consoleLines.push(line);
    if (m.type() === 'error' || m.type() === 'assert') problems.push(line);
  });
  page.on('pageerror', (e) => problems.push(`[uncaught] ${e.stack ?? e.message}`));
  page.on('requestfailed', (r) => problems.push(`[request failed] ${r.url()}: ${r.failure()?.errorText}`));
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`[HTTP ${r.status()}] ${r.url()}`);
  });
  page.on('crash', () => problems.push('[page crashed]'));
  return {
    browser, context, page, problems, consoleLines,
    report: () => `\n--- problems ---\n${problems.join('\n') || '(none)'}\n--- console (last 40) ---\n${consoleLines.slice(-40).join('\n') || '(empty)'}`,
    close: async () => {
      await browser.close().catch(() => {});
    },
  };
}

/** Starts recording the page's main-thread long tasks (PerformanceObserver 'longtask'); call before navigating. */
export async function recordLongTasks(page: Page): Promise<void> {
  await page.addInitScript(() => {
    const w = window as unknown as { __longTasks: Array<{ start: number; ms: number }> };
    w.__longTasks = [];
    try {
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) w.__longTasks.push({ start: e.startTime, ms: e.duration });
      }).observe({ type: 'longtask', buffered: true });
    } catch {
      // No long-task timing in this browser: nothing recorded.
    }
  });
}

/** Long tasks recorded since `since` (page time, ms). */
export async function longTasks(page: Page, since = 0): Promise<Array<{ start: number; ms: number }>> {
  return page.evaluate((t) => (window as unknown as { __longTasks: Array<{ start: number; ms: number }> }).__longTasks.filter((x) => x.start >= t), since);
}

/**
 * Screenshots at the two sizes the lab is judged at (1280x800, and 390x844 full page),
 * into `dir` as NAME-WxH.png; a phone must never scroll sideways. Returns at 1280x800.
 */
export async function screenshotBothSizes(page: Page, dir: string, name: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.screenshot({ path: join(dir, `${name}-1280x800.png`) });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: join(dir, `${name}-390x844.png`), fullPage: true });
  const wide = await page.evaluate(() => document.documentElement.scrollWidth);
  if (wide > 390) throw new Error(`${name}: the page is ${wide}px wide at 390px (it scrolls sideways)`);
  await page.setViewportSize({ width: 1280, height: 800 });
}
