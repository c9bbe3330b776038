// GELU (tanh approximation), which has no kernel of its own: it is folded into the
// matrix products around it (shaders/gelu.wgsl). Checked against src/reference/gelu.ts
// composed with a CPU product: the A operand read as gelu(A) (c_proj's forward, and its
// weight gradient with A transposed) and the result stored times gelu'(P) (c_proj's
// input gradient made d(fch)), on every tile (32, 64, 128), scalar and vec4 loads,
// accumulating and overwriting, through split-K (gelu' applied once, to the reduced
// sum), with inputs up to |x| = 60 where a naive tanh overflows; then the c_proj layer
// (matmulForward / matmulBackward with geluInput) against the reference's GELU followed
// by its linear layer.
import { describe, expect, it } from 'vitest';
import { gpuHarness } from '../helpers/gpu.ts';
import { expectClose } from '../helpers/expect-close.ts';
import { download, garbageFloats, randomFloats, runDispatches, upload } from '../helpers/gpu-tensors.ts';
import { geluBackward, geluForward } from '../../src/reference/gelu.ts';
import { matmulBackward, matmulForward } from '../../src/reference/matmul.ts';
import * as gpu from '../../src/backends/webgpu/ops/matmul.ts';

const h = await gpuHarness();

const EXTREMES = [-60, -20, -9, -5, -0.5, 0, 1e-3, 3, 9, 20, 60];

/** Random values with the extremes spread through them (every tile row and column sees some). */
function preActivations(n: number, seed: number): Float32Array<ArrayBuffer> {
  const x = randomFloats(n, seed, 4);
  for (let i = 0; i < n; i += 7) x[i] = EXTREMES[(i / 7) % EXTREMES.length];
  return x;
}

const f64 = (x: ArrayLike<number>) => Float64Array.from(x);

function gelu(x: Float32Array): Float64Array {
  const out = new Float64Array(x.length);
  geluForward(out, f64(x), x.length);
  return out;
}

function geluGrad(x: Float32Array): Float64Array {
  const d = new Float64Array(x.length);
  geluBackward(d, f64(x), new Float64Array(x.length).fill(1), x.length);
  return d;
}

// out (M,N) = op(A) @ op(B) in f64; A (M,K) or stored (K,M); B (K,N) or stored (N,K).
function cpuProduct(a: ArrayLike<number>, b: ArrayLike<number>, M: number, N: number, K: number, transA: boolean, transB: boolean): Float64Array {
  const out = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += a[transA ? k * M + m : m * K + k] * b[transB ? n * K + k : k * N + n];
      out[m * N + n] = s;
    }
  }
  return out;
}

