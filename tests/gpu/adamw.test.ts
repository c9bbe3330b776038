// Gradient norm, GPU-side clipping and AdamW against src/reference/adamw.ts over several
// steps, with and without clipping, a decayed and a non-decayed range (the second
// starting off the 64-element binding alignment), and odd sizes; the norm on every shader
// variant (subgroups where the device has them, and the fallback).
import { describe, expect, it } from 'vitest';
import { gpuHarness } from '../helpers/gpu.ts';
import { expectClose } from '../helpers/expect-close.ts';
import { download, randomFloats, runDispatches, upload } from '../helpers/gpu-tensors.ts';
import { adamwUpdate, clipScale, gradNorm as refGradNorm } from '../../src/reference/adamw.ts';
import type { ModelSpec } from '../../src/core/model-spec.ts';
import {
  ADAMW_HYPER_BYTES, MAX_PIECE, adamw, adamwHyperBuffer, gradNorm, gradNormScratch, rangePieces,
} from '../../src/backends/webgpu/ops/adamw.ts';

const h = await gpuHarness();

/** A stand-in model spec: elements [0, split) decayed, [split, n) not. */
function fakeSpec(n: number, split: number): ModelSpec {
  const params = [
    { name: 'decayed', shape: [split], size: split, offset: 0, role: 'weight' as const, decay: true, layer: -1 },
    { name: 'plain', shape: [n - split], size: n - split, offset: split, role: 'bias' as const, decay: false, layer: -1 },
  ].filter((p) => p.size > 0);
  return { model: { vocabSize: 1, blockSize: 1, nLayer: 0, nHead: 1, nEmbd: 1 }, params, byName: new Map(params.map((p) => [p.name, p])), numParams: n };
}

describe('adamw', () => {
  if (typeof h === 'string') {
    it.skip(`adamw: ${h}`, () => {});
    return;
  }
  const { device } = h.gpu;
  if (h.noSubgroups) it.skip(h.noSubgroups, () => {});
  describe.each(h.variants)('$name', ({ cache: k }) => {
    // [n, gradClip]: 0 = no clipping; 0.5 clips (norms here are ~sqrt(n)/2); 1e6 never does.
    const CASES: Array<[number, number]> = [
      [1, 0], [7, 0.5], [1000, 0], [1000, 0.5], [70001, 1e6], [70001, 0.5],
    ];

    it.each(CASES)('n=%i gradClip=%d: three steps match the reference', async (n, gradClip) => {
      const split = Math.min(n, Math.floor(n * 0.6) + (n > 1 ? 1 : 0)); // an odd offset for the second range
      const spec = fakeSpec(n, split);
      const p0 = randomFloats(n, n, 1);
      const params = Float64Array.from(p0);
      const m = new Float64Array(n);
      const v = new Float64Array(n);

      const gParams = upload(device, p0, 'params');
      const gGrads = upload(device, n, 'grads');
      const gM = upload(device, randomFloats(n, 1), 'm');
      const gV = upload(device, randomFloats(n, 2), 'v');
      device.queue.writeBuffer(gM, 0, new Float32Array(n));
      device.queue.writeBuffer(gV, 0, new Float32Array(n));
      const gHp = upload(device, ADAMW_HYPER_BYTES / 4, 'hp');
      const gNorm = upload(device, new Float32Array([-1]), 'norm');
      const gScratch = upload(device, gradNormScratch(n).partials / 4, 'partials');

      const dispatches = [
        ...gradNorm(k, gNorm, gGrads, n, gScratch),
        ...adamw(k, gParams, gGrads, gM, gV, gHp, gNorm, { offset: 0, count: split }, true),
        ...adamw(k, gParams, gGrads, gM, gV, gHp, gNorm, { offset: split, count: n - split }, false),
      ];
      for (let t = 1; t <= 3; t++) {
        const hp = { lr: 1e-3 * t, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, gradClip, t };
        const grads = randomFloats(n, 100 * t + n, 1);
        device.queue.writeBuffer(gGrads, 0, grads);
        device.queue.writeBuffer(gHp, 0, adamwHyperBuffer(hp));
        await runDispatches(device, dispatches);

        const g64 = Float64Array.from(grads);
        const norm = refGradNorm(g64);
        adamwUpdate(params, g64, m, v, spec, hp, t, clipScale(norm, gradClip));
        expectClose(await download(device, gNorm, 1), [norm], { rtol: 1e-5, atol: 0 }, `norm step ${t}`);
        expectClose(await download(device, gM, n), m, { rtol: 1e-4, atol: 1e-7 }, `m step ${t}`);
        expectClose(await download(device, gV, n), v, { rtol: 1e-4, atol: 1e-9 }, `v step ${t}`);
        expectClose(await download(device, gParams, n), params, { rtol: 1e-5, atol: 1e-6 }, `params step ${t}`);
      }
      for (const b of [gParams, gGrads, gM, gV, gHp, gNorm, gScratch]) b.destroy();
    });

    it('gradNorm splits bindings past MAX_PIECE and is bit-identical run to run', async () => {
      const n = MAX_PIECE + 4097 * 3;
      const grads = randomFloats(n, 5, 1);
      const gGrads = upload(device, grads, 'grads');
      const gNorm = upload(device, 1, 'norm');
      const gScratch = upload(device, gradNormScratch(n).partials / 4, 'partials');
      const d = gradNorm(k, gNorm, gGrads, n, gScratch);
      expect(d.length).toBe(3);
      const parts = gradNormScratch(n).partials / 4;
      await runDispatches(device, d);
      const first = await download(device, gNorm, 1);
      const firstParts = await download(device, gScratch, parts);
      expectClose(first, [refGradNorm(grads)], { rtol: 1e-5, atol: 0 }, 'norm');
      device.queue.writeBuffer(gNorm, 0, new Float32Array([NaN]));
      device.queue.writeBuffer(gScratch, 0, new Float32Array(parts).fill(NaN));
      await runDispatches(device, d);
      expect(new Uint32Array((await download(device, gNorm, 1)).buffer), 'norm bit-identical').toEqual(new Uint32Array(first.buffer));
      expect(new Uint32Array((await download(device, gScratch, parts)).buffer), 'partials bit-identical').toEqual(new Uint32Array(firstParts.buffer));
      for (const b of [gGrads, gNorm, gScratch]) b.destroy();
    });
  });

  it('adamw binds ranges in aligned pieces of at most MAX_PIECE elements', () => {
    expect(rangePieces({ offset: 0, count: 0 })).toEqual([]);
    expect(rangePieces({ offset: 70, count: 5 })).toEqual([{ base: 64, offset: 6, count: 5 }]);
    const big = rangePieces({ offset: 130, count: 2 * MAX_PIECE });
    expect(big).toEqual([
      { base: 128, offset: 2, count: MAX_PIECE - 2 },
      { base: 128 + MAX_PIECE, offset: 0, count: MAX_PIECE },
      { base: 128 + 2 * MAX_PIECE, offset: 0, count: 2 },
    ]);
  });

  it('adamwHyperBuffer computes the bias corrections in f64', () => {
    const a = adamwHyperBuffer({ lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, gradClip: 1, t: 1 });
    expect(a.byteLength).toBe(ADAMW_HYPER_BYTES);
    expect(a[6]).toBeCloseTo(0.1, 6);
    expect(a[7]).toBe(Math.fround(Math.sqrt(0.001)));
    expect(() => adamwHyperBuffer({ lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, gradClip: 1, t: 0 })).toThrow();
  });
});
