// Crafted inputs against the `kiln` command end to end (issue 19): each is refused with
// exit 1 or 2 and one "kiln: error:" line with a hint, before anything big is built, and
// nothing from the input reaches the terminal unescaped.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeCheckpoint } from '../../src/core/checkpoint.ts';
import { findPreset } from '../../src/core/presets.ts';
import { initParams, modelSpec, resolveModel } from '../../src/core/model-spec.ts';
import { Rng } from '../../src/core/rng.ts';
import { encodeSafetensors } from '../../src/core/safetensors.ts';
import { expectKilnError, namesText, runKiln, tempDir } from '../helpers/cli.ts';

const root = tempDir('kiln-hostile-');
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A well-sealed tiny checkpoint whose BPE tokenizer has these merges (the file is made with Kiln's own code, as an attacker could). */
async function bpeCheckpoint(merges: Array<[number, number]>): Promise<string> {
  const config = { ...findPreset('tiny')!.config, tokenizer: 'bpe' as const, bpeVocab: 1024 };
  const model = resolveModel(config, 256 + merges.length);
  const params = initParams(modelSpec(model), new Rng(1));
  const path = join(root, `bpe-${merges.length}.safetensors`);
  writeFileSync(path, await encodeCheckpoint({ config, model, tokenizer: { kind: 'bpe', merges }, step: 0, rng: '{}', state: { params, m: null, v: null, step: 0 } }));
  return path;
}

describe('kiln with crafted inputs', () => {
  it('a BPE merge list that doubles token lengths: refused at once by sample and eval', async () => {
    const doubling: Array<[number, number]> = [[97, 97], ...Array.from({ length: 39 }, (_, i): [number, number] => [256 + i, 256 + i])];
    const ckpt = await bpeCheckpoint(doubling);
    expectKilnError(await runKiln(['sample', '--checkpoint', ckpt, '--tokens', '5', '--backend', 'cpu']), 2, /bpe merge \d+ .* makes a token of \d+ bytes/);
    expectKilnError(await runKiln(['eval', '--checkpoint', ckpt, '--data', 'names', '--backend', 'cpu']), 2, /bpe merge \d+/);
  });

  it('a link naming a model far past this machine: refused with its size', async () => {
    const r = await runKiln(['train', '--link', 'v=1&preset=tiny&nLayer=96&nEmbd=8192&nHead=128', '--backend', 'cpu', '--out', join(root, 'huge')]);
    expectKilnError(r, 1, /needs ~[\d.]+ TiB of memory/);
  });

  it('an HF folder whose 100-byte config.json names a huge model over an empty model.safetensors', async () => {
    const dir = join(root, 'hf-huge');
    mkdirSync(dir);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'gpt2', vocab_size: 50257, n_positions: 1024, n_layer: 96, n_head: 128, n_embd: 8192 }));
    writeFileSync(join(dir, 'model.safetensors'), encodeSafetensors([], {}));
    expectKilnError(await runKiln(['import', '--hf', dir, '--out', join(root, 'huge.safetensors')]), 2, /describes [\d,]+ parameters but model\.safetensors has only \d+ bytes/);
  });

  it('a config file nested 100k levels deep, and a key with terminal escapes', async () => {
    let deep = '1';
    for (let i = 0; i < 100_000; i++) deep = `[${deep}]`;
    const deepFile = join(root, 'deep.json');
    writeFileSync(deepFile, `{"preset":"tiny","nLayer":${deep}}`);
    const names = join(root, 'names.txt');
    writeFileSync(names, namesText(500));
    const r = await runKiln(['train', '--config', deepFile, '--data', names, '--out', join(root, 'deep')]);
    expect(r.code).not.toBe(0);
    expect([1, 2]).toContain(r.code);
    expect(r.stderr).not.toContain('internal error');
    const evil = join(root, 'evil.json');
    writeFileSync(evil, JSON.stringify({ preset: 'tiny', '\u001b]0;pwned\u0007': 1 }));
    const e = await runKiln(['train', '--config', evil, '--data', names, '--out', join(root, 'evil')]);
    expectKilnError(e, 1, /unknown setting/);
    expect(e.stderr).not.toMatch(/[\u0007\u001b]/);
  });

  it('--debug is accepted anywhere before the command\'s flags end, and changes no message', async () => {
    const missing = join(root, 'nope.safetensors');
    const plain = await runKiln(['sample', '--checkpoint', missing]);
    const debug = await runKiln(['sample', '--debug', '--checkpoint', missing]);
    expect(debug.code).toBe(plain.code);
    expect(debug.stderr).toBe(plain.stderr);
    expect(process.env.KILN_DEBUG).toBeUndefined();
  });
});
