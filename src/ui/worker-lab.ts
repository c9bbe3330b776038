// The lab's web worker as a plain LabApi (STYLE.md 5): comlink's wrap, with the two
// things comlink needs told kept here: callbacks (an event listener, a sample's streamed
// text) go over as comlink proxies, and a checkpoint's bytes are moved to the worker
// rather than copied. The controller sees the same interface as remote-lab.ts's.
import { proxy, transfer, wrap } from 'comlink';
import type { LabApi, ScaleApi } from '../worker/api.ts';

/** The worker's LabApi, and its one call beyond it (the `kiln scale` folder as a zip). */
export type WorkerLab = LabApi & ScaleApi & {
  /** Ends the worker (and with it any run it trains). */
  close(): void;
};

export function workerLab(worker: Worker): WorkerLab {
  const api = wrap<LabApi & ScaleApi>(worker);
  return {
    environment: () => api.environment(),
    checkConfig: (config, vocabSize, backend) => api.checkConfig(config, vocabSize, backend),
    // Not transferred: the page keeps a picked file to read again when a setting that shapes its tokens changes.
    prepareData: (source, config) => api.prepareData(source, config),
    createRun: (spec, backend) => api.createRun(spec, backend),
    subscribe: (listener) => api.subscribe(proxy(listener)),
    unsubscribe: (id) => api.unsubscribe(id),
    start: () => api.start(),
    pause: () => api.pause(),
    resume: () => api.resume(),
    stop: () => api.stop(),
    extend: (steps, opts) => api.extend(steps, opts),
    recover: () => api.recover(),
    sample: (req, onText) => api.sample(req, onText ? proxy(onText) : undefined),
    history: () => api.history(),
    status: () => api.status(),
    current: () => api.current(),
    // The browser's worker has no data folder: [] (asked anyway, so both labs answer alike).
    dataFiles: () => api.dataFiles(),
    dispose: () => api.dispose(),
    listRuns: () => api.listRuns(),
    openRun: (id, backend, step) => api.openRun(id, backend, step),
    renameRun: (id, name) => api.renameRun(id, name),
    deleteRun: (id) => api.deleteRun(id),
    exportCheckpoint: (id, step) => api.exportCheckpoint(id, step),
    // The page does not need a checkpoint's bytes after handing them over: moved, not copied.
    importCheckpoint: (fileName, bytes) => api.importCheckpoint(fileName, transfer(bytes, [bytes.buffer as ArrayBuffer])),
    branchRun: (id, step, config, backend, name) => api.branchRun(id, step, config, backend, name),
    runMetrics: (id) => api.runMetrics(id),
    save: () => api.save(),
    storageUsage: () => api.storageUsage(),
    // The zip comes back as a Blob (the page's download link reads it; nothing is copied into the page).
    scaleFolder: (spec, source, onProgress) => api.scaleFolder(spec, source, onProgress ? proxy(onProgress) : undefined),
    close: () => worker.terminate(),
  };
}
