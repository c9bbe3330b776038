// The matmul kernels (tiled with 4x4 and 8x8 blocks, split-K, naive) against a CPU
// triple loop over every transpose combination, accumulate and bias, on shapes off the
// tile size that reach every load path (scalar and vec4 for each operand); the tile
// policy and its overrides; and matmulForward/matmulBackward
// against src/reference/matmul.ts, with and without the split-K / bias scratch, dinp
// accumulated or overwriting garbage.
import { describe, expect, it } from 'vitest';
import { gpuHarness, withNoopEntry } from '../helpers/gpu.ts';
import { expectClose } from '../helpers/expect-close.ts';
import { download, expectSameBitsAgain, garbageFloats, randomFloats, runDispatches, upload } from '../helpers/gpu-tensors.ts';
import { matmulBackward, matmulForward } from '../../src/reference/matmul.ts';
import * as gpu from '../../src/backends/webgpu/ops/matmul.ts';
import { PipelineCache } from '../../src/backends/webgpu/kernel.ts';
import { shaderSources } from '../../src/backends/webgpu/shader-source.ts';

const h = await gpuHarness();

// out (M,N) = op(A) @ op(B) (+ bias) (+ out0) in f64.
function cpuMatmul(
  a: Float32Array, b: Float32Array, bias: Float32Array | null, out0: Float32Array | null,
  M: number, N: number, K: number, transA: boolean, transB: boolean,
): Float64Array {
  const out = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += a[transA ? k * M + m : m * K + k] * b[transB ? n * K + k : k * N + n];
      if (bias) s += bias[n];
      if (out0) s += out0[m * N + n];
      out[m * N + n] = s;
    }
  }
  return out;
}

// [M, N, K]: 1x1x1, odd shapes, shapes past a 64 tile in each dimension, multiples
// of 4 (vec4 loads on both operands in every transpose combination), and mixed.
const SHAPES: Array<[number, number, number]> = [
  [1, 1, 1],
  [3, 7, 5],
  [33, 65, 17],
  [70, 9, 130],
  [36, 68, 20],
  [68, 132, 36],
  // One operand vec4-loadable and the other not, both ways round (a1_b4, a4_b1 when untransposed).
  [33, 68, 17],
  [36, 65, 20],
];
// The 128 tile (8x8 blocks, ping-pong copies): 1x1x1, odd shapes past a 128 tile in
// M and N with several K steps (the copies are reused), multiples of 4 past 128 (vec4
// loads in every transpose combination), and mixed. Fewer than SHAPES: SwiftShader
// takes ~4 s to compile each 128-tile pipeline (K step 16; ~2 s for 8), and every
// shape is a pipeline.
const SHAPES128: Array<[number, number, number]> = [
  [1, 1, 1],
  [130, 257, 33],
  [132, 260, 36],
  [33, 136, 17],
  [136, 65, 52],
];
const TRANS: Array<[boolean, boolean]> = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
];

