// `kiln train` and the device errors of a backend mid-run: a lost device (the run can
// go on from its checkpoint) gets a hint about --resume (tests/gpu/cli-device-lost.test.ts
// loses a real one); any other device error, e.g. a buffer the GPU cannot allocate when
// the first step builds its graph, keeps the backend's own advice. The backend is the CPU
// reference failing its Nth step with the given error, so no GPU is needed.
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { StepHyper, StepStats } from '../../src/backends/backend.ts';
import type { Batch } from '../../src/core/data.ts';
import type { ErrorCode } from '../../src/core/errors.ts';
import { expectKilnError, namesText, runKiln, tempDir } from '../helpers/cli.ts';

/** The step (1-based, within one kiln run) that fails, and how. */
const fail = vi.hoisted(() => ({ atStep: 0, code: 'device' as ErrorCode, message: '', hint: '' }));

vi.mock('../../src/cli/backends.ts', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../src/cli/backends.ts')>();
  // Imported here: a vi.mock factory runs before the file's own imports.
  const { CpuBackend } = await import('../../src/backends/cpu.ts');
  const { KilnError } = await import('../../src/core/errors.ts');
  class FailingBackend extends CpuBackend {
    private steps = 0;
    override async step(batch: Batch, hp: StepHyper): Promise<StepStats> {
      if (++this.steps === fail.atStep) throw new KilnError(fail.code, fail.message, fail.hint);
      return super.step(batch, hp);
    }
  }
  return { ...real, createBackend: async () => new FailingBackend() };
});

let root: string;
let names: string;

beforeAll(() => {
  root = tempDir('kiln-device-errors-');
  names = join(root, 'names.txt');
  writeFileSync(names, namesText(3000));
});

afterAll(() => {
  fail.atStep = 0;
  rmSync(root, { recursive: true, force: true });
});

const train = (out: string) =>
  runKiln(['train', '--preset', 'tiny', '--set', 'checkpointEvery=2', '--data', names, '--out', out, '--steps', '6']).finally(() => (fail.atStep = 0));

describe('kiln train and device errors mid-run', () => {
  it('a lost device after a checkpoint: exit 3 and a hint to --resume from it', async () => {
    Object.assign(fail, { atStep: 4, code: 'device_lost', message: 'the GPU device was lost: test', hint: 'resume from the last checkpoint' });
    const e = expectKilnError(await train(join(root, 'lost')), 3, /the GPU device was lost/);
    expect(e.hint).toMatch(/run the same command with --resume: it continues from the last checkpoint in .*checkpoint\.safetensors/);
  });

  it('any other device error keeps the backend\'s own hint', async () => {
    Object.assign(fail, { atStep: 4, code: 'device', message: 'could not allocate the activations on the GPU: out of memory', hint: 'use a smaller model or batchSize' });
    const e = expectKilnError(await train(join(root, 'oom')), 3, /could not allocate the activations/);
    expect(e.hint).toBe('use a smaller model or batchSize');
  });
});
