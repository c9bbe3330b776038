// A quiet and honest terminal (issue 20): Dawn's adapter-probe warning replaced by one
// line of ours (and shown with KILN_VERBOSE); the device named plainly; heavy work
// refused or warned about before it starts, with the --set that fits; every silent
// choice said in one line; `kiln eval` scoring the whole held-out split whatever batch
// settings the file carries; `kiln sample` with a seed it says, a run's folder, and a
// text file given as a checkpoint.
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CpuBackend } from '../../src/backends/cpu.ts';
import { adapterDisplayName, LAVAPIPE_MANIFEST_GLOB, SWIFTSHADER_ICD, vulkanDriverEnv } from '../../src/backends/webgpu/device.ts';
import { fp32Peak } from '../../src/backends/webgpu/peaks.ts';
import { evalCommand } from '../../src/cli/commands.ts';
import {
  checkMemory, closestPreset, configDiff, configLine, cpuAdvice, CPU_FLOPS, decayNote,
} from '../../src/cli/train-command.ts';
import { decodeCheckpoint } from '../../src/core/checkpoint.ts';
import { splitTokens } from '../../src/core/data.ts';
import { memoryEstimate, type ModelConfig } from '../../src/core/model-spec.ts';
import { findPreset } from '../../src/core/presets.ts';
import { tokenizerFromJSON } from '../../src/core/tokenizers/index.ts';
import { scoreBatchSize, scoreTokens } from '../../src/train/eval-split.ts';
import { bytesOf, expectKilnError, namesText, runKiln, spawnKiln, tempDir } from '../helpers/cli.ts';
import type { KilnRun } from '../helpers/cli.ts';

let root: string;
let names: string;
/** A finished 6-step tiny run on the CPU. */
let trained: string;

