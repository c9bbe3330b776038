import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { KilnError } from '../../src/core/errors.ts';
import { findPreset, PRESETS } from '../../src/core/presets.ts';
import type { RunSpec } from '../../src/core/run-spec.ts';
import { cliCommand, decodeShareLink, describeResults, encodeShareLink, MAX_LINK_CHARS, reduceCurve, shellQuote } from '../../src/core/share-link.ts';
import { expectKilnError } from '../helpers/kiln-error.ts';

function specFor(preset: string, fields: Record<string, unknown> = {}, rest: Partial<RunSpec> = {}): RunSpec {
  return { preset, config: { ...findPreset(preset)!.config, ...fields }, data: null, ...rest };
}

function expectUsageError(input: string, match: RegExp): KilnError {
  const e = expectKilnError(() => decodeShareLink(input), 'usage', match, JSON.stringify(input.slice(0, 80)));
  expect(e.message.length).toBeLessThan(400);
  return e;
}

describe('encodeShareLink', () => {
  it('writes the readable form of DESIGN.md', () => {
    const spec = specFor('names', { nEmbd: 128, lr: 0.0003, seed: 7 }, { data: { kind: 'bundled', id: 'names' } });
    expect(encodeShareLink(spec)).toBe('v=1&preset=names&nEmbd=128&lr=0.0003&seed=7&data=names');
  });

  it('writes only the version and preset for an unchanged preset', () => {
    for (const p of PRESETS) expect(encodeShareLink(specFor(p.name))).toBe(`v=1&preset=${p.name}`);
  });

  it('escapes a file name and writes results', () => {
    const spec = specFor('tiny', {}, {
      data: { kind: 'file', name: 'my notes & #1.txt', bytes: 1234, sha256: 'ab'.repeat(32) },
      results: { trainLoss: 1.25, valLoss: 1.5, steps: 50, device: 'NVIDIA H200' },
    });
    expect(encodeShareLink(spec)).toBe(
      `v=1&preset=tiny&file=my%20notes%20%26%20%231.txt&bytes=1234&sha256=${'ab'.repeat(32)}&r.train=1.25&r.val=1.5&r.steps=50&r.device=NVIDIA%20H200`,
    );
  });
});

describe('share link round trip', () => {
  it.each(PRESETS.map((p) => p.name))('preset %s unchanged', (name) => {
    const spec = specFor(name, {}, { data: { kind: 'bundled', id: 'shakespeare' } });
    expect(decodeShareLink(encodeShareLink(spec))).toEqual(spec);
  });

  it.each(PRESETS.map((p) => p.name))('preset %s with fields changed, exact numbers and a file dataset', (name) => {
    const spec = specFor(name, {
      nLayer: 3, nHead: 2, nEmbd: 96, lr: 0.1 + 0.2, minLr: 1e-7, eps: 1.2345678901234567e-9, beta2: 0.987654321,
      seed: 4294967295, sampleEvery: 10, tokenizer: 'bpe', bpeVocab: 1000, vocabSize: 0, valFraction: 1 / 3,
    }, {
      data: { kind: 'file', name: "Shakespeare's sonnets (v2).txt", bytes: 98765, sha256: '0123456789abcdef'.repeat(4) },
      results: { trainLoss: 1.2345678, valLoss: 1.4, steps: 1000, device: 'Apple M2 / WebGPU' },
    });
    const link = encodeShareLink(spec);
    const back = decodeShareLink(link);
    expect(back).toEqual(spec);
    expect(back.config.lr).toBe(0.1 + 0.2); // 0.30000000000000004: every bit survives
    expect(back.config.valFraction).toBe(1 / 3);
  });

  it('accepts a full URL, a #fragment and a bare fragment', () => {
    const spec = specFor('names', { lr: 0.003 }, { data: { kind: 'bundled', id: 'names' } });
    const frag = encodeShareLink(spec);
    expect(decodeShareLink(`https://kiln.example/lab/?x=1#${frag}`)).toEqual(spec);
    expect(decodeShareLink(`#${frag}`)).toEqual(spec);
    expect(decodeShareLink(`  ${frag}&  `)).toEqual(spec);
  });

  it('accepts fields in any order, booleans and exponents', () => {
    const spec = decodeShareLink('seed=7&preset=tiny&lr=3e-3&bias=true&v=1&gradClip=1E+1');
    expect(spec.config.seed).toBe(7);
    expect(spec.config.lr).toBe(0.003);
    expect(spec.config.gradClip).toBe(10);
    expect(spec.data).toBeNull();
    expect(spec.results).toBeUndefined();
  });
});

