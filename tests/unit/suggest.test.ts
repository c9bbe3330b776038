// "Did you mean": the edit distance, which names count as close, nanoGPT's names, and
// the hints built from them (CLI) and share links' suggestions (core).
import { describe, expect, it } from 'vitest';
import { FIELD_BY_KEY, FIELDS, NANOGPT_NAMES, nanoGptName, suggestSettings } from '../../src/core/config.ts';
import { PRESET_NAMES } from '../../src/core/presets.ts';
import { decodeShareLink } from '../../src/core/share-link.ts';
import { BACKEND_NAMES } from '../../src/cli/backends.ts';
import { didYouMean, nameDistance, nearestNames, oneOfHint, settingHint, settingName } from '../../src/cli/suggest.ts';
import { expectKilnError } from '../helpers/kiln-error.ts';

const KEYS = FIELDS.map((f) => f.key);
const COMMANDS = ['train', 'eval', 'sample', 'info', 'export', 'import', 'bench'];

describe('nameDistance', () => {
  it('counts inserts, deletes, substitutions and a swap of neighbours as one edit each', () => {
    expect(nameDistance('steps', 'steps')).toBe(0);
    expect(nameDistance('step', 'steps')).toBe(1);
    expect(nameDistance('stepss', 'steps')).toBe(1);
    expect(nameDistance('stops', 'steps')).toBe(1);
    expect(nameDistance('trian', 'train')).toBe(1);
    expect(nameDistance('nEmdb', 'nEmbd')).toBe(1);
    expect(nameDistance('', 'abc')).toBe(3);
    expect(nameDistance('kitten', 'sitting')).toBe(3);
  });

  it('ignores case, "-" and "_": nembd, n_embd and nEmbd are one name', () => {
    expect(nameDistance('nembd', 'nEmbd')).toBe(0);
    expect(nameDistance('n_embd', 'nEmbd')).toBe(0);
    expect(nameDistance('TOP_K', 'top-k')).toBe(0);
    expect(nameDistance('batch_size', 'batchSize')).toBe(0);
  });
});

describe('nearestNames', () => {
  it.each([
    ['trian', COMMANDS, ['train']],
    ['smaple', COMMANDS, ['sample']],
    ['step', ['link', 'config', 'preset', 'data', 'out', 'backend', 'steps', 'seed', 'set', 'resume', 'init'], ['steps']],
    ['name', PRESET_NAMES, ['names']],
    ['shakespeare', PRESET_NAMES, ['char-shakespeare']],
    ['gpt2', PRESET_NAMES, ['gpt2-124m']],
    ['nEmb', KEYS, ['nEmbd']],
    ['nEmdb', KEYS, ['nEmbd']],
    ['nembd', KEYS, ['nEmbd']],
    ['learningrate', KEYS, []],
    ['evalevry', KEYS, ['evalEvery']],
    ['eval', KEYS, ['evalEvery', 'evalBatches']],
  ] as Array<[string, readonly string[], string[]]>)('%s', (word, candidates, want) => {
    expect(nearestNames(word, candidates)).toEqual(want);
  });

  it('"gpu" means webgpu (contained in it), not cpu (one letter away)', () => {
    expect(nearestNames('gpu', BACKEND_NAMES)).toEqual(['webgpu']);
    expect(nearestNames('GPU', BACKEND_NAMES)).toEqual(['webgpu']);
    expect(nearestNames('cpus', BACKEND_NAMES)).toEqual(['cpu']);
  });

  it('suggests nothing when nothing is close, and never for an empty word', () => {
    expect(nearestNames('tpu', BACKEND_NAMES)).toEqual(['cpu']); // one edit away: worth saying
    expect(nearestNames('frobnicate', COMMANDS)).toEqual([]);
    expect(nearestNames('huge', PRESET_NAMES)).toEqual([]);
    expect(nearestNames('', COMMANDS)).toEqual([]);
    expect(nearestNames('--', COMMANDS)).toEqual([]);
  });

  it('gives at most three names, in the candidates\' order', () => {
    expect(nearestNames('ab', ['ac', 'ad', 'ae', 'af'])).toEqual(['ac', 'ad', 'ae']);
  });
});

