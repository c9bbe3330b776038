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
