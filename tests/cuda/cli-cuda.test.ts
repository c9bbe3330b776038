// `kiln` with the CUDA backend: without a usable GPU, --backend cuda exits 3 with one
// readable line; on the SIMT emulation (KILN_CUDA_FLAVOUR=emulation) it trains as the CPU
// reference does, step for step in f32, and writes checkpoints the other backends read.
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectKilnError, namesText, readMetrics, runKiln, tempDir } from '../helpers/cli.ts';
import { cudaFlavour } from './helpers.ts';

let root: string;
let names: string;

beforeAll(() => {
  root = tempDir('kiln-cuda-cli-');
  names = join(root, 'names.txt');
  writeFileSync(names, namesText(2000));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Runs kiln with KILN_CUDA_FLAVOUR set to `flavour` (or unset) for the call. */
async function kiln(argv: string[], flavour?: 'emulation'): Promise<Awaited<ReturnType<typeof runKiln>>> {
  const before = process.env.KILN_CUDA_FLAVOUR;
  if (flavour) process.env.KILN_CUDA_FLAVOUR = flavour;
  else delete process.env.KILN_CUDA_FLAVOUR;
  try {
    return await runKiln(argv);
  } finally {
    if (before === undefined) delete process.env.KILN_CUDA_FLAVOUR;
    else process.env.KILN_CUDA_FLAVOUR = before;
  }
}

const train = (out: string, more: string[], flavour?: 'emulation') =>
  kiln(['train', '--preset', 'tiny', '--data', names, '--out', out, '--steps', '4', '--set', 'evalEvery=2', ...more], flavour);

const gpu = cudaFlavour('cuda');
const hasGpu = !('reason' in gpu);

describe('kiln --backend cuda without a usable GPU', () => {
  it.skipIf(hasGpu)('exits 3 with one line saying what is missing, and writes nothing', async () => {
    const out = join(root, 'no-gpu');
    const r = await train(out, ['--backend', 'cuda']);
    const e = expectKilnError(r, 3, /CUDA|NVIDIA/);
    // Either the build is missing (say how to make it) or the GPU is (say what the runtime said).
    expect(e.message).toMatch(/not built|no NVIDIA GPU (visible|usable)/);
    expect(e.hint).toMatch(/npm run build:cuda|nvidia-smi|driver/);
    expect(existsSync(join(out, 'checkpoint.safetensors'))).toBe(false);
  });

  it('--precision and --recompute are refused for another backend, and a bad precision is named', async () => {
    expectKilnError(await train(join(root, 'p1'), ['--backend', 'cpu', '--precision', 'f32']), 1, /--precision f32 applies only to the cuda backend, not cpu/);
    expectKilnError(await train(join(root, 'p2'), ['--backend', 'webgpu', '--recompute']), 1, /--recompute applies only to the cuda backend/);
    expectKilnError(await train(join(root, 'p3'), ['--backend', 'cuda', '--precision', 'fp16']), 1, /--precision "fp16" is not a precision/);
  });
});

const emu = cudaFlavour('emulation');
const emuOk = !('reason' in emu);

describe.skipIf(!emuOk)(`kiln on the CUDA emulation${emuOk ? '' : `: ${'reason' in emu ? emu.reason : ''}`}`, () => {
  it('trains tiny as the CPU reference does (f32), and its checkpoint evaluates the same on both backends', async () => {
    const cudaOut = join(root, 'emu');
    const cpuOut = join(root, 'cpu');
    const r = await train(cudaOut, ['--backend', 'cuda', '--precision', 'f32'], 'emulation');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('kiln: backend cuda: SIMT emulation (CPU)');
    expect(existsSync(join(cudaOut, 'checkpoint.safetensors'))).toBe(true);
    expect((await train(cpuOut, ['--backend', 'cpu'])).code).toBe(0);

    const a = readMetrics(cudaOut);
    const b = readMetrics(cpuOut);
    expect(a.map((m) => m.step)).toEqual([1, 2, 3, 4]);
    for (let i = 0; i < a.length; i++) {
      expect(a[i].loss).toBeCloseTo(b[i].loss, 4);
      expect(a[i].grad_norm).toBeCloseTo(b[i].grad_norm!, 4);
      if (b[i].val_loss !== undefined) expect(a[i].val_loss).toBeCloseTo(b[i].val_loss!, 4);
    }

    const ckpt = join(cudaOut, 'checkpoint.safetensors');
    const onCpu = await kiln(['eval', '--checkpoint', ckpt, '--data', names, '--backend', 'cpu']);
    const onEmu = await kiln(['eval', '--checkpoint', ckpt, '--data', names, '--backend', 'cuda'], 'emulation');
    expect(onCpu.code, onCpu.stderr).toBe(0);
    expect(onEmu.code, onEmu.stderr).toBe(0);
    const lc = JSON.parse(onCpu.stdout) as { loss: number; tokens: number };
    const le = JSON.parse(onEmu.stdout) as { loss: number; tokens: number };
    expect(le.tokens).toBe(lc.tokens);
    expect(le.loss).toBeCloseTo(lc.loss, 4);
  });

  it('trains in bf16 with recompute and resumes from its checkpoint', async () => {
    const out = join(root, 'bf16');
    const r = await train(out, ['--backend', 'cuda', '--precision', 'bf16', '--recompute'], 'emulation');
    expect(r.code, r.stderr).toBe(0);
    // The memory the trade buys, said once: the plan without recompute less the plan with it.
    expect(r.stderr).toMatch(/to train \(--recompute saves ~\d[\d.]* [KMG]?i?B\)/);
    const first = readMetrics(out);
    expect(first).toHaveLength(4);
    for (const m of first) expect(Number.isFinite(m.loss)).toBe(true);
    const more = await kiln(['train', '--data', names, '--out', out, '--resume', '--steps', '6', '--backend', 'cuda', '--precision', 'bf16'], 'emulation');
    expect(more.code, more.stderr).toBe(0);
    expect(readMetrics(out).map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('kiln bench --backend cuda times it (JSON line)', async () => {
    const r = await kiln(['bench', '--backend', 'cuda', '--preset', 'tiny', '--steps', '1'], 'emulation');
    expect(r.code, r.stderr).toBe(0);
    const line = JSON.parse(r.stdout.trim().split('\n')[0]) as Record<string, unknown>;
    expect(line).toMatchObject({ bench: 'train', backend: 'cuda', preset: 'tiny', device: 'SIMT emulation (CPU)', precision: 'f32' });
    expect(line.tokens_per_s).toBeGreaterThan(0);
  });
});
