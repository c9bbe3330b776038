// A full disk (ENOSPC) under `kiln train`: the write that hits it (a checkpoint, or the
// metrics log) stops the run with a one-line storage error (exit 2) that says what to
// do; what was already on disk is byte-identical and no temporary file is left behind;
// and once space is freed, --resume finishes the same run as one that never hit the wall.
// The disk is node:fs with its writes made to fail on demand (ENOSPC, as Linux reports it).
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { decodeCheckpoint } from '../../src/core/checkpoint.ts';
import { expectKilnError, namesText, readMetrics, runKiln, tempDir } from '../helpers/cli.ts';

/** What fails: nothing, writes to files whose path contains `only`, or every file write. */
const disk = vi.hoisted(() => ({ full: null as null | { only?: string } }));

vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const paths = new Map<number, string>();
  const enospc = (path: string) =>
    Object.assign(new Error(`ENOSPC: no space left on device, write '${path}'`), { code: 'ENOSPC', errno: -28, syscall: 'write' });
  const hits = (path: string) => disk.full !== null && (disk.full.only === undefined || path.includes(disk.full.only));
  const openSync = ((path: string, ...rest: unknown[]) => {
    const fd = (fs.openSync as (...a: unknown[]) => number)(path, ...rest);
    paths.set(fd, String(path));
    return fd;
  }) as typeof fs.openSync;
  const writeSync = ((fd: number, ...rest: unknown[]) => {
    const path = paths.get(fd) ?? '';
    if (fd > 2 && hits(path)) throw enospc(path);
    return (fs.writeSync as (...a: unknown[]) => number)(fd, ...rest);
  }) as typeof fs.writeSync;
  const writeFileSync = ((path: unknown, ...rest: unknown[]) => {
    if (typeof path === 'string' && hits(path)) throw enospc(path);
    return (fs.writeFileSync as (...a: unknown[]) => void)(path, ...rest);
  }) as typeof fs.writeFileSync;
  const mocked = { ...fs, openSync, writeSync, writeFileSync };
  return { ...mocked, default: mocked };
});

let root: string;
let names: string;
const SETTINGS = ['--preset', 'tiny', '--set', 'checkpointEvery=2', '--set', 'evalEvery=2'];

beforeAll(() => {
  root = tempDir('kiln-disk-full-');
  names = join(root, 'names.txt');
  writeFileSync(names, namesText(3000));
});

afterAll(() => {
  disk.full = null;
  rmSync(root, { recursive: true, force: true });
});

async function train(out: string, ...more: string[]) {
  return runKiln(['train', ...SETTINGS, '--data', names, '--out', out, ...more]);
}

describe('kiln train on a full disk', () => {
  it('a checkpoint write that fails stops the run, keeps the last checkpoint, and --resume later finishes the same run', async () => {
    const straight = join(root, 'straight');
    expect((await train(straight, '--steps', '8')).code).toBe(0);

    const dir = join(root, 'full-at-checkpoint');
    expect((await train(dir, '--steps', '4')).code).toBe(0);
    const before = readFileSync(join(dir, 'checkpoint.safetensors'));

    disk.full = { only: 'checkpoint.safetensors' };
    const r = await train(dir, '--steps', '8', '--resume').finally(() => (disk.full = null));
    const e = expectKilnError(r, 2, /could not write .*checkpoint\.safetensors: the disk is full/);
    expect(e.hint).toMatch(/free some space, then continue with the same command and --resume \(.*checkpoint\.safetensors is intact\)/);
    expect(readFileSync(join(dir, 'checkpoint.safetensors')).equals(before)).toBe(true);
    expect((await decodeCheckpoint(new Uint8Array(before))).step).toBe(4);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);

    const again = await train(dir, '--steps', '8', '--resume');
    expect(again.code, again.stderr).toBe(0);
    expect(readMetrics(dir).map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(readMetrics(dir).map((m) => m.loss)).toEqual(readMetrics(straight).map((m) => m.loss));
    const [a, b] = await Promise.all([straight, dir].map(async (d) => decodeCheckpoint(new Uint8Array(readFileSync(join(d, 'checkpoint.safetensors'))))));
    expect(b.step).toBe(8);
    expect(Buffer.from(b.state.params.buffer).equals(Buffer.from(a.state.params.buffer))).toBe(true);
  });

  it('a disk with no room for even a metrics line stops at once and leaves the run as it was', async () => {
    const dir = join(root, 'full-from-start');
    expect((await train(dir, '--steps', '2')).code).toBe(0);
    const files = ['checkpoint.safetensors', 'best.safetensors', 'metrics.jsonl'];
    const before = files.map((f) => readFileSync(join(dir, f)));

    disk.full = {};
    const r = await train(dir, '--steps', '6', '--resume').finally(() => (disk.full = null));
    expectKilnError(r, 2, /could not write .*: the disk is full/);
    files.forEach((f, i) => expect(readFileSync(join(dir, f)).equals(before[i]), f).toBe(true));
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);

    // A fresh run into a new folder: the metrics log is the first thing written.
    disk.full = {};
    const fresh = join(root, 'fresh');
    const f = await train(fresh, '--steps', '2').finally(() => (disk.full = null));
    const ef = expectKilnError(f, 2, /could not write .*metrics\.jsonl: the disk is full/);
    expect(existsSync(join(fresh, 'checkpoint.safetensors'))).toBe(false);
    // Nothing to resume from, so the hint must not send the user to --resume.
    expect(ef.hint).toMatch(/run the same command again \(no checkpoint had been saved yet\)/);
    expect(ef.hint).not.toMatch(/--resume/);

    // A fresh run whose first checkpoint does not fit: the same advice, and a rerun works.
    const first = join(root, 'first-checkpoint');
    disk.full = { only: 'checkpoint.safetensors' };
    const c = await train(first, '--steps', '4').finally(() => (disk.full = null));
    const ec = expectKilnError(c, 2, /could not write .*checkpoint\.safetensors: the disk is full/);
    expect(ec.hint).not.toMatch(/--resume/);
    const rerun = await train(first, '--steps', '4');
    expect(rerun.code, rerun.stderr).toBe(0);
  });
});
