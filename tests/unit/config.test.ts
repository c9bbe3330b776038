// RunConfig: presets, validate()'s messages (field + fix), parseField on untrusted
// text, diffConfig.
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_CONFIG,
  diffConfig,
  FIELDS,
  parseField,
  validate,
  withDefaults,
  type ConfigIssue,
  type RunConfig,
} from '../../src/core/config.ts';
import { modelSpec, resolveModel } from '../../src/core/model-spec.ts';
import { findPreset, PRESET_NAMES, PRESETS } from '../../src/core/presets.ts';

function cfg(fields: Record<string, unknown>): RunConfig {
  return { ...DEFAULT_CONFIG, ...fields } as RunConfig;
}

/** The single issue a config has; fails the test (showing them all) otherwise. */
function oneIssue(fields: Record<string, unknown>): ConfigIssue {
  const issues = validate(cfg(fields));
  expect(issues, JSON.stringify(issues)).toHaveLength(1);
  const [issue] = issues;
  expect(issue.message).not.toContain('\n');
  return issue;
}

describe('presets', () => {
  it('every preset is a complete, valid config', () => {
    expect(PRESETS.length).toBeGreaterThanOrEqual(5);
    for (const p of PRESETS) {
      expect(validate(p.config), p.name).toEqual([]);
      expect(Object.keys(p.config).sort(), p.name).toEqual(FIELDS.map((f) => f.key).sort());
      expect(p.description.length, p.name).toBeGreaterThan(10);
      expect(findPreset(p.name)).toBe(p);
    }
    expect(new Set(PRESET_NAMES).size).toBe(PRESETS.length);
    for (const name of ['tiny', 'names', 'char-shakespeare', 'bpe-small', 'gpt2-124m']) expect(PRESET_NAMES).toContain(name);
    expect(findPreset('nope')).toBeUndefined();
  });

  it('the default config is valid and every field is in the table', () => {
    expect(validate({ ...DEFAULT_CONFIG })).toEqual([]);
    expect(Object.keys(DEFAULT_CONFIG).sort()).toEqual(FIELDS.map((f) => f.key).sort());
  });

  it('presets are frozen: a run cannot change a preset by editing its config', () => {
    const tiny = findPreset('tiny')!;
    expect(Object.isFrozen(tiny.config)).toBe(true);
    expect(Object.isFrozen(DEFAULT_CONFIG)).toBe(true);
  });

  it('gpt2-124m with the GPT-2 vocabulary has exactly 124,439,808 parameters', () => {
    const p = findPreset('gpt2-124m')!;
    const model = resolveModel(p.config, 50257);
    expect(model).toEqual({ vocabSize: 50257, blockSize: 1024, nLayer: 12, nHead: 12, nEmbd: 768 });
    expect(modelSpec(model).numParams).toBe(124_439_808);
    // Padded to 50304 rows (nanoGPT's choice), the count grows by exactly the extra rows.
    expect(modelSpec(resolveModel({ ...p.config, vocabSize: 50304 }, 50257)).numParams).toBe(124_439_808 + 47 * 768);
  });

  it('resolveModel: vocabSize 0 takes the tokenizer size, a larger one pads, a smaller one never cuts', () => {
    const tiny = findPreset('tiny')!.config;
    expect(resolveModel({ ...tiny, vocabSize: 0 }, 37).vocabSize).toBe(37);
    expect(resolveModel({ ...tiny, vocabSize: 64 }, 37).vocabSize).toBe(64);
    expect(resolveModel({ ...tiny, vocabSize: 16 }, 37).vocabSize).toBe(37);
  });
});

