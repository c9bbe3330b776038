// Causal self-attention kernels (both the fused flash path and the multi-kernel path)
// against src/reference/attention.ts, forward and backward (dqkv accumulated, or
// overwriting garbage), on shapes off the tile size.
import { describe, expect, it } from 'vitest';
import { gpuHarness } from '../helpers/gpu.ts';
import { expectClose } from '../helpers/expect-close.ts';
import { download, expectSameBitsAgain, garbageFloats, randomFloats, runDispatches, upload } from '../helpers/gpu-tensors.ts';
import { attentionBackward, attentionForward } from '../../src/reference/attention.ts';
import * as gpuAttention from '../../src/backends/webgpu/ops/attention.ts';
import type { AttentionImpl } from '../../src/backends/webgpu/ops/attention.ts';
import type { PipelineCache } from '../../src/backends/webgpu/kernel.ts';

const h = await gpuHarness();

// [B, T, C, NH]: odd shapes, T = 1, T past one backward tile (32 rows on SwiftShader at
// HS 4, 16 at HS 64), T past the forward's 64 query rows per workgroup and its key tile
// at a head size that is not a multiple of 4 (HS 10), and a GPT-2-sized head (HS 64).
const SHAPES: Array<[number, number, number, number]> = [
  [3, 7, 12, 2],
  [2, 33, 16, 4],
  [2, 1, 8, 2],
  [1, 70, 20, 2],
  [1, 20, 128, 2],
];
const IMPLS: AttentionImpl[] = ['flash', 'naive'];

function f64(a: Float32Array): Float64Array {
  return Float64Array.from(a);
}

describe.each(IMPLS)('attention (%s)', (impl) => {
  if (typeof h === 'string') {
    it.skip(`attention: ${h}`, () => {});
    return;
  }
  const { device } = h.gpu;
  const k = h.cache;

  it.each(SHAPES)('B=%i T=%i C=%i NH=%i forward and backward match the reference', async (B, T, C, NH) => {
    const seed = B * 1000 + T * 10 + C;
    const qkv = randomFloats(B * T * 3 * C, seed, 1.5);
    const dout = randomFloats(B * T * C, seed + 1);
    const dqkv0 = randomFloats(B * T * 3 * C, seed + 2);

    // reference in f64 on the same (f32) inputs
    const out = new Float64Array(B * T * C);
    const preatt = new Float64Array(B * NH * T * T);
    const att = new Float64Array(B * NH * T * T);
    attentionForward(out, preatt, att, f64(qkv), B, T, C, NH);
    const dqkv = f64(dqkv0);
    attentionBackward(dqkv, new Float64Array(att.length), new Float64Array(att.length), f64(dout), f64(qkv), att, B, T, C, NH);

    const sizes = gpuAttention.attentionScratch(B, T, C, NH, impl);
    const gQkv = upload(device, qkv, 'qkv');
    const gOut = upload(device, randomFloats(B * T * C, seed + 3), 'out'); // garbage: the forward must overwrite it
    const gSaved = upload(device, randomFloats(sizes.saved / 4, seed + 4), 'saved');
    const gTemp = upload(device, randomFloats(sizes.temp / 4, seed + 5), 'temp');
    const gDout = upload(device, dout, 'dout');
    const gDqkv = upload(device, dqkv0, 'dqkv');

    await runDispatches(device, gpuAttention.attentionForward(k, gOut, gQkv, gSaved, B, T, C, NH, impl));
    expectClose(await download(device, gOut, B * T * C), out, { rtol: 1e-4, atol: 1e-5 }, 'out');
    if (impl === 'naive') {
      expectClose(await download(device, gSaved, B * NH * T * T), att, { rtol: 1e-4, atol: 1e-6 }, 'att');
    } else {
      const lse = new Float64Array(B * NH * T);
      for (let r = 0; r < B * NH * T; r++) {
        const t = r % T;
        let max = -Infinity;
        for (let j = 0; j <= t; j++) max = Math.max(max, preatt[r * T + j]);
        let s = 0;
        for (let j = 0; j <= t; j++) s += Math.exp(preatt[r * T + j] - max);
        lse[r] = max + Math.log(s);
      }
      expectClose(await download(device, gSaved, B * NH * T), lse, { rtol: 1e-5, atol: 1e-5 }, 'lse');
    }

    const bwd = gpuAttention.attentionBackward(k, gDqkv, gDout, gQkv, gOut, gSaved, gTemp, B, T, C, NH, impl);
    await runDispatches(device, bwd);
    const got = await download(device, gDqkv, B * T * 3 * C);
    expectClose(got, dqkv, { rtol: 1e-4, atol: 2e-5 }, 'dqkv (accumulated onto non-zero values)');

    await expectSameBitsAgain(device, bwd, [[gDqkv, dqkv0]], { dqkv: [gDqkv, got] });

    // accumulate: false writes every element of dqkv, whatever it held.
    const fresh = new Float64Array(B * T * 3 * C);
    attentionBackward(fresh, new Float64Array(att.length), new Float64Array(att.length), f64(dout), f64(qkv), att, B, T, C, NH);
    device.queue.writeBuffer(gDqkv, 0, garbageFloats(B * T * 3 * C, seed + 6));
    await runDispatches(device, gpuAttention.attentionBackward(k, gDqkv, gDout, gQkv, gOut, gSaved, gTemp, B, T, C, NH, impl, { accumulate: false }));
    expectClose(await download(device, gDqkv, B * T * 3 * C), fresh, { rtol: 1e-4, atol: 2e-5 }, 'dqkv (=, over garbage)');

    for (const b of [gQkv, gOut, gSaved, gTemp, gDout, gDqkv]) b.destroy();
  });
});

