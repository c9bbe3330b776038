// The lab's service worker (vite-plugin-pwa, registerType 'prompt'): registered from
// here rather than by an injected script, so the page decides when a new version takes
// over. A waiting version never activates by itself; `update()` tells it to (workbox's
// SKIP_WAITING message) and the page reloads once it controls the page.
import { registerSW } from 'virtual:pwa-register';

export interface KilnSWEvents {
  /** A new version is installed and waiting for the person's consent to reload. */
  onNeedRefresh(): void;
  /** The app is precached: the lab now opens and trains with no network. */
  onOfflineReady(): void;
}

export interface KilnSW {
  /** Activates the waiting version and reloads the page (ends any in-memory run). */
  update(): Promise<void>;
}

/**
 * Registers the service worker; null in browsers without service workers (plain http
 * off localhost, some private modes). Under the dev server it does nothing: with
 * devOptions off, vite-plugin-pwa serves a `registerSW` that registers nothing, so dev
 * never serves stale files. (Not gated on import.meta.env.DEV: a build made with
 * NODE_ENV=test has DEV true, and it must still register.)
 */
export function registerKilnSW(events: KilnSWEvents): KilnSW | null {
  if (!('serviceWorker' in navigator)) return null;
  const updateSW = registerSW({
    immediate: true,
    onNeedRefresh: () => events.onNeedRefresh(),
    onOfflineReady: () => events.onOfflineReady(),
    onRegisterError: (e: unknown) => console.warn('Kiln: the offline cache could not be set up', e),
  });
  return { update: () => updateSW(true) };
}
