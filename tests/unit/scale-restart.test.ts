// `kiln scale`'s job survives a dead worker: run.sh gives torchrun --max_restarts, and
// train_ddp.py continues from the newest complete checkpoint in its --out folder. Two gloo
// processes on the CPU train tiny for 12 steps (a checkpoint every 3); once step 5 is
// logged, rank 1's process is SIGKILLed; torchrun restarts both workers, which resume from
// step_3 (or step_6) and finish. metrics.jsonl then holds steps 1..12 exactly once, with the
// losses of an uninterrupted run of the same folder to 1e-6. Skipped, with the reason,
// where python3 with torch is missing or there is no /proc to find the worker in.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runKiln, tempDir } from '../helpers/cli.ts';
import { findPython } from '../helpers/torch-python.ts';


const found = findPython();
const PY = 'python' in found ? found.python : 'python3';
const missing = 'missing' in found ? found.missing : !existsSync('/proc/self/environ') ? 'no /proc to find the workers in' : null;
if (missing) console.warn(`scale-restart.test.ts: skipped: ${missing}`);

const root = tempDir('kiln-scale-restart-');
afterAll(() => rmSync(root, { recursive: true, force: true }));

interface Row { step: number; loss: number; val_loss?: number }

function rows(dir: string): Row[] {
  const p = join(dir, 'metrics.jsonl');
  if (!existsSync(p)) return [];
  const out: Row[] = [];
  for (const line of readFileSync(p, 'utf8').split('\n')) {
    try {
      out.push(JSON.parse(line) as Row);
    } catch {
      // an empty or half-written line
    }
  }
  return out;
}

/** The pid of the worker with RANK=rank (first attempt) training into outDir, from /proc. */
function workerPid(outDir: string, rank: number): number | null {
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0');
      if (!cmd.some((a) => a.endsWith('train_ddp.py')) || !cmd.includes(outDir)) continue;
      const env = readFileSync(`/proc/${e}/environ`, 'utf8').split('\0');
      if (env.includes(`RANK=${rank}`) && env.includes('TORCHELASTIC_RESTART_COUNT=0')) return Number(e);
    } catch {
      // gone, or not ours
    }
  }
  return null;
}

/** run.sh with 2 CPU processes into outDir; resolves with its exit code and stderr. */
function launch(dir: string, outDir: string, env: Record<string, string> = {}): { done: Promise<{ code: number | null; stderr: string }> } {
  const child = spawn('bash', [join(dir, 'run.sh'), '--out', outDir, '--device', 'cpu'], {
    env: { ...process.env, NPROC: '2', PYTHON: PY, OMP_NUM_THREADS: '1', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  const timer = setTimeout(() => child.kill('SIGKILL'), 240_000);
  return {
    done: new Promise((resolve) => child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    })),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(missing !== null)('kiln scale: a killed worker', () => {
  it('torchrun restarts the job, which resumes from the last checkpoint on the same curve', async () => {
    const dir = join(root, 'scale');
    const made = await runKiln(['scale', '--preset', 'tiny', '--set', 'steps=12', '--set', 'checkpointEvery=3',
      '--set', 'evalBatches=200', '--data', 'names', '--out', dir]);
    expect(made.code, made.stderr).toBe(0);
    expect(readFileSync(join(dir, 'run.sh'), 'utf8')).toMatch(/--max_restarts "\$\{MAX_RESTARTS:-3\}"/);

    const killedDir = join(root, 'killed');
    const wholeDir = join(root, 'whole');
    // The killed job pauses 0.25 s after each step so that the kill lands mid-run.
    const killed = launch(dir, killedDir, { KILN_SCALE_STEP_DELAY_S: '0.25' });
    const whole = launch(dir, wholeDir);

    let killedAt = -1;
    const deadline = Date.now() + 180_000;
    while (killedAt < 0 && Date.now() < deadline) {
      await sleep(25);
      const logged = rows(killedDir);
      const last = logged.length ? logged[logged.length - 1].step : 0;
      if (last < 5 || !existsSync(join(killedDir, 'checkpoints', 'step_3'))) continue;
      const pid = workerPid(killedDir, 1);
      if (pid === null) continue;
      process.kill(pid, 'SIGKILL');
      killedAt = last;
    }
    expect(killedAt, 'rank 1 was killed after step 5 was logged').toBeGreaterThanOrEqual(5);
    expect(killedAt, 'and before the end').toBeLessThan(12);

    const [k, w] = await Promise.all([killed.done, whole.done]);
    expect(w.code, w.stderr.slice(-3000)).toBe(0);
    expect(k.code, k.stderr.slice(-3000)).toBe(0);
    expect(k.stderr).toMatch(/from step 0 of 12/);
    const resumed = /resuming from \S*step_(\d+)/.exec(k.stderr);
    expect(resumed, k.stderr.slice(-3000)).not.toBeNull();
    expect([3, 6]).toContain(Number(resumed![1]));
    expect(k.stderr).toMatch(new RegExp(`from step ${resumed![1]} of 12`));

    const a = rows(killedDir);
    const b = rows(wholeDir);
    expect(a.map((r) => r.step)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    expect(b.map((r) => r.step)).toEqual(a.map((r) => r.step));
    let worst = 0;
    for (let i = 0; i < 12; i++) worst = Math.max(worst, Math.abs(a[i].loss - b[i].loss));
    expect(worst, 'worst loss difference').toBeLessThan(1e-6);
    expect(Math.abs(a[11].val_loss! - b[11].val_loss!)).toBeLessThan(1e-6);
    expect(readdirSync(join(killedDir, 'checkpoints')).filter((n) => n.startsWith('.tmp'))).toEqual([]);
    console.log(`scale-restart: rank 1 killed after step ${killedAt}, resumed from step_${resumed![1]}, worst loss difference ${worst}`);
  }, 300_000);
});
