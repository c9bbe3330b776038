// LayerNorm forward (out, mean, rstd; also fused with the residual add before it) and
// backward (dinp, dweight, dbias, accumulated onto non-zero values; dinp also overwriting
// garbage) against src/reference/layernorm.ts,
// on every shader variant (subgroups where the device has them, and the fallback).
import { describe, expect, it } from 'vitest';
import { gpuHarness } from '../helpers/gpu.ts';
import { expectClose } from '../helpers/expect-close.ts';
import { download, expectSameBitsAgain, garbageFloats, randomFloats, runDispatches, upload } from '../helpers/gpu-tensors.ts';
import { layernormBackward, layernormForward } from '../../src/reference/layernorm.ts';
import * as gpu from '../../src/backends/webgpu/ops/layernorm.ts';

const h = await gpuHarness();

// [N, C]: the contract's odd shape (B*T = 3*7, C = 12), more rows than one partial-sum
// chunk (64) and C wider than a column block (64), a GPT-2 width, C = 1, and C past
// 256 x 8 (the row kernels' workgroup, rowWorkgroup: C / 8 invocations, 32 to 256, is
// 32 for the first two and C = 1, 128 for 768, 256 with 9 channels each for 2100).
const SHAPES: Array<[number, number]> = [
  [21, 12],
  [150, 70],
  [3, 768],
  [5, 1],
  [2, 2100],
];

