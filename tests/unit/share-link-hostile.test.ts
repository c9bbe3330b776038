// Hostile share links (DESIGN.md, Share links: "a link is untrusted input"): every one
// is refused with a KilnError('usage') whose message is one readable line naming the
// bad part - never a TypeError, a stack or a wall of text - and the few that are only
// odd (a javascript: URL with a valid fragment, "<script>" as a device name) decode
// to plain text.
import { describe, expect, it } from 'vitest';
import { KilnError } from '../../src/core/errors.ts';
import { decodeShareLink } from '../../src/core/share-link.ts';

const ok = 'v=1&preset=tiny';
const sha = 'a'.repeat(64);
const file = (name: string, bytes = '5', hash = sha) => `${ok}&file=${name}&bytes=${bytes}&sha256=${hash}`;
const points = (n: number) => Array.from({ length: n }, (_, i) => `${i}:1.5`).join(',');

/** [what, link, the message names this]. */
const HOSTILE: Array<[string, string, RegExp]> = [
  // size
  ['5000 characters', `${ok}&data=${'x'.repeat(5000)}`, /is 50\d\d characters long; Kiln links are at most 4096/],
  ['a 5000-character URL of nothing', `https://e.example/#${'%'.repeat(5000)}`, /at most 4096/],
  ['a value over 256 characters', `${ok}&file=${'a'.repeat(300)}&bytes=1&sha256=${sha}`, /file is 300 characters long \(at most 256\)/],
  ['4100 empty parts', `${ok}${'&'.repeat(4100)}`, /is 4115 characters long; Kiln links are at most 4096/],
  ['many parts', `${ok}&${'a=1&'.repeat(800)}`, /(unknown setting "a"|sets a twice)/],
  // numbers
  ['a negative lr', `${ok}&lr=-1`, /lr -1 is out of range/],
  ['a negative batch', `${ok}&batchSize=-4`, /batchSize -4 is out of range/],
  ['1e308', `${ok}&lr=1e308`, /lr 1e\+308 is out of range/],
  ['1e400 (Infinity)', `${ok}&nEmbd=1e400`, /nEmbd Infinity is out of range/],
  ['NaN', `${ok}&lr=NaN`, /lr must be a number, not "NaN"/],
  ['Infinity', `${ok}&lr=Infinity`, /lr must be a number, not "Infinity"/],
  ['-Infinity', `${ok}&dropout=-Infinity`, /dropout must be a number/],
  ['0x10', `${ok}&seed=0x10`, /seed must be a number, not "0x10"/],
  ['1_000', `${ok}&steps=1_000`, /steps must be a number, not "1_000"/],
  ['a full-width digit', `${ok}&seed=%EF%BC%91`, /seed must be a number/],
  ['an empty number', `${ok}&lr=`, /lr is empty/],
  ['an empty boolean', `${ok}&bias=`, /bias is empty/],
  ['an empty preset', 'v=1&preset=', /preset is empty/],
  ['an empty version', 'v=&preset=tiny', /v is empty/],
  ['a value of only a NUL', `${ok}&lr=%00`, /lr holds a control character: "\\u0000"/],
  // prototype keys
  ['__proto__', `${ok}&__proto__=1`, /unknown setting "__proto__"/],
  ['__proto__ first', '__proto__=1&v=1&preset=tiny', /unknown setting "__proto__"/],
  ['constructor', `${ok}&constructor=x`, /unknown setting "constructor"/],
  ['toString', `${ok}&toString=1`, /unknown setting "toString"/],
  ['hasOwnProperty', `${ok}&hasOwnProperty=x`, /unknown setting "hasOwnProperty"/],
  ['valueOf', `${ok}&valueOf=1`, /unknown setting "valueOf"/],
  ['an escaped __proto__', `${ok}&%5F%5Fproto%5F%5F=1`, /unknown setting "__proto__"/],
  ['preset=__proto__', 'v=1&preset=__proto__', /preset "__proto__" is unknown/],
  ['preset=constructor', 'v=1&preset=constructor', /preset "constructor" is unknown/],
  ['tokenizer=constructor', `${ok}&tokenizer=constructor`, /tokenizer must be one of char, bpe, gpt2, not "constructor"/],
  ['data=constructor', `${ok}&data=constructor`, /dataset "constructor" is not one this Kiln bundles/],
  ['data=__proto__', `${ok}&data=__proto__`, /dataset id "__proto__" is not a dataset name/],
  // versions
  ['v=2', 'v=2&preset=tiny', /version "2", and this Kiln reads version 1/],
  ['v=0', 'v=0&preset=tiny', /version "0"/],
  ['v=1.0', 'v=1.0&preset=tiny', /version "1.0"/],
  ['v=01', 'v=01&preset=tiny', /version "01"/],
  ['no version', 'preset=tiny&lr=0.01', /no version \(v=1\)/],
  ['v twice', `${ok}&v=1`, /sets v twice/],
  // script URLs and markup
  ['a javascript: URL without a fragment', 'javascript:alert(1)', /"javascript:alert\(1\)" is not of the form key=value/],
  ['a data: URL without a fragment', 'data:text/html,<script>alert(1)</script>', /is not of the form key=value/],
  ['a javascript: URL whose fragment is bad', 'javascript:alert(1)#v=1&preset=<script>', /preset "<script>" is unknown/],
  ['a script tag as a file name', file('%3Cscript%3Ealert(1)%3C%2Fscript%3E'), /file name "<script>alert\(1\)<\/script>" is not a file name/],
  ['a javascript: URL with a newline as a file name', file('javascript%3A%2F%2F%0Aalert(1)'), /file name .* is not a file name: it holds a control character/],
  ['a newline in a file name', file('a%0Ab.txt'), /file name "a\\nb.txt" is not a file name/],
  ['ESC in a file name', file('a%1B%5B2Jb'), /file name "a\\u001b\[2Jb" is not a file name/],
  ['a C1 CSI in a device', `${ok}&r.device=GPU%C2%9B2J`, /r\.device holds a control character: "GPU\\x9b2J"/],
  ['a bidi override in a device', `${ok}&r.device=abc%E2%80%AEdef`, /r\.device holds a control character: "abc\\u\{202e\}def"/],
  ['a line separator in a device', `${ok}&r.device=a%E2%80%A8b`, /r\.device holds a control character/],
  ['a lone surrogate in a value', `${ok}&r.device=a\ud800b`, /r\.device holds a control character/],
  ['a control character in a key', `${ok}&lr%0A=1`, /setting name with a control character: "lr\\n"/],
  ['a 101-character device', `${ok}&r.device=${'x'.repeat(101)}`, /r\.device "x{40}…" is not a device name \(at most 100 characters\)/],
  ['an empty device', `${ok}&r.device=`, /r\.device is empty/],
  ['a blank device', `${ok}&r.device=%20%20`, /r\.device "  " is not a device name/],
  // structure
  ['a duplicated key', `${ok}&lr=0.1&lr=0.1`, /sets lr twice/],
  ['a duplicated result', `${ok}&r.val=1&r.val=2`, /sets r\.val twice/],
  ['a duplicate by escaping', `${ok}&lr=0.1&l%72=0.2`, /sets lr twice/],
  ['a broken %-escape', `${ok}&lr=%E0%A4%A`, /"lr=%E0%A4%A" has a broken %-escape/],
  ['a bare %', `${ok}&lr=%`, /has a broken %-escape/],
  ['an invalid %-escape', `${ok}&lr=%ZZ`, /has a broken %-escape/],
  ['an overlong UTF-8 escape', `${ok}&r.device=%C0%AF`, /has a broken %-escape/],
  ['a part with no name', `${ok}&=1`, /"=1" has no name before "="/],
  ['a part with no "="', `${ok}&lr`, /"lr" is not of the form key=value/],
  ['nothing after #', 'https://kiln.example/#', /empty/],
  ['only ampersands', '#&&&', /no version/],
  // the curve
  ['r.curve with 65 points', `${ok}&r.curve=${points(65)}`, /r\.curve has 65 points \(at most 64\)/],
  ['r.curve with decreasing steps', `${ok}&r.curve=10:2,5:1`, /r\.curve point 2 "5:1" does not come after step 10: steps must increase/],
  ['r.curve with a repeated step', `${ok}&r.curve=10:2,10:1`, /point 2 "10:1" does not come after step 10/],
  ['r.curve with a NaN loss', `${ok}&r.curve=0:3,10:NaN`, /r\.curve point 2 "10:NaN" has no loss/],
  ['r.curve with an Infinity loss', `${ok}&r.curve=0:Infinity`, /point 1 "0:Infinity" has no loss/],
  ['r.curve with a loss of 1e6', `${ok}&r.curve=0:1e6`, /point 1 "0:1e6" has no loss \(a number >= 0 and below 1e6\)/],
  ['r.curve with a negative loss', `${ok}&r.curve=0:-1`, /point 1 "0:-1" has no loss/],
  ['r.curve with a hex loss', `${ok}&r.curve=0:0x1`, /point 1 "0:0x1" has no loss/],
  ['r.curve with a fractional step', `${ok}&r.curve=0.5:1`, /point 1 "0.5:1" is not STEP:LOSS/],
  ['r.curve with a negative step', `${ok}&r.curve=-1:1`, /point 1 "-1:1" is not STEP:LOSS/],
  ['r.curve with a 10-digit step', `${ok}&r.curve=1234567890:1`, /point 1 "1234567890:1" is not STEP:LOSS/],
  ['r.curve with an empty point', `${ok}&r.curve=0:1,,5:1`, /point 2 "" is not STEP:LOSS/],
  ['r.curve with a trailing comma', `${ok}&r.curve=0:1,`, /point 2 "" is not STEP:LOSS/],
  ['r.curve with two colons', `${ok}&r.curve=0:1:2`, /point 1 "0:1:2" is not STEP:LOSS/],
  ['r.curve of 2000 characters', `${ok}&r.curve=${'0'.repeat(2000)}`, /r\.curve is 2000 characters long \(at most 1500\)/],
  ['an empty r.curve', `${ok}&r.curve=`, /r\.curve is empty/],
  // the other results and the file
  ['a negative loss', `${ok}&r.train=-0.5`, /r\.train must be a loss/],
  ['a huge loss', `${ok}&r.val=1e308`, /r\.val must be a loss \(a number >= 0 and below 1e6\), not "1e308"/],
  ['an infinite loss', `${ok}&r.val=1e400`, /r\.val must be a loss/],
  ['negative steps', `${ok}&r.steps=-5`, /r\.steps must be a whole number of steps, not "-5"/],
  ['huge steps', `${ok}&r.steps=1e20`, /r\.steps must be a whole number/],
  ['bytes=-5', file('a.txt', '-5'), /bytes=<size in bytes>, not "-5"/],
  ['bytes=1e20', file('a.txt', '1e20'), /bytes=<size in bytes>, not "1e20"/],
  ['bytes of 20 digits', file('a.txt', '1'.repeat(20)), /bytes=<size in bytes>, not "1{20}"/],
  ['bytes=0', file('a.txt', '0'), /bytes=<size in bytes>, not "0"/],
  ['a short sha256', file('a.txt', '5', 'abc'), /sha256=<64 hex digits>, not "abc"/],
  ['a long sha256', file('a.txt', '5', `${sha}0`), /sha256=<64 hex digits>/],
  ['a sha256 that is not hex', file('a.txt', '5', 'g'.repeat(64)), /sha256=<64 hex digits>/],
  ['a dataset id that is a path', `${ok}&data=..%2F..%2Fetc%2Fpasswd`, /dataset id "..\/..\/etc\/passwd" is not a dataset name/],
  ['a dataset id that is a local file', `${ok}&data=package.json`, /dataset "package.json" is not one this Kiln bundles/],
];