describe('validate', () => {
  it('nEmbd 100 with nHead 3: names both fields and suggests alternatives that work', () => {
    const issue = oneIssue({ nEmbd: 100, nHead: 3 });
    expect(issue.field).toBe('nEmbd');
    expect(issue.message).toContain('nEmbd 100 is not divisible by nHead 3');
    const m = /choose nHead ([\d or]+), or nEmbd ([\d or]+)$/.exec(issue.message);
    expect(m, issue.message).not.toBeNull();
    const heads = m![1].split(' or ').map(Number);
    const widths = m![2].split(' or ').map(Number);
    expect(heads.length).toBeGreaterThan(0);
    expect(widths.length).toBeGreaterThan(0);
    // Every suggestion, applied alone, gives a valid config.
    for (const nHead of heads) expect(validate(cfg({ nEmbd: 100, nHead })), `nHead ${nHead}`).toEqual([]);
    for (const nEmbd of widths) expect(validate(cfg({ nEmbd, nHead: 3 })), `nEmbd ${nEmbd}`).toEqual([]);
    // And they are near what was asked for, not e.g. nHead 1 or nEmbd 3.
    for (const nHead of heads) expect(Math.abs(nHead - 3)).toBeLessThanOrEqual(2);
    for (const nEmbd of widths) expect(Math.abs(nEmbd - 100)).toBeLessThan(6);
  });

  it('out-of-range values name the field, the value and the allowed range', () => {
    expect(oneIssue({ nLayer: 0 })).toEqual({ field: 'nLayer', message: 'nLayer 0 is out of range: use 1 to 96' });
    expect(oneIssue({ nLayer: 97 }).message).toBe('nLayer 97 is out of range: use 1 to 96');
    expect(oneIssue({ lr: -1 }).message).toBe('lr -1 is out of range: use 0 to 10');
    expect(oneIssue({ valFraction: 0.9 }).message).toBe('valFraction 0.9 is out of range: use 0.001 to 0.5');
    expect(oneIssue({ dropout: 0.95 })).toEqual({ field: 'dropout', message: 'dropout 0.95 is out of range: use 0 to 0.9' });
    // Just inside the bounds is fine.
    expect(validate(cfg({ nLayer: 96, nHead: 1, nEmbd: 8192, seed: 4294967295, valFraction: 0.5 }))).toEqual([]);
  });

  it('non-integers in integer fields, and non-finite numbers, are refused by name', () => {
    expect(oneIssue({ nLayer: 2.5 })).toEqual({ field: 'nLayer', message: 'nLayer must be a whole number, not 2.5' });
    expect(oneIssue({ steps: 10.01 }).field).toBe('steps');
    expect(oneIssue({ lr: Number.NaN })).toEqual({ field: 'lr', message: 'lr must be a number, not NaN' });
    expect(oneIssue({ seed: Infinity }).field).toBe('seed');
  });

  it('wrong types name the field, what it must be and what it got', () => {
    expect(oneIssue({ nLayer: '4' })).toEqual({ field: 'nLayer', message: 'nLayer must be a number, not "4"' });
    expect(oneIssue({ bias: 'yes' })).toEqual({ field: 'bias', message: 'bias must be true or false, not "yes"' });
    expect(oneIssue({ tokenizer: 'word' })).toEqual({ field: 'tokenizer', message: 'tokenizer must be one of char, bpe, gpt2, not "word"' });
    expect(oneIssue({ lr: null }).message).toBe('lr must be a number, not null');
    expect(oneIssue({ nEmbd: [128] }).message).toBe('nEmbd must be a number, not [128]');
    // A missing field is reported, not silently defaulted.
    const partial: Record<string, unknown> = { ...DEFAULT_CONFIG };
    delete partial.nHead;
    const issues = validate(partial as unknown as RunConfig);
    expect(issues).toEqual([{ field: 'nHead', message: 'nHead must be a number, not undefined' }]);
  });

  it('unknown keys are reported, and every type problem is listed at once', () => {
    expect(oneIssue({ nembd: 128 })).toEqual({ field: 'nembd', message: 'unknown setting "nembd"' });
    const issues = validate(cfg({ nLayer: 0, lr: 'fast', colour: 'red' }));
    expect(issues.map((i) => i.field)).toEqual(['nLayer', 'lr', 'colour']);
  });

  it('minLr above lr names both and the fix', () => {
    const issue = oneIssue({ lr: 1e-4, minLr: 1e-3 });
    expect(issue.field).toBe('minLr');
    expect(issue.message).toBe('minLr 0.001 is above lr 0.0001: set minLr <= lr');
    expect(validate(cfg({ lr: 1e-3, minLr: 1e-3 }))).toEqual([]);
  });

  it('warmup longer than the decay names both and the fix', () => {
    const issue = oneIssue({ warmupSteps: 500, decaySteps: 100 });
    expect(issue.field).toBe('warmupSteps');
    expect(issue.message).toContain('warmupSteps 500 is longer than decaySteps 100');
    expect(issue.message).toMatch(/shorten the warmup|lengthen the decay/);
    expect(validate(cfg({ warmupSteps: 100, decaySteps: 100 }))).toEqual([]);
  });

  it('cross-field rules: bias=false, vocab sizes below the tokenizer', () => {
    expect(oneIssue({ bias: false }).message).toMatch(/^bias=false is not implemented yet: use bias=true/);
    const gpt2 = oneIssue({ tokenizer: 'gpt2', vocabSize: 1000 });
    expect(gpt2.field).toBe('vocabSize');
    expect(gpt2.message).toContain('50257');
    expect(validate(cfg({ tokenizer: 'gpt2', vocabSize: 50304 }))).toEqual([]);
    const bpe = oneIssue({ tokenizer: 'bpe', bpeVocab: 1024, vocabSize: 512 });
    expect(bpe.message).toBe('vocabSize 512 is below bpeVocab 1024: use 0 (auto) or at least 1024');
  });

  it('withDefaults fills the rest and keeps unknown keys for validate to report', () => {
    const c = withDefaults({ nEmbd: 96, nHead: 3 });
    expect(c.nLayer).toBe(DEFAULT_CONFIG.nLayer);
    expect(validate(c)).toEqual([]);
    const bad = withDefaults({ bogus: 1 } as unknown as Partial<RunConfig>);
    expect(validate(bad)).toEqual([{ field: 'bogus', message: 'unknown setting "bogus"' }]);
  });
});

