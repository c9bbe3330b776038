// The run library's elements with made-up runs, wired as the lab wires them (the page
// plays the parent): events are recorded in window.__events for the test to read, and
// the page answers them as the lab would (compare toggles the chart, Branch opens the
// dialog, rename and delete change the list). No worker: the elements never need one.
import type { RunConfig } from '../../../src/core/config.ts';
import { findPreset } from '../../../src/core/presets.ts';
import type { CheckpointMeta, RunRecord, StorageUsage } from '../../../src/core/run-record.ts';
import type { LabMetrics } from '../../../src/worker/api.ts';
import '../../../src/ui/kiln-branch-dialog.ts';
import '../../../src/ui/kiln-compare-table.ts';
import '../../../src/ui/kiln-loss-chart.ts';
import '../../../src/ui/kiln-run-list.ts';
import { COLORS } from '../../../src/ui/chart-theme.ts';
import { comparedColors } from '../../../src/ui/run-colors.ts';

declare global {
  interface Window {
    __events: Array<{ type: string; detail: unknown }>;
    __ready: boolean;
  }
}

const MiB = 1024 * 1024;
const MIN = 60_000;
const now = Date.now();
const craft = findPreset('craft-1m')!;
const shakespeare = findPreset('char-shakespeare')!;

/** A deterministic pseudo-random sequence (the same curves in every screenshot). */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

/** A falling loss curve: fast at first, to `floor`; noisy like a real one; val every 100 steps. */
function curve(from: number, to: number, floor: number, seed: number, speed = 300): LabMetrics[] {
  const r = rng(seed);
  const rows: LabMetrics[] = [];
  for (let s = from; s <= to; s++) {
    const mean = floor + 2.8 * Math.exp(-s / speed) + 0.25 * Math.exp(-s / 1500);
    const loss = mean + (r() - 0.5) * 0.12;
    rows.push({ step: s, loss, lr: 1e-3, grad_norm: 0.5, tokens_per_s: 40_000, elapsed_s: s / 10, ...(s % 100 === 0 ? { val_loss: mean + 0.05 } : {}) });
  }
  return rows;
}

function checkpoints(steps: number[], floor: number): CheckpointMeta[] {
  return steps.map((step, i) => ({
    id: `ck-${step}-${i}`, step, bytes: 3.1 * MiB, sha256: '0'.repeat(64), chunks: 4, savedAt: now - (steps.length - i) * 10 * MIN,
    valLoss: floor + 0.05 + 2.8 * Math.exp(-step / 300) + 0.25 * Math.exp(-step / 1500),
  }));
}

function record(over: Partial<RunRecord> & { id: string; name: string; config: RunConfig; preset: string }): RunRecord {
  const { config, preset, ...rest } = over;
  return {
    createdAt: now - 3 * 60 * MIN, updatedAt: now - 5 * MIN,
    spec: { preset, config, data: { kind: 'bundled', id: 'shakespeare' } },
    backend: 'webgpu', device: 'Apple M2', numParams: 1_210_000, step: 0, phase: 'ready',
    lastLoss: null, lastValLoss: null, bestValLoss: null, elapsedS: 0, checkpoints: [], bytesOnDisk: 0,
    ...rest,
  };
}

const base = { ...craft.config };
const r1 = record({
  id: 'r-m3k1-base', name: 'shakespeare · craft-1m', preset: 'craft-1m', config: base, phase: 'done', step: 3000,
  bestValLoss: 1.5123, lastValLoss: 1.5131, checkpoints: checkpoints([750, 1500, 2250, 3000], 1.46), bytesOnDisk: 12.6 * MiB, updatedAt: now - 52 * MIN,
});
const r2 = record({
  id: 'r-m3k7-branch', name: 'shakespeare · craft-1m · lr 1e-3', preset: 'craft-1m', config: { ...base, lr: 1e-3 }, phase: 'training', step: 2250,
  bestValLoss: 1.5034, checkpoints: checkpoints([1500, 1750, 2000, 2250], 1.44), bytesOnDisk: 12.4 * MiB, updatedAt: now - 20_000,
  parent: { runId: r1.id, name: r1.name, step: 1500 },
});
const r3 = record({
  id: 'r-m3j9-hot', name: 'shakespeare · lr 4e-3', preset: 'craft-1m', config: { ...base, lr: 4e-3 }, phase: 'stopped', step: 1800,
  bestValLoss: 1.6012, checkpoints: checkpoints([600, 1200, 1800], 1.55), bytesOnDisk: 9.3 * MiB, updatedAt: now - 4 * 60 * MIN,
});
const r4 = record({
  id: 'r-m2x0-long', name: 'Tiny Shakespeare, six layers, dropout 0.2, the long overnight run on the laptop', preset: 'char-shakespeare',
  config: { ...shakespeare.config }, phase: 'training', step: 750, bestValLoss: 1.9871, checkpoints: checkpoints([250, 500, 750], 1.7),
  bytesOnDisk: 128.4 * MiB, numParams: 10_740_000, updatedAt: now - 26 * 60 * MIN,
});
const r5 = record({
  id: 'r-m1q4-import', name: 'kiln-shakespeare-5000', preset: 'char-shakespeare', config: { ...shakespeare.config }, phase: 'paused', step: 5000,
  bestValLoss: null, checkpoints: checkpoints([5000], 1.4), bytesOnDisk: 42.9 * MiB, updatedAt: new Date(2025, 2, 12, 10, 0).getTime(),
  imported: { fileName: 'kiln-shakespeare-5000.safetensors' },
});

