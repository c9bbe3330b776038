// WebGpuBackend in a real browser, inside a module web worker: a Vite dev server serves
// tests/e2e/pages/webgpu-worker.html, Chromium (SwiftShader WebGPU, DESIGN.md "Testing
// without a GPU") opens it through playwright-core, the page's worker trains a tiny
// GPT-2 for a few steps on WebGpuBackend (all but the first issued at once, pipelined)
// and on CpuBackend with the same batches, and the test checks that the losses and
// gradient norms agree and that nothing logged an error. Skipped where /usr/bin/chromium
// is missing, except under CI, which installs it.
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { browserSkipReason, openBrowser, ROOT, startDevServer, type BrowserPage, type DevServer } from '../helpers/browser.ts';
import type { PageResult } from './pages/webgpu-worker.protocol.ts';

const PAGE = 'tests/e2e/pages/webgpu-worker.html';
const SCREENSHOT = join(ROOT, 'test-results/webgpu-worker.png');
/** SwiftShader compiles every pipeline on the CPU: the worker's run takes a while on two cores. */
const RESULT_TIMEOUT_MS = 150_000;

const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);

const skip = browserSkipReason();

describe.skipIf(skip !== null)(`WebGpuBackend in a Chromium web worker${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let server: DevServer | null = null;
  let b: BrowserPage | null = null;

  afterAll(async () => {
    // Each step on its own so that one failure does not leave the others running.
    if (b) await b.page.screenshot({ path: SCREENSHOT, fullPage: true }).catch(() => {});
    await b?.close();
    await server?.close();
  }, 60_000);

  it('trains 5 steps in a module worker on navigator.gpu, matching CpuBackend', async () => {
    // Started here rather than in beforeAll: a failing beforeAll marks the test skipped,
    // and the summary line CI reads would count it as skipped rather than failed.
    server = await startDevServer();
    b = await openBrowser({ width: 1000, height: 520 });
    const p = b.page;
    const { problems, report } = b;
    const url = `${server.url}${PAGE}`;
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
