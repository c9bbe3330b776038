// A RunSpec is everything needed to reproduce an experiment: the config, the preset
// it started from, the dataset reference and (optionally) what the run achieved.
// Share links, the CLI and the lab all pass this one object around.
import type { RunConfig } from './config.ts';

export type DatasetRef =
  /** A dataset the app bundles, by id (e.g. "names", "shakespeare"). */
  | { kind: 'bundled'; id: string }
  /** A user's own file: the text stays local, the link carries only its identity. */
  | { kind: 'file'; name: string; bytes: number; sha256: string };

export interface ResultSummary {
  trainLoss?: number;
  valLoss?: number;
  steps?: number;
  device?: string;
  /** The val-loss curve, reduced to at most 64 points (share-link.ts reduceCurve), steps increasing. */
  curve?: Array<[step: number, valLoss: number]>;
}

export interface RunSpec {
  preset: string;
  config: RunConfig;
  data: DatasetRef | null;
  results?: ResultSummary;
}
