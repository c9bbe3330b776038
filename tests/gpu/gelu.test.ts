// GELU (tanh approximation) forward and backward (accumulated onto non-zero values, and
// overwriting garbage with accumulate: false) against src/reference/gelu.ts, including
// large |x| where a naive tanh overflows.
import { describe, it } from 'vitest';
import { gpuHarness } from '../helpers/gpu.ts';
import { expectClose } from '../helpers/expect-close.ts';
import { download, garbageFloats, randomFloats, runDispatches, upload } from '../helpers/gpu-tensors.ts';
import { geluBackward, geluForward } from '../../src/reference/gelu.ts';
import * as gpu from '../../src/backends/webgpu/ops/gelu.ts';

const h = await gpuHarness();

describe('gelu', () => {
  if (typeof h === 'string') {
    it.skip(`gelu: ${h}`, () => {});
    return;
  }
  const { device } = h.gpu;
  const k = h.cache;
  const f64 = (x: Float32Array) => Float64Array.from(x);

  // N: the contract's B*T*4C = 3*7*48, one element, and a count off the workgroup size.
  it.each([1008, 1, 777])('N=%i forward and backward match the reference', async (N) => {
    const inp = randomFloats(N, N, 4);
    const extremes = [-60, -20, -9, -5, -0.5, 0, 1e-3, 3, 9, 20, 60];
    for (let i = 0; i < Math.min(N, extremes.length); i++) inp[i] = extremes[i];
    const dout = randomFloats(N, N + 1);
    const dinp0 = randomFloats(N, N + 2);

    const out = new Float64Array(N);
    geluForward(out, f64(inp), N);
    const dinp = f64(dinp0);
    geluBackward(dinp, f64(inp), f64(dout), N);

    const gInp = upload(device, inp);
    const gOut = upload(device, randomFloats(N, N + 3));
    await runDispatches(device, gpu.geluForward(k, gOut, gInp, N));
    expectClose(await download(device, gOut, N), out, { rtol: 1e-4, atol: 1e-6 }, 'out');

    const gDinp = upload(device, dinp0);
    await runDispatches(device, gpu.geluBackward(k, gDinp, gInp, upload(device, dout), N));
    expectClose(await download(device, gDinp, N), dinp, { rtol: 1e-4, atol: 1e-5 }, 'dinp (+=)');

    // Overwrite: a fresh gradient, whatever dinp held.
    const fresh = new Float64Array(N);
    geluBackward(fresh, f64(inp), f64(dout), N);
    device.queue.writeBuffer(gDinp, 0, garbageFloats(N, N + 4));
    await runDispatches(device, gpu.geluBackward(k, gDinp, gInp, upload(device, dout), N, { accumulate: false }));
    expectClose(await download(device, gDinp, N), fresh, { rtol: 1e-4, atol: 1e-5 }, 'dinp (=, over garbage)');
  });
});
