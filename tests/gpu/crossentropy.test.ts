// The chunked, fused classifier (logits, softmax + cross-entropy, dlogits in place,
// dx (accumulated, or overwriting garbage) and dwte) against src/reference/crossentropy.ts,
// plus the loss-only path, the sampling row logits and the mean-loss reduction, on every
// shader variant (subgroups where the device has them, and the fallback).
import { describe, expect, it } from 'vitest';
import { gpuHarness } from '../helpers/gpu.ts';
import { expectClose } from '../helpers/expect-close.ts';
import { download, expectSameBitsAgain, garbageFloats, randomFloats, randomInts, runDispatches, upload } from '../helpers/gpu-tensors.ts';
import {
  logitsBackward, logitsForward, softmaxCrossEntropyBackward, softmaxCrossEntropyForward,
} from '../../src/reference/crossentropy.ts';
import {
  classifierForwardBackward, classifierLoss, classifierRowsPerChunk, classifierScratch, lastLogits, meanLoss,
} from '../../src/backends/webgpu/ops/crossentropy.ts';

const h = await gpuHarness();

// [N, C, V, rowsPerChunk]: one chunk, several chunks with a short last one, V past one
// 64-wide matmul tile; the softmax's workgroup (softmaxWorkgroup: about V / 4 invocations,
// 32 to 256) at 32 (V 11, most invocations idle), 128 (V 257, not a multiple of it) and
// 256 with 5 logits per invocation (V 1100).
const SHAPES: Array<[number, number, number, number]> = [
  [7, 12, 11, 7],
  [131, 12, 11, 64],
  [150, 20, 257, 64],
  [1, 8, 257, 1],
  [3, 8, 1100, 3],
];

function reference(N: number, C: number, V: number, x: Float32Array, wte: Float32Array, targets: Int32Array, scale: number) {
  const logits = new Float64Array(N * V);
  const probs = new Float64Array(N * V);
  const losses = new Float64Array(N);
  logitsForward(logits, Float64Array.from(x), Float64Array.from(wte), N, C, V);
  softmaxCrossEntropyForward(losses, probs, logits, targets, N, V);
  const dlogits = new Float64Array(N * V);
  softmaxCrossEntropyBackward(dlogits, probs, targets, scale, N, V);
  return { logits, losses, dlogits };
}

