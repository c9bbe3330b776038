// src/core/budget.ts: what an input may cost, decided from plain numbers before anything
// is allocated, in the same words for the CLI and the lab (issue 19).
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../../src/backends/cpu.ts';
import { machineBudget } from '../../src/cli/backends.ts';
import { checkMemory } from '../../src/cli/train-command.ts';
import {
  adapterBudget, assertModelFits, checkModelCost, checkTensorBytes, estimatePlan, formatSize, nodeBudget,
} from '../../src/core/budget.ts';
import type { RunConfig } from '../../src/core/config.ts';
import { KilnError } from '../../src/core/errors.ts';
import { memoryEstimate, modelSpec, paramCount, resolveModel, type ModelConfig } from '../../src/core/model-spec.ts';
import { findPreset } from '../../src/core/presets.ts';
import { configFit } from '../../src/worker/config-fit.ts';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

function configOf(preset: string, fields: Partial<RunConfig> = {}): RunConfig {
  return { ...findPreset(preset)!.config, ...fields };
}

function thrown(f: () => unknown): KilnError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(KilnError);
    return e as KilnError;
  }
  throw new Error('expected a KilnError, nothing was thrown');
}

describe('sizes from plain numbers', () => {
  it('paramCount and estimatePlan agree with the model table and memoryEstimate', () => {
    for (const m of [
      { vocabSize: 65, blockSize: 16, nLayer: 2, nHead: 2, nEmbd: 32 },
      { vocabSize: 50257, blockSize: 1024, nLayer: 12, nHead: 12, nEmbd: 768 },
      { vocabSize: 27, blockSize: 8, nLayer: 0, nHead: 1, nEmbd: 4 },
    ]) {
      expect(paramCount(m)).toBe(modelSpec(m).numParams);
      for (const B of [1, 3, 8]) {
        const e = memoryEstimate(m, B);
        expect(estimatePlan(m, B).total).toBe(e.total);
        expect(estimatePlan(m, B).largest).toBe(e.largestTensor);
      }
    }
  });

  it('formats sizes with one decimal, past TiB', () => {
    expect(formatSize(512)).toBe('512 B');
    expect(formatSize(4 * GiB)).toBe('4.0 GiB');
    expect(formatSize(2 ** 62)).toBe('4.0 EiB');
  });
});

