// The lab's one API between the page and training (DESIGN.md, "The lab and the runner
// share one API"). In the browser a module web worker implements it (lab-worker.ts,
// through comlink); later `kiln serve` implements the same interface in Node over a
// WebSocket. So everything here is plain data: no DOM, no comlink, no GPU types.
// Callbacks (listeners, streamed tokens) are plain functions; a transport wraps them
// (comlink's proxy, a WebSocket message stream).
import type { RunConfig } from '../core/config.ts';
import type { ErrorCode } from '../core/errors.ts';
import type { ModelConfig } from '../core/model-spec.ts';
import type { RunRecord, StorageUsage } from '../core/run-record.ts';
import type { DatasetRef, RunSpec } from '../core/run-spec.ts';
import type { StepMetrics } from '../train/trainer.ts';

/** Where a run's steps are computed. */
export type LabBackendKind = 'webgpu' | 'cpu';

/** What this browser (or process) can train on, found once. */
export interface LabEnvironment {
  /** A WebGPU adapter was found and a device made. */
  webgpu: boolean;
  /** Why not, in a sentence a person can act on (when webgpu is false). */
  webgpuWhy?: string;
  /** The adapter, as the browser names it ("" when unknown). */
  device: string;
  /** A CPU emulation of a GPU (SwiftShader, WARP, llvmpipe): correct, but slow. */
  isSoftware: boolean;
  /** The adapter limits a run presses on (WebGPU names). */
  limits: { maxStorageBufferBindingSize: number; maxBufferSize: number };
  /** FP32 peak in FLOP/s where this adapter is known (for MFU); a CUDA GPU's: the peak of its run's precision. */
  peakFlops?: number;
  /** What the GPU slot trains on: WebGPU (absent: the same), or CUDA (`kiln serve` on an NVIDIA GPU or the CUDA emulation; no WebGPU limits then, both are the GPU's memory). */
  gpuApi?: 'webgpu' | 'cuda';
}

/** Training text: one the lab bundles, or a file the person picked or dropped. */
export type DataSource =
  | { kind: 'bundled'; id: string }
  /** `expect`: the file a share link or a saved run names; a file with other contents is refused. */
  | { kind: 'file'; name: string; bytes: Uint8Array; expect?: { sha256: string; bytes: number } }
  /** A user's file the run library keeps by content hash (a saved run's data). */
  | { kind: 'stored'; sha256: string }
  /**
   * A text in the folder `kiln serve --data DIR` offers (dataFiles()), by its '/'-separated
   * path relative to it. Read by the process; a run records it as the user's file
   * (DatasetRef kind 'file', by name and SHA-256), as if it had been uploaded.
   */
  | { kind: 'server'; path: string };

/** A text file the process offers to train on (kiln serve's --data folder). */
export interface DataFile {
  /** Relative to the folder, '/'-separated: what DataSource 'server' names. */
  path: string;
  bytes: number;
}

/** What prepareData made of a text with a config's tokenizer. */
export interface DataSummary {
  ref: DatasetRef;
  /** The file name, or the bundled dataset's title. */
  name: string;
  bytes: number;
  chars: number;
  /** Distinct characters in the text. */
  distinctChars: number;
  tokenizer: RunConfig['tokenizer'];
  vocabSize: number;
  tokens: number;
  trainTokens: number;
  valTokens: number;
}

/** One device limit a config exceeds. */
export interface LimitProblem {
  /** The WebGPU limit's name, or 'memory' for the whole plan against the adapter's buffers. */
  limit: string;
  /** A sentence: what needs how much, against what this browser allows. */
  message: string;
}

/** How a config sits against this browser: sizes, and what does not fit. */
export interface ConfigFit {
  numParams: number;
  flopsPerToken: number;
  /** Bytes the WebGPU buffer plan allocates (planSummary), or the CPU backend's estimate. */
  memoryBytes: number;
  largestBinding: number;
  largestName: string;
  fits: boolean;
  problems: LimitProblem[];
}

