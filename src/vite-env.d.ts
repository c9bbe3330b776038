// Types of Vite's virtual modules that the page imports: `virtual:pwa-register`
// (vite-plugin-pwa's registration helper, used by src/ui/pwa.ts).
/// <reference types="vite-plugin-pwa/vanillajs" />
