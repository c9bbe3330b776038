// The lab's training texts on their own: each kind of DataSource read, and refused with
// a way out where it cannot be; a user's file checked against the run it is for; the
// data panel's text kept only once it is prepared, and its tokens reused for the same
// text and settings only.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { RunConfig } from '../../src/core/config.ts';
import { isKilnError } from '../../src/core/errors.ts';
import { findPreset } from '../../src/core/presets.ts';
import { dataNeeded, LabData, sameData, sameTokens, SHA_HINT, type DataDeps } from '../../src/worker/lab-data.ts';

const config: RunConfig = { ...findPreset('tiny')!.config };
const text = new TextEncoder().encode('anna\nbob\ncarla\ndave\nemma\nfred\n'.repeat(40));
const noProgress = () => {};

function deps(over: Partial<DataDeps> = {}): DataDeps {
  return {
    loadBundled: async (file) => new Uint8Array(readFileSync(new URL(`../../public/datasets/${file}`, import.meta.url))),
    sha256: async (bytes) => `${bytes.length}`.padStart(64, 'a'),
    ...over,
  };
}

/** A library that keeps one text, by this hash. */
function library(sha256 = 'f'.repeat(64)) {
  return async () => ({ getDataset: async (sha: string) => (sha === sha256 ? { name: 'kept.txt', bytes: text } : null) });
}

async function refusal(p: Promise<unknown>) {
  const e = await p.then(() => null, (err: unknown) => err);
  if (!isKilnError(e)) throw new Error(`expected a KilnError, got ${String(e)}`);
  return { code: e.code, message: e.message, hint: e.hint };
}

describe('LabData.read', () => {
  it('reads a bundled dataset, a kept text, a data-folder file and a user file, each with the ref a run names it by', async () => {
    const data = new LabData(deps({ readDataFile: async (path) => ({ name: path.split('/').at(-1)!, bytes: text }) }), library());
    expect(await data.read({ kind: 'bundled', id: 'names' })).toMatchObject({ name: 'English first names', ref: { kind: 'bundled', id: 'names' } });
    const sha = 'f'.repeat(64);
    expect((await data.read({ kind: 'stored', sha256: sha })).ref).toEqual({ kind: 'file', name: 'kept.txt', bytes: text.length, sha256: sha });
    const hash = `${text.length}`.padStart(64, 'a');
    expect((await data.read({ kind: 'server', path: 'sub/mine.txt' })).ref).toEqual({ kind: 'file', name: 'mine.txt', bytes: text.length, sha256: hash });
    expect((await data.read({ kind: 'file', name: 'up.txt', bytes: text, expect: { sha256: hash.toUpperCase(), bytes: text.length } })).ref)
      .toEqual({ kind: 'file', name: 'up.txt', bytes: text.length, sha256: hash });
  });

  it('refuses what it cannot read, saying what to do', async () => {
    const data = new LabData(deps(), library());
    expect(await refusal(data.read({ kind: 'bundled', id: 'nope' }))).toMatchObject({ code: 'data', message: 'there is no bundled dataset "nope"' });
    expect(await refusal(data.read({ kind: 'stored', sha256: '0'.repeat(64) }))).toEqual({
      code: 'data', message: 'the text file of this run is no longer kept in this browser', hint: 'open the file again',
    });
    expect(await refusal(data.read({ kind: 'server', path: 'a.txt' }))).toMatchObject({ code: 'data', message: 'this lab has no data folder' });
    const wrong = await refusal(data.read({ kind: 'file', name: 'other.txt', bytes: text, expect: { sha256: 'b'.repeat(64), bytes: 9 } }));
    expect(wrong).toEqual({
      code: 'data',
      message: `other.txt is not the file the run was trained on: its SHA-256 is aaaaaaaaaaaa… (${text.length} bytes), the run's file has bbbbbbbbbbbb… (9 bytes)`,
      hint: SHA_HINT,
    });
    const noLibrary = new LabData(deps(), async () => {
      throw new Error('no library');
    });
    await expect(noLibrary.read({ kind: 'stored', sha256: 'f'.repeat(64) })).rejects.toThrow('no library');
  });

  it('lists the data folder\'s files, none without one', async () => {
    expect(await new LabData(deps(), library()).files()).toEqual([]);
    const files = [{ path: 'a.txt', bytes: 3 }];
    expect(await new LabData(deps({ dataFiles: async () => files }), library()).files()).toEqual(files);
  });
});

