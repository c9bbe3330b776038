// What the WebGPU-in-a-worker test page's worker posts back (tests/e2e/webgpu-worker.test.ts).

export interface WorkerStepResult {
  step: number;
  webgpu: { loss: number; gradNorm: number };
  cpu: { loss: number; gradNorm: number };
}

export interface WorkerAdapterInfo {
  /** GpuContext.adapterName (vendor, architecture, device, description). */
  name: string;
  isSoftware: boolean;
  features: string[];
  limits: Record<string, number>;
}

export type WorkerMessage =
  | { type: 'log'; text: string }
  | {
      type: 'done';
      /** Checked in the worker: `self` is a DedicatedWorkerGlobalScope. */
      inWorker: boolean;
      isSecureContext: boolean;
      userAgent: string;
      adapter: WorkerAdapterInfo;
      model: { vocabSize: number; blockSize: number; nLayer: number; nHead: number; nEmbd: number; B: number };
      steps: WorkerStepResult[];
      dispatchesPerStep: number;
      /** WebGPU errors the device reported outside the backend's error scopes. */
      uncapturedErrors: string[];
      /** create+load; the first WebGPU step (pipeline compilation included); all WebGPU steps; all CPU steps. */
      ms: { create: number; firstStep: number; webgpu: number; cpu: number };
    }
  | { type: 'error'; message: string; stack?: string };

/** What the page leaves in window.__kilnResult for the test to read. */
export type PageResult = Extract<WorkerMessage, { type: 'done' }> | { type: 'error'; message: string; stack?: string };
