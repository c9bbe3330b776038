// Crafted inputs against the `kiln` command end to end (issue 19): each is refused with
// exit 1 or 2 and one "kiln: error:" line with a hint, before anything big is built, and
// nothing from the input reaches the terminal unescaped.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeCheckpoint, sealSafetensors } from '../../src/core/checkpoint.ts';
import { findPreset } from '../../src/core/presets.ts';
import { initParams, modelSpec, resolveModel } from '../../src/core/model-spec.ts';
import { Rng } from '../../src/core/rng.ts';
import { decodeSafetensors, encodeSafetensors, type TensorIn } from '../../src/core/safetensors.ts';
import { expectKilnError, namesText, runKiln, tempDir, type KilnRun } from '../helpers/cli.ts';

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

/** A tiny checkpoint's tensors and metadata (hashes left out), to seal again with crafted changes, as an attacker could. */
async function tinyParts(): Promise<{ list: TensorIn[]; metadata: Record<string, string> }> {
  const config = findPreset('tiny')!.config;
  const model = resolveModel(config, 30);
  const chars = Array.from({ length: 30 }, (_, i) => String.fromCharCode(97 + i));
  const bytes = await encodeCheckpoint({ config, model, tokenizer: { kind: 'char', chars }, step: 0, rng: '{}', state: { params: initParams(modelSpec(model), new Rng(1)), m: null, v: null, step: 0 } });
  const { tensors, metadata } = decodeSafetensors(bytes);
  const list: TensorIn[] = [...tensors].map(([name, t]) => ({ name, dtype: 'F32', shape: t.shape, data: t.data }));
  delete metadata['kiln.sha256'];
  delete metadata['kiln.header_sha256'];
  return { list, metadata };
}

/** A safetensors header of n one-float F32 tensors named name(i), every data offset valid, and the data after it. */
function manyTensors(n: number, name: (i: number) => string): Uint8Array {
  const parts: string[] = [];
  for (let i = 0; i < n; i++) parts.push(`"${name(i)}":{"dtype":"F32","shape":[1],"data_offsets":[${4 * i},${4 * i + 4}]}`);
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const out = new Uint8Array(8 + json.length + 4 * n);
  new DataView(out.buffer).setUint32(0, json.length, true);
  out.set(json, 8);
  return out;
}

/** Refused as a user error in one line: exit 1 or 2, no stack, no RangeError, nothing on stdout. */
function expectRefused(r: KilnRun): void {
  const context = `exit ${r.code}\nstderr:\n${r.stderr}`;
  expect([1, 2], context).toContain(r.code);
  expect(r.stderr.split('\n').filter((l) => l.startsWith('kiln: error: ')), context).toHaveLength(1);
  expect(r.stderr, context).not.toContain('    at ');
  expect(r.stderr, context).not.toContain('RangeError');
  expect(r.stderr, context).not.toContain('internal error');
  expect(r.stdout, context).toBe('');
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
    const e = expectKilnError(r, 1, /^kiln: error: training needs [\d.]+ TiB of memory on the cpu backend, [\d.]+ TiB more than the [\d.]+ \w+ free on this machine \([\d.]+ \w+ in all\), for 77\.\d B parameters at batch \d+; /);
    expect(e.hint).toMatch(/--set nLayer=\d+ --set nEmbd=\d+|vocabSize or blockSize/);
  });

  it('an HF folder whose 100-byte config.json names a huge model over an empty model.safetensors', async () => {
    const dir = join(root, 'hf-huge');
    mkdirSync(dir);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'gpt2', vocab_size: 50257, n_positions: 1024, n_layer: 96, n_head: 128, n_embd: 8192 }));
    writeFileSync(join(dir, 'model.safetensors'), encodeSafetensors([], {}));
    expectKilnError(await runKiln(['import', '--hf', dir, '--out', join(root, 'huge.safetensors')]), 2, /config\.json's model needs [\d,]+ parameters \([\d.]+ GiB even in F16\) but model\.safetensors holds \d+ B in all/);
  });

  it('a checkpoint whose model.vocabSize is 2^52: refused by sample and eval before anything is sized from it', async () => {
    const { list, metadata } = await tinyParts();
    const model = JSON.parse(metadata['kiln.model']) as Record<string, number>;
    const path = join(root, 'vocab-2-52.safetensors');
    writeFileSync(path, await sealSafetensors(list, { ...metadata, 'kiln.model': JSON.stringify({ ...model, vocabSize: 2 ** 52 }) }));
    for (const argv of [['sample', '--checkpoint', path, '--tokens', '5', '--backend', 'cpu'], ['eval', '--checkpoint', path, '--data', 'names', '--backend', 'cpu']]) {
      const r = await runKiln(argv);
      expectKilnError(r, 2, /vocabSize 4503599627370496, more than Kiln's 262144/);
      expectRefused(r);
    }
  });

  it('a safetensors file with 200k tensors: refused in one line by sample and by import --hf', async () => {
    // A sealed Kiln checkpoint (its hashes hold) with 200k stray one-float tensors beside the model's.
    const { list, metadata } = await tinyParts();
    const stray: TensorIn[] = [];
    for (let i = 0; i < 200_000; i++) stray.push({ name: `x${i}`, dtype: 'F32', shape: [1], data: new Float32Array(1) });
    const ckpt = join(root, 'many.safetensors');
    writeFileSync(ckpt, await sealSafetensors([...list, ...stray], metadata));
    const sample = await runKiln(['sample', '--checkpoint', ckpt, '--tokens', '5', '--backend', 'cpu']);
    expectKilnError(sample, 2, /checkpoint has an unexpected tensor "x\d+"/);
    expectRefused(sample);
    // An HF folder: a small GPT-2 config.json over 200k mask buffers (which import skips), so the whole table is walked.
    const dir = join(root, 'hf-many');
    mkdirSync(dir);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'gpt2', vocab_size: 50257, n_positions: 8, n_layer: 1, n_head: 1, n_embd: 8 }));
    writeFileSync(join(dir, 'model.safetensors'), manyTensors(200_000, (i) => `h.${i}.attn.bias`));
    const hf = await runKiln(['import', '--hf', dir, '--out', join(root, 'many-imported.safetensors')]);
    expectKilnError(hf, 2, /model\.safetensors is missing transformer\.wte\.weight/);
    expectRefused(hf);
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
