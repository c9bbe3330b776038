// What the `kiln scale` tests share: reading a run's metrics.jsonl, the worst difference
// between two curves, and starting train_ddp.py's ranks without torchrun.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { expect } from 'vitest';
import { runKiln } from './cli.ts';

export interface ScaleRow { step: number; loss: number; val_loss?: number; lr: number; grad_norm: number }

/** The rows of DIR/metrics.jsonl (as train_ddp.py's rank 0 wrote them). */
export function scaleMetrics(dir: string): ScaleRow[] {
  return readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as ScaleRow);
}

/** The worst absolute difference of a field over the first `n` rows, with the step where it is. */
export function worstDiff(a: ScaleRow[], b: ScaleRow[], key: 'loss' | 'lr' | 'grad_norm', n: number): { diff: number; step: number } {
  let diff = 0;
  let step = 0;
  for (let i = 0; i < n; i++) {
    const d = Math.abs(a[i][key] - b[i][key]);
    if (d > diff) [diff, step] = [d, a[i].step];
  }
  return { diff, step };
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * `n` processes of `python args…` as the ranks of one job, joined through env://
 * (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), as torchrun would set them. USE_LIBUV=0:
 * Debian 13's torch 2.6 is built without libuv, which torchrun's rendezvous store asks for
 * (torchrun itself is tested with Debian 12's torch in scale.test.ts and its neighbours).
 * Resolves with the worst exit code and every rank's stderr; kills them all after timeoutMs.
 */
export async function launchRanks(python: string, n: number, args: string[], cwd: string, timeoutMs = 240_000): Promise<{ code: number; stderr: string }> {
  const port = await freePort();
  const ranks = Array.from({ length: n }, (_, rank) => new Promise<{ code: number; stderr: string }>((resolve) => {
    const child = spawn(python, args, {
      cwd,
      env: {
        ...process.env, RANK: String(rank), LOCAL_RANK: String(rank), WORLD_SIZE: String(n), LOCAL_WORLD_SIZE: String(n),
        MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), USE_LIBUV: '0', OMP_NUM_THREADS: '1',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stderr: `[rank ${rank}]\n${stderr}` });
    });
  }));
  const done = await Promise.all(ranks);
  return { code: Math.max(...done.map((d) => d.code)), stderr: done.map((d) => d.stderr).join('\n') };
}

/**
 * A train_ddp.py checkpoint folder back in Kiln: `kiln import --hf CKPT --out OUT`, then
 * `kiln eval` on the names data, checked against the val_loss the script logged (1e-4).
 */
export async function expectEvalMatches(ckpt: string, out: string, logged: number): Promise<void> {
  const imp = await runKiln(['import', '--hf', ckpt, '--out', out]);
  expect(imp.code, imp.stderr).toBe(0);
  const ev = await runKiln(['eval', '--checkpoint', out, '--data', 'names', '--backend', 'cpu']);
  expect(ev.code, ev.stderr).toBe(0);
  const { loss } = JSON.parse(ev.stdout.trim().split('\n').pop()!) as { loss: number };
  expect(Math.abs(loss - logged), `kiln eval ${loss} vs the script's val_loss ${logged}`).toBeLessThan(1e-4);
}
