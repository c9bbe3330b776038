// `kiln bench` (what `npm run bench` runs): one JSON line per backend and preset with
// throughput, and for WebGPU the pipelined and one-at-a-time step times, dispatches,
// host recording time and shader variant; --profile adds per-family GPU times that add
// up to their total. Values are checked for sense, never for speed.
import { describe, expect, it } from 'vitest';
import { runKiln } from '../helpers/cli.ts';
import { gpuHarness } from '../helpers/gpu.ts';

interface Line {
  bench: string;
  backend: string;
  preset: string;
  [k: string]: unknown;
}

const h = await gpuHarness();

describe('kiln bench', () => {
  if (typeof h === 'string') {
    it.skip(`kiln bench: ${h}`, () => {});
    return;
  }

  it('prints train lines for cpu and webgpu and, with --profile, per-family GPU times', async () => {
    const r = await runKiln(['bench', '--backend', 'cpu,webgpu', '--preset', 'tiny', '--steps', '2', '--profile']);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Line);
    const train = (b: string) => lines.find((l) => l.bench === 'train' && l.backend === b)!;

    const cpu = train('cpu');
    expect(cpu).toMatchObject({ preset: 'tiny', steps: 2, params: 28064, batch_size: 4, grad_accum: 1 });
    // The shape measured, for tools that time the same model elsewhere (bench/gpu/torch_speed.py).
    expect(cpu.model).toEqual({ vocabSize: 65, blockSize: 16, nLayer: 2, nHead: 2, nEmbd: 32 });
    expect(cpu.tokens_per_s as number).toBeGreaterThan(0);
    // tokens/s is the tiny preset's 4 x 16 tokens per step over ms_per_step.
    expect(cpu.tokens_per_s as number).toBeCloseTo((4 * 16 * 1000) / (cpu.ms_per_step as number), -1);
    expect(cpu).not.toHaveProperty('in_flight');
    // The cpu backend cannot be profiled: a skip line, not a failure.
    expect(lines.find((l) => l.bench === 'profile' && l.backend === 'cpu')).toMatchObject({ skipped: expect.stringMatching(/no profiler/) });

    const gpu = train('webgpu');
    expect(gpu).toMatchObject({ preset: 'tiny', steps: 2, in_flight: 2, dispatches_per_step: 76 });
    for (const k of ['ms_per_step', 'sync_ms_per_step', 'record_ms', 'tokens_per_s']) expect(gpu[k] as number, k).toBeGreaterThan(0);
    expect(['subgroups', 'fallback']).toContain(gpu.shader_variant);

    const prof = lines.filter((l) => l.bench === 'profile' && l.backend === 'webgpu');
    if (!h.gpu.hasTimestamps) {
      expect(prof).toEqual([expect.objectContaining({ skipped: expect.stringMatching(/timestamp-query/) })]);
      return;
    }
    const total = prof.find((l) => l.family === 'total')!;
    const families = prof.filter((l) => l.family !== 'total');
    expect(families.map((l) => l.family)).toContain('matmul');
    // Matmul and flash attention count their flops: a rate (never Infinity or NaN); the rest do not.
    for (const l of families) {
      if (l.family === 'matmul' || l.family === 'attention') expect(Number.isFinite(l.gflops) && (l.gflops as number) > 0, `${l.family} gflops`).toBe(true);
      else expect(l, String(l.family)).not.toHaveProperty('gflops');
    }
    expect(families.reduce((a, l) => a + (l.dispatches as number), 0)).toBe(76);
    expect(total.dispatches).toBe(76);
    expect(families.reduce((a, l) => a + (l.ms as number), 0)).toBeCloseTo(total.ms as number, 2);
    // Per label: the same dispatches and time, split finer (c_proj's GELU variants apart).
    const kernels = lines.filter((l) => l.bench === 'profile_kernel' && l.backend === 'webgpu');
    expect(kernels.reduce((a, l) => a + (l.dispatches as number), 0)).toBe(76);
    expect(kernels.reduce((a, l) => a + (l.ms as number), 0)).toBeCloseTo(total.ms as number, 2);
    const labels = kernels.map((l) => l.label);
    expect(labels).toEqual(expect.arrayContaining(['matmul_a4_b4', 'matmul_a4_b4_gelu', 'matmul_a4_b4_dgelu', 'classifier_softmax']));
    expect(new Set(labels).size).toBe(labels.length);
    expect(total.step_ms as number).toBeGreaterThan(0);
  });
});