describe('gelu, folded into the matrix products', () => {
  if (typeof h === 'string') {
    it.skip(`gelu: ${h}`, () => {});
    return;
  }
  const { device } = h.gpu;
  const k = h.cache;
  const tol = (K: number) => ({ rtol: 1e-4, atol: 2e-5 * Math.sqrt(K) * 4 });
  // Overwriting and accumulating on the 32 tile; accumulating only on the others, and
  // the 128 tile at K step 8: SwiftShader compiles each 128-tile pipeline in seconds.
  const modes = (tile: number) => (tile === 32 ? [false, true] : [true]);
  const tileK = (tile: number) => (tile === 128 ? 8 : undefined);

  // [M, N, K, transA]: c_proj's forward at the contract's B*T=21, C=12 (K = 4C = 48,
  // vec4 loads), K = 47 (scalar loads of A), and the weight gradient's transposed A.
  const GELU_A: Array<[number, number, number, boolean]> = [
    [21, 12, 48, false],
    [21, 12, 47, false],
    [48, 12, 21, true],
  ];

  it.each([32, 64, 128] as const)('tile %i: A read as gelu(A), with bias', async (tile) => {
    for (const [M, N, K, transA] of GELU_A) {
      const a = preActivations(M * K, M + N + K);
      const b = randomFloats(K * N, 2);
      const bias = randomFloats(N, 3);
      const out0 = randomFloats(M * N, 4);
      const prod = cpuProduct(gelu(a), b, M, N, K, transA, false);
      for (const accumulate of modes(tile)) {
        const gOut = upload(device, out0);
        await runDispatches(device, gpu.matmul(k, gOut, upload(device, a), upload(device, b), upload(device, bias), { M, N, K, transA, tile, tileK: tileK(tile), accumulate, geluA: true }));
        const want = prod.map((p, i) => p + bias[i % N] + (accumulate ? out0[i] : 0));
        expectClose(await download(device, gOut, M * N), want, tol(K), `${M}x${N}x${K} transA=${transA} accumulate=${accumulate}`);
      }
    }
  });

  it.each([32, 64, 128] as const)('tile %i: the result times gelu\'(P)', async (tile) => {
    // c_proj's input gradient: (B*T, 4C) = dout (B*T, C) @ W^T, W stored (4C, C).
    for (const [M, N, K] of [[21, 48, 12], [21, 47, 12]] as const) {
      const dout = randomFloats(M * K, 5);
      const w = randomFloats(N * K, 6);
      const pre = preActivations(M * N, 7);
      const out0 = randomFloats(M * N, 8);
      const g = geluGrad(pre);
      const prod = cpuProduct(dout, w, M, N, K, false, true);
      for (const accumulate of modes(tile)) {
        const gOut = upload(device, accumulate ? out0 : garbageFloats(M * N, 9));
        await runDispatches(device, gpu.matmul(k, gOut, upload(device, dout), upload(device, w), null, { M, N, K, transB: true, tile, tileK: tileK(tile), accumulate, geluGradOf: upload(device, pre) }));
        const want = prod.map((p, i) => p * g[i] + (accumulate ? out0[i] : 0));
        expectClose(await download(device, gOut, M * N), want, tol(K), `${M}x${N}x${K} accumulate=${accumulate}`);
      }
    }
  });

  it('split-K applies gelu\' once, to the reduced sum (and the bias before it)', async () => {
    const [M, N, K] = [8, 20, 600];
    expect(gpu.matmulSplits(M, N, K)).toBeGreaterThan(1);
    const a = randomFloats(M * K, 10);
    const b = randomFloats(K * N, 11);
    const bias = randomFloats(N, 12);
    const pre = preActivations(M * N, 13);
    const g = geluGrad(pre);
    const scratch = upload(device, garbageFloats(gpu.matmulSplitKBytes(M, N, K) / 4, 14));
    const gOut = upload(device, garbageFloats(M * N, 15));
    const d = gpu.matmul(k, gOut, upload(device, a), upload(device, b), upload(device, bias), { M, N, K, scratch, geluGradOf: upload(device, pre) });
    expect(d.map((x) => x.label)).toEqual([expect.stringMatching(/^matmul_a4_b4_dgelu split-K$/), 'matmul_splitk_reduce_dgelu']);
    await runDispatches(device, d);
    const want = cpuProduct(a, b, M, N, K, false, false).map((p, i) => (p + bias[i % N]) * g[i]);
    expectClose(await download(device, gOut, M * N), want, tol(K), 'split-K');
  });

  it('c_proj with geluInput matches the reference GELU followed by its linear layer, forward and backward', async () => {
    // B*T = 21, C = 12: c_proj maps 4C = 48 -> C.
    const [N, C4, C] = [21, 48, 12];
    const fch = preActivations(N * C4, 20);
    const w = randomFloats(C4 * C, 21);
    const bias = randomFloats(C, 22);
    const dout = randomFloats(N * C, 23);
    const dw0 = randomFloats(C4 * C, 24);
    const db0 = randomFloats(C, 25);
    const dfch0 = randomFloats(N * C4, 26);

    // Reference: h = gelu(fch); out = h @ w + b; dh = dout @ w^T; dfch = gelu'(fch) dh.
    const hRef = gelu(fch);
    const outRef = new Float64Array(N * C);
    matmulForward(outRef, hRef, f64(w), f64(bias), N, C4, C);
    const dh = new Float64Array(N * C4);
    const dwRef = f64(dw0);
    const dbRef = f64(db0);
    matmulBackward(dh, dwRef, dbRef, f64(dout), hRef, f64(w), N, C4, C);
    const dfchFresh = new Float64Array(N * C4);
    geluBackward(dfchFresh, f64(fch), dh, N * C4);

    const gFch = upload(device, fch);
    const gW = upload(device, w);
    const gOut = upload(device, garbageFloats(N * C, 27));
    await runDispatches(device, gpu.matmulForward(k, gOut, gFch, gW, upload(device, bias), N, C4, C, { geluInput: true }));
    expectClose(await download(device, gOut, N * C), outRef, tol(C4), 'out');

    for (const accumulate of [false, true]) {
      const gDfch = upload(device, accumulate ? dfch0 : garbageFloats(N * C4, 28));
      const gDw = upload(device, dw0);
      const gDb = upload(device, db0);
      const scratch = upload(device, new Float32Array(gpu.matmulScratch(N, C4, C).partials / 4));
      await runDispatches(device, gpu.matmulBackward(k, gDfch, gDw, gDb, upload(device, dout), gFch, gW, N, C4, C, scratch, { accumulate, geluInput: true }));
      const dfchRef = dfchFresh.map((x, i) => x + (accumulate ? dfch0[i] : 0));
      expectClose(await download(device, gDfch, N * C4), dfchRef, tol(C), `dfch accumulate=${accumulate}`);
      expectClose(await download(device, gDw, C4 * C), dwRef, tol(N), 'dweight');
      expectClose(await download(device, gDb, C), dbRef, tol(N), 'dbias');
    }
  });
});
