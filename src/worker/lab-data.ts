// The lab's training texts: a DataSource read into bytes and the DatasetRef a run names
// it by, and the text the data panel prepared, kept so that the next run (or a run
// opened without its text, or a scale folder) uses those tokens instead of reading and
// tokenizing the text again.
import type { RunConfig } from '../core/config.ts';
import { findDataset } from '../core/datasets.ts';
import { KilnError } from '../core/errors.ts';
import type { DatasetRef } from '../core/run-spec.ts';
import { decodeText, printable } from '../core/text.ts';
import type { Tokenizer } from '../core/tokenizers/index.ts';
import type { RunStore } from '../store/run-store.ts';
import { prepareData, type PreparedData } from '../train/prepare.ts';
import type { DataFile, DataSource, DataSummary } from './api.ts';

export interface DataDeps {
  /** The bytes of a bundled dataset's file. */
  loadBundled(file: string): Promise<Uint8Array>;
  /** SHA-256 of a user's file, hex (crypto.subtle in browsers). */
  sha256(bytes: Uint8Array): Promise<string>;
  /**
   * A text of the process's own data folder (`kiln serve --data`) by its relative path,
   * read inside the folder only (DataSource 'server'); its base name and bytes. Without
   * it such a source is refused.
   */
  readDataFile?(path: string): Promise<{ name: string; bytes: Uint8Array }>;
  /** The texts of that folder, for dataFiles() (without it: none). */
  dataFiles?(): Promise<DataFile[]>;
}

export const SHA_HINT = 'open the same file the run was trained on, or choose another dataset (a new run then starts)';

/** What the data panel made of a text: kept so a run can be made from it (and its bytes stored). */
export interface PreparedText {
  source: DataSource;
  bytes: Uint8Array;
  text: string;
  summary: DataSummary;
  prepared: PreparedData;
  config: RunConfig;
}

/** A text read again for a saved run. */
export interface FoundText {
  source: DataSource;
  bytes: Uint8Array;
  text: string;
}

export class LabData {
  /** The data panel's text: what the next run is made from. */
  current: PreparedText | null = null;

  /** @param store the run library, for texts kept in it (it throws when there is none) */
  constructor(private readonly deps: DataDeps, private readonly store: () => Promise<Pick<RunStore, 'getDataset'>>) {}

  async files(): Promise<DataFile[]> {
    return (await this.deps.dataFiles?.()) ?? [];
  }

  async read(source: DataSource): Promise<{ bytes: Uint8Array; name: string; ref: DatasetRef }> {
    if (source.kind === 'bundled') {
      const d = findDataset(source.id);
      if (!d) throw new KilnError('data', `there is no bundled dataset "${printable(source.id, 60)}"`, 'choose one from the list, or open your own text file');
      return { bytes: await this.deps.loadBundled(d.file), name: d.title, ref: { kind: 'bundled', id: d.id } };
    }
    if (source.kind === 'stored') {
      const kept = await (await this.store()).getDataset(source.sha256);
      if (!kept) throw new KilnError('data', 'the text file of this run is no longer kept in this browser', 'open the file again');
      return { bytes: kept.bytes, name: kept.name, ref: { kind: 'file', name: kept.name, bytes: kept.bytes.length, sha256: source.sha256 } };
    }
    if (source.kind === 'server') {
      if (!this.deps.readDataFile) throw new KilnError('data', 'this lab has no data folder', 'open a text file of your own, or start kiln serve with --data DIR to pick the files there');
      const { name, bytes } = await this.deps.readDataFile(source.path);
      // The user's file, as if uploaded: runs, links and the CLI name it by name and SHA-256.
      return { bytes, name, ref: { kind: 'file', name, bytes: bytes.length, sha256: await this.deps.sha256(bytes) } };
    }
    const sha256 = await this.deps.sha256(source.bytes);
    if (source.expect && sha256 !== source.expect.sha256.toLowerCase()) {
      throw new KilnError(
        'data',
        `${printable(source.name, 80)} is not the file the run was trained on: its SHA-256 is ${sha256.slice(0, 12)}… (${source.bytes.length} bytes), the run's file has ${source.expect.sha256.slice(0, 12)}… (${source.expect.bytes} bytes)`,
        SHA_HINT,
      );
    }
    return { bytes: source.bytes, name: source.name, ref: { kind: 'file', name: source.name, bytes: source.bytes.length, sha256 } };
  }

