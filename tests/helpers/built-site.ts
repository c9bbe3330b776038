// The production build as a static host serves it, for the e2e tests of the built site
// (build.test.ts, offline.test.ts): `vite build` as `npm run build` runs it, and a plain
// static file server under a sub-path (e.g. /kiln/), nothing outside it, no Vite in
// between.
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize } from 'node:path';
import { build } from 'vite';
import { ROOT } from './browser.ts';

/**
 * Builds the site into `outDir` as `npm run build` does. Vitest sets NODE_ENV=test, which
 * Vite would take for a development build (import.meta.env.DEV, unminified workbox in
 * development mode); the test must check what ships, so NODE_ENV is production meanwhile.
 */
export async function buildSite(outDir: string): Promise<void> {
  const env = process.env.NODE_ENV;
  process.env.NODE_ENV = 'production';
  try {
    await build({ root: ROOT, configFile: join(ROOT, 'vite.config.ts'), logLevel: 'warn', build: { outDir, emptyOutDir: true } });
  } finally {
    process.env.NODE_ENV = env;
  }
}

const TYPES: Record<string, string> = {
  '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.txt': 'text/plain',
  '.json': 'application/json', '.webmanifest': 'application/manifest+json', '.png': 'image/png', '.wasm': 'application/wasm',
};

export interface StaticServer {
  /** The site's address, ending in the prefix (http://127.0.0.1:PORT/kiln/). */
  url: string;
  server: Server;
  /** Stops serving at once, dropping kept-alive connections too. */
  close(): Promise<void>;
}

/** Serves `dir` under `prefix` (e.g. /kiln/), and nothing outside it, on 127.0.0.1 (a secure context). */
export function serveStatic(dir: string, prefix: string): Promise<StaticServer> {
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
    // Like most static hosts, let the browser revalidate: a service worker update check
    // must see a changed sw.js.
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-cache' });
    createReadStream(file).pipe(res);
  });
  const close = () => new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}${prefix}`, server, close,
  })));
}
