// Dropout kernels against the CPU reference: the elementwise op (shaders/dropout.wgsl)
// and the flash attention's dropout on its probabilities (shaders/attention.wgsl, switch
// `dropout`). The masks are the same function on both sides, so outputs agree to
// rounding and the dropped elements are exactly zero on both.
import { describe, expect, it } from 'vitest';
import { dropoutKey, dropoutKeep, dropoutThreshold } from '../../src/core/dropout.ts';
import * as gpuAttention from '../../src/backends/webgpu/ops/attention.ts';
import { dropoutBackward, dropoutForward } from '../../src/backends/webgpu/ops/dropout.ts';
import { attentionBackward, attentionForward } from '../../src/reference/attention.ts';
import * as ref from '../../src/reference/dropout.ts';
import { expectClose } from '../helpers/expect-close.ts';
import { gpuHarness } from '../helpers/gpu.ts';
import { download, garbageFloats, randomFloats, runDispatches, upload } from '../helpers/gpu-tensors.ts';

const h = await gpuHarness();

describe('dropout kernels', () => {
  if (typeof h === 'string') {
    it.skip(`dropout: ${h}`, () => {});
    return;
  }
  const { device } = h.gpu;
  const k = h.cache;

  it.each([[1000, 0.1], [777, 0.5], [300, 0.9]])('n=%i p=%f: forward in place and backward match the reference mask bit for bit', async (n, p) => {
    const key = dropoutKey(12345, 1, 3);
    const x = randomFloats(n, n, 2);
    const expected = new Float32Array(n);
    ref.dropoutForward(expected, x, n, { p, key });
    const gx = upload(device, x, 'x');
    const gKey = upload(device, new Uint32Array([key]), 'key');
    await runDispatches(device, dropoutForward(k, gx, gKey, n, p));
    const got = await download(device, gx, n);
    expect(Array.from(got)).toEqual(Array.from(expected));
    // The mask really drops about p of the elements, and the same ones as the reference.
    const t = dropoutThreshold(p);
    const dropped = got.filter((v, i) => v === 0 && x[i] !== 0).length;
    expect(Math.abs(dropped / n - p)).toBeLessThan(0.08);
    got.forEach((v, i) => expect(v === 0).toBe(!dropoutKeep(key, i, t)));

    const dout = randomFloats(n, n + 1);
    // The kernel writes dinp (=) where the reference adds (+=): the same products, signs of zero aside.
    const dexp = new Float32Array(n);
    ref.dropoutForward(dexp, dout, n, { p, key });
    const gd = upload(device, garbageFloats(n, n + 2), 'dinp');
    const gdout = upload(device, dout, 'dout');
    await runDispatches(device, dropoutBackward(k, gd, gdout, gKey, n, p));
    expect(Array.from(await download(device, gd, n))).toEqual(Array.from(dexp));
    for (const b of [gx, gKey, gd, gdout]) b.destroy();
  });

  it.each([[3, 7, 12, 2], [2, 33, 16, 4], [1, 20, 128, 2]])('flash attention B=%i T=%i C=%i NH=%i with dropout 0.3 matches the reference', async (B, T, C, NH) => {
    const seed = B * 100 + T + C;
    const p = 0.3;
    const key = dropoutKey(777, 0, 4);
    const qkv = randomFloats(B * T * 3 * C, seed, 1.5);
    const dout = randomFloats(B * T * C, seed + 1);
    const out = new Float64Array(B * T * C);
    const att = new Float64Array(B * NH * T * T);
    attentionForward(out, new Float64Array(att.length), att, Float64Array.from(qkv), B, T, C, NH, { p, key });
    const dqkv = new Float64Array(B * T * 3 * C);
    attentionBackward(dqkv, new Float64Array(att.length), new Float64Array(att.length), Float64Array.from(dout), Float64Array.from(qkv), att, B, T, C, NH, { p, key });

    const sizes = gpuAttention.attentionScratch(B, T, C, NH, 'flash');
    const gQkv = upload(device, qkv, 'qkv');
    const gOut = upload(device, garbageFloats(B * T * C, seed + 2), 'out');
    const gSaved = upload(device, new Float32Array(sizes.saved / 4), 'lse');
    const gTemp = upload(device, new Float32Array(sizes.temp / 4), 'delta');
    const gDout = upload(device, dout, 'dout');
    const gDqkv = upload(device, garbageFloats(B * T * 3 * C, seed + 3), 'dqkv');
    const gKey = upload(device, new Uint32Array([key]), 'key');
    const dropout = { p, key: gKey };
    await runDispatches(device, gpuAttention.attentionForward(k, gOut, gQkv, gSaved, B, T, C, NH, 'flash', dropout));
    expectClose(await download(device, gOut, B * T * C), out, { rtol: 1e-4, atol: 1e-5 }, 'out (dropout)');
    await runDispatches(device, gpuAttention.attentionBackward(k, gDqkv, gDout, gQkv, gOut, gSaved, gTemp, B, T, C, NH, 'flash', { accumulate: false, dropout }));
    expectClose(await download(device, gDqkv, B * T * 3 * C), dqkv, { rtol: 1e-4, atol: 2e-5 }, 'dqkv (dropout)');

    // Without dropout the result differs (the mask does something) ...
    const plain = new Float64Array(B * T * C);
    attentionForward(plain, new Float64Array(att.length), new Float64Array(att.length), Float64Array.from(qkv), B, T, C, NH);
    await runDispatches(device, gpuAttention.attentionForward(k, gOut, gQkv, gSaved, B, T, C, NH, 'flash'));
    expectClose(await download(device, gOut, B * T * C), plain, { rtol: 1e-4, atol: 1e-5 }, 'out (no dropout)');
    expect(out.some((v, i) => Math.abs(v - plain[i]) > 1e-3)).toBe(true);
    for (const b of [gQkv, gOut, gSaved, gTemp, gDout, gDqkv, gKey]) b.destroy();
  });

  it('the multi-kernel attention refuses dropout rather than ignoring it', () => {
    const x = upload(device, new Float32Array(64), 'x');
    expect(() => gpuAttention.attentionForward(k, x, x, x, 1, 4, 8, 2, 'naive', { p: 0.1, key: x })).toThrow(/flash kernels only/);
    x.destroy();
  });
});
