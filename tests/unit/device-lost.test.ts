// A GPU lost in the middle of `kiln train` (driver reset, sleep, another process): the
// run stops with the device error (exit 3) and a hint that says how to get the work
// back from what is on disk; --resume then finishes the same run as one that never
// lost its device. The lost device is the CPU reference failing its Nth step the way
// the WebGPU backend does (a 'device' KilnError), so the test needs no GPU.
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { StepHyper, StepStats } from '../../src/backends/backend.ts';
import type { Batch } from '../../src/core/data.ts';
import { expectKilnError, namesText, readMetrics, runKiln, tempDir } from '../helpers/cli.ts';

/** The step (counted from 1 within one kiln run) at which the device goes; null: never. */
const gpu = vi.hoisted(() => ({ loseAtStep: null as number | null }));

vi.mock('../../src/cli/backends.ts', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../src/cli/backends.ts')>();
  // Imported here: a vi.mock factory runs before the file's own imports.
  const { CpuBackend } = await import('../../src/backends/cpu.ts');
  const { KilnError } = await import('../../src/core/errors.ts');
  class LosingBackend extends CpuBackend {
    private steps = 0;
    override async step(batch: Batch, hp: StepHyper): Promise<StepStats> {
      if (++this.steps === gpu.loseAtStep) throw new KilnError('device', 'the GPU device was lost: test', 'resume from the last checkpoint');
      return super.step(batch, hp);
    }
  }
  return { ...real, createBackend: async () => new LosingBackend() };
});

let root: string;
let names: string;
const SETTINGS = ['--preset', 'tiny', '--set', 'checkpointEvery=3', '--set', 'evalEvery=3'];

beforeAll(() => {
  root = tempDir('kiln-device-lost-');
  names = join(root, 'names.txt');
  writeFileSync(names, namesText(3000));
});

afterAll(() => {
  gpu.loseAtStep = null;
  rmSync(root, { recursive: true, force: true });
});

async function train(out: string, ...more: string[]) {
  return runKiln(['train', ...SETTINGS, '--data', names, '--out', out, ...more]);
}

describe('kiln train when the GPU is lost', () => {
  it('after a checkpoint: exit 3, a hint to --resume, and --resume finishes the same run', async () => {
    const straight = join(root, 'straight');
    expect((await train(straight, '--steps', '8')).code).toBe(0);

    const dir = join(root, 'lost');
    gpu.loseAtStep = 5;
    const r = await train(dir, '--steps', '8').finally(() => (gpu.loseAtStep = null));
    const e = expectKilnError(r, 3, /the GPU device was lost/);
    expect(e.hint).toMatch(/run the same command with --resume: it continues from the last checkpoint in .*checkpoint\.safetensors/);

    const again = await train(dir, '--steps', '8', '--resume');
    expect(again.code, again.stderr).toBe(0);
    expect(readMetrics(dir).map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(readMetrics(dir).map((m) => m.loss)).toEqual(readMetrics(straight).map((m) => m.loss));
  });

  it('before the first checkpoint: the hint does not send the user to --resume', async () => {
    const dir = join(root, 'lost-early');
    gpu.loseAtStep = 2;
    const r = await train(dir, '--steps', '8').finally(() => (gpu.loseAtStep = null));
    const e = expectKilnError(r, 3, /the GPU device was lost/);
    expect(e.hint).toMatch(/run the same command again \(no checkpoint had been saved yet/);
    expect(e.hint).not.toMatch(/--resume/);
    const rerun = await train(dir, '--steps', '4');
    expect(rerun.code, rerun.stderr).toBe(0);
  });
});
