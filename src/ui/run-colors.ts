// A colour per saved run, the same wherever the run appears (its swatch in the run list,
// its curves on the loss chart, its column in the compare table) and on every visit: a
// hash of the run's id picks from a palette. The open run keeps the chart's own train and
// val colours, so the palette stays clear of those (kiln orange-brown, blue).

/**
 * Eight colours that read on white and on the page's #faf8f5, away in hue from COLORS.train
 * (rust) and COLORS.val (steel blue) where eight allow, and no greys (the loss chart's
 * reference lines and shared curve are grey and dashed).
 */
export const RUN_PALETTE: readonly string[] = [
  '#2f9e44', // green
  '#862e9c', // purple
  '#d6336c', // rose
  '#0c8599', // teal
  '#7c8a12', // olive
  '#b8860b', // gold
  '#6741d9', // violet
  '#cc79a7', // lilac (Okabe and Ito's reddish purple)
];

/** FNV-1a over the id's UTF-16 code units: cheap, and spreads ids that differ in one character. */
function hash(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The run's colour: the same for the same id, always. */
export function runColor(id: string): string {
  return RUN_PALETTE[hash(id) % RUN_PALETTE.length];
}

/**
 * Colours for runs shown together (the compared runs, in the order given): each keeps its
 * own runColor unless an earlier one already took it, then takes the next free colour, so
 * up to eight runs on one chart never share a colour. Use the same list (the compared
 * ids) for the chart, the compare table and the run list's swatches.
 */
export function runColors(ids: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  const taken = new Set<number>();
  for (const id of ids) {
    if (out.has(id)) continue;
    let k = hash(id) % RUN_PALETTE.length;
    for (let tries = 0; taken.has(k) && tries < RUN_PALETTE.length; tries++) k = (k + 1) % RUN_PALETTE.length;
    taken.add(k);
    out.set(id, RUN_PALETTE[k]);
  }
  return out;
}

/**
 * The colours of the runs compared with the open one: runColors of `compared` without the
 * open run (which keeps the chart's train and val colours). The run list's swatches use
 * this; hand the loss chart and the compare table the same map.
 */
export function comparedColors(compared: readonly string[], currentId: string | null): Map<string, string> {
  return runColors(compared.filter((id) => id !== currentId));
}
