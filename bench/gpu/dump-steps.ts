// Kiln's training trajectories over a few optimizer steps, for bench/gpu/torch_train.py:
// the independent check of what dump-grads cannot see (one gradient says nothing of the
// optimizer): AdamW (decoupled weight decay and which tensors it applies to, bias
// correction, eps), gradient clipping, micro-batch accumulation and the learning-rate
// schedule, against torch.optim.AdamW and clip_grad_norm_.
//
//   npx tsx bench/gpu/dump-steps.ts --out DIR [--preset tiny] [--vocab 27] [--steps 20]
//                                   [--batch 4] [--micro 2] [--seed 1] [--backends cpu64,cpu,webgpu]
//   node .tools/dump-steps.mjs ...            (the bundle scripts/pack-device.sh builds)
//
// The model is --preset's shape with --vocab rows, initialised as `kiln train` does;
// the schedule has a 4-step warmup and a cosine decay reaching minLr 4 steps before the
// end, so all three phases are walked; clipping at 2.0 (tiny's gradient norm moves
// between ~1.3 and ~4.7 over the run, so some steps are clipped and some not); weight decay 0.1; lr 1e-2 so that the optimizer moves the loss a lot. Batches
// are seeded random inputs with targets a fixed function of them (learnable). Each
// backend (cpu64: the reference in f64; cpu: f32; webgpu where there is an adapter)
// trains the same steps from the same parameters. Writes into DIR:
//   params0.safetensors       the initial parameters (F32, Hugging Face GPT-2 names),
//                             metadata kiln.model
//   final-<backend>.safetensors  parameters after the last step
//   steps.json                {model, B, T, micro, steps, schedule (the config fields),
//                             hyper[] (what each step used), inputs[][] and targets[][]
//                             (each step's micro-batches back to back), runs: {backend:
//                             {device, loss[], grad_norm[]}}}
// and prints one JSON line.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Backend, StepHyper, TrainState } from '../../src/backends/backend.ts';
import { CpuBackend } from '../../src/backends/cpu.ts';
import { DEFAULT_CONFIG, withDefaults } from '../../src/core/config.ts';
import { modelSpec, paramViews, resolveModel } from '../../src/core/model-spec.ts';
import { findPreset } from '../../src/core/presets.ts';
import { Rng } from '../../src/core/rng.ts';
import { encodeSafetensors } from '../../src/core/safetensors.ts';
import { initialState } from '../../src/train/prepare.ts';
import { stepHyper } from '../../src/train/trainer.ts';

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function makeBackend(name: string): Promise<Backend | string> {
  if (name === 'cpu64') return new CpuBackend({ dtype: 'f64' });
  if (name === 'cpu') return new CpuBackend();
  if (name === 'webgpu') {
    try {
      const { WebGpuBackend } = await import('../../src/backends/webgpu/backend.ts');
      return await WebGpuBackend.create();
    } catch (e) {
      return `no webgpu: ${(e as Error).message}`;
    }
  }
  throw new Error(`--backends: ${name} is not cpu64, cpu or webgpu`);
}

async function main(): Promise<void> {
  const out = flag('out');
  if (!out) throw new Error('usage: dump-steps --out DIR [--preset tiny] [--vocab 27] [--steps 20] [--batch 4] [--micro 2] [--seed 1] [--backends cpu64,cpu,webgpu]');
  const presetName = flag('preset') ?? 'tiny';
  const preset = findPreset(presetName);
  if (!preset) throw new Error(`unknown preset ${presetName}`);
  const steps = Number(flag('steps') ?? 20);
  const B = Number(flag('batch') ?? 4);
  const micro = Number(flag('micro') ?? 2);
  const seed = Number(flag('seed') ?? 1);
  const config = withDefaults({
    ...preset.config, steps, batchSize: B, gradAccum: micro, seed,
    lr: 1e-2, minLr: 1e-3, warmupSteps: 4, decaySteps: Math.max(5, steps - 4),
    weightDecay: 0.1, beta1: 0.9, beta2: 0.95, eps: 1e-8, gradClip: 2.0,
  }, DEFAULT_CONFIG);
  const model = resolveModel(config, Number(flag('vocab') ?? 27));
  const T = model.blockSize;
  const V = model.vocabSize;
  const init = initialState(model, seed);

  const rng = Rng.derive(seed, 'dump-steps');
  const n = B * T * micro;
  const inputs: Int32Array[] = [];
  const targets: Int32Array[] = [];
  for (let s = 0; s < steps; s++) {
    const x = new Int32Array(n).map(() => rng.int(V));
    inputs.push(x);
    targets.push(x.map((t) => (3 * t + 1) % V));
  }
  const hyper: StepHyper[] = Array.from({ length: steps }, (_, s) => stepHyper(config, s));

  const spec = modelSpec(model);
  const meta = { 'kiln.model': JSON.stringify(model) };
  const write = (file: string, flat: Float32Array) => {
    const views = paramViews(spec, flat);
    const tensors = spec.params.map((p) => ({ name: p.name, dtype: 'F32' as const, shape: p.shape, data: views.get(p.name)! }));
    writeFileSync(join(out, file), encodeSafetensors(tensors, meta));
  };
  mkdirSync(out, { recursive: true });
  write('params0.safetensors', init.params);

  const runs: Record<string, { device: string; loss: number[]; grad_norm: number[] } | { skipped: string } | { error: string }> = {};
  for (const name of (flag('backends') ?? 'cpu64,cpu,webgpu').split(',')) {
    const be = await makeBackend(name);
    if (typeof be === 'string') {
      runs[name] = { skipped: be };
      continue;
    }
    // A backend that fails mid-run is recorded (torch_train.py fails on it) and the others still run.
    try {
      const state: TrainState = { params: Float32Array.from(init.params), m: null, v: null, step: 0 };
      await be.load(model, state);
      const loss: number[] = [];
      const gradNorm: number[] = [];
      for (let s = 0; s < steps; s++) {
        const st = await be.step({ inputs: inputs[s], targets: targets[s], B, T, microBatches: micro }, hyper[s]);
        loss.push(st.loss);
        gradNorm.push(st.gradNorm);
      }
      write(`final-${name}.safetensors`, (await be.save()).params);
      runs[name] = { device: be.info.device, loss, grad_norm: gradNorm };
    } catch (e) {
      runs[name] = { error: (e as Error).message };
    } finally {
      be.dispose();
    }
  }

  const schedule = { lr: config.lr, minLr: config.minLr, warmupSteps: config.warmupSteps, decaySteps: config.decaySteps };
  writeFileSync(join(out, 'steps.json'), JSON.stringify({
    model, B, T, micro, steps, schedule, hyper,
    inputs: inputs.map((x) => [...x]), targets: targets.map((x) => [...x]), runs,
  }) + '\n');
  const summary = Object.fromEntries(Object.entries(runs).map(([k, r]) =>
    [k, 'loss' in r ? { first: r.loss[0], last: r.loss[steps - 1] } : r]));
  process.stdout.write(JSON.stringify({ bench: 'dump-steps', preset: presetName, model, B, T, micro, steps, params: spec.numParams, runs: summary, out }) + '\n');
}

main().catch((e) => {
  process.stderr.write(`dump-steps: ${(e as Error)?.stack ?? e}\n`);
  process.exit(1);
});
