// The box every lab element draws in: a block that may shrink in a grid, the lab's text
// colour and font, figures that keep their width as numbers change.
import { css, unsafeCSS } from 'lit';

export const FONT_FAMILY = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';

export const hostStyles = css`
  :host {
    display: block;
    min-width: 0;
    color: #222;
    font: 13px/1.4 ${unsafeCSS(FONT_FAMILY)};
    font-variant-numeric: tabular-nums;
  }
`;

/**
 * The lab's banners: a box with a bold first line, red for errors, amber for warnings,
 * blue for news. <kiln-banners> draws the page's; kiln-app's data card uses one too.
 */
export const bannerStyles = css`
  .banner { margin: 12px 16px 0; padding: 10px 14px; border-radius: 8px; border: 1px solid; font-size: 13.5px; }
  .banner b { display: block; margin-bottom: 2px; }
  .banner.error { background: #fdecea; border-color: #f1b8b2; color: #5c1410; }
  .banner.warn { background: #fff6e5; border-color: #f0d49a; color: #4d3800; }
  .banner button { font: inherit; margin-top: 6px; padding: 4px 10px; border-radius: 6px; border: 1px solid #cfc7bd; background: #fff; cursor: pointer; }
  .banner.info { background: #eef4fb; border-color: #bcd3ec; color: #17324f; }
`;
