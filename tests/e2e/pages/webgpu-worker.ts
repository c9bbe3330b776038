// The test page's module: starts the module worker, shows what it posts back, and leaves
// the outcome in window.__kilnResult for tests/e2e/webgpu-worker.test.ts to read.
import type { PageResult, WorkerMessage } from './webgpu-worker.protocol.ts';

declare global {
  interface Window {
    __kilnResult?: PageResult;
  }
}

const status = document.getElementById('status')!;
const out = document.getElementById('out')!;

function finish(r: PageResult): void {
  window.__kilnResult = r;
  document.body.dataset.state = r.type;
}

function show(r: Extract<WorkerMessage, { type: 'done' }>): void {
  const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);
  const rows = r.steps
    .map((s) => `<tr><td>${s.step}</td><td>${s.webgpu.loss.toFixed(6)}</td><td>${s.cpu.loss.toFixed(6)}</td><td>${rel(s.webgpu.loss, s.cpu.loss).toExponential(2)}</td>` +
      `<td>${s.webgpu.gradNorm.toFixed(6)}</td><td>${s.cpu.gradNorm.toFixed(6)}</td><td>${rel(s.webgpu.gradNorm, s.cpu.gradNorm).toExponential(2)}</td></tr>`)
    .join('');
  const m = r.model;
  status.textContent = `done: WebGpuBackend matches CpuBackend? see the table (in a worker: ${r.inWorker})`;
  out.innerHTML =
    `<p>adapter: <b>${escape(r.adapter.name)}</b>${r.adapter.isSoftware ? ' (software)' : ''}; features: ${escape(r.adapter.features.join(', ') || 'none')}</p>` +
    `<p>model V=${m.vocabSize} T=${m.blockSize} L=${m.nLayer} NH=${m.nHead} C=${m.nEmbd}, B=${m.B}; ${r.dispatchesPerStep} dispatches per step; ` +
    `create+load ${r.ms.create.toFixed(0)} ms, webgpu ${r.ms.webgpu.toFixed(0)} ms (first step ${r.ms.firstStep.toFixed(0)} ms), cpu ${r.ms.cpu.toFixed(0)} ms</p>` +
    `<table><thead><tr><th>step</th><th>loss webgpu</th><th>loss cpu</th><th>rel</th><th>grad norm webgpu</th><th>grad norm cpu</th><th>rel</th></tr></thead><tbody>${rows}</tbody></table>` +
    `<p>${escape(r.userAgent)}</p>`;
}

function escape(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

status.textContent = 'running in a worker...';
const worker = new Worker(new URL('./webgpu-worker.worker.ts', import.meta.url), { type: 'module' });
worker.addEventListener('message', (e: MessageEvent<WorkerMessage>) => {
  const m = e.data;
  if (m.type === 'log') {
    console.log(`[worker] ${m.text}`);
  } else if (m.type === 'done') {
    show(m);
    finish(m);
    worker.terminate();
  } else {
    console.error(`[worker] ${m.message}\n${m.stack ?? ''}`);
    status.textContent = `error: ${m.message}`;
    finish(m);
    worker.terminate();
  }
});
// A worker that fails to load (404, syntax or import error) or throws outside run() lands here.
worker.addEventListener('error', (e: ErrorEvent) => {
  const message = `worker error: ${e.message || 'the worker failed to load (see the network and console output)'}${e.filename ? ` at ${e.filename}:${e.lineno}` : ''}`;
  console.error(message);
  status.textContent = message;
  finish({ type: 'error', message });
});
worker.addEventListener('messageerror', () => {
  console.error('worker messageerror: a message could not be deserialised');
  finish({ type: 'error', message: 'worker messageerror' });
});