beforeAll(async () => {
  root = tempDir('kiln-terminal-');
  names = join(root, 'names.txt');
  writeFileSync(names, namesText(3000));
  trained = join(root, 'trained');
  const r = await runKiln(['train', '--preset', 'tiny', '--steps', '6', '--backend', 'cpu', '--data', names, '--out', trained]);
  expect(r.code, r.stderr).toBe(0);
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

function train(out: string, ...more: string[]): Promise<KilnRun> {
  return runKiln(['train', '--backend', 'cpu', '--data', names, '--out', join(root, out), ...more]);
}

/** Lines of stderr that start with "kiln:" and contain `part`. */
function linesWith(stderr: string, part: string): string[] {
  return stderr.split('\n').filter((l) => l.startsWith('kiln:') && l.includes(part));
}

/** Runs evalCommand in-process with stdout captured (for flags main.ts may not pass yet). */
async function evalJson(flags: Parameters<typeof evalCommand>[0]): Promise<{ loss: number; tokens: number; split: string; step: number }> {
  const r = await runKilnFn(() => evalCommand(flags));
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { loss: number; tokens: number; split: string; step: number };
}

async function runKilnFn(fn: () => Promise<number>): Promise<KilnRun> {
  let stdout = '';
  let stderr = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((c: unknown) => ((stdout += String(c)), true));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((c: unknown) => ((stderr += String(c)), true));
  try {
    return { code: await fn(), stdout, stderr };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

describe('the device, named plainly', () => {
  it('SwiftShader is called a CPU emulation; real GPUs by their product name and API', () => {
    const swiftshader = { vendor: 'google', architecture: 'swiftshader', device: 'swiftshader-device-subzero-', description: 'SwiftShader driver 5.0.0' };
    expect(adapterDisplayName(swiftshader, true, 'Vulkan')).toBe('SwiftShader (a CPU emulation of a GPU: correct but slow)');
    expect(adapterDisplayName({ vendor: 'mesa', device: 'llvmpipe-llvm-15-0-6-256-bits', description: 'Mesa 22.3.6' }, true)).toBe(
      'Mesa lavapipe (a CPU emulation of a GPU: correct but slow)');
    // Dawn gives the device as a WebGPU identifier (lowercase, hyphens) and the driver as the description.
    const h100 = { vendor: 'nvidia', architecture: 'hopper', device: 'nvidia-h100-80gb-hbm3', description: 'NVIDIA 550.54.15' };
    expect(adapterDisplayName(h100, false, 'Vulkan')).toBe('NVIDIA H100 80GB HBM3 (Vulkan)');
    expect(adapterDisplayName({ vendor: 'nvidia', architecture: 'ampere', device: 'nvidia-geforce-rtx-3090-ti', description: 'NVIDIA 535.1' }, false, 'Vulkan'))
      .toBe('NVIDIA GeForce RTX 3090 Ti (Vulkan)');
    expect(adapterDisplayName({ vendor: 'nvidia', architecture: 'hopper', device: '0x2335', description: 'NVIDIA H200' }, false, 'Vulkan')).toBe('NVIDIA H200 (Vulkan)');
    expect(adapterDisplayName({ vendor: 'amd', architecture: 'rdna-3', device: 'amd-radeon-rx-7900-xtx-radv-navi31-', description: 'radv Mesa 23.2.1' }, false, 'Vulkan'))
      .toBe('AMD Radeon RX 7900 XTX RADV NAVI31 (Vulkan)');
    // A browser that hides the chip: vendor and architecture.
    expect(adapterDisplayName({ vendor: 'apple', architecture: 'metal-3' }, false)).toBe('Apple Metal 3 GPU');
    expect(adapterDisplayName({}, false)).toBe('A WebGPU adapter');
  });

  it('adapterName keeps what peaks.ts matches (the display name is separate)', () => {
    // device.ts joins vendor, architecture, device and description: the H100 SXM's peak is found in it.
    expect(fp32Peak('nvidia hopper nvidia-h100-80gb-hbm3 NVIDIA 550.54.15')?.name).toBe('NVIDIA H100 SXM');
  });
});

describe('Vulkan drivers: SwiftShader in place of the lavapipe Dawn rejects', () => {
  it('adds SwiftShader and leaves lavapipe out where SwiftShader is installed; a user\'s own choice stands', () => {
    expect(vulkanDriverEnv({}, true).set).toEqual({ VK_ADD_DRIVER_FILES: SWIFTSHADER_ICD, VK_LOADER_DRIVERS_DISABLE: LAVAPIPE_MANIFEST_GLOB });
    expect(vulkanDriverEnv({}, false).set).toEqual({});
    for (const k of ['VK_ICD_FILENAMES', 'VK_DRIVER_FILES', 'VK_ADD_DRIVER_FILES', 'VK_LOADER_DRIVERS_SELECT', 'VK_LOADER_DRIVERS_DISABLE'])
      expect(vulkanDriverEnv({ [k]: '/x.json' }, true).set, k).toEqual({});
  });

  const swiftshader = existsSync(SWIFTSHADER_ICD);
  const lavapipe = existsSync('/usr/share/vulkan/icd.d') && readdirSync('/usr/share/vulkan/icd.d').some((f) => f.startsWith('lvp_icd'));
  const DAWN_WARNING = /Warning: |node-webgpu|PhysicalDeviceVk/;

  it.skipIf(!swiftshader)('a default-backend command prints one line of ours, and none of Dawn\'s', async () => {
    const p = spawnKiln(['sample', '--checkpoint', join(trained, 'checkpoint.safetensors'), '--tokens', '5', '--seed', '1']);
    const { code } = await p.exit;
    const { stderr } = p.output();
    expect(code, stderr).toBe(0);
    expect(stderr).not.toMatch(DAWN_WARNING);
    // This machine has no hardware GPU: the choice of the CPU is said once.
    expect(stderr.trim().split('\n')).toEqual([
      'kiln: no hardware GPU found (only SwiftShader, a CPU emulation, slower than the CPU backend): using the CPU backend',
    ]);
  });

  it.skipIf(!swiftshader)('--backend webgpu on SwiftShader says it is a CPU emulation, slower than --backend cpu', async () => {
    const p = spawnKiln(['sample', '--backend', 'webgpu', '--checkpoint', join(trained, 'checkpoint.safetensors'), '--tokens', '3', '--seed', '1']);
    const { code } = await p.exit;
    const { stderr } = p.output();
    expect(code, stderr).toBe(0);
    expect(stderr).not.toMatch(DAWN_WARNING);
    expect(stderr.trim()).toBe('kiln: note: --backend webgpu runs on SwiftShader, a CPU emulation of a GPU: correct, but slower than --backend cpu');
  });

  it.skipIf(!swiftshader || !lavapipe)('KILN_VERBOSE=1 shows Dawn\'s own messages and how the driver was chosen', async () => {
    const before = process.env.KILN_VERBOSE;
    process.env.KILN_VERBOSE = '1';
    try {
      const p = spawnKiln(['sample', '--checkpoint', join(trained, 'checkpoint.safetensors'), '--tokens', '5', '--seed', '1']);
      const { code } = await p.exit;
      const { stderr } = p.output();
      expect(code, stderr).toBe(0);
      expect(stderr).toMatch(DAWN_WARNING);
      expect(stderr).toContain('kiln: verbose: Vulkan drivers: the loader\'s, plus SwiftShader');
      expect(stderr).toMatch(/kiln: verbose: adapter "google swiftshader/);
    } finally {
      if (before === undefined) delete process.env.KILN_VERBOSE;
      else process.env.KILN_VERBOSE = before;
    }
  });
});

describe('heavy work is refused or warned about before it starts', () => {
  it('a run that needs more memory than this machine has is refused with the --set that fits', async () => {
    // ~1 TB: far above any machine these tests run on.
    const r = await train('huge', '--preset', 'char-shakespeare', '--set', 'batchSize=4096', '--set', 'blockSize=1024');
    const e = expectKilnError(r, 1, /training needs [\d.]+ (GiB|TiB) of memory on the cpu backend, [\d.]+ \w+ more than the [\d.]+ \w+ free on this machine/);
    expect(e.hint).toMatch(/--set batchSize=\d+ --set gradAccum=\d+|--set batchSize=1 --set blockSize=\d+/);
    expect(existsSync(join(root, 'huge', 'checkpoint.safetensors'))).toBe(false);
  });

  const model = (name: string, vocabSize: number): ModelConfig => {
    const c = findPreset(name)!.config;
    return { nLayer: c.nLayer, nHead: c.nHead, nEmbd: c.nEmbd, blockSize: c.blockSize, vocabSize, bias: true } as ModelConfig;
  };
  const bytesAt = (b: number, m: ModelConfig) => memoryEstimate(m, b).total;

  it('the suggested batch fits and keeps the sequences per step', () => {
    const config = findPreset('gpt2-124m')!.config;
    const m = model('gpt2-124m', 50257);
    const mem = { free: 8 * 2 ** 30, total: 16 * 2 ** 30 };
    let hint = '';
    try {
      checkMemory(bytesAt, m, config, 'cpu', mem);
    } catch (e) {
      hint = (e as Error & { hint: string }).hint;
    }
    const [, b, accum] = /--set batchSize=(\d+) --set gradAccum=(\d+)/.exec(hint)!.map(Number);
    expect(b * accum).toBe(config.batchSize * config.gradAccum);
    expect(bytesAt(b, m)).toBeLessThanOrEqual(mem.free);
    // Fits as it is: nothing said.
    expect(() => checkMemory(bytesAt, m, config, 'cpu', { free: 64 * 2 ** 30, total: 64 * 2 ** 30 })).not.toThrow();
  });

  it('on CPU, a run of hours gets nanoGPT\'s advice with a smaller run that takes minutes', () => {
    const config = findPreset('char-shakespeare')!.config;
    const lines = cpuAdvice(config, model('char-shakespeare', 65), config.steps, CPU_FLOPS, true, false)!;
    expect(lines[0]).toMatch(/^kiln: on the CPU this run takes roughly [\d.]+ (h|days) /);
    expect(lines[1]).toMatch(/^kiln: on CPU, try --set nLayer=4 --set nHead=4 --set nEmbd=128 --set blockSize=64 --set batchSize=12 --set dropout=0 --steps \d+ --set decaySteps=\d+ .*\(about \d+ min\)/);
    // names trains in about a minute: no advice.
    const n = findPreset('names')!.config;
    expect(cpuAdvice(n, model('names', 27), n.steps, CPU_FLOPS, true, false)).toBeNull();
    // A resume cannot change its shape: only the estimate and fewer steps.
    expect(cpuAdvice(config, model('char-shakespeare', 65), config.steps, CPU_FLOPS, false, true)![1]).toMatch(/fewer steps/);
  });
});

describe('silent choices, said in one line each', () => {
  it('the effective config as its preset plus what differs', async () => {
    const tiny = findPreset('tiny')!.config;
    expect(configDiff({ ...tiny, lr: 0.01, steps: 9 }, tiny)).toEqual(['steps=9', 'lr=0.01']);
    expect(configLine(tiny, 'tiny')).toBe('kiln: config: tiny, as it is');
    expect(closestPreset({ ...findPreset('names')!.config, lr: 0.5 })).toBe('names');
    const r = await train('diff', '--preset', 'tiny', '--steps', '2', '--set', 'lr=0.002');
    expect(r.code, r.stderr).toBe(0);
    expect(linesWith(r.stderr, 'config:')).toEqual(['kiln: config: tiny, with steps=2 lr=0.002']);
  });

  it('--steps past decaySteps says the last steps train at minLr, and how to decay over all of them', async () => {
    const tiny = findPreset('tiny')!.config;
    expect(decayNote({ ...tiny, steps: 200 }, false)).toBeNull();
    expect(decayNote({ ...tiny, steps: 600 }, false)).toBe(
      'kiln: note: --steps 600 goes past decaySteps 200: the last 400 steps train at minLr 0.0003 (--set decaySteps=600 decays over the whole run)');
    const r = await train('past-decay', '--preset', 'tiny', '--steps', '4', '--set', 'decaySteps=2', '--set', 'warmupSteps=1');
    expect(r.code, r.stderr).toBe(0);
    expect(linesWith(r.stderr, 'goes past decaySteps 2: the last 2 steps train at minLr 0.0003 (--set decaySteps=4')).toHaveLength(1);
  });

  it('resuming says from which step; a --preset that is not the run\'s is said to be ignored', async () => {
    expect((await train('resumed', '--preset', 'tiny', '--steps', '3')).code).toBe(0);
    const r = await train('resumed', '--resume', '--steps', '5', '--preset', 'names');
    expect(r.code, r.stderr).toBe(0);
    expect(linesWith(r.stderr, 'resuming from step 3 of 5')).toHaveLength(1);
    expect(linesWith(r.stderr, 'ignoring --preset names (the run was not made with it)')).toHaveLength(1);
    // The run's own preset changes nothing, so nothing is said about it.
    const same = await train('resumed', '--resume', '--steps', '6', '--preset', 'tiny');
    expect(same.code, same.stderr).toBe(0);
    expect(same.stderr).not.toContain('ignoring');
    expect(linesWith(same.stderr, 'resuming from step 5 of 6')).toHaveLength(1);
  });

  it('a config file without "preset" says it starts from tiny\'s settings', async () => {
    const file = join(root, 'mine.json');
    writeFileSync(file, JSON.stringify({ steps: 2 }));
    const r = await train('from-file', '--config', file);
    expect(r.code, r.stderr).toBe(0);
    expect(linesWith(r.stderr, `${file} names no "preset": its settings start from tiny's`)).toHaveLength(1);
    writeFileSync(file, JSON.stringify({ preset: 'tiny', steps: 2 }));
    const named = await train('from-file-named', '--config', file);
    expect(named.code, named.stderr).toBe(0);
    expect(named.stderr).not.toContain('names no "preset"');
  });
});

describe('kiln eval scores the whole held-out split', () => {
  it('every non-overlapping window of the val split, the same loss whatever the batch', async () => {
    const ckpt = await decodeCheckpoint(bytesOf(join(trained, 'checkpoint.safetensors')));
    const tokenizer = await tokenizerFromJSON(ckpt.tokenizer);
    const all = tokenizer.encode(readFileSync(names, 'utf8'));
    const val = splitTokens(all, ckpt.config.valFraction, ckpt.model.blockSize).val;
    const T = ckpt.model.blockSize;
    const backend = new CpuBackend();
    await backend.load(ckpt.model, { params: ckpt.state.params, m: null, v: null, step: ckpt.step });
    // One window at a time, by hand: the reference.
    const windows = Math.floor((val.length - 1) / T);
    let sum = 0;
    for (let w = 0; w < windows; w++)
      sum += await backend.loss({ inputs: val.slice(w * T, w * T + T), targets: val.slice(w * T + 1, w * T + T + 1), B: 1, T, microBatches: 1 });
    const byHand = sum / windows;
    for (const b of [1, 7, scoreBatchSize(ckpt.model)]) {
      const s = await scoreTokens(backend, val, ckpt.model, b);
      expect(s.tokens).toBe(windows * T);
      expect(Math.abs(s.loss - byHand), `batch ${b}`).toBeLessThan(1e-6);
    }
    const out = await evalJson({ checkpoint: join(trained, 'checkpoint.safetensors'), data: names, backend: 'cpu' });
    expect(out).toMatchObject({ split: 'val', tokens: windows * T, step: 6 });
    expect(Math.abs(out.loss - byHand)).toBeLessThan(1e-6);
    // Deterministic: the same number again.
    expect((await evalJson({ checkpoint: join(trained, 'checkpoint.safetensors'), data: names, backend: 'cpu' })).loss).toBe(out.loss);
  });

  it('--split all scores the whole file; another split name is refused', async () => {
    const ckpt = await decodeCheckpoint(bytesOf(join(trained, 'checkpoint.safetensors')));
    const tokens = (await tokenizerFromJSON(ckpt.tokenizer)).encode(readFileSync(names, 'utf8'));
    const out = await evalJson({ checkpoint: join(trained, 'checkpoint.safetensors'), data: names, backend: 'cpu', split: 'all' });
    expect(out.split).toBe('all');
    expect(out.tokens).toBe(Math.floor((tokens.length - 1) / ckpt.model.blockSize) * ckpt.model.blockSize);
    await expect(evalCommand({ checkpoint: join(trained, 'checkpoint.safetensors'), data: names, split: 'test' }))
      .rejects.toMatchObject({ code: 'usage', message: '--split "test" is not a split' });
  });

  it('without --data: the bundled dataset the checkpoint trained on, or the name of its own file to give', async () => {
    const bundled = join(root, 'bundled');
    const r = await runKiln(['train', '--preset', 'tiny', '--steps', '2', '--backend', 'cpu', '--data', 'names', '--out', bundled]);
    expect(r.code, r.stderr).toBe(0);
    const given = await evalJson({ checkpoint: join(bundled, 'checkpoint.safetensors'), data: 'names', backend: 'cpu' });
    expect(await evalJson({ checkpoint: join(bundled, 'checkpoint.safetensors'), backend: 'cpu' })).toEqual(given);
    await expect(evalCommand({ checkpoint: join(trained, 'checkpoint.safetensors'), backend: 'cpu' }))
      .rejects.toMatchObject({ code: 'usage', message: 'this checkpoint was trained on the file names.txt, which is not bundled' });
  });
});

describe('kiln sample', () => {
  it('without --seed uses a new seed each time and says it; that seed gives the text again', async () => {
    const ckpt = join(trained, 'checkpoint.safetensors');
    const a = await runKiln(['sample', '--checkpoint', ckpt, '--tokens', '40', '--backend', 'cpu']);
    const b = await runKiln(['sample', '--checkpoint', ckpt, '--tokens', '40', '--backend', 'cpu']);
    expect(a.code, a.stderr).toBe(0);
    const seedOf = (r: KilnRun) => Number(/^kiln: seed (\d+) \(--seed \1 gives this text again\)$/m.exec(r.stderr)![1]);
    expect(seedOf(a)).not.toBe(seedOf(b));
    const again = await runKiln(['sample', '--checkpoint', ckpt, '--tokens', '40', '--backend', 'cpu', '--seed', String(seedOf(a))]);
    expect(again.stdout).toBe(a.stdout);
    expect(again.stderr).not.toContain('kiln: seed');
  });

  it('a run\'s folder means its best.safetensors, said in a note', async () => {
    const r = await runKiln(['sample', '--checkpoint', trained, '--tokens', '10', '--seed', '2', '--backend', 'cpu']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`kiln: ${trained} is a run's folder: using ${join(trained, 'best.safetensors')} (the lowest val loss)`);
    const direct = await runKiln(['sample', '--checkpoint', join(trained, 'best.safetensors'), '--tokens', '10', '--seed', '2', '--backend', 'cpu']);
    expect(r.stdout).toBe(direct.stdout);
  });

  it('a text file given as the checkpoint is named as such, not as a huge header', async () => {
    const e = expectKilnError(await runKiln(['sample', '--checkpoint', names]), 2, /names\.txt is not a Kiln checkpoint \(it does not start with a safetensors header\)/);
    expect(e.hint).toContain('--data');
  });
});
