// `kiln train --backend webgpu` when the GPU device is lost mid-run (a driver reset, a
// watchdog, a GPU taken away): exit 3 with a one-line message that says how to resume, the
// checkpoint written before the loss left intact, and --resume on a fresh device
// finishing the same run as one that was never interrupted, bit for bit. The loss is
// real: the CLI's backend factory is wrapped so that one chosen step destroys the
// backend's GPUDevice just before it is recorded.
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { decodeCheckpoint } from '../../src/core/checkpoint.ts';
import type { WebGpuBackend } from '../../src/backends/webgpu/backend.ts';
import { gpuHarness } from '../helpers/gpu.ts';
import { bytesOf, expectKilnError, namesText, readMetrics, runKiln, tempDir } from '../helpers/cli.ts';

/** The step call (1-based, counted per backend) that loses the device; 0: none. */
const lose = vi.hoisted(() => ({ atCall: 0 }));

vi.mock('../../src/cli/backends.ts', async (importOriginal) => {
  const mod = await importOriginal<typeof import('../../src/cli/backends.ts')>();
  return {
    ...mod,
    async createBackend(name: Parameters<typeof mod.createBackend>[0]) {
      const backend = await mod.createBackend(name);
      if (lose.atCall > 0 && backend.kind === 'webgpu') {
        const at = lose.atCall;
        const step = backend.step.bind(backend);
        let calls = 0;
        backend.step = (...args: Parameters<typeof step>) => {
          if (++calls === at) (backend as WebGpuBackend).gpu.device.destroy();
          return step(...args);
        };
      }
      return backend;
    },
  };
});

const h = await gpuHarness();
const root = tempDir('kiln-device-lost-');
const names = join(root, 'names.txt');
writeFileSync(names, namesText(3000));

afterAll(() => {
  lose.atCall = 0;
  rmSync(root, { recursive: true, force: true });
});

const checkpoint = (dir: string) => decodeCheckpoint(bytesOf(join(dir, 'checkpoint.safetensors')));

const train = (out: string, ...more: string[]) =>
  runKiln(['train', '--preset', 'tiny', '--backend', 'webgpu', '--set', 'checkpointEvery=2', '--set', 'evalEvery=4', '--data', names, '--out', out, ...more]);

describe('kiln train on a GPU device that is lost mid-run', () => {
  if (typeof h === 'string') {
    it.skip(`device lost: ${h}`, () => {});
    return;
  }

  it('exits 3 saying to resume, keeps the last checkpoint, and --resume finishes the same run', async () => {
    const straight = join(root, 'straight');
    const s = await train(straight, '--steps', '8');
    expect(s.code, s.stderr).toBe(0);

    const dir = join(root, 'lost');
    lose.atCall = 6;
    const r = await train(dir, '--steps', '8').finally(() => (lose.atCall = 0));
    const e = expectKilnError(r, 3, /the GPU device was lost/);
    expect(e.hint).toMatch(/run the same command with --resume: it continues from the last checkpoint in .*checkpoint\.safetensors/);
    expect((await checkpoint(dir)).step).toBe(4);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);

    const again = await train(dir, '--steps', '8', '--resume');
    expect(again.code, again.stderr).toBe(0);
    expect(readMetrics(dir).map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(readMetrics(dir).map((m) => m.loss)).toEqual(readMetrics(straight).map((m) => m.loss));
    const [a, b] = [await checkpoint(straight), await checkpoint(dir)];
    expect(b.step).toBe(8);
    expect(Buffer.from(b.state.params.buffer).equals(Buffer.from(a.state.params.buffer))).toBe(true);
  });

  it('lost before the first checkpoint: the hint says to run the command again, not to --resume', async () => {
    const dir = join(root, 'lost-early');
    lose.atCall = 1;
    const r = await train(dir, '--steps', '2').finally(() => (lose.atCall = 0));
    const e = expectKilnError(r, 3, /the GPU device was lost/);
    expect(e.hint).toMatch(/run the same command again \(no checkpoint had been saved yet/);
    expect(e.hint).not.toMatch(/--resume/);
    const rerun = await train(dir, '--steps', '2');
    expect(rerun.code, rerun.stderr).toBe(0);
  });
});
