// What the lab keeps of a run between visits (the run library, src/store/): plain data,
// shared by the store that writes it, the worker that fills it and the page that lists
// it. The weights themselves are not here: a run's checkpoints are the same safetensors
// bytes the CLI writes, stored in chunks and named by CheckpointMeta.
import type { RunSpec } from './run-spec.ts';

/** One stored checkpoint of a run. */
export interface CheckpointMeta {
  /** The key its chunks are stored under (unique across the library). */
  id: string;
  /** Optimizer steps taken when it was saved. */
  step: number;
  /** Length of the safetensors file. */
  bytes: number;
  /** SHA-256 of the whole file, hex: checked when the chunks are read back, before decoding. */
  sha256: string;
  /** How many chunks hold it. */
  chunks: number;
  /** Date.now() when it was committed. */
  savedAt: number;
  /** The val loss at that step, when one was measured. */
  valLoss: number | null;
}

/** Where a branched run came from. */
export interface RunParent {
  runId: string;
  /** The parent's name when the branch was made (the parent may be renamed or deleted later). */
  name: string;
  /** The parent's checkpoint step the branch starts from. */
  step: number;
}

/** How a run last stood when it was saved: 'training' means the page closed (or crashed) mid-run. */
export type SavedPhase = 'ready' | 'training' | 'paused' | 'stopped' | 'done';

export interface RunRecord {
  id: string;
  /** The person's name for it (defaults to preset and data, e.g. "names · names.txt"). */
  name: string;
  /** Date.now() at creation and at the last save. */
  createdAt: number;
  updatedAt: number;
  /** Config (steps = where training stops, raised by extend), preset, dataset reference. */
  spec: RunSpec;
  backend: 'webgpu' | 'cpu';
  /** The device it last trained on, as a person reads it. */
  device: string;
  numParams: number;
  /** Step of the newest checkpoint (what Resume continues from). */
  step: number;
  phase: SavedPhase;
  lastLoss: number | null;
  lastValLoss: number | null;
  bestValLoss: number | null;
  elapsedS: number;
  /** Oldest first; the newest is the one Resume loads. */
  checkpoints: CheckpointMeta[];
  /** Bytes of its checkpoints and metrics in the library. */
  bytesOnDisk: number;
  parent?: RunParent;
  /** A checkpoint brought in from a file (made by `kiln train`, or downloaded from another lab). */
  imported?: { fileName: string };
  /**
   * A run folder in `kiln serve --out` that the lab did not write, listed from what is in
   * it (src/store/foreign-folder.ts); absent for the lab's own runs. Nothing is written
   * into such a folder by listing or opening it: a `kiln train` folder becomes a lab run
   * folder (run.json added) only when the person trains, saves, renames or deletes it.
   */
  source?: RunSource;
}

/** Where a listed run folder came from, and what the lab may do with it. */
export interface RunSource {
  /** 'train': written by `kiln train --out`; 'scale': a `kiln scale` folder trained by torchrun. */
  kind: 'train' | 'scale';
  /** The folder's name in --out. */
  folder: string;
  /** Why the lab does not train it (a scaled run: torchrun continues it); absent when it may. */
  readOnly?: string;
  /** Another process is writing the folder now (a live `kiln train`): who, as a person reads it. */
  busy?: string;
  /** What is wrong with the folder (a cut-off metrics line, a damaged checkpoint), as a person reads it. */
  problem?: string;
}

/** The library's share of the browser's storage. */
export interface StorageUsage {
  /** Bytes of all runs' checkpoints and metrics. */
  runsBytes: number;
  /** Bytes of the user's own text files kept for their runs. */
  datasetsBytes: number;
  /** navigator.storage.estimate(): everything this origin uses and may use (null where unknown). */
  usage: number | null;
  quota: number | null;
}