function refusal(link: string): KilnError {
  let caught: unknown = null;
  try {
    decodeShareLink(link);
  } catch (e) {
    caught = e;
  }
  expect(caught, `accepted: ${JSON.stringify(String(link).slice(0, 120))}`).toBeInstanceOf(KilnError);
  return caught as KilnError;
}

describe('hostile share links', () => {
  it.each(HOSTILE)('%s', (_, link, names) => {
    const e = refusal(link);
    expect(e.code).toBe('usage');
    expect(e.message).toMatch(names);
    expect(e.message).not.toMatch(/[\n\r\u2028\u2029]/);
    expect(e.message).not.toMatch(/TypeError|RangeError|URIError|undefined|\[object/);
    expect(e.message).not.toMatch(/\bat \S+ \(|\n\s+at /);
    expect(e.message.length).toBeLessThan(400);
    // Nothing from the link reaches a terminal raw: no control characters in what is printed.
    expect(`${e.message}\n${e.hint}`).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/);
    expect(e.hint.length).toBeGreaterThan(5);
    expect(e.hint).not.toContain('\n');
  });

  it('non-text input is refused as well', () => {
    for (const x of [null, undefined, 42, {}, ['v=1&preset=tiny']]) {
      const e = refusal(x as unknown as string);
      expect(e.code).toBe('usage');
      expect(e.message).toBe('the link is not text');
    }
  });
});

describe('odd but harmless links decode to plain text', () => {
  it('a javascript: or data: URL with a valid fragment: only the fragment counts', () => {
    expect(decodeShareLink('javascript:alert(1)#v=1&preset=tiny').preset).toBe('tiny');
    expect(decodeShareLink('data:text/html,<script>alert(1)</script>#v=1&preset=tiny&lr=0.01').config.lr).toBe(0.01);
  });

  it('markup in a device name or file name stays text (the page escapes it, the CLI prints it escaped)', () => {
    expect(decodeShareLink(`${ok}&r.device=%3Cscript%3Ealert(1)%3C%2Fscript%3E`).results).toEqual({ device: '<script>alert(1)</script>' });
    const spec = decodeShareLink(file('%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E.txt'));
    expect(spec.data).toEqual({ kind: 'file', name: '<img src=x onerror=alert(1)>.txt', bytes: 5, sha256: sha });
  });

  it('prototype keys never reach the config object', () => {
    for (const key of ['__proto__', 'constructor', 'prototype']) {
      expect(() => decodeShareLink(`${ok}&${key}=1`)).toThrow(KilnError);
    }
    const spec = decodeShareLink(ok);
    expect(Object.getPrototypeOf(spec.config)).toBe(Object.prototype);
    expect(Object.keys(spec.config)).not.toContain('__proto__');
  });
});