describe('checkModelCost', () => {
  it('the TiB link (nLayer 96, nEmbd 8192, nHead 128) against 16 GiB: refused with its size and what fits', () => {
    const config = configOf('tiny', { nLayer: 96, nEmbd: 8192, nHead: 128 });
    const model = resolveModel(config, 65);
    const cost = checkModelCost(model, config.batchSize, nodeBudget(16 * GiB));
    expect(cost.fits).toBe(false);
    expect(cost.numParams).toBe(modelSpec(model).numParams);
    const memory = cost.problems.find((p) => p.limit === 'memory')!;
    expect(memory.message).toMatch(
      /^training needs 1\.\d TiB of memory, 1\.\d TiB more than this machine's 16\.0 GiB, for 77\.\d B parameters at batch 4; nLayer \d+ × nEmbd \d+ at batch \d fits \(~[\d.]+ GiB\)$/,
    );
    // The suggestion fits, by the same numbers.
    const s = cost.suggestion!;
    const smaller: ModelConfig = { ...model, nLayer: s.nLayer, nEmbd: s.nEmbd, nHead: s.nHead };
    expect(s.nEmbd % s.nHead).toBe(0);
    expect(checkModelCost(smaller, s.batchSize, nodeBudget(16 * GiB)).fits).toBe(true);
    expect(s.memoryBytes).toBe(memoryEstimate(smaller, s.batchSize).total);
    const e = thrown(() => assertModelFits(model, config.batchSize, nodeBudget(16 * GiB)));
    expect(e.code).toBe('config');
    expect(e.message).toBe(memory.message);
    expect(e.hint).toBe('lower nLayer, nEmbd or batchSize');
  });

  it('nLayer 8 × nEmbd 4096: refused at 16 GiB, fits at 64 GiB', () => {
    const model: ModelConfig = { vocabSize: 65, blockSize: 256, nLayer: 8, nHead: 32, nEmbd: 4096 };
    const small = checkModelCost(model, 4, nodeBudget(16 * GiB));
    expect(small.fits).toBe(false);
    expect(small.problems.map((p) => p.limit)).toEqual(['memory']);
    expect(small.problems[0].message).toMatch(/^training needs 2\d\.\d GiB of memory, \d+\.\d GiB more than this machine's 16\.0 GiB, for 1\.6 B parameters at batch 4; /);
    const big = checkModelCost(model, 4, nodeBudget(64 * GiB));
    expect(big).toMatchObject({ fits: true, problems: [], suggestion: null });
    expect(big.memoryBytes).toBe(small.memoryBytes);
    // Free memory, not all of it, is what a run can use.
    expect(checkModelCost(model, 4, nodeBudget(64 * GiB, 8 * GiB)).problems[0].message).toMatch(/more than the 8\.0 GiB free on this machine \(64\.0 GiB in all\)/);
  });

  it('a 2^52-row vocabulary is refused from plain numbers, without a RangeError', () => {
    const model: ModelConfig = { vocabSize: 2 ** 52, blockSize: 64, nLayer: 1, nHead: 1, nEmbd: 16 };
    const cost = checkModelCost(model, 1, nodeBudget(64 * GiB));
    expect(cost.fits).toBe(false);
    expect(cost.suggestion).toBeNull();
    expect(cost.problems[0].message).toMatch(/^training needs [\d.]+ EiB of memory, .*; even nLayer 1 × nEmbd 16 at batch 1 needs [\d.]+ EiB$/);
    expect(thrown(() => assertModelFits(model, 1, nodeBudget(64 * GiB))).hint).toMatch(/vocabSize/);
    const e = thrown(() => checkTensorBytes(model, 1000, { model: "checkpoint's model", file: 'the file', hint: 'h' }));
    expect(e.code).toBe('checkpoint');
    expect(e.message).toMatch(/^checkpoint's model needs [\d,]+ parameters \([\d.]+ PiB\) but the file holds 1000 B of tensors$/);
  });

  it('checkTensorBytes: a file with the parameters\' bytes passes; F16 halves them', () => {
    // The checkpoint's words (checkpoint.test.ts matches them) for a crafted 96 × 8192 model over no tensors.
    const huge: ModelConfig = { vocabSize: 65, blockSize: 16, nLayer: 96, nHead: 128, nEmbd: 8192 };
    expect(thrown(() => checkTensorBytes(huge, 0, { model: "checkpoint's model", file: 'the file', hint: 'h' })).message)
      .toMatch(/model needs [\d,]+ parameters \(\d+(\.\d+)? GiB\) but the file holds 0 B of tensors/);
    const model: ModelConfig = { vocabSize: 65, blockSize: 16, nLayer: 2, nHead: 2, nEmbd: 32 };
    const n = paramCount(model);
    expect(checkTensorBytes(model, 4 * n, { model: 'm', file: 'f', hint: 'h' })).toBe(n);
    expect(() => checkTensorBytes(model, 4 * n - 1, { model: 'm', file: 'f', hint: 'h' })).toThrow(KilnError);
    expect(checkTensorBytes(model, 2 * n, { model: 'm', file: 'f', hint: 'h', bytesPerParam: 2 })).toBe(n);
    expect(thrown(() => checkTensorBytes(model, 10, { model: "config.json's model", file: 'model.safetensors', counted: 'in all', bytesPerParam: 2, hint: 'h' })).message)
      .toMatch(/^config\.json's model needs [\d,]+ parameters \([\d.]+ KiB even in F16\) but model\.safetensors holds 10 B in all$/);
  });

  it('an adapter with a 128 MiB binding refuses a model whose wte is bigger, naming the binding', () => {
    const model: ModelConfig = { vocabSize: 50257, blockSize: 64, nLayer: 2, nHead: 12, nEmbd: 768 };
    const cost = checkModelCost(model, 1, adapterBudget({ maxStorageBufferBindingSize: 128 * MiB, maxBufferSize: 2 * GiB }));
    expect(cost.fits).toBe(false);
    expect(cost.problems).toEqual([{
      limit: 'maxStorageBufferBindingSize',
      message: "the transformer.wte.weight tensor needs 147.2 MiB, 19.2 MiB more than this GPU's maxStorageBufferBindingSize of 128.0 MiB",
    }]);
    expect(cost.largestName).toBe('transformer.wte.weight');
    // Within the tab's memory; narrower fits the binding.
    expect(cost.suggestion!.nEmbd).toBeLessThan(768);
    expect(checkModelCost({ ...model, nEmbd: 384, nHead: 6 }, 1, adapterBudget({ maxStorageBufferBindingSize: 128 * MiB })).fits).toBe(true);
  });
});

describe('the lab and the CLI decide alike', () => {
  it('configFit and the CLI\'s check agree on a config at the edge of 4 GiB (same fits, same bytes)', () => {
    const base = configOf('char-shakespeare');
    const model = resolveModel(base, 65);
    const cpu = new CpuBackend();
    // The largest batch under the browser's 4 GiB, and the one above it.
    let edge = 1;
    while (cpu.memoryBytes(model, edge + 1) <= 4 * GiB) edge++;
    const mem = { free: 4 * GiB, total: 8 * GiB };
    for (const batchSize of [edge, edge + 1]) {
      const config = { ...base, batchSize, gradAccum: 1 };
      const fit = configFit(config, 65, null);
      const cli = checkModelCost(model, batchSize, machineBudget('cpu', mem), (m, b) => ({ total: cpu.memoryBytes(m, b) }));
      expect(cli.memoryBytes).toBe(fit.memoryBytes);
      expect(cli.fits).toBe(fit.fits);
      expect(fit.fits).toBe(batchSize === edge);
      let refused: KilnError | null = null;
      try {
        checkMemory((b, m) => cpu.memoryBytes(m, b), model, config, 'cpu', mem);
      } catch (e) {
        refused = e as KilnError;
      }
      expect(refused === null).toBe(fit.fits);
      if (refused) {
        // The same sentence, but for the memory's name and where it is.
        const lab = fit.problems.find((p) => p.limit === 'memory')!.message;
        const strip = (s: string) => s.replace(/ of memory.*?, for /, ' … for ').replace(/; .*$/, '');
        expect(strip(refused.message)).toBe(strip(lab));
        expect(refused.message).toMatch(/^training needs [\d.]+ GiB of memory on the cpu backend, [\d.]+ MiB more than the 4\.0 GiB free on this machine \(8\.0 GiB in all\), for /);
        expect(lab).toMatch(/^training needs [\d.]+ GiB of memory, [\d.]+ MiB more than the 4\.0 GiB a browser tab can count on, for /);
      }
    }
  });

  it('a resumed run is told it keeps its config; a fine-tune is offered only a batch', () => {
    const config = configOf('gpt2-124m');
    const model = resolveModel(config, 50257);
    const bytesAt = (b: number, m: ModelConfig) => memoryEstimate(m, b).total;
    const mem = { free: 8 * GiB, total: 16 * GiB };
    const hintOf = (origin: 'new' | 'init' | 'resume') => {
      try {
        checkMemory(bytesAt, model, config, 'cpu', mem, origin);
      } catch (e) {
        return (e as KilnError).hint;
      }
      return '';
    };
    expect(hintOf('resume')).toMatch(/^a resumed run keeps its config/);
    expect(hintOf('init')).toMatch(/^lower the batch: --set batchSize=\d+ --set gradAccum=\d+ /);
    expect(hintOf('new')).toMatch(/^lower the batch: --set batchSize=\d+ --set gradAccum=\d+ \(~[\d.]+ GiB; the same \d+ sequences per step\)$/);
  });
});
