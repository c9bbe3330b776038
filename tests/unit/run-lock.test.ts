// One writer per run folder (run-lock.ts): the lock is taken, refused with the holder's
// pid, released; a lock whose process is gone is taken over at once, one from another
// machine once it is stale, and a live holder keeps it even when its mtime is old; a
// lost lock is a warning, not a crash. Through the real CLI: a second `kiln train` on a
// running run's --out exits 1 at once naming the first, which goes on to a whole
// metrics.jsonl; after kill -9, --resume is not locked out.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isKilnError, type KilnError } from '../../src/core/errors.ts';
import { acquireRunLock, commandLine, LOCK_NAME, readHolder, STALE_MS, type LockHolder } from '../../src/cli/run-lock.ts';
import { decodeCheckpoint } from '../../src/core/checkpoint.ts';
import { bytesOf, expectKilnError, namesText, readMetrics, runKiln, spawnKiln, tempDir } from '../helpers/cli.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let root: string;
let names: string;
beforeAll(() => {
  root = tempDir('kiln-lock-');
  names = join(root, 'names.txt');
  writeFileSync(names, namesText(3000));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Processes still running when a test ends (it failed early) are stopped. */
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/** A process that stays alive until killed: a live holder on this machine. */
function liveProcess(): ChildProcess {
  const c = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 120000)'], { stdio: 'ignore' });
  children.push(c);
  return c;
}

/** The pid of a process that has exited: a holder that is gone. */
async function deadPid(): Promise<number> {
  const c = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await new Promise((r) => c.on('exit', r));
  return c.pid!;
}

/** A lock as another kiln left it in `dir`: its folder and holder.json, `ageS` seconds old. */
function plantLock(dir: string, holder: Partial<LockHolder> | string, ageS = 0): void {
  const lock = join(dir, LOCK_NAME);
  mkdirSync(lock, { recursive: true });
  const full = typeof holder === 'string' ? holder
    : JSON.stringify({ pid: 1, host: hostname(), command: 'kiln train --preset tiny', started: new Date().toISOString(), ...holder });
  writeFileSync(join(lock, 'holder.json'), full);
  const t = new Date(Date.now() - ageS * 1000);
  utimesSync(lock, t, t);
}

async function refusal(dir: string): Promise<KilnError> {
  const e = await acquireRunLock(dir).then(async (l) => (await l.release(), null), (err: unknown) => err);
  expect(isKilnError(e), String(e)).toBe(true);
  return e as KilnError;
}

describe('acquireRunLock', () => {
  it('takes the lock with a holder, refuses a second writer naming the pid, and releases', async () => {
    const dir = join(root, 'unit');
    const lock = await acquireRunLock(dir);
    expect(lock.wasEmpty).toBe(true);
    expect(lock.tookOver).toBeNull();
    const holder = readHolder(join(dir, LOCK_NAME))!;
    expect(holder).toMatchObject({ pid: process.pid, host: hostname() });
    expect(holder.command).toMatch(/^kiln\b/);

    const e = await refusal(dir);
    expect(e.code).toBe('usage');
    expect(e.message).toContain(`${dir} is being written by another kiln (pid ${process.pid}, this process, \``);
    expect(e.message).toContain('on this machine');
    expect(e.hint).toMatch(/wait for it to finish or stop it \(Ctrl-C\).*taken over at once/);

    writeFileSync(join(dir, 'metrics.jsonl'), '');
    await lock.release();
    await lock.release(); // again: nothing
    expect(existsSync(join(dir, LOCK_NAME))).toBe(false);
    const again = await acquireRunLock(dir);
    expect(again.wasEmpty).toBe(false); // metrics.jsonl is there
    await again.release();
    expect(existsSync(join(dir, 'metrics.jsonl'))).toBe(true);
  });

  it('makes a missing folder and removes it again when nothing was written there', async () => {
    const top = join(root, 'made');
    const lock = await acquireRunLock(join(top, 'a', 'b'));
    expect(existsSync(join(top, 'a', 'b', LOCK_NAME))).toBe(true);
    await lock.release();
    expect(existsSync(top)).toBe(false);
    // A folder that was there stays.
    mkdirSync(top);
    await (await acquireRunLock(top)).release();
    expect(existsSync(top)).toBe(true);
  });

  it('takes over at once a lock whose process is gone from this machine', async () => {
    const dir = join(root, 'dead');
    const pid = await deadPid();
    plantLock(dir, { pid, command: 'kiln train --out dead' });
    const t0 = Date.now();
    const lock = await acquireRunLock(dir);
    expect(Date.now() - t0).toBeLessThan(STALE_MS / 2);
    expect(lock.tookOver).toMatchObject({ pid, command: 'kiln train --out dead' });
    expect(lock.wasEmpty).toBe(true);
    expect(readHolder(join(dir, LOCK_NAME))?.pid).toBe(process.pid);
    await lock.release();
  });

  it('leaves a live holder its lock even when it has not refreshed it for a minute', async () => {
    const dir = join(root, 'live');
    const live = liveProcess();
    plantLock(dir, { pid: live.pid }, 60);
    const e = await refusal(dir);
    expect(e.message).toContain(`(pid ${live.pid}, \`kiln train --preset tiny\`, started `);
    expect(readHolder(join(dir, LOCK_NAME))?.pid).toBe(live.pid);
  });

  it('a lock from another machine: refused while fresh, taken over once stale', async () => {
    const dir = join(root, 'elsewhere');
    plantLock(dir, { pid: 4242, host: 'other-box' });
    const e = await refusal(dir);
    expect(e.message).toContain('(pid 4242, `kiln train --preset tiny`, started ');
    expect(e.message).toContain('on other-box)');
    expect(e.hint).toContain(`in ${STALE_MS / 1000} s`);

    plantLock(dir, { pid: 4242, host: 'other-box' }, STALE_MS / 1000 + 5);
    const lock = await acquireRunLock(dir);
    expect(readHolder(join(dir, LOCK_NAME))?.pid).toBe(process.pid);
    await lock.release();
  });

  it('a lock without a readable holder is refused while fresh', async () => {
    const dir = join(root, 'unknown');
    plantLock(dir, '{"pid": "not a pid"');
    const e = await refusal(dir);
    expect(e.message).toMatch(/is being written by another kiln \(its lock, .*\.kiln\.lock, does not say which\)/);
  });

  it('a lock lost while held is a warning, and release still resolves', async () => {
    const dir = join(root, 'lost');
    const lost: KilnError[] = [];
    const lock = await acquireRunLock(dir, { onLost: (e) => lost.push(e) });
    rmSync(join(dir, LOCK_NAME), { recursive: true });
    const deadline = Date.now() + 10_000;
    while (!lost.length && Date.now() < deadline) await sleep(50);
    expect(lost).toHaveLength(1);
    expect(lost[0].message).toContain(`the lock on ${dir} was lost`);
    expect(lock.lost).toBe(lost[0]);
    await lock.release();
    expect(existsSync(join(dir, LOCK_NAME))).toBe(false);
  });

  it('commandLine quotes odd words and cuts a long line', () => {
    expect(commandLine(['train', '--data', 'my file.txt'])).toBe('kiln train --data "my file.txt"');
    const long = commandLine(['train', '--link', 'x'.repeat(200)]);
    expect(long.length).toBe(80);
    expect(long.endsWith(' ...')).toBe(true);
  });
});

describe('kiln train holds its --out', () => {
  it('a second kiln train on a running --out exits 1 at once naming the first, which finishes with a whole metrics.jsonl', async () => {
    const dir = join(root, 'two');
    const argv = ['train', '--preset', 'tiny', '--steps', '100000', '--backend', 'cpu', '--data', names, '--out', dir];
    const first = spawnKiln(argv);
    children.push(first.child);
    const lines = () => (existsSync(join(dir, 'metrics.jsonl')) ? readMetrics(dir).length : 0);
    const deadline = Date.now() + 60_000;
    while (lines() < 5 && first.child.exitCode === null && Date.now() < deadline) await sleep(20);
    expect(lines(), first.output().stderr).toBeGreaterThanOrEqual(5);

    const t0 = Date.now();
    const second = spawnKiln(argv);
    children.push(second.child);
    const { code } = await second.exit;
    const { stdout, stderr } = second.output();
    expect(Date.now() - t0).toBeLessThan(30_000);
    const e = expectKilnError({ code: code ?? -1, stdout, stderr }, 1, new RegExp(`is being written by another kiln \\(pid ${first.child.pid}, \`kiln train --preset tiny`));
    expect(e.message).toContain('on this machine');
    // The first was still training when the second gave up, and keeps going.
    expect(first.child.exitCode).toBeNull();
    const atRefusal = lines();
    while (lines() < atRefusal + 20 && first.child.exitCode === null) await sleep(20);

    // Stopped with Ctrl-C, it saves and releases the folder; its log is every step once.
    first.child.kill('SIGINT');
    expect((await first.exit).code, first.output().stderr).toBe(130);
    expect(existsSync(join(dir, LOCK_NAME))).toBe(false);
    const S = (await decodeCheckpoint(bytesOf(join(dir, 'checkpoint.safetensors')))).step;
    expect(readMetrics(dir).map((m) => m.step)).toEqual(Array.from({ length: S }, (_, i) => i + 1));
    // And carried to its end, the whole curve is there, each step once, in order.
    const r = await runKiln(['train', '--resume', '--steps', String(S + 10), '--backend', 'cpu', '--data', names, '--out', dir]);
    expect(r.code, r.stderr).toBe(0);
    expect(readMetrics(dir).map((m) => m.step)).toEqual(Array.from({ length: S + 10 }, (_, i) => i + 1));
    expect(existsSync(join(dir, LOCK_NAME))).toBe(false);
  });

  it('after kill -9 the lock is left, and --resume takes it over at once and completes', async () => {
    const dir = join(root, 'killed');
    const p = spawnKiln(['train', '--preset', 'tiny', '--steps', '100000', '--backend', 'cpu', '--data', names, '--out', dir]);
    children.push(p.child);
    // tiny checkpoints every 25 steps: wait until the log has run past the first.
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && p.child.exitCode === null && !(existsSync(join(dir, 'checkpoint.safetensors')) && readMetrics(dir).length >= 30)) await sleep(20);
    p.child.kill('SIGKILL');
    expect((await p.exit).signal).toBe('SIGKILL');
    expect(readHolder(join(dir, LOCK_NAME))?.pid).toBe(p.child.pid);

    const C = (await decodeCheckpoint(bytesOf(join(dir, 'checkpoint.safetensors')))).step;
    const t0 = Date.now();
    const r = await runKiln(['train', '--resume', '--steps', String(C + 5), '--backend', 'cpu', '--data', names, '--out', dir]);
    expect(r.code, r.stderr).toBe(0);
    expect(Date.now() - t0).toBeLessThan(STALE_MS);
    expect(r.stderr).toContain(`kiln: note: took over ${dir} from a run that is gone (pid ${p.child.pid}`);
    expect(readMetrics(dir).map((m) => m.step)).toEqual(Array.from({ length: C + 5 }, (_, i) => i + 1));
    expect(existsSync(join(dir, LOCK_NAME))).toBe(false);
  });

  it('a folder holding only a crashed run\'s lock takes a new run without --force; a refusal prints no terminal escapes from holder.json', async () => {
    const dir = join(root, 'only-lock');
    plantLock(dir, { pid: await deadPid(), command: 'kiln train \x1b[2J' });
    const r = await runKiln(['train', '--preset', 'tiny', '--steps', '3', '--backend', 'cpu', '--data', names, '--out', dir]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('kiln: note: took over');
    expect(r.stderr).not.toContain('\x1b');
    expect(readMetrics(dir).map((m) => m.step)).toEqual([1, 2, 3]);

    const held = join(root, 'hostile');
    const live = liveProcess();
    plantLock(held, { pid: live.pid, command: 'kiln train \x1b]0;pwned\x07\x1b[2J' });
    const refused = await runKiln(['train', '--preset', 'tiny', '--steps', '3', '--backend', 'cpu', '--data', names, '--out', held]);
    expectKilnError(refused, 1, new RegExp(`being written by another kiln \\(pid ${live.pid}, `));
    expect(refused.stderr).not.toContain('\x1b');
    expect(readFileSync(join(held, LOCK_NAME, 'holder.json'), 'utf8')).toContain('pwned');
    expect(existsSync(join(held, 'metrics.jsonl'))).toBe(false);
  });
});
