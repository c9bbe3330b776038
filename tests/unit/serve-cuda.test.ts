// `kiln serve --backend cuda`: the page's GPU choice trains on the CUDA backend. On the
// SIMT emulation (KILN_CUDA_FLAVOUR=emulation, no GPU here) environment() says CUDA and
// names the emulation, a tiny run on the 'webgpu' (GPU) slot trains step for step as the
// same run on the CPU slot does (f32), and its folder's checkpoint passes `kiln eval`.
// Without the emulation, on a machine with no NVIDIA GPU, it exits 3 with one line.
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LAB_DIR_ENV } from '../../src/cli/serve-command.ts';
import type { RunConfig } from '../../src/core/config.ts';
import { findPreset } from '../../src/core/presets.ts';
import { resolveModel } from '../../src/core/model-spec.ts';
import type { ConfigFit, DataSummary, LabEnvironment, LabMetrics, RunInfo } from '../../src/worker/api.ts';
import { cudaFlavour } from '../cuda/helpers.ts';
import { expectKilnError, runKiln, spawnKiln, tempDir } from '../helpers/cli.ts';
import { Page, URL_LINE } from '../helpers/serve-page.ts';

const tiny = (fields: Partial<RunConfig>): RunConfig => ({ ...findPreset('tiny')!.config, ...fields });

/** Sets these environment variables (undefined: unset) around `f`. */
async function withEnv<T>(vars: Record<string, string | undefined>, f: () => T | Promise<T>): Promise<T> {
  const before = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  for (const [k, v] of Object.entries(vars)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  try {
    return await f();
  } finally {
    for (const [k, v] of Object.entries(before)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

function folderOf(out: string, id: string): string {
  const name = readdirSync(out).find((f) => f.endsWith(`-${id.slice(0, 8)}`));
  if (!name) throw new Error(`no folder for run ${id} in ${out}: ${readdirSync(out).join(', ')}`);
  return join(out, name);
}

let dir: string;
let lab: string;
const children: ChildProcess[] = [];

beforeAll(() => {
  dir = tempDir('kiln-serve-cuda-');
  lab = join(dir, 'lab');
  mkdirSync(lab);
  writeFileSync(join(lab, 'index.html'), '<!doctype html><title>stand-in</title>\n');
});

afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const gpu = cudaFlavour('cuda');
const hasGpu = !('reason' in gpu);

describe('kiln serve --backend cuda without a usable GPU', () => {
  it.skipIf(hasGpu)('exits 3 with one line saying what is missing', async () => {
    const r = await withEnv({ KILN_CUDA_FLAVOUR: undefined, [LAB_DIR_ENV]: lab }, () =>
      runKiln(['serve', '--backend', 'cuda', '--out', join(dir, 'no-gpu'), '--port', '0']));
    const e = expectKilnError(r, 3, /CUDA|NVIDIA/);
    expect(e.message).toMatch(/not built|no NVIDIA GPU (visible|usable)/);
    expect(e.hint).toMatch(/npm run build:cuda|nvidia-smi|driver/);
  });
});

const emu = cudaFlavour('emulation');
const emuOk = !('reason' in emu);

describe.skipIf(!emuOk)(`kiln serve --backend cuda on the CUDA emulation${emuOk ? '' : `: ${'reason' in emu ? emu.reason : ''}`}`, () => {
  it('says CUDA, trains the GPU slot as the CPU slot does (f32), and its checkpoint passes kiln eval', async () => {
    const out = join(dir, 'runs');
    const p = await withEnv({ KILN_CUDA_FLAVOUR: 'emulation', [LAB_DIR_ENV]: lab }, () =>
      spawnKiln(['serve', '--backend', 'cuda', '--out', out, '--port', '0', '--no-tensorboard']));
    children.push(p.child);
    const deadline = Date.now() + 60_000;
    let m: RegExpExecArray | null = null;
    while (!(m = URL_LINE.exec(p.output().stdout))) {
      if (p.child.exitCode !== null || Date.now() > deadline) throw new Error(`kiln serve printed no URL:\n${p.output().stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(p.output().stderr).toContain('kiln serve: GPU: SIMT emulation (CPU) (CUDA');
    const page = await Page.open(Number(m[2]), m[3]);
    const env = await page.call<LabEnvironment>('environment');
    expect(env).toMatchObject({ webgpu: true, gpuApi: 'cuda', device: 'SIMT emulation (CPU) (CUDA)' });
    expect(env.limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
    expect(env.limits.maxBufferSize).toBe(env.limits.maxStorageBufferBindingSize);
    await page.call('subscribe');

    const config = tiny({ steps: 4, checkpointEvery: 4, evalEvery: 2 });
    // The page's memory figure for the GPU slot is the addon's own plan (what CudaBackend
    // allocates), not WebGPU's buffer plan.
    const fit = await page.call<ConfigFit>('checkConfig', config, 27, 'webgpu');
    const { CudaBackend } = await import('../../src/backends/cuda/backend.ts');
    const planner = await withEnv({ KILN_CUDA_FLAVOUR: 'emulation' }, async () => new CudaBackend({ flavour: 'emulation' }));
    expect(fit.memoryBytes).toBe(planner.memoryBytes(resolveModel(config, 27), config.batchSize));
    planner.dispose();
    const train = async (slot: 'webgpu' | 'cpu'): Promise<{ info: RunInfo; metrics: LabMetrics[] }> => {
      const seen = page.metrics().length;
      const data = await page.call<DataSummary>('prepareData', { kind: 'bundled', id: 'names' }, config);
      const info = await page.call<RunInfo>('createRun', { preset: 'tiny', config, data: data.ref }, slot);
      const from = page.events.length;
      await page.call('start');
      await page.until(`${slot}: step 4 saved`, () => {
        const s = page.events.slice(from).findLast((e) => e.type === 'status');
        return s?.type === 'status' && s.status.phase === 'done' && s.status.savedStep === 4 && !s.status.saving;
      }, 300_000);
      return { info, metrics: page.metrics().slice(seen) };
    };
    const onGpu = await train('webgpu');
    expect(onGpu.info).toMatchObject({ backend: 'webgpu', device: 'SIMT emulation (CPU)' });
    const onCpu = await train('cpu');
    expect(onGpu.metrics.map((x) => x.step)).toEqual([1, 2, 3, 4]);
    expect(onCpu.metrics.map((x) => x.step)).toEqual([1, 2, 3, 4]);
    for (let i = 0; i < 4; i++) {
      expect(Math.abs(onGpu.metrics[i].loss - onCpu.metrics[i].loss)).toBeLessThan(1e-4);
      expect(Math.abs(onGpu.metrics[i].grad_norm - onCpu.metrics[i].grad_norm)).toBeLessThan(1e-4);
    }
    await page.close();

    const scored = await runKiln(['eval', '--checkpoint', join(folderOf(out, onGpu.info.id), 'checkpoint.safetensors'), '--backend', 'cpu']);
    expect(scored.code, scored.stderr).toBe(0);
    expect(JSON.parse(scored.stdout)).toMatchObject({ step: 4, split: 'val' });

    p.child.kill('SIGINT');
    const exit = await p.exit;
    expect(exit.code, p.output().stderr).toBe(130);
  }, 600_000);
});
