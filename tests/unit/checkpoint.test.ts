import { describe, expect, it } from 'vitest';
import { decodeCheckpoint, encodeCheckpoint, sealSafetensors, sha256Hex, type CheckpointData } from '../../src/core/checkpoint.ts';
import type { RunConfig } from '../../src/core/config.ts';
import { KilnError } from '../../src/core/errors.ts';
import { initParams, modelSpec, paramViews, resolveModel } from '../../src/core/model-spec.ts';
import { findPreset } from '../../src/core/presets.ts';
import { Rng } from '../../src/core/rng.ts';
import { decodeSafetensors, encodeSafetensors, type TensorIn } from '../../src/core/safetensors.ts';
import { exportHF } from '../../src/core/hf.ts';
import { expectKilnRejection } from '../helpers/kiln-error.ts';

function bits(a: Float32Array | null): number[] | null {
  return a && Array.from(new Uint32Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength)));
}

/** A small but complete checkpoint: params, AdamW moments with odd values, extra metadata. */
function makeCheckpoint(fields: Partial<RunConfig> = {}, withMoments = true): CheckpointData {
  const config: RunConfig = { ...findPreset('tiny')!.config, nLayer: 1, nHead: 2, nEmbd: 8, blockSize: 4, ...fields };
  const chars = ['\n', ' ', 'a', 'b', 'c', 'é'];
  const model = resolveModel(config, chars.length);
  const spec = modelSpec(model);
  const rng = new Rng(42);
  const params = initParams(spec, rng);
  params[0] = -0;
  params[1] = 1e-45;
  const m = withMoments ? new Float32Array(spec.numParams).map(() => rng.normal() * 1e-3) : null;
  const v = withMoments ? new Float32Array(spec.numParams).map(() => rng.next() * 1e-6) : null;
  return {
    config,
    model,
    tokenizer: { kind: 'char', chars },
    step: 17,
    rng: JSON.stringify({ sampler: [1, 2, 3, 4] }),
    state: { params, m, v, step: 17 },
    extra: { 'kiln.best_val_loss': '2.125', 'kiln.dataset': '{"kind":"bundled","id":"names"}' },
  };
}

function expectRejected(p: Promise<unknown>, match?: RegExp): Promise<KilnError> {
  return expectKilnRejection(p, 'checkpoint', match);
}

describe('checkpoint round trip', () => {
  it('restores config, model, tokenizer, step, rng, extra and every float bit-exactly', async () => {
    const c = makeCheckpoint();
    const back = await decodeCheckpoint(await encodeCheckpoint(c));
    expect(back.config).toEqual(c.config);
    expect(back.model).toEqual(c.model);
    expect(back.tokenizer).toEqual(c.tokenizer);
    expect(back.step).toBe(17);
    expect(back.state.step).toBe(17);
    expect(back.rng).toBe(c.rng);
    expect(back.extra).toEqual(c.extra);
    expect(bits(back.state.params)).toEqual(bits(c.state.params));
    expect(bits(back.state.m)).toEqual(bits(c.state.m));
    expect(bits(back.state.v)).toEqual(bits(c.state.v));
  });

  it('stores a weights-only state without optimizer tensors', async () => {
    const c = makeCheckpoint({}, false);
    const bytes = await encodeCheckpoint({ ...c, extra: undefined });
    const names = [...decodeSafetensors(bytes).tensors.keys()];
    expect(names.some((n) => n.startsWith('optimizer.'))).toBe(false);
    const back = await decodeCheckpoint(bytes);
    expect(back.state.m).toBeNull();
    expect(back.state.v).toBeNull();
    expect(back.extra).toEqual({});
  });

  it('lays the file out as DESIGN.md says: HF names, optimizer.* tensors, kiln.* metadata', async () => {
    const c = makeCheckpoint();
    const { tensors, metadata } = decodeSafetensors(await encodeCheckpoint(c));
    const spec = modelSpec(c.model);
    expect([...tensors.keys()]).toEqual([
      ...spec.params.map((p) => p.name),
      ...spec.params.map((p) => `optimizer.exp_avg.${p.name}`),
      ...spec.params.map((p) => `optimizer.exp_avg_sq.${p.name}`),
    ]);
    expect(tensors.get('transformer.h.0.attn.c_attn.weight')!.shape).toEqual([8, 24]);
    expect(metadata['kiln.format']).toBe('2');
    expect(JSON.parse(metadata['kiln.config'])).toEqual(c.config);
    expect(JSON.parse(metadata['kiln.model'])).toEqual(c.model);
    expect(JSON.parse(metadata['kiln.tokenizer'])).toEqual(c.tokenizer);
    expect(metadata['kiln.step']).toBe('17');
    expect(metadata['kiln.sha256']).toMatch(/^[0-9a-f]{64}$/);
    expect(metadata['kiln.header_sha256']).toMatch(/^[0-9a-f]{64}$/);
  });

  it('kiln.sha256 is the SHA-256 of the data section', async () => {
    const bytes = await encodeCheckpoint(makeCheckpoint());
    const n = new DataView(bytes.buffer).getUint32(0, true);
    const { createHash } = await import('node:crypto');
    const hex = createHash('sha256').update(bytes.subarray(8 + n)).digest('hex');
    expect(decodeSafetensors(bytes).metadata['kiln.sha256']).toBe(hex);
  });
});