describe('layernorm', () => {
  if (typeof h === 'string') {
    it.skip(`layernorm: ${h}`, () => {});
    return;
  }
  if (h.noSubgroups) it.skip(h.noSubgroups, () => {});
  describe.each(h.variants)('$name', ({ cache: k }) => {
    const { device } = h.gpu;
    const f64 = (x: Float32Array) => Float64Array.from(x);

    it.each(SHAPES)('N=%i C=%i forward and backward match the reference', async (N, C) => {
      const seed = N * 1000 + C;
      const inp = randomFloats(N * C, seed, 2);
      for (let i = 0; i < inp.length; i++) inp[i] += 0.5; // rows with a non-zero mean
      const weight = randomFloats(C, seed + 1);
      const bias = randomFloats(C, seed + 2);
      const dout = randomFloats(N * C, seed + 3);
      const dinp0 = randomFloats(N * C, seed + 4);
      const dweight0 = randomFloats(C, seed + 5);
      const dbias0 = randomFloats(C, seed + 6);

      const out = new Float64Array(N * C);
      const mean = new Float64Array(N);
      const rstd = new Float64Array(N);
      layernormForward(out, mean, rstd, f64(inp), f64(weight), f64(bias), N, C);
      const [dinp, dweight, dbias] = [f64(dinp0), f64(dweight0), f64(dbias0)];
      layernormBackward(dinp, dweight, dbias, f64(dout), f64(inp), f64(weight), mean, rstd, N, C);

      const [gInp, gW, gB, gDout] = [upload(device, inp), upload(device, weight), upload(device, bias), upload(device, dout)];
      const gOut = upload(device, randomFloats(N * C, seed + 7));
      const gMean = upload(device, randomFloats(N, seed + 8));
      const gRstd = upload(device, randomFloats(N, seed + 9));
      await runDispatches(device, gpu.layernormForward(k, gOut, gMean, gRstd, gInp, gW, gB, N, C));
      expectClose(await download(device, gOut, N * C), out, { rtol: 1e-4, atol: 1e-5 }, 'out');
      expectClose(await download(device, gMean, N), mean, { rtol: 1e-5, atol: 1e-6 }, 'mean');
      // C = 1: var = 0 and rstd = 1/sqrt(eps) ~ 316: float rounding of x - mean shows up there.
      expectClose(await download(device, gRstd, N), rstd, { rtol: 1e-4, atol: 1e-5 }, 'rstd');
      // Deterministic: the forward pass again, into garbage, gives the same bits.
      const first = [await download(device, gOut, N * C), await download(device, gMean, N), await download(device, gRstd, N)];
      device.queue.writeBuffer(gOut, 0, garbageFloats(N * C, seed + 12));
      device.queue.writeBuffer(gMean, 0, garbageFloats(N, seed + 13));
      device.queue.writeBuffer(gRstd, 0, garbageFloats(N, seed + 14));
      await runDispatches(device, gpu.layernormForward(k, gOut, gMean, gRstd, gInp, gW, gB, N, C));
      const second = [await download(device, gOut, N * C), await download(device, gMean, N), await download(device, gRstd, N)];
      for (const [i, name] of ['out', 'mean', 'rstd'].entries()) {
        expect(Buffer.from(second[i].buffer).equals(Buffer.from(first[i].buffer)), `${name} bit-identical`).toBe(true);
      }

      const [gDinp, gDw, gDb] = [upload(device, dinp0), upload(device, dweight0), upload(device, dbias0)];
      const scratch = upload(device, randomFloats(gpu.layernormScratch(N, C).partials / 4, seed + 10));
      const backward = () => gpu.layernormBackward(k, gDinp, gDw, gDb, gDout, gInp, gW, gMean, gRstd, N, C, scratch);
      await runDispatches(device, backward());
      const got = { dinp: await download(device, gDinp, N * C), dweight: await download(device, gDw, C), dbias: await download(device, gDb, C) };
      const tol = { rtol: 1e-4, atol: 1e-4 };
      expectClose(got.dinp, dinp, tol, 'dinp (+=)');
      expectClose(got.dweight, dweight, tol, 'dweight (+=)');
      expectClose(got.dbias, dbias, tol, 'dbias (+=)');

      const restore = [[gDinp, dinp0], [gDw, dweight0], [gDb, dbias0]] as const;
      await expectSameBitsAgain(device, backward(), restore, { dinp: [gDinp, got.dinp], dweight: [gDw, got.dweight], dbias: [gDb, got.dbias] });

      // accumulate: false overwrites dinp whatever it held; dweight and dbias still accumulate.
      const [fresh, dweight2, dbias2] = [new Float64Array(N * C), f64(dweight0), f64(dbias0)];
      layernormBackward(fresh, dweight2, dbias2, f64(dout), f64(inp), f64(weight), mean, rstd, N, C);
      device.queue.writeBuffer(gDinp, 0, garbageFloats(N * C, seed + 11));
      device.queue.writeBuffer(gDw, 0, dweight0);
      device.queue.writeBuffer(gDb, 0, dbias0);
      await runDispatches(device, gpu.layernormBackward(k, gDinp, gDw, gDb, gDout, gInp, gW, gMean, gRstd, N, C, scratch, { accumulate: false }));
      expectClose(await download(device, gDinp, N * C), fresh, tol, 'dinp (=, over garbage)');
      expectClose(await download(device, gDw, C), dweight2, tol, 'dweight (+=, dinp overwritten)');
      expectClose(await download(device, gDb, C), dbias2, tol, 'dbias (+=, dinp overwritten)');
    });

    it.each(SHAPES)('N=%i C=%i residual + layernorm fused: res = a + b exactly, then the same bits as layernorm_forward of res', async (N, C) => {
      const seed = N * 1000 + C + 77;
      const a = randomFloats(N * C, seed, 2);
      const b = randomFloats(N * C, seed + 1, 1);
      const weight = randomFloats(C, seed + 2);
      const bias = randomFloats(C, seed + 3);
      const res = a.map((x, i) => Math.fround(x + b[i]));
      const out = new Float64Array(N * C);
      const mean = new Float64Array(N);
      const rstd = new Float64Array(N);
      layernormForward(out, mean, rstd, f64(res), f64(weight), f64(bias), N, C);

      const [gA, gB, gW, gBias] = [upload(device, a), upload(device, b), upload(device, weight), upload(device, bias)];
      const [gRes, gOut, gMean, gRstd] = [N * C, N * C, N, N].map((n, i) => upload(device, garbageFloats(n, seed + 4 + i)));
      await runDispatches(device, gpu.layernormResidualForward(k, gOut, gMean, gRstd, gRes, gA, gB, gW, gBias, N, C));
      const fused = [await download(device, gRes, N * C), await download(device, gOut, N * C), await download(device, gMean, N), await download(device, gRstd, N)];
      expect(Buffer.from(fused[0].buffer).equals(Buffer.from(res.buffer)), 'res = a + b').toBe(true);
      expectClose(fused[1], out, { rtol: 1e-4, atol: 1e-5 }, 'out');
      expectClose(fused[2], mean, { rtol: 1e-5, atol: 1e-6 }, 'mean');
      expectClose(fused[3], rstd, { rtol: 1e-4, atol: 1e-5 }, 'rstd');

      // The unfused pair (residual, then layernorm_forward) gives the same bits.
      const gPlain = upload(device, res);
      await runDispatches(device, gpu.layernormForward(k, gOut, gMean, gRstd, gPlain, gW, gBias, N, C));
      const plain = [await download(device, gOut, N * C), await download(device, gMean, N), await download(device, gRstd, N)];
      for (const [i, name] of ['out', 'mean', 'rstd'].entries()) {
        expect(Buffer.from(fused[i + 1].buffer).equals(Buffer.from(plain[i].buffer)), `${name} fused = unfused`).toBe(true);
      }
      for (const buf of [gA, gB, gW, gBias, gRes, gOut, gMean, gRstd, gPlain]) buf.destroy();
    });
  });

  it('refuses a row wider than the forward kernels hold', () => {
    const x = upload(h.gpu.device, new Float32Array(4));
    expect(() => gpu.layernormForward(h.cache, x, x, x, x, x, x, 1, gpu.MAX_LAYERNORM_C + 1)).toThrow(/C=8193 is over 8192/);
    x.destroy();
  });
});
