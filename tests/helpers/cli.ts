// Driving the `kiln` command from tests: in-process through main(argv) with stdout and
// stderr captured, or as a real process (for signals); plus made-up training text and
// the check that a failure reads as one "kiln: error:" line with a hint; reading a run's
// metrics and checkpoint files back.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, vi } from 'vitest';
import { main } from '../../src/cli/main.ts';
import { Rng } from '../../src/core/rng.ts';
import type { StepMetrics } from '../../src/train/trainer.ts';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface KilnRun {
  code: number;
  stdout: string;
  stderr: string;
}

function chunkText(chunk: unknown): string {
  return typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8');
}

/** Runs `kiln ...argv` in this process and returns its exit code and what it printed. */
export async function runKiln(argv: string[]): Promise<KilnRun> {
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: unknown) => ((stdout += chunkText(chunk)), true));
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: unknown) => ((stderr += chunkText(chunk)), true));
  try {
    const code = await main(argv);
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

/** Starts `node bin/kiln.mjs ...argv` as a real process. */
export function spawnKiln(argv: string[]): { child: ChildProcess; output: () => { stdout: string; stderr: string }; exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> } {
  const child = spawn(process.execPath, [join(REPO_ROOT, 'bin/kiln.mjs'), ...argv], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, CI: '1' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  );
  return { child, output: () => ({ stdout, stderr }), exit };
}

export function tempDir(prefix = 'kiln-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** `lines` made-up first names, one per line (a few distinct letters, like makemore's names). */
export function namesText(lines: number, seed = 1): string {
  const starts = ['al', 'be', 'ca', 'da', 'el', 'fi', 'ga', 'ha', 'is', 'jo', 'ka', 'li', 'mo', 'na', 'ol', 'pe', 'ro', 'sa', 'ti', 'vi'];
  const mids = ['', 'n', 'r', 'l', 'm', 's', 'th', 'ck'];
  const ends = ['a', 'o', 'e', 'ie', 'en', 'us', 'ia', 'on', 'y', 'el'];
  const rng = new Rng(seed);
  const out: string[] = [];
  for (let i = 0; i < lines; i++) out.push(starts[rng.int(starts.length)] + mids[rng.int(mids.length)] + ends[rng.int(ends.length)]);
  return out.join('\n') + '\n';
}

/**
 * The failure contract of the CLI: the exit code, and on stderr exactly one line
 * "kiln: error: <message>" matching `message`, followed by a line "  hint: <fix>".
 */
export function expectKilnError(r: KilnRun, exitCode: number, message: RegExp): { message: string; hint: string } {
  const context = `exit ${r.code}\nstderr:\n${r.stderr}\nstdout:\n${r.stdout}`;
  expect(r.code, context).toBe(exitCode);
  expect(r.stderr, context).not.toContain('internal error');
  const lines = r.stderr.split('\n');
  const at = lines.map((l, i) => (l.startsWith('kiln: error: ') ? i : -1)).filter((i) => i >= 0);
  expect(at, context).toHaveLength(1);
  const line = lines[at[0]];
  const hint = lines[at[0] + 1] ?? '';
  expect(line, context).toMatch(message);
  expect(hint, context).toMatch(/^ {2}hint: \S.{5,}/);
  // Machine-readable stdout stays clean on failure.
  expect(r.stdout, context).toBe('');
  return { message: line.slice('kiln: error: '.length), hint: hint.slice('  hint: '.length) };
}

/** The metrics.jsonl lines of the run in `dir`. */
export function readMetrics(dir: string): StepMetrics[] {
  const text = readFileSync(join(dir, 'metrics.jsonl'), 'utf8');
  return text.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as StepMetrics);
}

/** A file's bytes as a Uint8Array (what decodeCheckpoint takes). */
export function bytesOf(path: string): Uint8Array {
  const b = readFileSync(path);
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
}

/**
 * Starts `kiln train ...argv` (with --out dir) as a process, waits until metrics.jsonl
 * holds `after` lines, sends SIGINT, and returns how many lines there were at that
 * moment, the exit, and what it printed. The caller sets a cadence (evalEvery,
 * checkpointEvery) that the interrupt does not fall on, so only the signal can stop it.
 */
export async function interruptTrain(argv: string[], dir: string, after: number, children: ChildProcess[]): Promise<{
  linesAtSignal: number; code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string;
}> {
  const p = spawnKiln(['train', ...argv, '--out', dir]);
  children.push(p.child);
  const metricsPath = join(dir, 'metrics.jsonl');
  const deadline = Date.now() + 120_000;
  let lines = 0;
  while (Date.now() < deadline && p.child.exitCode === null) {
    if (existsSync(metricsPath)) lines = readFileSync(metricsPath, 'utf8').split('\n').filter((l) => l.trim()).length;
    if (lines >= after) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  expect(lines, p.output().stderr).toBeGreaterThanOrEqual(after);
  p.child.kill('SIGINT');
  const { code, signal } = await p.exit;
  return { linesAtSignal: lines, code, signal, ...p.output() };
}