describe('damaged checkpoints', () => {
  it('rejects a flipped byte anywhere in the header and at sampled data positions', async () => {
    const bytes = await encodeCheckpoint(makeCheckpoint());
    const dataStart = 8 + new DataView(bytes.buffer).getUint32(0, true);
    const positions: number[] = [];
    for (let i = 0; i < dataStart; i++) positions.push(i);
    for (let i = dataStart; i < bytes.length; i += 101) positions.push(i);
    positions.push(dataStart, dataStart + 1, bytes.length - 2, bytes.length - 1);
    for (const pos of positions) {
      for (const mask of [0x01, 0xff]) {
        const bad = bytes.slice();
        bad[pos] ^= mask;
        let err: unknown = null;
        try {
          await decodeCheckpoint(bad);
        } catch (e) {
          err = e;
        }
        if (!(err instanceof KilnError) || err.code !== 'checkpoint')
          throw new Error(`flipping byte ${pos} with ${mask} was ${err ? `thrown as ${String(err)}` : 'accepted'}`);
      }
    }
  });

  it('names the corruption when a tensor byte flips', async () => {
    const bytes = await encodeCheckpoint(makeCheckpoint());
    bytes[bytes.length - 1] ^= 0x10;
    const e = await expectRejected(decodeCheckpoint(bytes), /^checkpoint is corrupt: its tensors do not match the hash it was saved with$/);
    expect(e.hint).toMatch(/earlier checkpoint/);
  });

  it('names the corruption when a setting in the header changes', async () => {
    const bytes = await encodeCheckpoint(makeCheckpoint({ lr: 0.003 }));
    const text = new TextDecoder().decode(bytes);
    const at = text.indexOf('\\"lr\\":0.003');
    expect(at).toBeGreaterThan(0);
    bytes[at + '\\"lr\\":0.00'.length] = '5'.charCodeAt(0); // lr 0.003 -> 0.005: still a valid config
    await expectRejected(decodeCheckpoint(bytes), /header does not match the hash/);
  });

  it('rejects truncation at several lengths', async () => {
    const bytes = await encodeCheckpoint(makeCheckpoint());
    const dataStart = 8 + new DataView(bytes.buffer).getUint32(0, true);
    for (const n of [0, 5, 8, 100, dataStart - 1, dataStart, dataStart + 3, Math.floor(bytes.length / 2), bytes.length - 1])
      await expectRejected(decodeCheckpoint(bytes.subarray(0, n)));
    await expectRejected(decodeCheckpoint(bytes.subarray(0, bytes.length - 1)), /^checkpoint is truncated: its header says .* of tensors but the file has .* after the header$/);
  });
});

