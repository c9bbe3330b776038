// Streams 100k synthetic metrics rows (a falling noisy loss, val every 50 steps) into the
// lab's chart elements, CHUNK rows per animation frame as a long run's batches arrive,
// and records the main thread's long tasks. bench/charts.ts reads window.__chartBench.
import '../../src/ui/kiln-loss-chart.ts';
import '../../src/ui/kiln-metric-charts.ts';
import type { LabMetrics } from '../../src/worker/api.ts';

const ROWS = Number(new URLSearchParams(location.search).get('rows') ?? 100_000);
const CHUNK = Number(new URLSearchParams(location.search).get('chunk') ?? 500);

/** Long tasks once streaming starts (page load and making the rows are not the charts' cost). */
const tasks: number[] = [];
let streaming = Infinity;
new PerformanceObserver((l) => l.getEntries().forEach((e) => e.startTime >= streaming && tasks.push(e.duration))).observe({ type: 'longtask', buffered: true });

let x = 12345;
const noise = () => ((x = (x * 1103515245 + 12345) % 2147483648) / 2147483648 - 0.5);
const rows: LabMetrics[] = [];
for (let i = 1; i <= ROWS; i++) {
  const loss = 1.4 + 2.8 * Math.exp(-i / 4000) + 0.08 * noise();
  rows.push({ step: i, loss, ...(i % 50 === 0 ? { val_loss: loss + 0.05 } : {}), lr: 1e-3, grad_norm: 0.5 + 0.1 * noise(), tokens_per_s: 50_000 + 5000 * noise(), elapsed_s: i * 0.05 });
}
const loss = document.querySelector('kiln-loss-chart')!;
const small = document.querySelector('kiln-metric-charts')!;
loss.referenceLines = [{ value: 1.4697, label: 'nanoGPT 1.4697' }];
const shown: LabMetrics[] = [];
const t0 = performance.now();
streaming = t0;
let frames = 0;
function frame(): void {
  for (const r of rows.slice(shown.length, shown.length + CHUNK)) shown.push(r);
  loss.metrics = shown;
  small.metrics = shown;
  frames++;
  if (shown.length < rows.length) requestAnimationFrame(frame);
  else setTimeout(() => ((window as unknown as { __chartBench: unknown }).__chartBench = { rows: ROWS, chunk: CHUNK, frames, ms: performance.now() - t0, longTasks: tasks.length, longestMs: Math.max(0, ...tasks) }), 1000);
}
requestAnimationFrame(frame);