describe("nanoGPT's names", () => {
  const issueNames = ['n_embd', 'n_layer', 'n_head', 'block_size', 'batch_size', 'learning_rate', 'max_iters', 'min_lr', 'warmup_iters',
    'lr_decay_iters', 'weight_decay', 'grad_clip', 'eval_interval', 'eval_iters', 'dropout', 'gradient_accumulation_steps',
    'beta1', 'beta2', 'vocab_size', 'bias', 'seed'];

  it('every one the issue lists is a Kiln setting, under its own name or through the table', () => {
    for (const n of issueNames) {
      const key = settingName(n)?.key;
      expect(key, n).toBeDefined();
      expect(FIELD_BY_KEY.has(key!), n).toBe(true);
    }
    expect(Object.values(NANOGPT_NAMES).every((k) => FIELD_BY_KEY.has(k))).toBe(true);
  });

  it('maps each to the Kiln setting of the same meaning', () => {
    expect(settingName('learning_rate')).toEqual({ key: 'lr', note: 'learning_rate is lr in Kiln' });
    expect(settingName('max_iters')?.key).toBe('steps');
    expect(settingName('lr_decay_iters')?.key).toBe('decaySteps');
    expect(settingName('warmup_iters')?.key).toBe('warmupSteps');
    expect(settingName('eval_interval')?.key).toBe('evalEvery');
    expect(settingName('eval_iters')?.key).toBe('evalBatches');
    expect(settingName('nEmbd')).toEqual({ key: 'nEmbd' });
    expect(settingName('dropout')).toEqual({ key: 'dropout' });
  });

  it("says that gradient_accumulation_steps is counted per step on one device in Kiln", () => {
    const n = settingName('gradient_accumulation_steps')!;
    expect(n.key).toBe('gradAccum');
    expect(n.note).toMatch(/gradAccum in Kiln: micro-batches per optimizer step/);
  });

  it('is not fooled by names every object has', () => {
    for (const k of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      expect(nanoGptName(k), k).toBeNull();
      expect(settingName(k), k).toBeNull();
    }
  });
});

describe('hints', () => {
  it('didYouMean phrases one or two names, formatted, or nothing', () => {
    expect(didYouMean('step', ['steps', 'seed'], (n) => `--${n}`)).toBe('did you mean --steps?');
    expect(didYouMean('eval', KEYS)).toBe('did you mean evalEvery or evalBatches?');
    expect(didYouMean('zzz', KEYS)).toBe('');
  });

  it('oneOfHint names the likely one and lists them all', () => {
    expect(oneOfHint('gpu', BACKEND_NAMES)).toBe('did you mean webgpu? (use one of: auto, cpu, webgpu, cuda)');
    expect(oneOfHint('huge', PRESET_NAMES)).toBe(`use one of: ${PRESET_NAMES.join(', ')}`);
  });

  it('settingHint suggests a setting (typo or nanoGPT name) or lists every one', () => {
    expect(settingHint('nembd')).toMatch(/^did you mean nEmbd\?/);
    expect(settingHint('learningRate')).toMatch(/^did you mean lr\?/);
    expect(suggestSettings('max_iter')).toEqual(['steps']);
    expect(suggestSettings('n_embd')).toEqual(['nEmbd']);
    expect(suggestSettings('learning_rate')).toEqual(['lr']);
    const all = settingHint('zzzzzz');
    for (const k of KEYS) expect(all).toContain(k);
  });
});

describe('share links suggest, and do not accept, other names', () => {
  it.each([
    ['nEmdb', 'nEmbd'],
    ['nembd', 'nEmbd'],
    ['n_embd', 'nEmbd'],
    ['learning_rate', 'lr'],
    ['batch_size', 'batchSize'],
    ['learningRate', 'lr'],
  ])('%s', (key, want) => {
    const e = expectKilnError(() => decodeShareLink(`v=1&preset=tiny&${key}=32`), 'usage', new RegExp(`unknown setting "${key}"`));
    expect(e.hint).toContain(`did you mean ${want}?`);
  });

  it('a key like nothing Kiln has keeps the plain hint', () => {
    const e = expectKilnError(() => decodeShareLink('v=1&preset=tiny&zzzzzz=1'), 'usage', /unknown setting "zzzzzz"/);
    expect(e.hint).not.toContain('did you mean');
  });

  it('a mistyped preset gets its name', () => {
    const e = expectKilnError(() => decodeShareLink('v=1&preset=nmaes'), 'usage', /preset "nmaes" is unknown/);
    expect(e.hint).toContain('did you mean names?');
  });
});