/** A run's lifecycle. `error` keeps the run: after a lost device it can be recovered. */
export type RunPhase = 'preparing' | 'ready' | 'training' | 'pausing' | 'paused' | 'done' | 'stopped' | 'error';

/** A failure, as the page shows it: what happened and what to do. */
export interface LabError {
  code: ErrorCode | 'internal';
  message: string;
  hint: string;
}

/** The state a page needs to draw the controls and the status line. */
export interface RunStatus {
  phase: RunPhase;
  /** Optimizer steps done. */
  step: number;
  /** Where training stops (config.steps, raised by extend). */
  stopAt: number;
  /** The schedule's decay end (config.decaySteps; extend may move it). */
  decaySteps: number;
  lastLoss: number | null;
  lastValLoss: number | null;
  bestValLoss: number | null;
  /** Step of lastValLoss. */
  valStep: number | null;
  tokensPerS: number | null;
  elapsedS: number;
  /** Seconds to stopAt at the recent pace (null until a few steps have run). */
  etaS: number | null;
  /** A lost device or a failed step: the run can be recovered from its last snapshot. */
  recoverable: boolean;
  /** Step of the last in-memory snapshot (what recover() returns to). */
  snapshotStep: number | null;
  /** Step of the newest checkpoint in the run library (null: not saved yet, or not kept). */
  savedStep: number | null;
  /** A save to the run library is being written. */
  saving: boolean;
  /** The last save failed (a full disk or quota): training paused, the previous checkpoint kept. */
  saveError?: LabError;
  error?: LabError;
}

/** One logged step: the trainer's own row, as the CLI writes it to metrics.jsonl. */
export type LabMetrics = StepMetrics;

export interface RunInfo {
  /** The run library's id for it (RunRecord.id). */
  id: string;
  /** The person's name for it. */
  name: string;
  spec: RunSpec;
  model: ModelConfig;
  numParams: number;
  backend: LabBackendKind;
  device: string;
  memoryBytes: number;
  /** The data it trains on; null for a run opened without its data (sampling works, training needs the file). */
  data: DataSummary | null;
  /** Where a branched run came from. */
  parent?: RunRecord['parent'];
}

export type LabEvent =
  | { type: 'status'; status: RunStatus }
  | { type: 'metrics'; metrics: LabMetrics[] }
  | { type: 'sample'; step: number; text: string }
  | { type: 'progress'; what: 'tokenizer' | 'compile'; done: number; total: number };

export interface SampleRequest {
  prompt: string;
  maxTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  seed: number;
}

export interface ExtendOptions {
  /**
   * 'keep' (default): the same schedule (past decaySteps the rate stays at minLr);
   * 'stretch': decaySteps moves to the new end, so the cosine reaches minLr there.
   */
  schedule?: 'keep' | 'stretch';
}

/** How far building a `kiln scale` folder in the lab's worker has come (LabSession.scaleFolder). */
export interface ScaleProgress {
  /** 'data': tokenizing the text; 'weights': the seeded starting weights and their HF export; 'zip': CRC-32s of the files. */
  stage: 'data' | 'weights' | 'zip';
  done: number;
  total: number;
}

/** The folder `kiln scale` writes, as a zip to download (one top-level folder, `fileName` without .zip). */
export interface ScaleDownload {
  fileName: string;
  blob: Blob;
  /** The archive's file paths, in order. */
  files: string[];
}

/**
 * The browser worker's one call beyond LabApi: the `kiln scale` folder of a config and a
 * text, built off the page's thread, for "Run on a cluster". Not part of LabApi, so
 * `kiln serve` (src/core/lab-protocol.ts) does not offer it: a page served by it has the
 * kiln CLI at hand already.
 */
export interface ScaleApi {
  scaleFolder(spec: RunSpec, source: DataSource, onProgress?: (p: ScaleProgress) => void): Promise<ScaleDownload>;
}

