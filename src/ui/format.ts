// Number formats the lab's status and panels share: losses with 4 digits, rates and
// durations short enough for a status bar, all stable in width where they can be.

/** A loss with 4 digits after the point (DESIGN.md, "The lab's screen"). */
export function fmtLoss(x: number | null | undefined): string {
  return x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(4);
}

export function fmtRate(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '–';
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)}M`;
  if (x >= 1e4) return `${(x / 1e3).toFixed(1)}k`;
  return Math.round(x).toLocaleString('en-US');
}

/** 42 s, 3 min 05 s, 2 h 07 min. */
export function fmtDuration(s: number | null | undefined): string {
  if (s === null || s === undefined || !Number.isFinite(s) || s < 0) return '–';
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(Math.round(s % 60)).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

/** Words that name a command: they keep their lower case at the start of a sentence. */
const COMMANDS = new Set(['kiln', 'npx', 'npm', 'python3', 'torchrun', 'bash']);

/**
 * A part of an error (its hint, from the core, written as a clause: "reload the page") shown
 * as a sentence of its own: a capital first letter, unless it starts with a command, and a
 * full stop.
 */
export function sentence(text: string): string {
  const t = text.trim();
  if (!t) return t;
  const first = t.split(/\s/, 1)[0];
  const head = /^[a-z]/.test(t) && !COMMANDS.has(first) ? t[0].toUpperCase() + t.slice(1) : t;
  return /[.!?…]$/.test(head) ? head : `${head}.`;
}
