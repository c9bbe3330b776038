// `kiln bench`: training throughput per backend and preset, one JSON line per
// measurement. Data are random tokens (throughput does not depend on them), so the
// benchmark needs no files; speed is never asserted in tests, only recorded.
// --profile adds, per backend and preset, one more step timed dispatch by dispatch
// (WebGpuBackend.profileStep) and one JSON line per kernel family, then a total line.
import { KilnError } from '../core/errors.ts';
import { flopsPerToken, modelSpec, resolveModel } from '../core/model-spec.ts';
import { findPreset, PRESET_NAMES } from '../core/presets.ts';
import { Rng } from '../core/rng.ts';
import { BatchSampler } from '../core/data.ts';
import { stepHyper } from '../train/trainer.ts';
import { initialState } from '../train/prepare.ts';
import type { Backend, Batch, StepHyper } from '../backends/backend.ts';
import type { CudaBackend } from '../backends/cuda/backend.ts';
import type { StepProfile } from '../backends/webgpu/backend.ts';
import type { FamilyTime } from '../backends/webgpu/profile.ts';
import { createBackend, parseBackendName, runsOnCpu } from './backends.ts';

export interface BenchFlags {
  backend?: string;
  preset?: string;
  steps?: string;
  vocab?: string;
  profile?: boolean;
}

type Profiler = Backend & { profileStep(batch: Batch, hp: StepHyper): Promise<StepProfile> };

export async function benchCommand(flags: BenchFlags): Promise<number> {
  const backends = (flags.backend ?? 'cpu,webgpu').split(',').map((b) => parseBackendName(b.trim()));
  const presets = (flags.preset ?? 'tiny,names').split(',').map((p) => p.trim());
  const steps = Number(flags.steps ?? 5);
  if (!Number.isInteger(steps) || steps < 1) throw new KilnError('usage', `--steps ${flags.steps} is not a positive whole number`, 'e.g. --steps 5');
  const vocab = Number(flags.vocab ?? 65);
  let gemmsTimed = false;
  for (const name of presets) {
    const preset = findPreset(name);
    if (!preset) throw new KilnError('usage', `unknown preset "${name}"`, `use one of: ${PRESET_NAMES.join(', ')}`);
    const config = preset.config;
    const model = resolveModel(config, config.tokenizer === 'gpt2' ? 50257 : vocab);
    const rng = new Rng(1);
    const tokens = new Int32Array(Math.max(100_000, config.blockSize * 4)).map(() => rng.int(model.vocabSize));
    for (const b of backends) {
      let backend;
      try {
        backend = await createBackend(b);
      } catch (e) {
        process.stdout.write(JSON.stringify({ bench: 'train', backend: b, preset: name, skipped: (e as Error).message }) + '\n');
        continue;
      }
      try {
        await backend.load(model, initialState(model, 1));
        const sampler = new BatchSampler(tokens, 1);
        const batch = () => sampler.next(config.batchSize, config.blockSize, config.gradAccum);
        await backend.step(batch(), stepHyper(config, 0)); // warm-up: pipelines, allocations
        // Timed as the trainer runs steps: up to maxStepsInFlight issued ahead.
        const depth = backend.maxStepsInFlight ?? 1;
        const ms = await timeSteps(steps, depth, (i) => backend.step(batch(), stepHyper(config, i + 1)));
        // A pipelining backend is timed once more one step at a time: the difference is
        // what pipelining saves, and the last step's wall time (profileStep's stepWallMs) is
        // then a lone step's.
        const sync = depth > 1
          ? { in_flight: depth, sync_ms_per_step: +(await timeSteps(steps, 1, (i) => backend.step(batch(), stepHyper(config, steps + i + 1)))).toFixed(3) }
          : {};
        const tokensPerStep = config.batchSize * config.blockSize * config.gradAccum;
        const dispatches = (backend as { dispatchesPerStep?: number }).dispatchesPerStep;
        // Host time to encode and submit one step: what pipelining hides behind the GPU's work.
        const recordMs = (backend as { lastRecordMs?: number | null }).lastRecordMs;
        const stats = {
          ...(dispatches !== undefined ? { dispatches_per_step: dispatches } : {}),
          ...(typeof recordMs === 'number' ? { record_ms: +recordMs.toFixed(3) } : {}),
        };
        // Which WGSL variant ran (shader-variants.ts): 'subgroups', or 'fallback' (also under KILN_NO_SUBGROUPS=1).
        const variant = (backend as { shaderVariant?: string }).shaderVariant;
        const shader = variant !== undefined ? { shader_variant: variant || 'fallback' } : {};
        const toggles = (backend as { gpu?: { dawnToggles?: readonly string[] } }).gpu?.dawnToggles ?? [];
        const dawn = toggles.length ? { dawn_toggles: toggles.join(',') } : {};
        const cuda = backend.kind === 'cuda' ? cudaFields(backend as CudaBackend) : {};
        // MFU against the device's peak where Kiln knows it: FP32 (src/backends/webgpu/peaks.ts),
        // or for a bf16 CUDA run the bf16 tensor peak (src/backends/cuda/peaks.ts).
        const peak = backend.info.peakFlops;
        const mfu = peak ? { mfu: +((tokensPerStep * 1000 * flopsPerToken(model)) / ms / peak).toPrecision(4), peak_tflops: peak / 1e12 } : {};
        process.stdout.write(JSON.stringify({
          bench: 'train', backend: b, preset: name, params: modelSpec(model).numParams, device: backend.info.device,
          // The shape measured, so other tools (bench/gpu/torch_speed.py) can time the same one.
          model, batch_size: config.batchSize, grad_accum: config.gradAccum, dropout: config.dropout,
          ms_per_step: +ms.toFixed(3), tokens_per_s: +((tokensPerStep * 1000) / ms).toFixed(1), steps, ...sync, ...stats, ...shader, ...dawn, ...cuda, ...mfu,
        }) + '\n');
        // Our GEMMs against cuBLASLt, once per run, on a real GPU only (the emulation's speed means nothing).
        if (backend.kind === 'cuda' && !gemmsTimed && !runsOnCpu(backend)) {
          gemmsTimed = true;
          gemmLines(backend as CudaBackend);
        }
        if (flags.profile) await profileLines(backend, b, name, () => profiler(backend).profileStep(batch(), stepHyper(config, 2 * steps + 1)));
      } finally {
        backend.dispose();
      }
    }
  }
  return 0;
}

