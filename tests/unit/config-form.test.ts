// The config panel's logic: texts to a config with the core's messages by field, drafts
// that survive the parent handing the config back, which fields differ from the preset,
// and the data picker's own refusals and summary lines.
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG, FIELDS, type RunConfig } from '../../src/core/config.ts';
import { findPreset } from '../../src/core/presets.ts';
import type { DataSummary } from '../../src/worker/api.ts';
import {
  FORM_SECTIONS, changedFields, editField, formState, formatCount, numberStep, presetBase, reconcileDrafts,
} from '../../src/ui/config-form.ts';
import { MAX_FILE_BYTES, asSentence, refuseDrop, refuseFile, summaryRows } from '../../src/ui/data-choice.ts';

const names = (): RunConfig => presetBase('names');
const field = (key: string) => FIELDS.find((f) => f.key === key)!;

describe('FORM_SECTIONS', () => {
  it('holds every field once, in the panel order of groups', () => {
    expect(FORM_SECTIONS.map((s) => s.title)).toEqual(['Model', 'Tokenizer', 'Optimisation', 'Schedule & evaluation', 'Data']);
    const keys = FORM_SECTIONS.flatMap((s) => s.fields.map((f) => f.key));
    expect(keys.sort()).toEqual(FIELDS.map((f) => f.key).sort());
  });
});

describe('presetBase', () => {
  it("is the preset's config, or a copy of the defaults for an unknown name", () => {
    expect(presetBase('names')).toBe(findPreset('names')!.config);
    const custom = presetBase('no-such-preset');
    expect(custom).toEqual(DEFAULT_CONFIG);
    expect(custom).not.toBe(DEFAULT_CONFIG);
  });
});

describe('editField and formState', () => {
  it('takes a parsed value into the config and keeps the text as typed', () => {
    const { config, drafts } = editField(names(), {}, 'dropout', '0.50');
    expect(config.dropout).toBe(0.5);
    expect(drafts.dropout).toBe('0.50');
    const state = formState(config, drafts);
    expect(state.valid).toBe(true);
    expect(state.list).toEqual([]);
  });

  it("shows parseField's message for a text that does not parse, and keeps the last good value", () => {
    const before = names();
    const { config, drafts } = editField(before, {}, 'nLayer', '0');
    expect(config.nLayer).toBe(before.nLayer);
    const state = formState(config, drafts);
    expect(state.valid).toBe(false);
    expect(state.issues.nLayer).toEqual(['nLayer 0 is out of range: use 1 to 96']);
    expect(state.list).toEqual([{ field: 'nLayer', message: 'nLayer 0 is out of range: use 1 to 96' }]);
  });

  it('an empty number input (the browser reports "" for text it cannot read) is an error', () => {
    const { config, drafts } = editField(names(), {}, 'lr', '');
    const state = formState(config, drafts);
    expect(state.issues.lr?.[0]).toMatch(/^lr must be a number/);
  });

  it("puts validate()'s cross-field messages on their fields", () => {
    let s = editField(names(), {}, 'nEmbd', '100');
    s = editField(s.config, s.drafts, 'nHead', '3');
    s = editField(s.config, s.drafts, 'minLr', '1');
    const state = formState(s.config, s.drafts);
    expect(state.valid).toBe(false);
    expect(state.issues.nEmbd?.[0]).toMatch(/^nEmbd 100 is not divisible by nHead 3: choose /);
    expect(state.issues.minLr?.[0]).toBe('minLr 1 is above lr 0.01: set minLr <= lr');
    // table order: model fields before optimisation fields
    expect(state.list.map((i) => i.field)).toEqual(['nEmbd', 'minLr']);
  });

  it('a parse error hides nothing else: validate() still judges the other fields', () => {
    let s = editField(names(), {}, 'minLr', '1');
    s = editField(s.config, s.drafts, 'seed', 'x');
    const state = formState(s.config, s.drafts);
    expect(Object.keys(state.issues).sort()).toEqual(['minLr', 'seed']);
  });

  it('enums and booleans go through the same parsing', () => {
    let s = editField(names(), {}, 'tokenizer', 'bpe');
    expect(s.config.tokenizer).toBe('bpe');
    s = editField(s.config, s.drafts, 'bias', 'false');
    expect(s.config.bias).toBe(false);
    expect(formState(s.config, s.drafts).issues.bias?.[0]).toMatch(/bias=false is not implemented yet/);
  });
});