// A PipelineCache as far as the tile choosers look: the device's workgroup-memory limit.
function cacheWithWorkgroupMemory(bytes: number): PipelineCache {
  return { device: { limits: { maxComputeWorkgroupStorageSize: bytes } } } as unknown as PipelineCache;
}

describe('flash attention tiles', () => {
  it('are the largest that fit the workgroup memory and the registers, for every head size the kernels take', () => {
    for (const limit of [16384, 32768, 49152]) {
      const k = cacheWithWorkgroupMemory(limit);
      for (let HS = 1; HS <= gpuAttention.MAX_FLASH_HS; HS++) {
        const n = gpuAttention.flashTile(k, HS);
        expect(n % 2, `backward tile ${n} at HS ${HS}`).toBe(0);
        expect(gpuAttention.flashBytes(n, HS)).toBeLessThanOrEqual(limit);
        expect(Math.ceil((n * Math.ceil(HS / 4)) / 64), 'vec4 accumulators per invocation').toBeLessThanOrEqual(16);
        if (n < 32) expect(gpuAttention.flashBytes(2 * n, HS) > limit || Math.ceil((2 * n * Math.ceil(HS / 4)) / 64) > 16).toBe(true);
        const f = gpuAttention.flashForwardTile(k, HS);
        expect(gpuAttention.flashForwardBytes(f, HS)).toBeLessThanOrEqual(limit);
        if (f < 64) expect(gpuAttention.flashForwardBytes(2 * f, HS)).toBeGreaterThan(limit);
      }
    }
    // What the bytes count: GPT-2's head (HS 64) at the 16 KiB every device has.
    expect(gpuAttention.flashTile(cacheWithWorkgroupMemory(16384), 64)).toBe(8);
    expect(gpuAttention.flashForwardTile(cacheWithWorkgroupMemory(16384), 64)).toBe(16);
  });

  it('refuses a head over the largest size with a message that says what to change', () => {
    if (typeof h === 'string') return;
    const x = upload(h.gpu.device, new Float32Array(4), 'x');
    expect(() => gpuAttention.attentionForward(h.cache, x, x, x, 1, 4, 2 * 264, 2)).toThrow(/head size 264 .* over 256.*use more heads/);
    expect(() => gpuAttention.attentionBackward(h.cache, x, x, x, x, x, x, 1, 4, 2 * 264, 2)).toThrow(/head size 264 .* over 256/);
    x.destroy();
  });
});

describe('attention scratch', () => {
  it('sizes the saved and temporary buffers per path', () => {
    expect(gpuAttention.attentionScratch(2, 5, 12, 3, 'flash')).toEqual({ saved: 2 * 3 * 5 * 4, temp: 2 * 3 * 5 * 4 });
    expect(gpuAttention.attentionScratch(2, 5, 12, 3, 'naive')).toEqual({ saved: 2 * 3 * 25 * 4, temp: 2 * 3 * 25 * 4 });
  });
});
