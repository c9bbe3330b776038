// `kiln bench`: training throughput per backend and preset, one JSON line per
// measurement. Data are random tokens (throughput does not depend on them), so the
// benchmark needs no files; speed is never asserted in tests, only recorded.
import { KilnError } from '../core/errors.ts';
import { modelSpec, resolveModel } from '../core/model-spec.ts';
import { findPreset, PRESET_NAMES } from '../core/presets.ts';
import { Rng } from '../core/rng.ts';
import { BatchSampler } from '../core/data.ts';
import { stepHyper } from '../train/trainer.ts';
import { initialState } from '../train/prepare.ts';
import { createBackend, parseBackendName } from './backends.ts';

export interface BenchFlags {
  backend?: string;
  preset?: string;
  steps?: string;
  vocab?: string;
}

export async function benchCommand(flags: BenchFlags): Promise<number> {
  const backends = (flags.backend ?? 'cpu,webgpu').split(',').map((b) => parseBackendName(b.trim()));
  const presets = (flags.preset ?? 'tiny,names').split(',').map((p) => p.trim());
  const steps = Number(flags.steps ?? 5);
  if (!Number.isInteger(steps) || steps < 1) throw new KilnError('usage', `--steps ${flags.steps} is not a positive whole number`, 'e.g. --steps 5');
  const vocab = Number(flags.vocab ?? 65);
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
        const t0 = performance.now();
        for (let i = 0; i < steps; i++) await backend.step(batch(), stepHyper(config, i + 1));
        const ms = (performance.now() - t0) / steps;
        const tokensPerStep = config.batchSize * config.blockSize * config.gradAccum;
        const dispatches = (backend as { dispatchesPerStep?: number }).dispatchesPerStep;
        const stats = dispatches !== undefined ? { dispatches_per_step: dispatches } : {};
        process.stdout.write(JSON.stringify({
          bench: 'train', backend: b, preset: name, params: modelSpec(model).numParams, device: backend.info.device,
          ms_per_step: +ms.toFixed(3), tokens_per_s: +((tokensPerStep * 1000) / ms).toFixed(1), steps, ...stats,
        }) + '\n');
      } finally {
        backend.dispose();
      }
    }
  }
  return 0;
}