describe('malformed links', () => {
  const ok = 'v=1&preset=tiny';
  const cases: Array<[string, string, RegExp]> = [
    ['garbage', 'hello world', /"hello world" is not of the form key=value/],
    ['a broken escape', 'v=1&preset=tiny&lr=%E0%A4%A', /lr=%E0%A4%A" has a broken %-escape/],
    ['symbol soup', '%%%&&=', /"%%%" is not of the form key=value/],
    ['empty', '', /empty/],
    ['a URL without a fragment', 'https://kiln.example/lab', /nothing follows a "#"/],
    ['no version', 'preset=tiny', /no version \(v=1\)/],
    ['a newer version', 'v=2&preset=tiny', /version "2", and this Kiln reads version 1/],
    ['no preset', 'v=1', /names no preset .*tiny, names, craft-1m, char-shakespeare/],
    ['an unknown preset', 'v=1&preset=gpt5', /preset "gpt5" is unknown: Kiln has tiny, names, craft-1m, char-shakespeare, bpe-small, gpt2-124m/],
    ['an unknown field', `${ok}&learningRate=0.1`, /unknown setting "learningRate"/],
    ['an out-of-range value', `${ok}&nLayer=1000`, /nLayer 1000 is out of range: use 1 to 96/],
    ['NaN', `${ok}&lr=NaN`, /lr must be a number, not "NaN"/],
    ['Infinity', `${ok}&lr=Infinity`, /lr must be a number/],
    ['a hex number', `${ok}&seed=0x10`, /seed must be a number/],
    ['a fraction for an integer', `${ok}&nLayer=2.5`, /nLayer must be a whole number/],
    ['a bad boolean', `${ok}&bias=yes`, /bias must be true or false/],
    ['a bad enum', `${ok}&tokenizer=word`, /tokenizer must be one of char, bpe, gpt2/],
    ['nEmbd not divisible by nHead', `${ok}&nEmbd=100&nHead=3`, /nEmbd 100 is not divisible by nHead 3: choose nHead/],
    ['minLr above lr', `${ok}&lr=0.001&minLr=0.01`, /minLr 0.01 is above lr 0.001/],
    ['a duplicate field', `${ok}&lr=0.1&lr=0.2`, /sets lr twice/],
    ['an absurd length', `${ok}&data=${'x'.repeat(5000)}`, /is 5\d{3} characters long; Kiln links are at most 4096/],
    ['a long value', `${ok}&r.device=${'x'.repeat(300)}`, /r\.device is 300 characters long \(at most 256\)/],
    ['a bad dataset id', `${ok}&data=../etc/passwd`, /dataset id "..\/etc\/passwd" is not a dataset name/],
    ['data and file', `${ok}&data=names&file=a.txt&bytes=1&sha256=${'a'.repeat(64)}`, /both a bundled dataset/],
    ['a file without a hash', `${ok}&file=a.txt&bytes=10`, /sha256=<64 hex digits>/],
    ['a file with a bad size', `${ok}&file=a.txt&bytes=-1&sha256=${'a'.repeat(64)}`, /bytes=<size in bytes>, not "-1"/],
    ['a file name with control characters', `${ok}&file=a%0Ab&bytes=1&sha256=${'a'.repeat(64)}`, /is not a file name/],
    ['bytes without a file', `${ok}&bytes=3`, /no file=/],
    ['a negative loss', `${ok}&r.train=-1`, /r\.train must be a loss/],
    ['a NaN loss', `${ok}&r.val=NaN`, /r\.val must be a loss/],
    ['fractional steps', `${ok}&r.steps=1.5`, /r\.steps must be a whole number/],
    ['an unknown result', `${ok}&r.mfu=0.4`, /unknown setting "r\.mfu"/],
    ['a prototype key', `${ok}&__proto__=1`, /unknown setting "__proto__"/],
    ['a dataset Kiln does not bundle', `${ok}&data=moby-dick`, /dataset "moby-dick" is not one this Kiln bundles \(names, shakespeare\)/],
    ['a local file as a dataset id', `${ok}&data=package.json`, /dataset "package.json" is not one this Kiln bundles/],
    ['a file name that is a path', `${ok}&file=..%2F..%2Fetc%2Fpasswd&bytes=1&sha256=${'a'.repeat(64)}`, /file name "..\/..\/etc\/passwd" is not a file name/],
    ['an empty file', `${ok}&file=a.txt&bytes=0&sha256=${'a'.repeat(64)}`, /bytes=<size in bytes>, not "0" \(a whole number, at least 1\)/],
    ['an empty device', `${ok}&r.device=`, /r\.device is empty/],
    ['a huge loss', `${ok}&r.val=1e308`, /r\.val must be a loss \(a number >= 0 and below 1e6\), not "1e308"/],
    ['a value ending in a newline', `${ok}&lr=0.1%0A`, /lr holds a control character: "0.1\\n"/],
    ['a device with a C1 control', `${ok}&r.device=a%C2%9B2J`, /r\.device holds a control character/],
    ['a file name with a bidi override', `${ok}&file=txt.%E2%80%AEexe&bytes=1&sha256=${'a'.repeat(64)}`, /file name .* is not a file name: it holds a control character/],
    ['a curve point without a loss', `${ok}&r.curve=1:2,5`, /r\.curve point 2 "5" is not STEP:LOSS/],
    ['a curve going back', `${ok}&r.curve=1:2,5:1.5,5:1.4`, /r\.curve point 3 "5:1.4" does not come after step 5: steps must increase/],
  ];
  it.each(cases)('%s', (_, input, match) => {
    expectUsageError(input, match);
  });

  it('refuses an absurd dropout with a readable range, and carries a sensible one', () => {
    expectUsageError(`v=1&preset=tiny&dropout=0.99`, /dropout 0.99 is out of range: use 0 to 0.9/);
    expect(decodeShareLink('v=1&preset=tiny&dropout=0.2').config.dropout).toBe(0.2);
  });
});

describe('results with the val curve', () => {
  const curve100 = Array.from({ length: 100 }, (_, i): [number, number] => [i * 10, 4 / (1 + i / 10)]);

  it('reduceCurve keeps the first and last points and evenly spaced ones between, deterministically', () => {
    const r = reduceCurve(curve100);
    expect(r).toHaveLength(64);
    expect(r[0]).toEqual(curve100[0]);
    expect(r[63]).toEqual(curve100[99]);
    for (let i = 1; i < r.length; i++) expect(r[i][0]).toBeGreaterThan(r[i - 1][0]);
    // Gaps of 1 or 2 points of the original (99 intervals over 63): even spacing.
    const gaps = r.slice(1).map((p, i) => (p[0] - r[i][0]) / 10);
    expect(Math.min(...gaps)).toBe(1);
    expect(Math.max(...gaps)).toBe(2);
    expect(reduceCurve(curve100)).toEqual(r);
    expect(reduceCurve(curve100, 3)).toEqual([curve100[0], curve100[50], curve100[99]]);
    const short = curve100.slice(0, 64);
    expect(reduceCurve(short)).toEqual(short);
    expect(reduceCurve(short)).not.toBe(short);
    expect(reduceCurve([])).toEqual([]);
  });

  it('writes r.curve compactly (4 significant digits, ":" and "," unescaped), last', () => {
    const spec = specFor('tiny', {}, { data: { kind: 'bundled', id: 'names' }, results: { valLoss: 1.5, curve: [[0, 3.2958], [50, 2.123456], [100, 1.5], [150, 0.000123456]] } });
    expect(encodeShareLink(spec)).toBe('v=1&preset=tiny&data=names&r.val=1.5&r.curve=0:3.296,50:2.123,100:1.5,150:0.0001235');
    expect(decodeShareLink(encodeShareLink(spec)).results!.curve).toEqual([[0, 3.296], [50, 2.123], [100, 1.5], [150, 0.0001235]]);
  });

  it('reduces a long curve to 64 points and round-trips it at 4 digits', () => {
    const spec = specFor('names', { lr: 0.002 }, { data: { kind: 'bundled', id: 'names' }, results: { trainLoss: 2.01, valLoss: 2.1, steps: 990, device: 'NVIDIA H100 80GB HBM3', curve: curve100 } });
    const link = encodeShareLink(spec);
    const back = decodeShareLink(link);
    const want = reduceCurve(curve100).map(([s, l]): [number, number] => [s, Number(l.toPrecision(4))]);
    expect(back).toEqual({ ...spec, results: { ...spec.results, curve: want } });
    expect(link.length).toBeLessThan(1200);
  });

  it('fits the longest curve (64 nine-digit steps, tiny losses) with every field set in one link', () => {
    const curve = Array.from({ length: 64 }, (_, i): [number, number] => [999_999_000 + i, 1.2345678e-7]);
    const value = curve.map(([s]) => `${s}:1.235e-7`).join(',');
    expect(value.length).toBeLessThanOrEqual(1500);
    const spec = specFor('gpt2-124m', { nLayer: 3, nHead: 2, nEmbd: 96, lr: 0.1 + 0.2, minLr: 1e-7, eps: 1.2345678901234567e-9, seed: 4294967295, valFraction: 1 / 3 }, {
      data: { kind: 'file', name: `${'ü'.repeat(200)}.txt`, bytes: 98765, sha256: 'f'.repeat(64) },
      results: { trainLoss: 1.2345678, valLoss: 1.4, steps: 999_999_063, device: 'x'.repeat(100), curve },
    });
    const link = encodeShareLink(spec);
    expect(link.length).toBeLessThanOrEqual(MAX_LINK_CHARS);
    expect(decodeShareLink(link).results!.curve).toHaveLength(64);
  });

  it('leaves out what a decoder would refuse: NaN losses, repeated or fractional steps, control characters in the device', () => {
    const spec = specFor('tiny', {}, { results: { valLoss: NaN, trainLoss: Infinity, steps: 1.5, device: 'GPU\u001b[2J\u202e x', curve: [[0, 3], [10, NaN], [10, 2.5], [20, 2], [20, 1.9], [25.5, 1.8], [30, 1e7], [40, 1.5]] } });
    const link = encodeShareLink(spec);
    expect(link).toBe('v=1&preset=tiny&r.device=GPU%20%5B2J%20%20x&r.curve=0:3,10:2.5,20:2,40:1.5');
    expect(decodeShareLink(link).results).toEqual({ device: 'GPU [2J  x', curve: [[0, 3], [10, 2.5], [20, 2], [40, 1.5]] });
    expect(encodeShareLink(specFor('tiny', {}, { results: { curve: [[0, NaN]] } }))).toBe('v=1&preset=tiny');
  });

  it('decodes an old link (no r.curve) exactly as before', () => {
    const old = `v=1&preset=tiny&file=my%20notes%20%26%20%231.txt&bytes=1234&sha256=${'ab'.repeat(32)}&r.train=1.25&r.val=1.5&r.steps=50&r.device=NVIDIA%20H200`;
    expect(decodeShareLink(old)).toEqual(specFor('tiny', {}, {
      data: { kind: 'file', name: 'my notes & #1.txt', bytes: 1234, sha256: 'ab'.repeat(32) },
      results: { trainLoss: 1.25, valLoss: 1.5, steps: 50, device: 'NVIDIA H200' },
    }));
    expect(decodeShareLink(old).results).not.toHaveProperty('curve');
  });

  it('accepts an escaped curve, and one point', () => {
    expect(decodeShareLink('v=1&preset=tiny&r.curve=0%3A3.3%2C10%3A2').results).toEqual({ curve: [[0, 3.3], [10, 2]] });
    expect(decodeShareLink('v=1&preset=tiny&r.curve=7:0').results).toEqual({ curve: [[7, 0]] });
  });

  it('describeResults: one line with the losses at 4 digits, the step, the device escaped, the curve length', () => {
    expect(describeResults({ valLoss: 1.23456, trainLoss: 1.1, steps: 500, device: 'NVIDIA H100', curve: [[0, 3], [500, 1.2]] }))
      .toBe("the link's run: val 1.235 (train 1.100) at step 500 on NVIDIA H100, curve of 2 points");
    expect(describeResults({ curve: [[0, 3]] })).toBe("the link's run: curve of 1 point");
    expect(describeResults({ device: 'a\u001b]0;x\u0007' })).toBe("the link's run: on a\\x1b]0;x\\x07");
    expect(describeResults({})).toBeNull();
    expect(describeResults(undefined)).toBeNull();
  });
});

describe('cliCommand', () => {
  /** What a POSIX shell makes of the command line: its words, one per line. */
  function shellWords(cmd: string): string[] {
    const out = execFileSync('sh', ['-c', `set -- ${cmd}; for a in "$@"; do printf '%s\\0' "$a"; done`], { encoding: 'utf8' });
    return out.split('\0').slice(0, -1);
  }

  it('quotes the link so that the shell passes it through unchanged', () => {
    const spec = specFor('names', { lr: 0.003 }, { data: { kind: 'bundled', id: 'names' } });
    const link = `https://kiln.example/#${encodeShareLink(spec)}`;
    const cmd = cliCommand(spec, link);
    expect(cmd).toBe(`kiln train --link '${link}' --out 'runs/names'`);
    expect(shellWords(cmd)).toEqual(['kiln', 'train', '--link', link, '--out', 'runs/names']);
  });

  it('passes a user file with --data and survives quotes, $ and backticks', () => {
    const name = "it's $HOME `id` \"x\".txt";
    const spec = specFor('tiny', {}, { data: { kind: 'file', name, bytes: 5, sha256: 'f'.repeat(64) } });
    const link = `https://kiln.example/#${encodeShareLink(spec)}&x='$(id)'`;
    const cmd = cliCommand(spec, link);
    expect(shellWords(cmd)).toEqual(['kiln', 'train', '--link', link, '--data', name, '--out', 'runs/tiny']);
    expect(shellQuote("a'b")).toBe(`'a'\\''b'`);
  });
});
