// Fine-tuning from a checkpoint (src/train/init-from.ts and `kiln train --init`): the
// checkpoint decides the model's shape and tokenizer, a shorter context crops the
// position embeddings without changing what the model computes on it, and a fine-tune
// starts from what the checkpoint learned, not from scratch.
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Batch } from '../../src/backends/backend.ts';
import { CpuBackend } from '../../src/backends/cpu.ts';
import type { CheckpointData } from '../../src/core/checkpoint.ts';
import { decodeCheckpoint } from '../../src/core/checkpoint.ts';
import { withDefaults, type RunConfig } from '../../src/core/config.ts';
import { initParams, modelSpec, paramViews, type ModelConfig } from '../../src/core/model-spec.ts';
import { findPreset } from '../../src/core/presets.ts';
import { Rng } from '../../src/core/rng.ts';
import { fineTuneStart } from '../../src/train/init-from.ts';
import { randTokens } from '../helpers/finite-diff.ts';
import { expectKilnError as expectThrows } from '../helpers/kiln-error.ts';
import { bytesOf, expectKilnError, namesText, readMetrics, runKiln, tempDir } from '../helpers/cli.ts';

const MODEL: ModelConfig = { vocabSize: 13, blockSize: 12, nLayer: 2, nHead: 2, nEmbd: 16 };
const CHARS = 'abcdefghijklm'.split('');

function checkpoint(): CheckpointData {
  const config = withDefaults({ nLayer: 2, nHead: 2, nEmbd: 16, blockSize: 12, lr: 3e-3, steps: 40 });
  const params = initParams(modelSpec(MODEL), new Rng(5));
  // Trained weights are not the initialisation: make every tensor distinct (LayerNorm too).
  for (let i = 0; i < params.length; i++) params[i] += 0.01 * Math.sin(i);
  const n = modelSpec(MODEL).numParams;
  return {
    config, model: MODEL, tokenizer: { kind: 'char', chars: CHARS }, step: 40, rng: '{}',
    state: { params, m: new Float32Array(n).fill(0.5), v: new Float32Array(n).fill(0.25), step: 40 },
  };
}

function config(over: Partial<RunConfig>): RunConfig {
  return withDefaults(over, findPreset('tiny')!.config);
}

async function meanLoss(model: ModelConfig, params: Float32Array, batch: Batch): Promise<number> {
  const be = new CpuBackend();
  await be.load(model, { params, m: null, v: null, step: 0 });
  try {
    return await be.loss(batch);
  } finally {
    be.dispose();
  }
}

describe('fineTuneStart', () => {
  it('keeps the checkpoint\'s shape and tokenizer, the config\'s training settings, and starts the optimizer afresh', () => {
    const ckpt = checkpoint();
    const start = fineTuneStart(ckpt, config({ nLayer: 4, nEmbd: 64, nHead: 4, blockSize: 12, lr: 1e-4, minLr: 1e-5, seed: 9 }));
    expect(start.model).toEqual(MODEL);
    expect(start.config).toMatchObject({ nLayer: 2, nHead: 2, nEmbd: 16, vocabSize: 13, tokenizer: 'char', blockSize: 12, lr: 1e-4, seed: 9 });
    expect(start.notes.join('\n')).toMatch(/nLayer 2 \(not 4\).*nHead 2 \(not 4\).*nEmbd 16 \(not 64\)/);
    expect(start.state.m).toBeNull();
    expect(start.state.v).toBeNull();
    expect(start.state.step).toBe(0);
    expect(Array.from(start.state.params)).toEqual(Array.from(ckpt.state.params));
  });

  it('a shorter context keeps wpe\'s first rows and every other tensor, and computes the same loss on it', async () => {
    const ckpt = checkpoint();
    const start = fineTuneStart(ckpt, config({ blockSize: 5 }));
    expect(start.model.blockSize).toBe(5);
    expect(start.notes.join('\n')).toContain('context cropped to 5 of the checkpoint\'s 12 positions');
    const before = paramViews(modelSpec(MODEL), ckpt.state.params);
    const after = paramViews(modelSpec(start.model), start.state.params);
    for (const [name, v] of after) {
      const full = before.get(name)!;
      expect(Array.from(v), name).toEqual(Array.from(full.subarray(0, v.length)));
      if (name !== 'transformer.wpe.weight') expect(v.length, name).toBe(full.length);
    }
    expect(after.get('transformer.wpe.weight')!.length).toBe(5 * 16);
    // Causal attention: on 5-token sequences the 12-position model and the cropped one agree.
    const rng = new Rng(3);
    const batch: Batch = { inputs: randTokens(15, 13, rng), targets: randTokens(15, 13, rng), B: 3, T: 5, microBatches: 1 };
    expect(await meanLoss(start.model, start.state.params, batch)).toBe(await meanLoss(MODEL, ckpt.state.params, batch));
  });

  it('a preset\'s longer context gives way to the checkpoint\'s positions; an explicit one is an error', () => {
    const start = fineTuneStart(checkpoint(), config({ blockSize: 64 }));
    expect(start.model.blockSize).toBe(12);
    expect(start.notes.join('\n')).toContain('blockSize 12');
    const e = expectThrows(() => fineTuneStart(checkpoint(), config({ blockSize: 64 }), new Set(['blockSize'])), 'config', /only 12 positions/);
    expect(e.hint).toContain('at most 12');
  });

  it('asking with --set for another shape or tokenizer than the checkpoint\'s is an error that says why', () => {
    const e = expectThrows(() => fineTuneStart(checkpoint(), config({ nEmbd: 64, nHead: 4 }), new Set(['nEmbd'])), 'config', /--set nEmbd=64: .* nEmbd 16/);
    expect(e.hint).toContain('without --init');
    expectThrows(() => fineTuneStart(checkpoint(), config({ tokenizer: 'bpe' }), new Set(['tokenizer'])), 'config', /tokenizer char/);
  });
});

