// WebGpuBackend in a real browser, inside a module web worker: a Vite dev server serves
// tests/e2e/pages/webgpu-worker.html, Chromium (SwiftShader WebGPU, DESIGN.md "Testing
// without a GPU") opens it through playwright-core, the page's worker trains a tiny
// GPT-2 for a few steps on WebGpuBackend (all but the first issued at once, pipelined)
// and on CpuBackend with the same batches, and the test checks that the losses and
// gradient norms agree and that nothing logged an error. Skipped where /usr/bin/chromium
// is missing, except under CI, which installs it.
import { existsSync, mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type ConsoleMessage, type Page } from 'playwright-core';
import { createServer, type ViteDevServer } from 'vite';
import { afterAll, describe, expect, it } from 'vitest';
import type { PageResult } from './pages/webgpu-worker.protocol.ts';

const CHROMIUM = '/usr/bin/chromium';
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const PAGE = 'tests/e2e/pages/webgpu-worker.html';
const SCREENSHOT = join(ROOT, 'test-results/webgpu-worker.png');
/** SwiftShader compiles every pipeline on the CPU: the worker's run takes a while on two cores. */
const RESULT_TIMEOUT_MS = 150_000;

// playwright-core adds `--headless` (the new headless mode since Chromium 132) for
// headless: true, so it is not repeated here.
const CHROMIUM_ARGS = [
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

const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);

function skipReason(): string | null {
  if (existsSync(CHROMIUM)) return null;
  const why = `${CHROMIUM} not found (apt-get install -y chromium)`;
  if (process.env.CI) throw new Error(`${why}: CI must run the browser test`);
  return why;
}

const skip = skipReason();