describe('the data panel\'s text', () => {
  it('becomes current once prepared, and not when preparing fails', async () => {
    const data = new LabData(deps(), library());
    await expect(data.prepare({ kind: 'bundled', id: 'nope' }, config, noProgress)).rejects.toThrow();
    expect(data.current).toBeNull();
    const got = await data.prepare({ kind: 'file', name: 'mine.txt', bytes: text }, config, noProgress);
    expect(data.current).toBe(got);
    expect(got.summary).toMatchObject({ name: 'mine.txt', bytes: text.length, tokenizer: config.tokenizer, chars: text.length });
    expect(got.summary.trainTokens + got.summary.valTokens).toBe(got.summary.tokens);
    await expect(data.prepare({ kind: 'bundled', id: 'nope' }, config, noProgress)).rejects.toThrow();
    expect(data.current).toBe(got);
  });

  it('lends its tokens to the same text with the same token settings only, and keeps what it tokenized afresh to itself', async () => {
    const data = new LabData(deps(), library());
    const current = await data.prepare({ kind: 'file', name: 'mine.txt', bytes: text }, config, noProgress);
    const same = await data.tokensFor({ kind: 'file', name: 'renamed.txt', bytes: text }, { ...config, lr: 1 }, noProgress);
    expect(same.prepared).toBe(current.prepared);
    const other = await data.tokensFor({ kind: 'file', name: 'mine.txt', bytes: text }, { ...config, blockSize: config.blockSize / 2 }, noProgress);
    expect(other.prepared).not.toBe(current.prepared);
    expect(data.current).toBe(current);
  });

  it('finds a saved run\'s text: the current one, a kept one, or none', async () => {
    const data = new LabData(deps(), library());
    const current = await data.prepare({ kind: 'bundled', id: 'names' }, config, noProgress);
    expect(await data.textOf({ kind: 'bundled', id: 'names' })).toBe(current);
    expect(await data.textOf(null)).toBeNull();
    expect(await data.textOf({ kind: 'file', name: 'gone.txt', bytes: 3, sha256: '0'.repeat(64) })).toBeNull();
    const kept = await data.textOf({ kind: 'file', name: 'x.txt', bytes: text.length, sha256: 'f'.repeat(64) });
    expect(kept).toMatchObject({ source: { kind: 'stored', sha256: 'f'.repeat(64) }, text: new TextDecoder().decode(text) });
  });
});

describe('comparing texts and settings', () => {
  it('is the same text by bundled id or file hash, never across kinds', () => {
    const file = { kind: 'file', name: 'a', bytes: 1, sha256: 'x' } as const;
    expect(sameData({ kind: 'bundled', id: 'names' }, { kind: 'bundled', id: 'names' })).toBe(true);
    expect(sameData(file, { ...file, name: 'b' })).toBe(true);
    expect(sameData(file, { ...file, sha256: 'y' })).toBe(false);
    expect(sameData({ kind: 'bundled', id: 'x' }, file)).toBe(false);
    expect(sameData(null, file)).toBe(false);
  });

  it('needs the text read again only for the settings the tokens depend on', () => {
    expect(sameTokens(config, { ...config, lr: 0.5, steps: 3 })).toBe(true);
    for (const change of [{ tokenizer: 'bpe' }, { bpeVocab: config.bpeVocab + 1 }, { valFraction: 0.5 }, { blockSize: 8 }] as const) {
      expect(sameTokens(config, { ...config, ...change })).toBe(false);
    }
  });

  it('says which text a run opened without it needs', () => {
    expect(dataNeeded({ kind: 'file', name: 'mine.txt', bytes: 12, sha256: 'x' }).message).toBe('this run trains on the file mine.txt (12 bytes), which is not in this browser');
    expect(dataNeeded({ kind: 'bundled', id: 'names' }).message).toBe('this run trains on the bundled dataset names, which is not in this browser');
    expect(dataNeeded(null).message).toBe('this run trains on its training text, which it does not name, which is not in this browser');
  });
});
