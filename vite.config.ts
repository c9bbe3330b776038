import { defineConfig } from 'vite';
import { VitePWA } from 'vite-plugin-pwa';

export default defineConfig({
  base: './',
  build: { target: 'es2022', outDir: 'dist' },
  worker: { format: 'es' },
  plugins: [
    // The lab as an offline, installable app (DESIGN.md: PWA, offline). Everything the
    // page needs is precached at install, so a second visit trains with no network.
    VitePWA({
      // A new version waits until the person clicks Reload in <kiln-update-prompt>:
      // replacing the page by itself would end a run in the middle of training.
      registerType: 'prompt',
      // src/ui/pwa.ts registers it (through virtual:pwa-register), not an injected script.
      injectRegister: false,
      // No service worker under the dev server: the e2e tests that use it see plain Vite.
      devOptions: { enabled: false },
      // Scope and start_url follow base './', so one build works from any sub-path (/kiln/).
      manifest: {
        name: 'Kiln',
        short_name: 'Kiln',
        description: 'Train small GPT models on your own GPU, in the browser with WebGPU. Works offline.',
        lang: 'en',
        start_url: './',
        scope: './',
        display: 'standalone',
        background_color: '#faf8f5',
        theme_color: '#c2571a',
        icons: [
          { src: 'icons/icon-192.png', sizes: '192x192', type: 'image/png', purpose: 'any' },
          { src: 'icons/icon-512.png', sizes: '512x512', type: 'image/png', purpose: 'any' },
          { src: 'icons/maskable-512.png', sizes: '512x512', type: 'image/png', purpose: 'maskable' },
        ],
      },
      // The icons are in globPatterns below; listing them twice would precache them twice.
      // (The plugin adds manifest.webmanifest itself.)
      includeManifestIcons: false,
      workbox: {
        // The page, its module worker and their chunks (the WGSL shaders are inlined into
        // the worker's JS), the icons and the bundled datasets (not SOURCES.md, nor the
        // icons' source drawing).
        globPatterns: ['**/*.{js,css,html}', 'favicon.svg', 'icons/*.png', 'datasets/*.txt'],
        // Workbox skips files over 2 MiB by default; the largest precached file is
        // datasets/shakespeare.txt at 1.1 MB (the GPT-2 BPE table chunk is ~0.5 MB).
        // 4 MiB leaves room for it to grow without silently dropping it from the cache.
        maximumFileSizeToCacheInBytes: 4 * 1024 * 1024,
        navigateFallback: 'index.html',
        cleanupOutdatedCaches: true,
      },
    }),
  ],
});