describe('classifier (fused softmax + cross-entropy)', () => {
  if (typeof h === 'string') {
    it.skip(`classifier: ${h}`, () => {});
    return;
  }
  if (h.noSubgroups) it.skip(h.noSubgroups, () => {});
  describe.each(h.variants)('$name', ({ cache: k }) => {
    const { device } = h.gpu;

    it.each(SHAPES)('N=%i C=%i V=%i rowsPerChunk=%i: losses, dx, dwte match the reference', async (N, C, V, rowsPerChunk) => {
      const seed = N * 7 + V;
      const x = randomFloats(N * C, seed, 2);
      const wte = randomFloats(V * C, seed + 1, 1);
      const targets = randomInts(N, seed + 2, V);
      const dx0 = randomFloats(N * C, seed + 3);
      const dwte0 = randomFloats(V * C, seed + 4);
      const scale = 0.37;

      const ref = reference(N, C, V, x, wte, targets, scale);
      const dx = Float64Array.from(dx0);
      const dwte = Float64Array.from(dwte0);
      logitsBackward(dx, dwte, ref.dlogits, Float64Array.from(x), Float64Array.from(wte), N, C, V);

      const gX = upload(device, x, 'x');
      const gWte = upload(device, wte, 'wte');
      const gTargets = upload(device, targets, 'targets');
      const gLosses = upload(device, randomFloats(N, seed + 5), 'losses');
      const gDx = upload(device, dx0, 'dx');
      const gDwte = upload(device, dwte0, 'dwte');
      const gLogits = upload(device, rowsPerChunk * V, 'logits');

      const fb = classifierForwardBackward(k, gLosses, gDx, gDwte, gX, gWte, gTargets, gLogits, N, C, V, scale, rowsPerChunk);
      await runDispatches(device, fb);
      expectClose(await download(device, gLosses, N), ref.losses, { rtol: 1e-5, atol: 1e-5 }, 'losses');
      expectClose(await download(device, gDx, N * C), dx, { rtol: 1e-4, atol: 1e-5 }, 'dx (+=)');
      const gotDwte = await download(device, gDwte, V * C);
      expectClose(gotDwte, dwte, { rtol: 1e-4, atol: 1e-5 }, 'dwte (+=)');
      // The last chunk's logits scratch now holds its dlogits.
      const last = Math.floor((N - 1) / rowsPerChunk) * rowsPerChunk;
      expectClose(await download(device, gLogits, (N - last) * V), ref.dlogits.subarray(last * V), { rtol: 1e-4, atol: 1e-6 }, 'dlogits in place');

      const gotLosses = await download(device, gLosses, N);
      await expectSameBitsAgain(device, fb, [[gDwte, dwte0], [gLosses, garbageFloats(N, seed + 9)]], { dwte: [gDwte, gotDwte], losses: [gLosses, gotLosses] });

      // accumulate: false overwrites dx (every chunk's rows) whatever it held; dwte still accumulates.
      const fresh = new Float64Array(N * C);
      const dwte2 = Float64Array.from(dwte0);
      logitsBackward(fresh, dwte2, ref.dlogits, Float64Array.from(x), Float64Array.from(wte), N, C, V);
      device.queue.writeBuffer(gDx, 0, garbageFloats(N * C, seed + 8));
      device.queue.writeBuffer(gDwte, 0, dwte0);
      await runDispatches(device, classifierForwardBackward(k, gLosses, gDx, gDwte, gX, gWte, gTargets, gLogits, N, C, V, scale, rowsPerChunk, { accumulate: false }));
      expectClose(await download(device, gDx, N * C), fresh, { rtol: 1e-4, atol: 1e-5 }, 'dx (=, over garbage)');
      expectClose(await download(device, gDwte, V * C), dwte2, { rtol: 1e-4, atol: 1e-5 }, 'dwte (+=, dx overwritten)');

      // Loss only (evaluation).
      device.queue.writeBuffer(gLosses, 0, randomFloats(N, seed + 6));
      await runDispatches(device, classifierLoss(k, gLosses, gX, gWte, gTargets, gLogits, N, C, V, rowsPerChunk));
      expectClose(await download(device, gLosses, N), ref.losses, { rtol: 1e-5, atol: 1e-5 }, 'losses (loss only)');

      // Sampling: the logits of the last row.
      const gOut = upload(device, randomFloats(V, seed + 7), 'row logits');
      const gRow = upload(device, new Uint32Array([N - 1]), 'row');
      await runDispatches(device, lastLogits(k, gOut, gX, gWte, gRow, C, V));
      expectClose(await download(device, gOut, V), ref.logits.subarray((N - 1) * V), { rtol: 1e-4, atol: 1e-5 }, 'last logits');

      for (const b of [gX, gWte, gTargets, gLosses, gDx, gDwte, gLogits, gOut, gRow]) b.destroy();
    });

    it('meanLoss sums in a fixed order, scales, and accumulates over micro-batches', async () => {
      for (const N of [1, 7, 300, 1000]) {
        const a = randomFloats(N, N, 5);
        const b = randomFloats(N, N + 1, 5);
        const scale = 1 / (2 * N);
        let expected = 0;
        for (let i = 0; i < N; i++) expected += (a[i] + b[i]) * scale;
        const gOut = upload(device, new Float32Array([123]), 'mean');
        const gA = upload(device, a, 'losses a');
        const gB = upload(device, b, 'losses b');
        const both = [...meanLoss(k, gOut, gA, N, scale, false), ...meanLoss(k, gOut, gB, N, scale, true)];
        await runDispatches(device, both);
        const got = await download(device, gOut, 1);
        expectClose(got, [expected], { rtol: 1e-5, atol: 1e-6 }, `mean loss N=${N}`);
        await runDispatches(device, both);
        expect(new Uint32Array((await download(device, gOut, 1)).buffer), `mean loss N=${N} bit-identical`).toEqual(new Uint32Array(got.buffer));
        for (const g of [gOut, gA, gB]) g.destroy();
      }
    });
  });
});

describe('classifier chunking', () => {
  it('takes all rows when they fit a binding, else multiples of 64 rows', () => {
    expect(classifierRowsPerChunk(100, 50, 1 << 20)).toBe(100);
    expect(classifierRowsPerChunk(8192, 50304, 128 << 20)).toBe(640);
    expect(classifierScratch(8192, 50304, 128 << 20)).toEqual({ logits: 640 * 50304 * 4 });
    expect(() => classifierRowsPerChunk(8192, 1 << 20, 128 << 20)).toThrow(/binding/);
  });
});