  /** Reads and tokenizes a text for the data panel; it becomes the current one only once all of that worked. */
  async prepare(source: DataSource, config: RunConfig, onProgress: (done: number, total: number) => void): Promise<PreparedText> {
    const { bytes, name, ref } = await this.read(source);
    const text = decodeText(bytes, name);
    const prepared = await prepareData(config, text, undefined, onProgress);
    const summary = summarize(ref, name, bytes, text, config, prepared);
    this.current = { source, bytes, text, summary, prepared, config: { ...config } };
    return this.current;
  }

  /** A text's tokens for these settings: the current ones when they are the same text and settings, else tokenized afresh (and not kept). */
  async tokensFor(source: DataSource, config: RunConfig, onProgress: (done: number, total: number) => void): Promise<{ ref: DatasetRef; prepared: PreparedData }> {
    const { bytes, name, ref } = await this.read(source);
    const d = this.current;
    const same = d && sameData(d.summary.ref, ref) && sameTokens(d.config, config);
    const prepared = same ? d.prepared : await prepareData(config, decodeText(bytes, name), undefined, onProgress);
    return { ref, prepared };
  }

  /** The current text tokenized with a run's own tokenizer (a run opened without its text, given it now). */
  async forRun(config: RunConfig, tokenizer: Tokenizer): Promise<{ prepared: PreparedData; summary: DataSummary }> {
    const d = this.current!;
    const prepared = await prepareData(config, d.text, tokenizer.toJSON());
    return { prepared, summary: summarize(d.summary.ref, d.summary.name, d.bytes, d.text, config, prepared) };
  }

  /** The text a saved run names, read again (null when it is not here: a user's file never kept, or gone). */
  async textOf(ref: DatasetRef | null): Promise<FoundText | null> {
    if (!ref) return null;
    if (this.current && sameData(this.current.summary.ref, ref)) return this.current;
    const source: DataSource = ref.kind === 'bundled' ? { kind: 'bundled', id: ref.id } : { kind: 'stored', sha256: ref.sha256 };
    try {
      const { bytes, name } = await this.read(source);
      return { source, bytes, text: decodeText(bytes, name) };
    } catch {
      return null;
    }
  }

  /** A saved run opened with its text: that text, as the run tokenized it, becomes the data panel's. */
  keepOpened(found: FoundText, ref: DatasetRef, config: RunConfig, prepared: PreparedData): DataSummary {
    const name = ref.kind === 'file' ? ref.name : (findDataset(ref.id)?.title ?? ref.id);
    const summary = summarize(ref, name, found.bytes, found.text, config, prepared);
    this.current = { source: found.source, bytes: found.bytes, text: found.text, summary, prepared, config: { ...config } };
    return summary;
  }
}

export function summarize(ref: DatasetRef, name: string, bytes: Uint8Array, text: string, config: RunConfig, prepared: PreparedData): DataSummary {
  const { split, tokenizer } = prepared;
  return {
    ref, name, bytes: bytes.length, chars: [...text].length, distinctChars: new Set(text).size, tokenizer: config.tokenizer,
    vocabSize: tokenizer.vocabSize, tokens: split.train.length + split.val.length, trainTokens: split.train.length, valTokens: split.val.length,
  };
}

/** The same text: the same bundled id, or a file with the same SHA-256. */
export function sameData(a: DatasetRef | null, b: DatasetRef | null): boolean {
  if (!a || !b) return false;
  if (a.kind === 'bundled' && b.kind === 'bundled') return a.id === b.id;
  if (a.kind === 'file' && b.kind === 'file') return a.sha256 === b.sha256;
  return false;
}

/** The settings a text's tokens depend on are the same: the tokenizer, its vocabulary, the split and the block size. */
export function sameTokens(a: RunConfig, b: RunConfig): boolean {
  return a.tokenizer === b.tokenizer && a.bpeVocab === b.bpeVocab && a.valFraction === b.valFraction && a.blockSize === b.blockSize;
}

/** A run opened without its text cannot train: which text it needs. */
export function dataNeeded(ref: DatasetRef | null): KilnError {
  const what = ref?.kind === 'file' ? `the file ${printable(ref.name, 80)} (${ref.bytes} bytes)` : ref?.kind === 'bundled' ? `the bundled dataset ${printable(ref.id, 40)}` : 'its training text, which it does not name';
  return new KilnError('data', `this run trains on ${what}, which is not in this browser`, 'open that file in the data panel to continue training; sampling works without it');
}