export interface LabApi {
  /** What this browser can train on (finds the adapter once). */
  environment(): Promise<LabEnvironment>;
  /** Sizes and limit problems of a config for a text with this vocabulary (no GPU work). */
  checkConfig(config: RunConfig, vocabSize: number, backend: LabBackendKind): Promise<ConfigFit>;
  /** Reads and tokenizes a text with the config's tokenizer (BPE trains here, with progress events). */
  prepareData(source: DataSource, config: RunConfig): Promise<DataSummary>;
  /** Makes the run (model, backend, fresh weights) on the prepared data; the run is then `ready`. */
  createRun(spec: RunSpec, backend: LabBackendKind): Promise<RunInfo>;
  /** Status, metrics (batched), samples and progress, until unsubscribed. Returns an id for unsubscribe. */
  subscribe(listener: (e: LabEvent) => void): Promise<number>;
  unsubscribe(id: number): Promise<void>;
  /** Trains from `ready` until stopAt (resolves once training has started). */
  start(): Promise<void>;
  /** Stops after the step in flight, keeping everything: resume() continues the same curve. */
  pause(): Promise<void>;
  resume(): Promise<void>;
  /** Ends training (the model stays, for sampling). */
  stop(): Promise<void>;
  /** Trains `steps` more (from paused, done or stopped; or while training, moves the end). */
  extend(steps: number, opts?: ExtendOptions): Promise<void>;
  /** After a lost device or a failed step: a new backend from the last snapshot, paused. */
  recover(): Promise<void>;
  /** Text from the model as it stands (between steps while training); tokens stream to onText. */
  sample(req: SampleRequest, onText?: (text: string) => void): Promise<string>;
  /** Every metrics row so far (for a page that subscribed late). */
  history(): Promise<LabMetrics[]>;
  status(): Promise<RunStatus>;
  /**
   * The open run's info (as createRun or openRun returned it, with its current name and
   * data), or null when no run is open. A page that connects to a process already
   * training (a reloaded tab, a second one) shows the run with it.
   */
  current(): Promise<RunInfo | null>;
  /** The texts this process offers to train on (`kiln serve --data DIR`); empty without such a folder (the browser's worker). */
  dataFiles(): Promise<DataFile[]>;
  /** Frees the run (backend, buffers). */
  dispose(): Promise<void>;

  // ---- the run library (IndexedDB in the browser) ----
  /** Every saved run, most recently updated first. */
  listRuns(): Promise<RunRecord[]>;
  /**
   * Makes a saved run the current one, paused at its newest checkpoint (or `step`'s):
   * weights, AdamW moments, data order and curve as they were, so resume() continues
   * the same curve. Its data is read again (bundled, or the kept file); when it cannot
   * be, the run opens for sampling only (RunInfo.data null).
   */
  openRun(id: string, backend: LabBackendKind, step?: number): Promise<RunInfo>;
  renameRun(id: string, name: string): Promise<RunRecord>;
  deleteRun(id: string): Promise<void>;
  /** A checkpoint as the `.safetensors` file `kiln eval/sample/export` read (the newest, or `step`'s). */
  exportCheckpoint(id: string, step?: number): Promise<{ fileName: string; bytes: Uint8Array }>;
  /** Adds a `.safetensors` checkpoint (from `kiln train`, or downloaded) to the library as a run. */
  importCheckpoint(fileName: string, bytes: Uint8Array): Promise<RunRecord>;
  /**
   * A new run from one of a run's checkpoints with changed training settings (the model's
   * shape stays): it keeps the parent's curve up to `step` and records where it came from.
   * Opened like openRun, paused at `step`.
   */
  branchRun(id: string, step: number, config: RunConfig, backend: LabBackendKind, name?: string): Promise<RunInfo>;
  /** A saved run's committed metrics (for comparing runs on one chart). */
  runMetrics(id: string): Promise<LabMetrics[]>;
  /** Saves the current run's checkpoint now (also done every checkpointEvery steps and on pause/stop). */
  save(): Promise<void>;
  storageUsage(): Promise<StorageUsage>;
}
