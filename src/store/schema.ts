// The run library's IndexedDB layout, one numbered step per version. A browser keeps
// whatever version it last opened, so a person returning after months may be several
// versions behind: upgrade() replays every step after theirs, in order, and a database
// created today goes through the same steps from zero. Never edit a shipped step (a
// browser that already ran it will not run it again); add the next one.
import { wrap, type DBSchema, type IDBPDatabase, type IDBPTransaction, type StoreNames } from 'idb';
import type { RunRecord } from '../core/run-record.ts';
import type { StepMetrics } from '../train/trainer.ts';

export const DB_NAME = 'kiln';
export const DB_VERSION = 2;

/** One batch of metrics rows, as committed by one save (or written by replaceMetrics). */
export interface MetricsRecord {
  runId: string;
  seq: number;
  rows: StepMetrics[];
}

/** A user's own text file, kept so that their run can be resumed without asking for it again. */
export interface DatasetRecord {
  sha256: string;
  name: string;
  bytes: Uint8Array;
  size: number;
  addedAt: number;
}

export interface KilnDB extends DBSchema {
  runs: { key: string; value: RunRecord; indexes: { 'by-updated': number } };
  /** Key [checkpointId, index]; a value is one slice of a checkpoint's safetensors bytes. */
  chunks: { key: [string, number]; value: Uint8Array };
  metrics: { key: [string, number]; value: MetricsRecord };
  datasets: { key: string; value: DatasetRecord };
}

export type KilnDatabase = IDBPDatabase<KilnDB>;
export type UpgradeTransaction = IDBPTransaction<KilnDB, StoreNames<KilnDB>[], 'versionchange'>;

const STEPS: Record<number, (db: KilnDatabase, tx: UpgradeTransaction) => void> = {
  1(db) {
    db.createObjectStore('runs', { keyPath: 'id' });
    // Out-of-line keys: a chunk is bare bytes, so a 4 MiB slice is stored without an
    // object around it, and [checkpointId, index] ranges read or delete one checkpoint.
    db.createObjectStore('chunks');
    // Metrics are appended in batches rather than kept on the run record: rewriting a
    // record that holds every row at every save would cost O(steps) per save.
    db.createObjectStore('metrics', { keyPath: ['runId', 'seq'] });
  },
  2(db, tx) {
    // Content-addressed, so two runs on the same file share one copy.
    db.createObjectStore('datasets', { keyPath: 'sha256' });
    // The run list shows newest first; without an index listing would sort in memory,
    // which is fine for a few runs but not the shape the store should grow in.
    tx.objectStore('runs').createIndex('by-updated', 'updatedAt');
  },
};

/**
 * Brings a database from oldVersion to newVersion (the current one when null) by
 * running each step in between. Passing a lower newVersion builds an old layout, which
 * is how the tests check that an upgrade keeps what an older version wrote.
 */
export function upgrade(db: KilnDatabase, oldVersion: number, newVersion: number | null, tx: UpgradeTransaction): void {
  const target = newVersion ?? DB_VERSION;
  for (let v = oldVersion + 1; v <= target; v++) {
    const step = STEPS[v];
    if (!step) throw new Error(`kiln schema: no upgrade step for version ${v}`);
    step(db, tx);
  }
}

export interface OpenEvents {
  /** Another connection (an older tab) keeps this open from upgrading. */
  blocked?(): void;
}

/**
 * idb's openDB always uses the global indexedDB; this takes the factory as an argument
 * so tests can give each case its own fake-indexeddb instance.
 */
export function openKilnDB(factory: IDBFactory, name = DB_NAME, version = DB_VERSION, events: OpenEvents = {}): Promise<KilnDatabase> {
  const request = factory.open(name, version);
  request.addEventListener('upgradeneeded', (event) => {
    upgrade(wrap(request.result) as KilnDatabase, event.oldVersion, event.newVersion, wrap(request.transaction!) as unknown as UpgradeTransaction);
  });
  if (events.blocked) request.addEventListener('blocked', () => events.blocked!());
  return wrap(request) as unknown as Promise<KilnDatabase>;
}