/** What a CUDA measurement ran with, and the device memory its model held. */
function cudaFields(b: CudaBackend): Record<string, unknown> {
  const mem = b.deviceBytes();
  return { precision: b.dtype, gemm: b.gemm, recompute: b.recompute, device_bytes: mem.total, ...(b.recompute ? { recompute_saved_bytes: mem.recomputeSaved } : {}) };
}

/** One JSON line per GEMM of this build at 4096^3 in bf16, each with its share of cuBLASLt's speed where that is built. */
function gemmLines(b: CudaBackend): void {
  const n = 4096;
  const times = b.gemmImpls().filter((impl) => impl !== 'simt').map((impl) => ({ impl, ...b.benchGemm(n, n, n, impl, 20) }));
  const lt = times.find((t) => t.impl === 'cublaslt');
  for (const t of times) {
    process.stdout.write(JSON.stringify({
      bench: 'gemm', backend: 'cuda', impl: t.impl, m: n, n, k: n, dtype: 'bf16', device: b.info.device, ms: +t.ms.toFixed(4), tflops: +t.tflops.toFixed(2),
      ...(lt && t !== lt ? { of_cublaslt: +(t.tflops / lt.tflops).toFixed(3) } : {}),
    }) + '\n');
  }
}

/** Mean wall ms per step over `steps` calls of `step`, keeping up to `depth` of them in flight. */
async function timeSteps(steps: number, depth: number, step: (i: number) => Promise<unknown>): Promise<number> {
  const inFlight: Array<Promise<unknown>> = [];
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) {
    const p = step(i);
    p.catch(() => undefined); // a rejection surfaces where it is awaited, in order
    inFlight.push(p);
    if (inFlight.length >= depth) await inFlight.shift();
  }
  await Promise.all(inFlight);
  return (performance.now() - t0) / steps;
}

function profiler(backend: Backend): Profiler {
  if (!('profileStep' in backend)) throw new KilnError('usage', `the ${backend.kind} backend has no profiler`, '--profile times WebGPU kernels');
  return backend as Profiler;
}

/** One JSON line per kernel family of one profiled step, then a total; a skip line if it cannot be profiled. */
async function profileLines(backend: Backend, b: string, preset: string, run: () => Promise<StepProfile>): Promise<void> {
  const head = { bench: 'profile', backend: b, preset };
  let p: StepProfile;
  try {
    p = await run();
  } catch (e) {
    if (!(e instanceof KilnError)) throw e;
    process.stdout.write(JSON.stringify({ ...head, skipped: e.message }) + '\n');
    return;
  }
  const r = (x: number, d = 4) => +x.toFixed(d);
  // GFLOP/s of the dispatches whose op counts its flops (matmul, flash attention): a lower bound.
  const rate = (f: FamilyTime) => {
    const gflops = f.flops > 0 && f.countedMs > 0 ? f.flops / f.countedMs / 1e6 : 0;
    const peak = backend.info.peakFlops;
    return gflops ? { gflops: r(gflops, 3), ...(peak ? { pct_peak: r((100 * gflops * 1e9) / peak, 2) } : {}) } : {};
  };
  for (const f of p.families) {
    process.stdout.write(JSON.stringify({ ...head, family: f.family, ms: r(f.ms), share: r(f.share), dispatches: f.dispatches, ...rate(f) }) + '\n');
  }
  // The same by dispatch label (e.g. matmul_8x8_a4_b4_gelu: c_proj with the GELU in its
  // loads), for telling variants of one family apart; shapes are not in the label.
  for (const f of p.labels) {
    process.stdout.write(JSON.stringify({ bench: 'profile_kernel', backend: b, preset, label: f.family, ms: r(f.ms), share: r(f.share), dispatches: f.dispatches, ...rate(f) }) + '\n');
  }
  // Per-pass overhead makes gpu ms an upper bound (src/backends/webgpu/profile.ts); step_ms is a normal step's wall time.
  process.stdout.write(JSON.stringify({
    ...head, family: 'total', ms: r(p.gpuMs), share: 1, dispatches: p.dispatches.length, device: backend.info.device,
    profiled_wall_ms: r(p.wallMs, 3), step_ms: p.stepWallMs === null ? null : r(p.stepWallMs, 3), timer_resolution_ns: p.timerResolutionNs,
  }) + '\n');
}
