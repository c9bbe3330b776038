// `kiln train --link` as a person runs it (a real process, bin/kiln.mjs): a hostile
// link exits 1 with one readable "kiln: error:" line and a hint, no stack, nothing
// written; a link that carries the sharer's results (with the val curve) trains and
// says what the sharer got.
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeShareLink } from '../../src/core/share-link.ts';
import { findPreset } from '../../src/core/presets.ts';
import { expectKilnError, readMetrics, spawnKiln, tempDir, type KilnRun } from '../helpers/cli.ts';

const root = tempDir('kiln-link-cli-');
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function kiln(argv: string[]): Promise<KilnRun> {
  const p = spawnKiln(argv);
  const { code } = await p.exit;
  return { code: code ?? -1, ...p.output() };
}

const sha = 'a'.repeat(64);
const HOSTILE: Array<[string, string, RegExp]> = [
  ['a newer version', 'https://kiln.example/lab/#v=2&preset=tiny', /version "2", and this Kiln reads version 1/],
  ['a prototype key', '#v=1&preset=tiny&__proto__=1', /unknown setting "__proto__"/],
  ['5000 characters', `#v=1&preset=tiny&data=${'x'.repeat(5000)}`, /is 50\d\d characters long; Kiln links are at most 4096/],
  ['NaN', '#v=1&preset=tiny&lr=NaN', /lr must be a number, not "NaN"/],
  ['a curve going back', '#v=1&preset=tiny&r.curve=10:2,5:1', /r\.curve point 2 "5:1" does not come after step 10/],
  ['terminal escapes in a file name', `#v=1&preset=tiny&file=a%1B%5D0%3Bpwned%07.txt&bytes=5&sha256=${sha}`, /file name "a\\u001b\]0;pwned\\u0007\.txt" is not a file name/],
  ['a local file as the dataset', '#v=1&preset=tiny&data=package.json', /dataset "package.json" is not one this Kiln bundles/],
  ['a javascript: URL', 'javascript:alert(1)', /"javascript:alert\(1\)" is not of the form key=value/],
];

describe('kiln train --link with a hostile link', () => {
  it.each(HOSTILE.map((c, i) => [...c, i % 2 === 0] as const))('%s: exit 1, one line and a hint, no stack, nothing written', async (_, link, names, fresh) => {
    // Half the --out folders do not exist yet (they must not be made), half exist and are empty (they must stay so).
    const out = join(root, `out-${Math.random().toString(36).slice(2)}`);
    if (!fresh) mkdirSync(out);
    const r = await kiln(['train', '--link', link, '--steps', '1', '--out', out]);
    expectKilnError(r, 1, names);
    const context = r.stderr;
    expect(r.stderr, context).not.toMatch(/\n\s+at |TypeError|RangeError|URIError/);
    // The error and its hint, nothing else (a control character of the link never reaches the terminal).
    expect(r.stderr.trimEnd().split('\n'), context).toHaveLength(2);
    expect(r.stderr, context).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
    expect(r.stderr.split('\n')[0].length, context).toBeLessThan(420);
    if (fresh) expect(existsSync(out)).toBe(false);
    else expect(readdirSync(out)).toEqual([]);
  });
});

describe('kiln train --link with the sharer\'s results', () => {
  it('trains, and prints what the sharer got in one line', async () => {
    const spec = {
      preset: 'tiny',
      config: { ...findPreset('tiny')!.config },
      data: { kind: 'bundled' as const, id: 'names' },
      results: {
        trainLoss: 2.1,
        valLoss: 2.345678,
        steps: 500,
        device: 'NVIDIA H100 80GB HBM3 <script>',
        curve: Array.from({ length: 100 }, (_, i): [number, number] => [i * 5, 3.3 - i * 0.01]),
      },
    };
    const link = `https://kiln.example/lab/#${encodeShareLink(spec)}`;
    expect(link).toContain('&r.curve=0:3.3,');
    const out = join(root, 'with-results');
    const r = await kiln(['train', '--link', link, '--backend', 'cpu', '--steps', '2', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stderr.split('\n').filter((l) => l.includes("the link's run"));
    expect(lines, r.stderr).toEqual(["kiln: the link's run: val 2.346 (train 2.100) at step 500 on NVIDIA H100 80GB HBM3 <script>, curve of 64 points"]);
    expect(readMetrics(out).at(-1)!.step).toBe(2);
  });

  it('an old link without results trains without that line', async () => {
    const out = join(root, 'old');
    const r = await kiln(['train', '--link', '#v=1&preset=tiny&data=names', '--backend', 'cpu', '--steps', '1', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toContain("the link's run");
  });
});