describe('checkpoints that are well-formed but wrong', () => {
  /** Tensors and metadata of a good checkpoint, to edit and re-seal with valid hashes. */
  async function parts() {
    const c = makeCheckpoint();
    const { tensors, metadata } = decodeSafetensors(await encodeCheckpoint(c));
    const list: TensorIn[] = [...tensors].map(([name, t]) => ({ name, dtype: 'F32', shape: t.shape, data: t.data }));
    delete metadata['kiln.sha256'];
    delete metadata['kiln.header_sha256'];
    return { list, metadata };
  }

  it('says a newer format was made by a newer Kiln', async () => {
    const { list, metadata } = await parts();
    const e = await expectRejected(decodeCheckpoint(await sealSafetensors(list, { ...metadata, 'kiln.format': '3' })), /made by a newer Kiln/);
    expect(e.hint).toMatch(/update Kiln/);
  });

  it('rejects a config that fails validate()', async () => {
    const { list, metadata } = await parts();
    const config = { ...JSON.parse(metadata['kiln.config']), nHead: 3 };
    await expectRejected(
      decodeCheckpoint(await sealSafetensors(list, { ...metadata, 'kiln.config': JSON.stringify(config) })),
      /config is invalid: nEmbd 8 is not divisible by nHead 3/,
    );
  });

  it('rejects missing and mis-shaped tensors, stray tensors and half an optimizer state', async () => {
    const { list, metadata } = await parts();
    const seal = (l: TensorIn[]) => sealSafetensors(l, metadata);
    await expectRejected(decodeCheckpoint(await seal(list.filter((t) => t.name !== 'transformer.ln_f.bias'))), /missing tensor transformer\.ln_f\.bias/);
    await expectRejected(decodeCheckpoint(await seal(list.filter((t) => !t.name.startsWith('optimizer.exp_avg_sq.')))), /missing tensor optimizer\.exp_avg_sq\./);
    const reshaped = list.map((t) => (t.name === 'transformer.wpe.weight' ? { ...t, shape: [8, 4] } : t));
    await expectRejected(decodeCheckpoint(await seal(reshaped)), /transformer\.wpe\.weight has shape \[8,4\] but the model needs \[4,8\]/);
    const stray = [...list, { name: 'lm_head.weight', dtype: 'F32' as const, shape: [1], data: new Float32Array(1) }];
    await expectRejected(decodeCheckpoint(await seal(stray)), /unexpected tensor "lm_head\.weight"/);
  });

  it('rejects bad metadata values', async () => {
    const { list, metadata } = await parts();
    const seal = (m: Record<string, string>) => sealSafetensors(list, { ...metadata, ...m });
    await expectRejected(decodeCheckpoint(await seal({ 'kiln.step': '-1' })), /bad kiln\.step/);
    await expectRejected(decodeCheckpoint(await seal({ 'kiln.config': '{' })), /kiln\.config is not valid JSON/);
    await expectRejected(decodeCheckpoint(await seal({ 'kiln.tokenizer': '{"kind":"sentencepiece"}' })), /not a Kiln tokenizer/);
    await expectRejected(decodeCheckpoint(await seal({ 'kiln.model': '{"vocabSize":6}' })), /not a model shape/);
    const wide = JSON.stringify({ ...JSON.parse(metadata['kiln.model']), nEmbd: 16 });
    await expectRejected(decodeCheckpoint(await seal({ 'kiln.model': wide })), /nEmbd 16 but its config says 8/);
  });

  it('covers the tensors\' data offsets in the header hash (format 2), and still reads format 1', async () => {
    const { list, metadata } = await parts();
    expect(metadata['kiln.format']).toBe('2');
    // A format-1 file (made before the offsets were hashed) still loads.
    const old = await decodeCheckpoint(await sealSafetensors(list, { ...metadata, 'kiln.format': '1' }));
    expect(old.state.params).toEqual(makeCheckpoint().state.params);
    // Swap two same-sized tensors' offsets in the header, keeping its length and hashes.
    const swap = (bytes: Uint8Array): Uint8Array => {
      const out = bytes.slice();
      const n = Number(new DataView(out.buffer).getBigUint64(0, true));
      const text = new TextDecoder().decode(out.subarray(8, 8 + n));
      const header = JSON.parse(text) as Record<string, { data_offsets: [number, number] }>;
      const a = header['transformer.h.0.ln_1.weight'].data_offsets;
      const b = header['transformer.h.0.ln_1.bias'].data_offsets;
      const swapped = text.replace(JSON.stringify(a), '\u0000').replace(JSON.stringify(b), JSON.stringify(a)).replace('\u0000', JSON.stringify(b));
      expect(swapped.length).toBe(text.length);
      out.set(new TextEncoder().encode(swapped), 8);
      return out;
    };
    await expectRejected(decodeCheckpoint(swap(await sealSafetensors(list, metadata))), /header does not match the hash/);
    // Format 1 could not tell: the gap the format bump closes.
    const fooled = await decodeCheckpoint(swap(await sealSafetensors(list, { ...metadata, 'kiln.format': '1' })));
    expect(fooled.state.params).not.toEqual(old.state.params);
  });

  it('refuses a BPE merge list that doubles token lengths, and merges past bpeVocab, before building the tokenizer', async () => {
    const c = makeCheckpoint({ tokenizer: 'bpe', bpeVocab: 300, vocabSize: 0 });
    const doubling: Array<[number, number]> = [[97, 97], ...Array.from({ length: 39 }, (_, i): [number, number] => [256 + i, 256 + i])];
    const model = resolveModel(c.config, 256 + doubling.length);
    const params = initParams(modelSpec(model), new Rng(1));
    const crafted = await encodeCheckpoint({ ...c, model, tokenizer: { kind: 'bpe', merges: doubling }, state: { params, m: null, v: null, step: c.step } });
    const e = await expectRejected(decodeCheckpoint(crafted), /bpe merge \d+ .* makes a token of \d+ bytes/);
    expect(e.code).toBe('checkpoint');
    const few: Array<[number, number]> = [[97, 98], [256, 99]];
    const small = resolveModel({ ...c.config, bpeVocab: 257 }, 258);
    const over = await encodeCheckpoint({ ...c, config: { ...c.config, bpeVocab: 257 }, model: small, tokenizer: { kind: 'bpe', merges: few }, state: { params: initParams(modelSpec(small), new Rng(1)), m: null, v: null, step: c.step } });
    await expectRejected(decodeCheckpoint(over), /has 258 tokens but its config's bpeVocab is 257/);
  });

  it('refuses a crafted model shape before allocating for it (a few bytes of metadata naming a huge model)', async () => {
    const { list, metadata } = await parts();
    const seal = (m: Record<string, string>, l = list) => sealSafetensors(l, { ...metadata, ...m });
    const model = JSON.parse(metadata['kiln.model']) as Record<string, number>;
    const config = JSON.parse(metadata['kiln.config']) as Record<string, number>;
    await expectRejected(decodeCheckpoint(await seal({ 'kiln.model': JSON.stringify({ ...model, vocabSize: 2 ** 52 }) })), /vocabSize 4503599627370496, more than Kiln's 262144/);
    // nLayer 96 x nEmbd 8192 and no tensors at all: refused on the sizes, not in an allocation.
    const huge = { ...config, nLayer: 96, nEmbd: 8192, nHead: 128 };
    const e = await expectRejected(decodeCheckpoint(await seal({ 'kiln.config': JSON.stringify(huge), 'kiln.model': JSON.stringify({ ...model, nLayer: 96, nEmbd: 8192, nHead: 128 }) }, [])),
      /model needs [\d,]+ parameters \(\d+(\.\d+)? GiB\) but the file holds 0 B of tensors/);
    expect(e.code).toBe('checkpoint');
  });

  it('points a Hugging Face export to import', async () => {
    const c = makeCheckpoint();
    const hf = exportHF(c.model, c.state.params, c.tokenizer);
    const e = await expectRejected(decodeCheckpoint(hf.modelSafetensors), /not a Kiln checkpoint/);
    expect(e.hint).toMatch(/import/);
  });

  it('refuses safetensors without tensors or with garbage', async () => {
    await expectRejected(decodeCheckpoint(encodeSafetensors([], {})), /not a Kiln checkpoint/);
    await expectRejected(decodeCheckpoint(new TextEncoder().encode('hello, world, this is not a checkpoint')));
  });
});

describe('encodeCheckpoint argument checks', () => {
  it('throws on lengths that do not match the model', async () => {
    const c = makeCheckpoint();
    await expect(encodeCheckpoint({ ...c, state: { ...c.state, params: c.state.params.subarray(1) } })).rejects.toThrow(/params/);
    await expect(encodeCheckpoint({ ...c, state: { ...c.state, v: null } })).rejects.toThrow(/both/);
    await expect(encodeCheckpoint({ ...c, extra: { 'kiln.step': '3' } })).rejects.toThrow(/may not set/);
    await expect(encodeCheckpoint({ ...c, state: { ...c.state, step: 3 } })).rejects.toThrow(/differs/);
  });

  it('writes the same bytes for the same state (deterministic)', async () => {
    const c = makeCheckpoint();
    const a = await encodeCheckpoint(c);
    const b = await encodeCheckpoint(c);
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
    // paramViews is the layout the file follows: the first tensor is wte.
    const wte = paramViews(modelSpec(c.model), c.state.params).get('transformer.wte.weight')!;
    expect(bits(decodeSafetensors(a).tensors.get('transformer.wte.weight')!.data)).toEqual(bits(wte));
  });
});

describe('sha256Hex', () => {
  it('hashes past WebCrypto\'s 2 GiB limit in Node (a big model\'s checkpoint), as WebCrypto would below it', async () => {
    const { createHash } = await import('node:crypto');
    const small = new Uint8Array(1000).map((_, i) => i * 7);
    expect(await sha256Hex(small)).toBe(createHash('sha256').update(small).digest('hex'));
    const big = new Uint8Array(2 ** 31 + 5);
    big[big.length - 1] = 1;
    const want = createHash('sha256').update(big.subarray(0, 2 ** 30)).update(big.subarray(2 ** 30)).digest('hex');
    expect(await sha256Hex(big)).toBe(want);
  }, 120_000);
});