describe.skipIf(skip !== null)(`WebGpuBackend in a Chromium web worker${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let server: ViteDevServer | null = null;
  let cacheDir: string | null = null;
  let browser: Browser | null = null;
  let page: Page | null = null;
  let url = '';
  /** Everything the page, its worker and the network reported as a problem. */
  const problems: string[] = [];
  /** The whole console, for the failure message. */
  const consoleLines: string[] = [];

  /**
   * Starts the dev server and the browser. Called from the test rather than beforeAll:
   * a failing beforeAll marks the test skipped, and the summary line CI reads would
   * count it as skipped rather than failed.
   */
  async function setUp(): Promise<void> {
    cacheDir = await mkdtemp(join(tmpdir(), 'kiln-e2e-vite-'));
    server = await createServer({
      root: ROOT,
      configFile: join(ROOT, 'vite.config.ts'),
      cacheDir,
      logLevel: 'warn',
      clearScreen: false,
      // Nothing here needs pre-bundling (the page imports no packages); no scan, no
      // reload when a dependency is discovered, and no file watcher over the tree.
      optimizeDeps: { noDiscovery: true, include: [] },
      server: { host: '127.0.0.1', port: 0, strictPort: false, hmr: false, watch: null },
    });
    await server.listen();
    const addr = server.httpServer!.address() as AddressInfo;
    // 127.0.0.1 is a secure context, so navigator.gpu is exposed.
    url = `http://127.0.0.1:${addr.port}/${PAGE}`;

    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 60_000 });
    const context = await browser.newContext({ viewport: { width: 1000, height: 520 } });
    page = await context.newPage();
    // The page's console event also carries its workers' messages (m.worker() is set).
    page.on('console', (m: ConsoleMessage) => {
      const line = `[${m.worker() ? 'worker' : 'page'} ${m.type()}] ${m.text()}`;
      consoleLines.push(line);
      if (m.type() === 'error' || m.type() === 'assert') problems.push(line);
    });
    page.on('pageerror', (e) => problems.push(`[uncaught] ${e.stack ?? e.message}`));
    page.on('worker', (w) => consoleLines.push(`[worker started] ${w.url()}`));
    page.on('requestfailed', (r) => problems.push(`[request failed] ${r.url()}: ${r.failure()?.errorText}`));
    page.on('response', (r) => {
      if (r.status() >= 400) problems.push(`[HTTP ${r.status()}] ${r.url()}`);
    });
    page.on('crash', () => problems.push('[page crashed]'));
  }

  afterAll(async () => {
    // Each step on its own so that one failure does not leave the others running.
    if (page) await page.screenshot({ path: SCREENSHOT, fullPage: true }).catch(() => {});
    await browser?.close().catch(() => {});
    await server?.close().catch(() => {});
    if (cacheDir) await rm(cacheDir, { recursive: true, force: true }).catch(() => {});
  }, 60_000);

  it('trains 5 steps in a module worker on navigator.gpu, matching CpuBackend', async () => {
    await setUp();
    const p = page!;
    const report = () =>
      `\n--- problems ---\n${problems.join('\n') || '(none)'}\n--- console ---\n${consoleLines.join('\n') || '(empty)'}`;
    await p.goto(url);
    let result: PageResult;
    try {
      await p.waitForFunction(() => window.__kilnResult !== undefined, null, { timeout: RESULT_TIMEOUT_MS, polling: 250 });
      result = (await p.evaluate(() => window.__kilnResult))!;
    } catch (e) {
      throw new Error(`no result from the page at ${url}: ${(e as Error).message}${report()}`);
    }
    mkdirSync(dirname(SCREENSHOT), { recursive: true });
    await p.screenshot({ path: SCREENSHOT, fullPage: true });
    if (result.type === 'error') throw new Error(`the worker failed: ${result.message}\n${result.stack ?? ''}${report()}`);

    console.log(
      `adapter "${result.adapter.name}" (software: ${result.adapter.isSoftware}); ${result.dispatchesPerStep} dispatches per step; ` +
        `create+load ${result.ms.create.toFixed(0)} ms, 5 webgpu steps ${result.ms.webgpu.toFixed(0)} ms (first ${result.ms.firstStep.toFixed(0)} ms), 5 cpu steps ${result.ms.cpu.toFixed(0)} ms; ` +
        `worst rel loss ${Math.max(...result.steps.map((s) => rel(s.webgpu.loss, s.cpu.loss))).toExponential(2)}, ` +
        `grad norm ${Math.max(...result.steps.map((s) => rel(s.webgpu.gradNorm, s.cpu.gradNorm))).toExponential(2)}`,
    );
    expect(problems, `the page logged errors${report()}`).toEqual([]);
    expect(result.uncapturedErrors, `uncaptured WebGPU errors${report()}`).toEqual([]);
    expect(result.inWorker, 'the backend ran in a DedicatedWorkerGlobalScope').toBe(true);
    expect(result.isSecureContext).toBe(true);
    expect(result.adapter.name, 'adapter name').not.toBe('');
    expect(result.adapter.limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
    expect(result.steps).toHaveLength(5);
    for (const s of result.steps) {
      for (const v of [s.webgpu.loss, s.webgpu.gradNorm, s.cpu.loss, s.cpu.gradNorm]) expect(Number.isFinite(v)).toBe(true);
      expect(rel(s.webgpu.loss, s.cpu.loss), `loss at step ${s.step}: ${s.webgpu.loss} vs ${s.cpu.loss}`).toBeLessThan(1e-4);
      expect(rel(s.webgpu.gradNorm, s.cpu.gradNorm), `grad norm at step ${s.step}: ${s.webgpu.gradNorm} vs ${s.cpu.gradNorm}`).toBeLessThan(1e-4);
    }
    // Training on the same batch order: the loss falls from about ln(11).
    expect(result.steps[0].cpu.loss).toBeGreaterThan(2);
    expect(result.steps[4].webgpu.loss).toBeLessThan(result.steps[0].webgpu.loss);
  }, RESULT_TIMEOUT_MS + 90_000);
});
