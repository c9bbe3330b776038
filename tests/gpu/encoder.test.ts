// Token + position embedding against src/reference/encoder.ts, forward and backward,
// including vocabularies that need one and two radix-sort passes, several sort blocks,
// and one hot token (every position the same id).
import { describe, expect, it } from 'vitest';
import { gpuHarness } from '../helpers/gpu.ts';
import { expectClose } from '../helpers/expect-close.ts';
import { download, expectSameBitsAgain, randomFloats, randomInts, runDispatches, upload } from '../helpers/gpu-tensors.ts';
import { encoderBackward, encoderForward } from '../../src/reference/encoder.ts';
import * as gpu from '../../src/backends/webgpu/ops/encoder.ts';

const h = await gpuHarness();

// [B, T, C, V, maxT]: the contract's odd shape, more positions than one sort block
// (256), a GPT-2-sized vocabulary (two 8-bit passes), and V = 1.
const SHAPES: Array<[number, number, number, number, number]> = [
  [3, 7, 12, 11, 9],
  [2, 150, 20, 300, 160],
  [4, 80, 5, 50257, 80],
  [2, 5, 3, 1, 5],
];

describe('encoder', () => {
  if (typeof h === 'string') {
    it.skip(`encoder: ${h}`, () => {});
    return;
  }
  const { device } = h.gpu;
  const k = h.cache;
  const f64 = (x: Float32Array) => Float64Array.from(x);

  async function run(B: number, T: number, C: number, V: number, maxT: number, inp: Int32Array, seed: number) {
    const wte = randomFloats(V * C, seed);
    const wpe = randomFloats(maxT * C, seed + 1);
    const dout = randomFloats(B * T * C, seed + 2);
    const dwte0 = randomFloats(V * C, seed + 3);
    const dwpe0 = randomFloats(maxT * C, seed + 4);

    const out = new Float64Array(B * T * C);
    encoderForward(out, inp, f64(wte), f64(wpe), B, T, C);
    const [dwte, dwpe] = [f64(dwte0), f64(dwpe0)];
    encoderBackward(dwte, dwpe, f64(dout), inp, B, T, C);

    const gInp = upload(device, inp, 'inp');
    const gOut = upload(device, randomFloats(B * T * C, seed + 5), 'out');
    await runDispatches(device, gpu.encoderForward(k, gOut, gInp, upload(device, wte), upload(device, wpe), B, T, C));
    expectClose(await download(device, gOut, B * T * C), out, { rtol: 1e-6, atol: 1e-6 }, 'out');

    const gDwte = upload(device, dwte0, 'dwte');
    const gDwpe = upload(device, dwpe0, 'dwpe');
    const gDout = upload(device, dout, 'dout');
    const scratch = upload(device, randomFloats(gpu.encoderScratch(B, T).sort / 4, seed + 6), 'scratch');
    const backward = () => gpu.encoderBackward(k, gDwte, gDwpe, gDout, gInp, B, T, C, V, scratch);
    await runDispatches(device, backward());
    const gotWte = await download(device, gDwte, V * C);
    const gotWpe = await download(device, gDwpe, maxT * C);
    expectClose(gotWte, dwte, { rtol: 1e-5, atol: 1e-5 }, 'dwte (+=)');
    expectClose(gotWpe, dwpe, { rtol: 1e-5, atol: 1e-5 }, 'dwpe (+=)');

    // The exact f32 summation order: per token, positions in increasing order, then
    // added to dwte once (this fails if the sort is wrong or unstable).
    const sums = new Float32Array(V * C);
    for (let p = 0; p < B * T; p++) {
      for (let c = 0; c < C; c++) sums[inp[p] * C + c] = Math.fround(sums[inp[p] * C + c] + dout[p * C + c]);
    }
    const seen = new Set(inp);
    const exact = Float32Array.from(dwte0);
    for (const v of seen) for (let c = 0; c < C; c++) exact[v * C + c] = Math.fround(exact[v * C + c] + sums[v * C + c]);
    expect(Buffer.from(gotWte.buffer).equals(Buffer.from(exact.buffer)), 'dwte summed in position order').toBe(true);

    await expectSameBitsAgain(device, backward(), [[gDwte, dwte0], [gDwpe, dwpe0]], { dwte: [gDwte, gotWte], dwpe: [gDwpe, gotWpe] });
  }

  it.each(SHAPES)('B=%i T=%i C=%i V=%i maxT=%i forward and backward match the reference', async (B, T, C, V, maxT) => {
    const seed = B * 1000 + T * 10 + C;
    const inp = randomInts(B * T, seed + 9, V);
    inp[0] = V - 1; // the largest id
    await run(B, T, C, V, maxT, inp, seed);
  });

  it('one token at every position (one long run)', async () => {
    const [B, T, C, V] = [3, 200, 4, 70000]; // 600 positions in 3 sort blocks; V needs 3 passes
    await run(B, T, C, V, T, new Int32Array(B * T).fill(65537), 5);
  });
});