describe('parseField', () => {
  it('parses good text for every kind of field', () => {
    expect(parseField('nEmbd', '128')).toEqual({ value: 128 });
    expect(parseField('nEmbd', '  64\n')).toEqual({ value: 64 });
    expect(parseField('lr', '3e-4')).toEqual({ value: 3e-4 });
    expect(parseField('lr', '.001')).toEqual({ value: 0.001 });
    expect(parseField('lr', '+0.5')).toEqual({ value: 0.5 });
    expect(parseField('eps', '1E-8')).toEqual({ value: 1e-8 });
    expect(parseField('nLayer', '2.0')).toEqual({ value: 2 });
    expect(parseField('bias', 'true')).toEqual({ value: true });
    expect(parseField('bias', '1')).toEqual({ value: true });
    expect(parseField('bias', 'false')).toEqual({ value: false });
    expect(parseField('bias', '0')).toEqual({ value: false });
    expect(parseField('tokenizer', 'bpe')).toEqual({ value: 'bpe' });
    expect(parseField('seed', '4294967295')).toEqual({ value: 4294967295 });
  });

  it('every field parses back what String() of its default writes', () => {
    for (const f of FIELDS) {
      const v = DEFAULT_CONFIG[f.key];
      expect(parseField(f.key, String(v)), f.key).toEqual({ value: v });
    }
  });

  it('refuses bad text with a readable error and never throws', () => {
    const cases: Array<[string, string, RegExp]> = [
      ['nEmbd', 'abc', /^nEmbd must be a number, not "abc"$/],
      ['nEmbd', '', /^nEmbd must be a number/],
      ['nEmbd', '0x40', /^nEmbd must be a number, not "0x40"$/],
      ['nEmbd', '1_000', /^nEmbd must be a number/],
      ['nEmbd', 'NaN', /^nEmbd must be a number/],
      ['nEmbd', 'Infinity', /^nEmbd must be a number/],
      ['nEmbd', '12px', /^nEmbd must be a number/],
      ['nEmbd', '1 2', /^nEmbd must be a number/],
      ['nEmbd', '64.5', /^nEmbd must be a whole number, not 64.5$/],
      ['nEmbd', '-64', /^nEmbd -64 is out of range: use 1 to 8192$/],
      ['nEmbd', '1e9', /^nEmbd 1000000000 is out of range/],
      ['dropout', '1', /^dropout 1 is out of range: use 0 to 0.9$/],
      ['bias', 'yes', /^bias must be true or false, not "yes"$/],
      ['bias', '2', /^bias must be true or false/],
      ['tokenizer', 'CHAR', /^tokenizer must be one of char, bpe, gpt2, not "CHAR"$/],
      ['tokenizer', '__proto__', /^tokenizer must be one of/],
      ['__proto__', '1', /^unknown setting "__proto__"$/],
      ['constructor', '1', /^unknown setting "constructor"$/],
      ['toString', '1', /^unknown setting "toString"$/],
      ['nembd', '128', /^unknown setting "nembd"$/],
    ];
    for (const [key, text, re] of cases) {
      let r: ReturnType<typeof parseField> | undefined;
      expect(() => (r = parseField(key, text)), `${key}=${text}`).not.toThrow();
      expect(r && 'error' in r ? r.error : `value ${JSON.stringify(r)}`, `${key}=${text}`).toMatch(re);
    }
  });

  it('a number too large for a double is refused naming the field and the text or the range, not "null"', () => {
    for (const key of ['lr', 'nEmbd', 'seed']) {
      const r = parseField(key, '1e400');
      expect('error' in r, key).toBe(true);
      const msg = (r as { error: string }).error;
      expect(msg.startsWith(key), msg).toBe(true);
      // The user typed 1e400; telling them they typed null names nothing they can find.
      expect(msg, msg).not.toMatch(/\bnull\b/);
    }
  });

  it('keeps errors short whatever the length of the hostile text', () => {
    const long = ['x'.repeat(1_000_000), '9'.repeat(5000), '-'.repeat(10_000), '1'.repeat(400) + 'e'];
    for (const f of FIELDS) {
      for (const text of long) {
        const r = parseField(f.key, text);
        expect('error' in r, `${f.key} with ${text.length} characters`).toBe(true);
        const msg = (r as { error: string }).error;
        expect(msg.length, `${f.key} with ${text.length} characters`).toBeLessThan(200);
      }
    }
    const unknownKey = parseField('k'.repeat(100_000), '1');
    expect('error' in unknownKey && unknownKey.error.length).toBeLessThan(200);
  });

  it('keeps errors on one line, without raw control characters, whatever the text', () => {
    // A link decodes %0A to a newline and %1B to ESC: the error must still be one clean line.
    const hostile = ['a\nb', '1\n2', 'x\r\ny', '\u001b[2Jboom', 'a\u0000b', '\u2028'];
    for (const f of FIELDS) {
      for (const text of hostile) {
        const r = parseField(f.key, text);
        expect('error' in r, `${f.key}=${JSON.stringify(text)}`).toBe(true);
        const msg = (r as { error: string }).error;
        expect(msg, `${f.key}=${JSON.stringify(text)}`).not.toMatch(/[\u0000-\u001f\u007f\u2028\u2029]/);
      }
    }
  });
});

describe('diffConfig', () => {
  it('lists only the changed fields, in table order, with the new values', () => {
    const base = findPreset('tiny')!.config;
    expect(diffConfig({ ...base }, base)).toEqual({});
    const changed = { ...base, seed: 7, nEmbd: 64, lr: 1e-4, bias: false, tokenizer: 'bpe' as const };
    const d = diffConfig(changed, base);
    expect(d).toEqual({ nEmbd: 64, bias: false, tokenizer: 'bpe', lr: 1e-4, seed: 7 });
    expect(Object.keys(d)).toEqual(['nEmbd', 'bias', 'tokenizer', 'lr', 'seed']);
    // Applying the diff to the base gives the config back.
    expect({ ...base, ...d }).toEqual(changed);
  });

  it('between two presets reproduces one from the other', () => {
    const tiny = findPreset('tiny')!.config;
    const names = findPreset('names')!.config;
    const d = diffConfig(names, tiny);
    expect({ ...tiny, ...d }).toEqual(names);
    expect(d.nEmbd).toBe(64);
    expect('tokenizer' in d).toBe(false);
  });
});