describe('kiln train --init', () => {
  let root: string;
  let text: string;
  let base: string;

  beforeAll(async () => {
    root = tempDir('kiln-init-');
    text = join(root, 'names.txt');
    writeFileSync(text, namesText(3000));
    base = join(root, 'base');
    const r = await runKiln(['train', '--preset', 'tiny', '--steps', '60', '--set', 'lr=3e-3', '--data', text, '--out', base]);
    expect(r.code, r.stderr).toBe(0);
  });

  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('starts from the checkpoint\'s weights: its first loss is the trained model\'s, far below a fresh model\'s', async () => {
    const tuned = join(root, 'tuned');
    const r = await runKiln(['train', '--preset', 'names', '--steps', '3', '--set', 'lr=1e-4', '--set', 'minLr=1e-5', '--data', text, '--out', tuned,
      '--init', join(base, 'checkpoint.safetensors')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/--init: the model's shape comes from the checkpoint: nLayer 2 \(not 1\)/);
    const fresh = join(root, 'fresh');
    expect((await runKiln(['train', '--preset', 'tiny', '--steps', '1', '--data', text, '--out', fresh])).code).toBe(0);
    const baseLast = readMetrics(base).at(-1)!.loss;
    const tunedFirst = readMetrics(tuned)[0]!.loss;
    const freshFirst = readMetrics(fresh)[0]!.loss;
    expect(tunedFirst).toBeLessThan(freshFirst - 0.5);
    expect(Math.abs(tunedFirst - baseLast)).toBeLessThan(0.3);
    // A new run: step 0, the names preset's settings, the checkpoint's shape.
    const saved = await decodeCheckpoint(bytesOf(join(tuned, 'checkpoint.safetensors')));
    expect(saved.step).toBe(3);
    expect(JSON.parse(saved.extra!['kiln.init']!)).toEqual({ name: 'checkpoint.safetensors', step: 60 });
    expect(saved.config).toMatchObject({ nLayer: 2, nHead: 2, nEmbd: 32, lr: 1e-4, batchSize: findPreset('names')!.config.batchSize });
    // The same command with --resume continues the fine-tune (its --init noted and ignored).
    const resumed = await runKiln(['train', '--preset', 'names', '--steps', '5', '--data', text, '--out', tuned, '--resume',
      '--init', join(base, 'checkpoint.safetensors')]);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toContain('ignoring --init');
    expect(readMetrics(tuned).map((m) => m.step)).toEqual([1, 2, 3, 4, 5]);
    const later = await decodeCheckpoint(bytesOf(join(tuned, 'checkpoint.safetensors')));
    expect(later.step).toBe(5);
    expect(JSON.parse(later.extra!['kiln.init']!)).toEqual({ name: 'checkpoint.safetensors', step: 60 });
  });

  it('bad --init input: a missing file, a text file, a conflicting --set', async () => {
    const missing = expectKilnError(await runKiln(['train', '--preset', 'tiny', '--data', text, '--out', join(root, 'x1'), '--init', join(root, 'nope.safetensors')]), 2, /no such file/);
    expect(missing.hint).toContain('--init');
    expectKilnError(await runKiln(['train', '--preset', 'tiny', '--data', text, '--out', join(root, 'x2'), '--init', text]), 2, /is not a Kiln checkpoint \(it does not start with a safetensors header\)/);
    expectKilnError(await runKiln(['train', '--preset', 'tiny', '--data', text, '--out', join(root, 'x3'), '--set', 'nEmbd=64',
      '--init', join(base, 'checkpoint.safetensors')]), 1, /--set nEmbd=64: the checkpoint to fine-tune has nEmbd 32/);
  });
});