describe('matmul', () => {
  if (typeof h === 'string') {
    it.skip(`matmul: ${h}`, () => {});
    return;
  }
  const { device } = h.gpu;
  const k = h.cache;

  async function check(
    kernel: typeof gpu.matmul, M: number, N: number, K: number, transA: boolean, transB: boolean,
    opts: { accumulate?: boolean; bias?: boolean; tile?: gpu.MatmulTile; tileK?: 8 | 16; scratch?: boolean; seed?: number } = {},
  ): Promise<Float32Array> {
    const seed = opts.seed ?? M * 7919 + N * 31 + K;
    const a = randomFloats(M * K, seed);
    const b = randomFloats(K * N, seed + 1);
    const bias = opts.bias ? randomFloats(N, seed + 2) : null;
    const out0 = randomFloats(M * N, seed + 3);
    const expected = cpuMatmul(a, b, bias, opts.accumulate ? out0 : null, M, N, K, transA, transB);
    const gOut = upload(device, out0, 'out'); // garbage unless accumulating: must be overwritten
    const scratchBytes = gpu.matmulSplitKBytes(M, N, K, opts.tile);
    const scratch = opts.scratch ? upload(device, randomFloats(Math.max(1, scratchBytes / 4), seed + 4), 'scratch') : undefined;
    const dispatches = kernel(k, gOut, upload(device, a, 'a'), upload(device, b, 'b'), bias && upload(device, bias, 'bias'), {
      M, N, K, transA, transB, accumulate: opts.accumulate, tile: opts.tile, tileK: opts.tileK, scratch,
    });
    await runDispatches(device, dispatches);
    const got = await download(device, gOut, M * N);
    // atol grows with sqrt(K): out is a sum of K f32 products of magnitude ~1.
    const what = `${M}x${N}x${K} transA=${transA} transB=${transB} ${JSON.stringify(opts)}`;
    expectClose(got, expected, { rtol: 1e-4, atol: 2e-5 * Math.sqrt(K) }, what);
    return got;
  }

  describe.each(TRANS)('transA=%s transB=%s', (transA, transB) => {
    it.each(SHAPES)('M=%i N=%i K=%i', async (M, N, K) => {
      await check(gpu.matmul, M, N, K, transA, transB);
      await check(gpu.matmul, M, N, K, transA, transB, { accumulate: true, bias: true });
    });
  });

  // K step 16 (two slots per invocation per step) plain, 8 (one slot) with accumulate and bias.
  describe.each(TRANS)('tile 128 transA=%s transB=%s', (transA, transB) => {
    it.each(SHAPES128)('M=%i N=%i K=%i', async (M, N, K) => {
      await check(gpu.matmul, M, N, K, transA, transB, { tile: 128, tileK: 16 });
      await check(gpu.matmul, M, N, K, transA, transB, { tile: 128, tileK: 8, accumulate: true, bias: true });
    });
  });

  it('every tile size, bias without accumulate and accumulate without bias', async () => {
    for (const tile of [32, 64, 128] as const) {
      await check(gpu.matmul, 70, 9, 130, false, false, { tile, bias: true });
      await check(gpu.matmul, 68, 132, 36, true, true, { tile, accumulate: true });
      await check(gpu.matmul, 65, 66, 7, false, true, { tile, accumulate: true, bias: true });
    }
  });

  it('a device with 16 KiB of workgroup memory gets the 128 tile with K step 8', async () => {
    expect(gpu.matmul128WorkgroupBytes(16)).toBe(32768);
    expect(gpu.matmulTileK(32768)).toBe(16);
    expect(gpu.matmulTileK(32768, 8)).toBe(8);
    expect(gpu.matmulTileK(16384)).toBe(8);
    expect(gpu.matmulTileK(16384, 16)).toBe(8);
    // The same device, reporting WebGPU's default limit: the kernel must still compile (a
    // 32 KiB pipeline on a 16 KiB device would not) and give the right product.
    const limits = { maxComputeWorkgroupStorageSize: 16384 };
    const small = new Proxy(device, {
      get: (t, p) => (p === 'limits' ? limits : typeof Reflect.get(t, p) === 'function' ? Reflect.get(t, p).bind(t) : Reflect.get(t, p)),
    });
    const k16 = new PipelineCache(small, withNoopEntry(await shaderSources(), process.env.KILN_NOOP_ENTRY));
    const [d] = gpu.matmul(k16, upload(device, 4), upload(device, 4), upload(device, 4), null, { M: 2, N: 2, K: 1, tile: 128 });
    expect(d.label).toBe('matmul_8x8_a1_b1');
    expect(d.pipeline.label).toMatch(/^matmul_8x8\[[^\]]*\]:matmul_8x8:.*TILE_K=8/);
    const M = 130, N = 257, K = 33;
    const a = randomFloats(M * K, 1), b = randomFloats(K * N, 2);
    const gOut = upload(device, M * N);
    await runDispatches(device, gpu.matmul(k16, gOut, upload(device, a), upload(device, b), null, { M, N, K, tile: 128 }));
    expectClose(await download(device, gOut, M * N), cpuMatmul(a, b, null, null, M, N, K, false, false), { rtol: 1e-4, atol: 2e-5 * Math.sqrt(K) }, '16 KiB device');
  });

  it('chooses the 128 tile only for large products, and obeys KILN_MATMUL_TILE', () => {
    expect(gpu.matmulTile(4096, 4096)).toBe(128);
    expect(gpu.matmulTile(2048, 2048)).toBe(128);
    expect(gpu.matmulTile(4096, 768)).toBe(64); // 32x6 = 192 tiles of 128: too few
    expect(gpu.matmulTile(1024, 1024)).toBe(64);
    expect(gpu.matmulTile(256, 256)).toBe(32);
    expect(gpu.matmulTile(33, 17)).toBe(32);
    const saved = [process.env.KILN_MATMUL_TILE, process.env.KILN_MATMUL_TILE_K];
    try {
      process.env.KILN_MATMUL_TILE = '128';
      expect(gpu.matmulTile(33, 17)).toBe(128);
      process.env.KILN_MATMUL_TILE = '32';
      expect(gpu.matmulTile(4096, 4096)).toBe(32);
      process.env.KILN_MATMUL_TILE = '48';
      expect(() => gpu.matmulTile(64, 64)).toThrow(/KILN_MATMUL_TILE=48/);
      process.env.KILN_MATMUL_TILE_K = '8';
      expect(gpu.matmulTileK(32768)).toBe(8);
    } finally {
      for (const [name, v] of [['KILN_MATMUL_TILE', saved[0]], ['KILN_MATMUL_TILE_K', saved[1]]] as const) {
        if (v === undefined) delete process.env[name];
        else process.env[name] = v;
      }
    }
  });

  it('splits a long K into partial products and reduces them in a fixed order', async () => {
    // Weight-gradient shapes: small M,N, K = B*T long.
    expect(gpu.matmulSplits(12, 20, 1100)).toBeGreaterThan(1);
    expect(gpu.matmulSplits(33, 17, 1500)).toBeGreaterThan(1);
    const first = await check(gpu.matmul, 12, 20, 1100, true, false, { scratch: true, accumulate: true, bias: true });
    await check(gpu.matmul, 33, 17, 1500, true, false, { scratch: true });
    await check(gpu.matmul, 33, 17, 1500, false, true, { scratch: true, accumulate: true });
    await check(gpu.matmul, 12, 20, 1100, false, false, { scratch: true, bias: true });
    const again = await check(gpu.matmul, 12, 20, 1100, true, false, { scratch: true, accumulate: true, bias: true });
    expect(Buffer.from(again.buffer).equals(Buffer.from(first.buffer))).toBe(true);
    // The 128 tile through the same split-K path (K ranges are whole steps of 8 and 16).
    expect(gpu.matmulSplits(33, 17, 1500, 128)).toBeGreaterThan(1);
    await check(gpu.matmul, 33, 17, 1500, true, false, { tile: 128, tileK: 16, scratch: true, accumulate: true, bias: true });
    await check(gpu.matmul, 12, 20, 1100, false, true, { tile: 128, tileK: 8, scratch: true });
  });

  it('rejects a split-K scratch that is too small', () => {
    const small = upload(device, 4, 'small');
    const dummy = upload(device, 4, 'dummy');
    expect(() => gpu.matmul(k, dummy, dummy, dummy, null, { M: 12, N: 20, K: 1100, scratch: small })).toThrow(/split-K scratch/);
  });

  it.each([
    [3, 7, 5],
    [33, 65, 17],
  ])('naive kernel M=%i N=%i K=%i', async (M, N, K) => {
    for (const [ta, tb] of TRANS) await check(gpu.matmulNaive, M, N, K, ta, tb, { accumulate: true, bias: true });
  });
});

