// The production build (what `npm run build` makes) served by a plain static file
// server under a sub-path (/kiln/, as GitHub Pages and most hosts do): the page, its
// module worker, the shaders and the bundled datasets must all load from there, and a
// short run must train. A static host knows nothing of Vite, so this is the test that
// catches a root-relative URL.
import { createReadStream, existsSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { build } from 'vite';
import { afterAll, describe, expect, it } from 'vitest';
import { browserSkipReason, openBrowser, ROOT, type BrowserPage } from '../helpers/browser.ts';

const skip = browserSkipReason();
const TYPES: Record<string, string> = {
  '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.txt': 'text/plain',
  '.json': 'application/json', '.webmanifest': 'application/manifest+json', '.png': 'image/png', '.wasm': 'application/wasm',
};

/** Serves `dir` under `prefix` (e.g. /kiln/), and nothing outside it. */
function serveStatic(dir: string, prefix: string): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    if (!path.startsWith(prefix)) {
      res.writeHead(404).end('not under the sub-path');
      return;
    }
    let file = normalize(join(dir, path.slice(prefix.length)));
    if (!file.startsWith(dir)) {
      res.writeHead(403).end();
      return;
    }
    if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'index.html');
    if (!existsSync(file)) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
    createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}${prefix}`, server })));
}

describe.skipIf(skip !== null)(`the production build from a sub-path${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let out = '';
  let server: Server | null = null;
  let b: BrowserPage | null = null;

  afterAll(async () => {
    await b?.close();
    server?.close();
    if (out) await rm(out, { recursive: true, force: true });
  }, 60_000);

  it('loads from /kiln/ without errors and trains 5 steps', async () => {
    out = await mkdtemp(join(tmpdir(), 'kiln-build-'));
    await build({ root: ROOT, configFile: join(ROOT, 'vite.config.ts'), logLevel: 'warn', build: { outDir: out, emptyOutDir: true } });
    expect(existsSync(join(out, 'index.html'))).toBe(true);
    expect(existsSync(join(out, 'datasets/names.txt'))).toBe(true);
    const s = await serveStatic(out, '/kiln/');
    server = s.server;
    b = await openBrowser();
    const { page } = b;
    await page.goto(`${s.url}#v=1&preset=tiny&steps=5&data=names`);
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
