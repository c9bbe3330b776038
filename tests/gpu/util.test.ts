// fill, including a count past 32768 workgroups (the 2-D grid) and a range inside a
// bigger buffer that must be left alone around it.
import { describe, expect, it } from 'vitest';
import { gpuHarness } from '../helpers/gpu.ts';
import { download, randomFloats, runDispatches, upload } from '../helpers/gpu-tensors.ts';
import { fill, slice } from '../../src/backends/webgpu/ops/util.ts';

const h = await gpuHarness();

describe('fill', () => {
  if (typeof h === 'string') {
    it.skip(`fill: ${h}`, () => {});
    return;
  }
  const { device } = h.gpu;
  const k = h.cache;

  it('fills a range of a buffer and nothing else', async () => {
    const before = randomFloats(1000, 1);
    const buf = upload(device, before);
    await runDispatches(device, fill(k, slice(buf, 256, 300 * 4), 300, 0));
    const got = await download(device, buf, 1000);
    const want = Float32Array.from(before).fill(0, 64, 364);
    expect(got).toEqual(want);
  });

  it('fills more elements than one row of the grid holds', async () => {
    const n = 32768 * 256 + 300;
    const buf = upload(device, n);
    await runDispatches(device, fill(k, buf, n, -1.5));
    const got = await download(device, buf, n);
    expect(got.every((x) => x === -1.5)).toBe(true);
  });
});