describe('reconcileDrafts', () => {
  it('keeps drafts that still say the value when the parent hands back a copy', () => {
    const s = editField(names(), {}, 'dropout', '0.50');
    expect(reconcileDrafts(s.drafts, s.config, { ...s.config })).toEqual({ dropout: '0.50' });
  });

  it('drops drafts the new config contradicts', () => {
    const s = editField(names(), {}, 'dropout', '0.50');
    expect(reconcileDrafts(s.drafts, s.config, { ...s.config, dropout: 0.2 })).toEqual({});
  });

  it('keeps an unparsable text while its field is unchanged, drops it when the field changes', () => {
    const s = editField(names(), {}, 'nLayer', 'abc');
    expect(reconcileDrafts(s.drafts, s.config, { ...s.config })).toEqual({ nLayer: 'abc' });
    expect(reconcileDrafts(s.drafts, s.config, { ...s.config, nLayer: 3 })).toEqual({});
    expect(reconcileDrafts(s.drafts, undefined, s.config)).toEqual({});
  });
});

describe('changedFields', () => {
  it('lists the fields that differ from the preset', () => {
    const base = names();
    expect(changedFields(base, base).size).toBe(0);
    expect([...changedFields({ ...base, lr: 0.02, seed: 7 }, base)]).toEqual(['lr', 'seed']);
  });
});

describe('numberStep', () => {
  it('steps whole numbers by 1 and real numbers by a tenth of their magnitude', () => {
    expect(numberStep(field('nLayer'), 4)).toBe('1');
    expect(numberStep(field('lr'), 1e-3)).toBe('0.0001');
    expect(numberStep(field('lr'), 6e-4)).toBe('0.00001');
    expect(numberStep(field('beta2'), 0.95)).toBe('0.01');
    expect(numberStep(field('eps'), 1e-8)).toBe('1e-9');
    expect(numberStep(field('gradClip'), 1)).toBe('0.1');
  });

  it('gives a small step for a zero value', () => {
    expect(numberStep(field('dropout'), 0)).toBe('0.01');
    expect(numberStep(field('gradClip'), 0)).toBe('0.1');
  });
});

describe('the data picker refusals', () => {
  it('refuses files over the limit with the size and the way out', () => {
    expect(refuseFile('small.txt', 1000)).toBeNull();
    expect(refuseFile('edge.txt', MAX_FILE_BYTES)).toBeNull();
    const r = refuseFile('big.txt', 300 * 1024 * 1024)!;
    expect(r.message).toBe('big.txt is 300 MiB: the lab reads text files up to 200 MiB');
    expect(r.hint).toMatch(/kiln train --data/);
  });

  it('wants exactly one dropped file', () => {
    expect(refuseDrop(1)).toBeNull();
    expect(refuseDrop(0)!.message).toMatch(/Nothing to read/);
    expect(refuseDrop(3)!.message).toBe('3 files were dropped: the lab trains on one text at a time');
  });

  it('turns a core hint into a sentence', () => {
    expect(asSentence('give a UTF-8 text file (.txt)')).toBe('Give a UTF-8 text file (.txt).');
    expect(asSentence('Already a sentence.')).toBe('Already a sentence.');
    expect(asSentence('')).toBe('');
  });
});

describe('summaryRows', () => {
  it('lists name, size, characters, tokens with the split, and the tokenizer', () => {
    const s: DataSummary = {
      ref: { kind: 'bundled', id: 'shakespeare' } as DataSummary['ref'],
      name: 'Tiny Shakespeare', bytes: 1_115_394, chars: 1_115_394, distinctChars: 65,
      tokenizer: 'char', vocabSize: 65, tokens: 1_115_394, trainTokens: 1_003_854, valTokens: 111_540,
    };
    expect(summaryRows(s)).toEqual([
      ['Text', 'Tiny Shakespeare'],
      ['Size', '1.1 MiB · 1,115,394 characters'],
      ['Characters', '65 distinct'],
      ['Tokens', '1,115,394: 1,003,854 train / 111,540 val (10% held out)'],
      ['Tokenizer', 'char · vocabulary 65'],
    ]);
  });
});

describe('formatCount', () => {
  it('shows three figures with a unit', () => {
    expect(formatCount(27_000)).toBe('27.0k');
    expect(formatCount(160_000)).toBe('160k');
    expect(formatCount(1_210_000)).toBe('1.21M');
    expect(formatCount(124_439_808)).toBe('124M');
    expect(formatCount(999_999)).toBe('1.00M');
    expect(formatCount(870_000_000)).toBe('870M');
    expect(formatCount(1.56e9)).toBe('1.56B');
    expect(formatCount(512)).toBe('512');
  });
});
