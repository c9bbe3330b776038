// Ctrl-C under `kiln train --backend webgpu`: the step on the GPU is awaited, the run
// stops within one step of the signal (not at the next evaluation or checkpoint), saves
// a loadable checkpoint and exits 130. The CPU case is in tests/unit/cli.test.ts.
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { decodeCheckpoint } from '../../src/core/checkpoint.ts';
import { gpuHarness } from '../helpers/gpu.ts';
import { bytesOf, interruptTrain, namesText, readMetrics, tempDir } from '../helpers/cli.ts';

const h = await gpuHarness();
const root = tempDir('kiln-interrupt-');
const names = join(root, 'names.txt');
writeFileSync(names, namesText(3000));
const children: Parameters<typeof interruptTrain>[3] = [];

afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe.skipIf(typeof h === 'string')('kiln train --backend webgpu: Ctrl-C', () => {
  it('stops within one step between evaluations and checkpoints, and saves', async () => {
    const dir = join(root, 'run');
    const r = await interruptTrain(['--preset', 'tiny', '--backend', 'webgpu', '--data', names, '--steps', '1000',
      '--set', 'evalEvery=1000', '--set', 'checkpointEvery=1000', '--set', 'logEvery=1'], dir, 5, children);
    expect(r.signal, r.stderr).toBeNull();
    expect(r.code, r.stderr).toBe(130);
    const ckpt = await decodeCheckpoint(bytesOf(join(dir, 'checkpoint.safetensors')));
    // Steps in flight on the GPU (the backend pipelines up to two) finish; nothing after them.
    expect(ckpt.step).toBeGreaterThanOrEqual(r.linesAtSignal);
    expect(ckpt.step).toBeLessThanOrEqual(r.linesAtSignal + 3);
    expect(ckpt.state.m).not.toBeNull();
    expect(readMetrics(dir).map((m) => m.step)).toEqual(Array.from({ length: ckpt.step }, (_, i) => i + 1));
  });
});
