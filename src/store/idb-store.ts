// The run library on IndexedDB (the RunStore of run-store.ts; its header says how a save
// stays safe when the tab dies mid-way). Everything awaited inside a transaction here is
// an IndexedDB request: awaiting anything else (a digest, a timer) lets the transaction
// commit early, which is why hashing happens before the commit transaction opens.
import { KilnError } from '../core/errors.ts';
import { sha256Hex } from '../core/checkpoint.ts';
import { formatBytes } from '../core/model-spec.ts';
import type { CheckpointMeta, RunRecord, StorageUsage } from '../core/run-record.ts';
import type { StepMetrics } from '../train/trainer.ts';
import type { RunStore, SaveRequest } from './run-store.ts';
import { DB_NAME, DB_VERSION, openKilnDB, type KilnDatabase } from './schema.ts';

export interface RunStoreOptions {
  /** Database name (tests use their own). */
  name?: string;
  /** Size of one stored slice of a checkpoint. */
  chunkBytes?: number;
  /** Checkpoints kept per run, newest; older ones are deleted when a save commits. */
  keepCheckpoints?: number;
  idbFactory?: IDBFactory;
  storage?: { estimate(): Promise<StorageEstimate> };
  /** Test hook: runs before each chunk is written; what it throws is treated as that write's failure. */
  faults?: { beforeChunkWrite?(index: number): void | Promise<void> };
}

// 4 MiB: big enough that a 500 MB checkpoint is ~125 records, small enough that a
// chunk's copy and its structured clone are negligible next to the model itself.
const DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024;
const DEFAULT_KEEP = 3;
const MAX_NAME = 120;
// How long an open waits for another tab to let go before telling the person why.
const BLOCKED_WAIT_MS = 10_000;
const CLOSED = () => new KilnError('storage', 'the run library was closed because Kiln was updated in another tab', 'reload this page');

const noop = () => {};

/** Every key of one checkpoint's chunks, or one run's metrics records. */
function keysOf(id: string): IDBKeyRange {
  return IDBKeyRange.bound([id, 0], [id, Infinity]);
}

function isQuota(e: unknown): boolean {
  return typeof e === 'object' && e !== null && (e as { name?: unknown }).name === 'QuotaExceededError';
}

