// The residual sum forward and backward (accumulated onto non-zero values) against
// src/reference/residual.ts.
import { describe, expect, it } from 'vitest';
import { gpuHarness } from '../helpers/gpu.ts';
import { download, randomFloats, runDispatches, upload } from '../helpers/gpu-tensors.ts';
import { residualBackward, residualForward } from '../../src/reference/residual.ts';
import * as gpu from '../../src/backends/webgpu/ops/residual.ts';

const h = await gpuHarness();

describe('residual', () => {
  if (typeof h === 'string') {
    it.skip(`residual: ${h}`, () => {});
    return;
  }
  const { device } = h.gpu;
  const k = h.cache;

  // N: the contract's B*T*C = 3*7*12, one element, and a count past one workgroup.
  it.each([252, 1, 1001])('N=%i forward and backward match the reference exactly', async (N) => {
    const [a, b, dout, da0, db0] = [0, 1, 2, 3, 4].map((s) => randomFloats(N, N * 10 + s));
    // A single f32 add per element: the reference in f32 gives the same bits.
    const out = new Float32Array(N);
    residualForward(out, a, b, N);
    const [da, db] = [Float32Array.from(da0), Float32Array.from(db0)];
    residualBackward(da, db, dout, N);

    const gOut = upload(device, randomFloats(N, N * 10 + 5));
    await runDispatches(device, gpu.residualForward(k, gOut, upload(device, a), upload(device, b), N));
    expect(await download(device, gOut, N)).toEqual(out);

    const [gDa, gDb] = [upload(device, da0), upload(device, db0)];
    await runDispatches(device, gpu.residualBackward(k, gDa, gDb, upload(device, dout), N));
    expect(await download(device, gDa, N), 'da (+=)').toEqual(da);
    expect(await download(device, gDb, N), 'db (+=)').toEqual(db);
  });
});