const rows: Record<string, LabMetrics[]> = {
  [r1.id]: curve(1, 3000, 1.46, 1),
  [r3.id]: curve(1, 1800, 1.55, 3, 180),
};
// The branch: its parent's curve to step 1500, then its own with the lower rate.
const current = [...rows[r1.id].slice(0, 1500), ...curve(1501, 2250, 1.44, 2)];
const shared = { label: 'shared run (val)', points: Array.from({ length: 12 }, (_, i) => [(i + 1) * 250, 1.42 + 2.8 * Math.exp(-((i + 1) * 250) / 300) + 0.25 * Math.exp(-((i + 1) * 250) / 1500) + 0.05] as [number, number]) };

let runs: RunRecord[] = [r2, r1, r3, r4, r5];
let compared: string[] = [r1.id, r3.id];
const usage: StorageUsage = { runsBytes: runs.reduce((s, r) => s + r.bytesOnDisk, 0), datasetsBytes: 1.1 * MiB, usage: 212 * MiB, quota: 2.1 * 1024 * MiB };

const list = document.querySelector('kiln-run-list')!;
const chart = document.querySelector('kiln-loss-chart')!;
const table = document.querySelector('kiln-compare-table')!;
const dialog = document.querySelector('kiln-branch-dialog')!;

/** Each compared run's entry keeps its rows array, so the chart redraws only when the set changes. */
const entries = new Map<string, { id: string; name: string; color: string; rows: LabMetrics[] }>();

function render(): void {
  const colors = comparedColors(compared, r2.id);
  list.runs = runs;
  list.currentId = r2.id;
  list.compared = compared;
  list.usage = usage;
  list.persisted = false;
  const shown = compared.map((id) => runs.find((r) => r.id === id)).filter((r): r is RunRecord => !!r && !!rows[r.id]);
  chart.compare = shown.map((r) => {
    const e = entries.get(r.id);
    const next = { id: r.id, name: r.name, color: colors.get(r.id)!, rows: rows[r.id] };
    if (e && e.name === next.name && e.color === next.color) return e;
    entries.set(r.id, next);
    return next;
  });
  table.runs = [r2, ...shown].map((r) => ({ id: r.id, name: r.name, color: r.id === r2.id ? COLORS.train : colors.get(r.id)!, config: r.spec.config }));
}

window.__events = [];
const log = (type: string) => (e: Event) => window.__events.push({ type, detail: (e as CustomEvent).detail });
for (const type of ['run-open', 'run-download', 'run-branch', 'run-delete', 'run-rename', 'run-compare', 'run-import', 'branch-confirm', 'branch-cancel']) {
  document.addEventListener(type, log(type));
}
document.addEventListener('run-compare', (e) => {
  const { id, on } = (e as CustomEvent<{ id: string; on: boolean }>).detail;
  compared = on ? [...compared.filter((x) => x !== id), id] : compared.filter((x) => x !== id);
  render();
});
document.addEventListener('run-rename', (e) => {
  const { id, name } = (e as CustomEvent<{ id: string; name: string }>).detail;
  runs = runs.map((r) => (r.id === id ? { ...r, name } : r));
  render();
});
document.addEventListener('run-delete', (e) => {
  const { id } = (e as CustomEvent<{ id: string }>).detail;
  runs = runs.filter((r) => r.id !== id);
  compared = compared.filter((x) => x !== id);
  render();
});
document.addEventListener('run-branch', (e) => {
  const run = runs.find((r) => r.id === (e as CustomEvent<{ id: string }>).detail.id) ?? null;
  dialog.steps = run?.checkpoints.map((c) => c.step) ?? [];
  dialog.run = run;
});
for (const type of ['branch-confirm', 'branch-cancel']) document.addEventListener(type, () => (dialog.run = null));

chart.referenceLines = craft.references;
chart.metrics = current;
chart.sharedCurve = shared;
render();
await Promise.all([list.updateComplete, chart.updateComplete, table.updateComplete, dialog.updateComplete]);
window.__ready = true;