function messageOf(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

/** A JSON-length estimate of rows' size on disk: close enough for a storage bar. */
function rowsBytes(rows: StepMetrics[]): number {
  return rows.length === 0 ? 0 : JSON.stringify(rows).length;
}

function checkpointBytes(run: RunRecord): number {
  return run.checkpoints.reduce((s, c) => s + c.bytes, 0);
}

/** The trimmed name, or a usage error that says what is wrong with it. */
function checkName(name: string): string {
  const trimmed = name.trim();
  if (trimmed.length === 0) throw new KilnError('usage', 'a run needs a name', 'type at least one character');
  if (trimmed.length > MAX_NAME) throw new KilnError('usage', `a run name may be at most ${MAX_NAME} characters (this one has ${trimmed.length})`, 'choose a shorter name');
  if (/[\u0000-\u001f\u007f-\u009f]/.test(trimmed)) throw new KilnError('usage', 'a run name may not contain control characters (tabs, line breaks)', 'type the name on one line');
  return trimmed;
}

export async function openRunStore(opts: RunStoreOptions = {}): Promise<RunStore> {
  const chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  const keep = opts.keepCheckpoints ?? DEFAULT_KEEP;
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 1) throw new Error(`openRunStore: bad chunkBytes ${chunkBytes}`);
  if (!Number.isSafeInteger(keep) || keep < 1) throw new Error(`openRunStore: bad keepCheckpoints ${keep}`);
  const factory = opts.idbFactory ?? (globalThis as { indexedDB?: IDBFactory }).indexedDB;
  if (!factory)
    throw new KilnError('storage', 'this browser has no IndexedDB, so runs cannot be kept between visits', 'use a current Chrome, Edge, Firefox or Safari in a normal (not private) window');

  const db = await open(factory, opts.name ?? DB_NAME);
  let closed = false;
  // Another tab wants to upgrade the schema: holding the connection would block it
  // until this tab closes, so step aside and let calls here fail with a clear message.
  db.addEventListener('versionchange', () => {
    closed = true;
    db.close();
  });
  db.addEventListener('close', () => (closed = true));
  const live = (): KilnDatabase => {
    if (closed) throw CLOSED();
    return db;
  };
  /** Checkpoint ids being written by this tab and not yet committed: sweep() must not take them. */
  const pending = new Set<string>();

  /** Runs body in tx and waits for the commit; anything thrown aborts the whole transaction. */
  async function inTx<T>(tx: { done: Promise<void>; abort(): void }, body: () => Promise<T>): Promise<T> {
    tx.done.catch(noop); // rejections are seen through the await below; never unhandled
    try {
      const result = await body();
      await tx.done;
      return result;
    } catch (e) {
      try {
        tx.abort();
      } catch {
        // already finished or aborted
      }
      throw e;
    }
  }

  /** Writes could fail for want of space anywhere; say so the same way everywhere. */
  function storageError(e: unknown, what: string): unknown {
    if (e instanceof KilnError) return e;
    if (isQuota(e)) return new KilnError('storage', `the browser's storage is full: ${what} failed`, 'delete runs you no longer need in the run list');
    return e;
  }

  async function putChunk(key: [string, number], value: Uint8Array): Promise<void> {
    const tx = live().transaction('chunks', 'readwrite');
    try {
      await inTx(tx, () => tx.store.put(value, key));
    } catch (e) {
      // Chrome reports a full disk as an aborted transaction whose error says quota.
      if (isQuota(tx.error)) throw tx.error;
      throw e;
    }
  }

  async function deleteChunks(id: string): Promise<void> {
    const tx = live().transaction('chunks', 'readwrite');
    await inTx(tx, () => tx.store.delete(keysOf(id)));
  }

  async function quotaError(runId: string, needed: number): Promise<KilnError> {
    let largest: RunRecord | null = null;
    try {
      for (const r of await store.listRuns()) if (r.id !== runId && (!largest || r.bytesOnDisk > largest.bytesOnDisk)) largest = r;
    } catch {
      // the message is still useful without naming a run
    }
    const others = largest ? `delete runs you no longer need in the run list (largest: "${largest.name}", ${formatBytes(largest.bytesOnDisk)}), or ` : '';
    return new KilnError(
      'storage',
      `the browser's storage is full: saving this checkpoint needs ${formatBytes(needed)} more`,
      `${others}download this run's checkpoint and delete it; training is paused and nothing was lost`,
    );
  }

  /** Moves the new checkpoint into the run's record; see run-store.ts for why this is one transaction. */
  function commit(runId: string, meta: CheckpointMeta, save: SaveRequest): Promise<RunRecord> {
    const tx = live().transaction(['runs', 'metrics', 'chunks'], 'readwrite');
    return inTx(tx, async () => {
      const runs = tx.objectStore('runs');
      const chunks = tx.objectStore('chunks');
      const metrics = tx.objectStore('metrics');
      const run = await runs.get(runId);
      if (!run) throw new KilnError('storage', `run ${runId} is no longer in the library, so its checkpoint was not saved`, 'it was deleted, perhaps in another tab');
      // Another tab's sweep() cannot know this save is in flight; if it took the chunks,
      // fail the save rather than commit a checkpoint that cannot be read back.
      if ((await chunks.count(keysOf(meta.id))) !== meta.chunks)
        throw new KilnError('storage', `the checkpoint at step ${meta.step} was removed before it was committed`, 'save again (another Kiln tab may have cleaned up the library meanwhile)');
      const metricsBefore = Math.max(0, run.bytesOnDisk - checkpointBytes(run));
      if (save.metrics.length > 0) {
        const last = await metrics.openKeyCursor(keysOf(runId), 'prev');
        await metrics.put({ runId, seq: last ? last.key[1] + 1 : 0, rows: save.metrics });
      }
      const { id: _i, checkpoints: _c, bytesOnDisk: _b, createdAt: _t, ...patch } = save.patch as Partial<RunRecord>;
      const checkpoints = [...run.checkpoints, meta];
      const dropped = checkpoints.splice(0, Math.max(0, checkpoints.length - keep));
      for (const old of dropped) await chunks.delete(keysOf(old.id));
      const next: RunRecord = { ...run, ...patch, step: meta.step, checkpoints, updatedAt: Date.now() };
      next.bytesOnDisk = checkpointBytes(next) + metricsBefore + rowsBytes(save.metrics);
      await runs.put(next);
      return next;
    });
  }

  const store: RunStore = {
    async listRuns() {
      const all = await live().getAllFromIndex('runs', 'by-updated');
      return all.reverse();
    },

    async getRun(id) {
      return (await live().get('runs', id)) ?? null;
    },

    async putRun(run) {
      // The store owns checkpoints and bytesOnDisk: a caller holding a record from before
      // a save must not be able to drop that save's checkpoint (its chunks would be swept).
      const tx = live().transaction(['runs', 'metrics'], 'readwrite');
      try {
        await inTx(tx, async () => {
          const runs = tx.objectStore('runs');
          const old = await runs.get(run.id);
          let next: RunRecord;
          if (old) {
            next = { ...run, createdAt: old.createdAt, checkpoints: old.checkpoints, bytesOnDisk: old.bytesOnDisk };
          } else {
            const batches = await tx.objectStore('metrics').getAll(keysOf(run.id));
            next = { ...run, checkpoints: [], bytesOnDisk: batches.reduce((s, b) => s + rowsBytes(b.rows), 0) };
          }
          await runs.put(next);
        });
      } catch (e) {
        throw storageError(e, `saving run "${run.name}"`);
      }
    },

    async renameRun(id, name) {
      const trimmed = checkName(name);
      const tx = live().transaction('runs', 'readwrite');
      return inTx(tx, async () => {
        const run = await tx.store.get(id);
        if (!run) throw new KilnError('usage', `there is no run ${id} in the library`, 'it may have been deleted in another tab: reload the run list');
        const next = { ...run, name: trimmed };
        await tx.store.put(next);
        return next;
      });
    },

    async deleteRun(id) {
      const tx = live().transaction(['runs', 'chunks', 'metrics', 'datasets'], 'readwrite');
      await inTx(tx, async () => {
        const runs = tx.objectStore('runs');
        const run = await runs.get(id);
        if (run) {
          await runs.delete(id);
          for (const c of run.checkpoints) await tx.objectStore('chunks').delete(keysOf(c.id));
        }
        await tx.objectStore('metrics').delete(keysOf(id));
        const used = new Set<string>();
        for (const r of await runs.getAll()) if (r.spec.data?.kind === 'file') used.add(r.spec.data.sha256);
        const datasets = tx.objectStore('datasets');
        for (const sha of await datasets.getAllKeys()) if (!used.has(sha)) await datasets.delete(sha);
      });
    },

    async saveCheckpoint(runId, bytes, save) {
      const run = await store.getRun(runId);
      if (!run) throw new KilnError('storage', `run ${runId} is not in the library, so its checkpoint was not saved`, 'it was deleted, perhaps in another tab');
      const sha256 = await sha256Hex(bytes);
      const meta: CheckpointMeta = {
        id: crypto.randomUUID(),
        step: save.step,
        bytes: bytes.length,
        sha256,
        chunks: Math.ceil(bytes.length / chunkBytes),
        savedAt: Date.now(),
        valLoss: save.valLoss,
      };
      pending.add(meta.id);
      let written = 0;
      try {
        for (let i = 0; i < meta.chunks; i++) {
          await opts.faults?.beforeChunkWrite?.(i);
          // slice, not subarray: a view would keep the whole file's buffer alive (and be
          // cloned whole) for as long as IndexedDB holds on to the value.
          const end = Math.min(bytes.length, (i + 1) * chunkBytes);
          await putChunk([meta.id, i], bytes.slice(i * chunkBytes, end));
          written = end;
        }
        meta.savedAt = Date.now();
        return await commit(runId, meta, save);
      } catch (e) {
        // Best effort: if this fails too (the tab is closing), sweep() finds them later.
        await deleteChunks(meta.id).catch(noop);
        // A commit that hits the quota has written every chunk: what it lacked was room
        // for the record and the metrics rows.
        if (isQuota(e)) throw await quotaError(runId, bytes.length - written || rowsBytes(save.metrics) + JSON.stringify(save.patch).length);
        if (e instanceof KilnError) throw e;
        throw new KilnError('storage', `saving the checkpoint at step ${save.step} of "${run.name}" failed (${messageOf(e)})`, 'training is paused and nothing was lost: try again, or download this run\'s checkpoint');
      } finally {
        pending.delete(meta.id);
      }
    },

    async loadCheckpoint(runId, meta) {
      const run = await store.getRun(runId);
      const damaged = (what: string): KilnError => {
        let earlier: CheckpointMeta | null = null;
        for (const c of run?.checkpoints ?? []) if (c.id !== meta.id && c.step < meta.step && (!earlier || c.step > earlier.step)) earlier = c;
        return new KilnError(
          'checkpoint',
          `the checkpoint at step ${meta.step} of "${run?.name ?? runId}" is damaged (${what})`,
          earlier ? `open the run at an earlier checkpoint (step ${earlier.step})` : 'this run has no earlier checkpoint: delete it, or import its downloaded file',
        );
      };
      const out = new Uint8Array(meta.bytes);
      let offset = 0;
      // One read per chunk, copied straight into the result: reading all chunks in one
      // getAll would hold the checkpoint twice.
      for (let i = 0; i < meta.chunks; i++) {
        const chunk = await live().get('chunks', [meta.id, i]);
        if (!(chunk instanceof Uint8Array)) throw damaged(`part ${i + 1} of ${meta.chunks} is missing`);
        if (offset + chunk.length > meta.bytes) throw damaged(`it is longer than the ${meta.bytes} bytes recorded`);
        out.set(chunk, offset);
        offset += chunk.length;
      }
      if (offset !== meta.bytes) throw damaged(`it has ${offset} bytes, not the ${meta.bytes} recorded`);
      if ((await sha256Hex(out)) !== meta.sha256) throw damaged('its SHA-256 does not match the one recorded when it was saved');
      return out;
    },

    async metrics(runId) {
      const batches = await live().getAll('metrics', keysOf(runId));
      // Keys sort by seq, so a later batch's row for the same step (a resume that
      // re-ran steps) overwrites the earlier one.
      const byStep = new Map<number, StepMetrics>();
      for (const b of batches) for (const row of b.rows) byStep.set(row.step, row);
      return [...byStep.values()].sort((a, b) => a.step - b.step);
    },

    async replaceMetrics(runId, rows) {
      const tx = live().transaction(['runs', 'metrics'], 'readwrite');
      try {
        await inTx(tx, async () => {
          const metrics = tx.objectStore('metrics');
          await metrics.delete(keysOf(runId));
          if (rows.length > 0) await metrics.put({ runId, seq: 0, rows });
          const runs = tx.objectStore('runs');
          const run = await runs.get(runId);
          if (run) await runs.put({ ...run, bytesOnDisk: checkpointBytes(run) + rowsBytes(rows) });
        });
      } catch (e) {
        throw storageError(e, 'saving the run\'s metrics');
      }
    },

    async rewind(runId, step) {
      const tx = live().transaction(['runs', 'metrics', 'chunks'], 'readwrite');
      try {
        return await inTx(tx, async () => {
          const runs = tx.objectStore('runs');
          const run = await runs.get(runId);
          if (!run) throw new KilnError('usage', 'that run is no longer in the run library', 'it may have been deleted in another tab: reload the page');
          if (!run.checkpoints.some((c) => c.step === step)) throw new KilnError('usage', `"${run.name}" has no checkpoint at step ${step}`, 'choose one of its checkpoints');
          for (const c of run.checkpoints) if (c.step > step) await tx.objectStore('chunks').delete(keysOf(c.id));
          const metrics = tx.objectStore('metrics');
          const batches = await metrics.getAll(keysOf(runId));
          const byStep = new Map<number, StepMetrics>();
          for (const b of batches) for (const row of b.rows) if (row.step <= step) byStep.set(row.step, row);
          const rows = [...byStep.values()].sort((a, b) => a.step - b.step);
          await metrics.delete(keysOf(runId));
          if (rows.length > 0) await metrics.put({ runId, seq: 0, rows });
          const checkpoints = run.checkpoints.filter((c) => c.step <= step);
          const next: RunRecord = { ...run, checkpoints, step, phase: 'paused', bytesOnDisk: checkpoints.reduce((s, c) => s + c.bytes, 0) + rowsBytes(rows) };
          await runs.put(next);
          return next;
        });
      } catch (e) {
        if (e instanceof KilnError) throw e;
        throw storageError(e, 'going back to an earlier checkpoint');
      }
    },

    async putDataset(sha256, name, bytes) {
      const actual = await sha256Hex(bytes);
      if (actual !== sha256) throw new Error(`putDataset: the bytes of ${name} hash to ${actual}, not ${sha256}`);
      try {
        await live().put('datasets', { sha256, name, bytes, size: bytes.length, addedAt: Date.now() });
      } catch (e) {
        throw storageError(e, `keeping ${name}`);
      }
    },

    async getDataset(sha256) {
      const d = await live().get('datasets', sha256);
      return d ? { name: d.name, bytes: d.bytes } : null;
    },

    async usage(): Promise<StorageUsage> {
      const tx = live().transaction(['runs', 'datasets'], 'readonly');
      const [runsBytes, datasetsBytes] = await inTx(tx, async () => {
        let runsBytes = 0;
        for (const r of await tx.objectStore('runs').getAll()) runsBytes += r.bytesOnDisk;
        // A cursor rather than getAll: each file's bytes can be dropped once counted.
        let datasetsBytes = 0;
        for (let c = await tx.objectStore('datasets').openCursor(); c; c = await c.continue()) datasetsBytes += c.value.size;
        return [runsBytes, datasetsBytes];
      });
      let usage: number | null = null;
      let quota: number | null = null;
      const storage = opts.storage ?? (globalThis as { navigator?: { storage?: RunStoreOptions['storage'] } }).navigator?.storage;
      try {
        const est = storage ? await storage.estimate() : null;
        usage = est?.usage ?? null;
        quota = est?.quota ?? null;
      } catch {
        // Some browsers refuse estimate() in private windows; the library still works.
      }
      return { runsBytes, datasetsBytes, usage, quota };
    },

    async sweep() {
      const tx = live().transaction(['runs', 'chunks'], 'readwrite');
      return inTx(tx, async () => {
        const named = new Set<string>(pending);
        for (const r of await tx.objectStore('runs').getAll()) for (const c of r.checkpoints) named.add(c.id);
        const chunks = tx.objectStore('chunks');
        let removed = 0;
        let cursor = await chunks.openKeyCursor();
        while (cursor) {
          const [id] = cursor.key;
          if (named.has(id)) {
            // Skip the rest of this checkpoint's chunks in one step: cost grows with
            // the number of checkpoints, not chunks.
            cursor = await cursor.continue([id, Infinity]);
          } else {
            // A key cursor cannot delete(); the store can, by key.
            await chunks.delete(cursor.key);
            removed++;
            cursor = await cursor.continue();
          }
        }
        return removed;
      });
    },

    close() {
      closed = true;
      db.close();
    },
  };

  // Cheap when nothing is orphaned (one step per checkpoint); a failure here must not
  // keep the person from their runs, and the next open tries again.
  await store.sweep().catch(noop);
  return store;
}

/** Opens the database, turning the ways a browser refuses into messages a person can act on. */
function open(factory: IDBFactory, name: string): Promise<KilnDatabase> {
  return new Promise((resolve, reject) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let gaveUp = false;
    const blocked = () => {
      timer ??= setTimeout(() => {
        gaveUp = true;
        reject(new KilnError('storage', 'another Kiln tab is holding the run library open', 'close the other Kiln tabs, then reload this one'));
      }, BLOCKED_WAIT_MS);
    };
    openKilnDB(factory, name, DB_VERSION, { blocked }).then(
      (db) => {
        clearTimeout(timer);
        if (gaveUp) db.close();
        else resolve(db);
      },
      (e: unknown) => {
        clearTimeout(timer);
        if ((e as { name?: unknown })?.name === 'VersionError')
          reject(new KilnError('storage', 'the run library was written by a newer version of Kiln', 'reload the page to get the newest version'));
        else
          reject(new KilnError('storage', `the browser refused to open the run library (${messageOf(e)})`, 'runs cannot be kept in this window: allow site data for this site, or use a normal (not private) window'));
      },
    );
  });
}