// [N, C, OC]: the contract's tiny odd shape (B*T = 3*7), one past a tile everywhere,
// and a weight-gradient shape long enough in N to split K and chunk the bias sum.
const LINEAR: Array<[number, number, number]> = [
  [21, 12, 11],
  [70, 36, 68],
  [1100, 12, 20],
];

describe('matmulForward / matmulBackward', () => {
  if (typeof h === 'string') {
    it.skip(`matmul: ${h}`, () => {});
    return;
  }
  const { device } = h.gpu;
  const k = h.cache;

  // KILN_MATMUL_TILE=128: every product on the 128 tile, split-K sized by matmulScratch
  // for it (only the split-K shape: each 128-tile pipeline is seconds on SwiftShader).
  describe.each([
    [false, '', LINEAR],
    [true, '', LINEAR],
    [true, '128', LINEAR.slice(2)],
  ] as const)('scratch=%s KILN_MATMUL_TILE=%s', (withScratch, forceTile, shapes) => {
    it.each(shapes)('N=%i C=%i OC=%i match the reference and accumulate', async (N, C, OC) => {
      const saved = process.env.KILN_MATMUL_TILE;
      process.env.KILN_MATMUL_TILE = forceTile;
      try {
        await linear(N, C, OC, withScratch);
      } finally {
        if (saved === undefined) delete process.env.KILN_MATMUL_TILE;
        else process.env.KILN_MATMUL_TILE = saved;
      }
    });
  });

  async function linear(N: number, C: number, OC: number, withScratch: boolean): Promise<void> {
    const seed = N * 100 + C * 10 + OC;
    const inp = randomFloats(N * C, seed);
    const weight = randomFloats(C * OC, seed + 1);
    const bias = randomFloats(OC, seed + 2);
    const dout = randomFloats(N * OC, seed + 3);
    const dinp0 = randomFloats(N * C, seed + 4);
    const dweight0 = randomFloats(C * OC, seed + 5);
    const dbias0 = randomFloats(OC, seed + 6);
    const f64 = (x: Float32Array) => Float64Array.from(x);

    const out = new Float64Array(N * OC);
    matmulForward(out, f64(inp), f64(weight), f64(bias), N, C, OC);
    const [dinp, dweight, dbias] = [f64(dinp0), f64(dweight0), f64(dbias0)];
    matmulBackward(dinp, dweight, dbias, f64(dout), f64(inp), f64(weight), N, C, OC);

    const [gInp, gW, gB, gDout] = [upload(device, inp), upload(device, weight), upload(device, bias), upload(device, dout)];
    const gOut = upload(device, randomFloats(N * OC, seed + 7));
    await runDispatches(device, gpu.matmulForward(k, gOut, gInp, gW, gB, N, C, OC));
    const tol = { rtol: 1e-4, atol: 2e-5 * Math.sqrt(Math.max(C, OC, N)) };
    expectClose(await download(device, gOut, N * OC), out, tol, 'out');

    const scratch = withScratch ? upload(device, gpu.matmulScratch(N, C, OC).partials / 4) : undefined;
    const [gDinp, gDw, gDb] = [upload(device, dinp0), upload(device, dweight0), upload(device, dbias0)];
    const backward = () => gpu.matmulBackward(k, gDinp, gDw, gDb, gDout, gInp, gW, N, C, OC, scratch);
    await runDispatches(device, backward());
    const got = { dinp: await download(device, gDinp, N * C), dweight: await download(device, gDw, C * OC), dbias: await download(device, gDb, OC) };
    expectClose(got.dinp, dinp, tol, 'dinp (+=)');
    expectClose(got.dweight, dweight, tol, 'dweight (+=)');
    expectClose(got.dbias, dbias, tol, 'dbias (+=)');

    const restore = [[gDinp, dinp0], [gDw, dweight0], [gDb, dbias0]] as const;
    await expectSameBitsAgain(device, backward(), restore, { dinp: [gDinp, got.dinp], dweight: [gDw, got.dweight], dbias: [gDb, got.dbias] });

    // Without a bias.
    const gDinp2 = upload(device, dinp0);
    const gDw2 = upload(device, dweight0);
    await runDispatches(device, gpu.matmulBackward(k, gDinp2, gDw2, null, gDout, gInp, gW, N, C, OC, scratch));
    expectClose(await download(device, gDw2, C * OC), dweight, tol, 'dweight without bias');

    // accumulate: false overwrites dinp whatever it held; dweight and dbias still accumulate.
    const [fresh, dweight3, dbias3] = [new Float64Array(N * C), f64(dweight0), f64(dbias0)];
    matmulBackward(fresh, dweight3, dbias3, f64(dout), f64(inp), f64(weight), N, C, OC);
    device.queue.writeBuffer(gDinp, 0, garbageFloats(N * C, seed + 8));
    device.queue.writeBuffer(gDw, 0, dweight0);
    device.queue.writeBuffer(gDb, 0, dbias0);
    await runDispatches(device, gpu.matmulBackward(k, gDinp, gDw, gDb, gDout, gInp, gW, N, C, OC, scratch, { accumulate: false }));
    expectClose(await download(device, gDinp, N * C), fresh, tol, 'dinp (=, over garbage)');
    expectClose(await download(device, gDw, C * OC), dweight3, tol, 'dweight (+=, dinp overwritten)');
    expectClose(await download(device, gDb, OC), dbias3, tol, 'dbias (+=, dinp overwritten)');
  }
});
