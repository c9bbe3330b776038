// The harness of tests/cuda/*.test.ts: every CUDA kernel's entry point runs on each
// flavour of the addon available here (the SIMT emulation always where it is built,
// which tests/helpers/cuda-global-setup.ts does before the tests; the real GPU where the
// cuda flavour is built and a GPU is present) and is compared with src/reference.
import { describe, inject, it } from 'vitest';
import { loadAddon, type CudaAddon, type CudaFlavour, type KernelArray } from '../../src/backends/cuda/addon.ts';
import { randomFloats, randomInts as seededInts } from '../helpers/gpu-tensors.ts';

export interface CudaHarness {
  flavour: CudaFlavour;
  addon: CudaAddon;
  /** Runs entry point `name` (native/cuda/entries/) on the arrays, written back in place, and the numbers. */
  kernel(name: string, arrays: KernelArray[], nums: number[]): void;
}

/** The dtype numbers entry points take (kernels.h's Dtype). */
export const DT = { f32: 0, bf16: 1 } as const;

/** Why a flavour cannot run: skip (nothing to build it with, no GPU) or fail (a broken build). */
export interface Unavailable {
  reason: string;
  fail: boolean;
}

/** A flavour's addon, or why it cannot run here (loaded once per test file). */
const available = new Map<CudaFlavour, CudaAddon | Unavailable>();

export function cudaFlavour(flavour: CudaFlavour): CudaAddon | Unavailable {
  let got = available.get(flavour);
  if (got === undefined) {
    got = openFlavour(flavour);
    available.set(flavour, got);
  }
  return got;
}

function openFlavour(flavour: CudaFlavour): CudaAddon | Unavailable {
  // The global setup's build (absent when a run has no global setup): a build that failed
  // must not fall back on a stale .node from an earlier one.
  const build = flavour === 'emulation' ? inject('kilnCudaEmuBuild') : undefined;
  if (build?.status === 'failed') return { reason: build.detail, fail: true };
  // Nothing to build with here: an older build lying around would be tested in its place.
  // CI has CMake and g++, so a skip there means its set-up broke.
  if (build?.status === 'skipped') return { reason: build.detail, fail: !!process.env.CI };
  try {
    const addon = loadAddon(flavour);
    if (flavour === 'cuda') {
      const d = addon.devices();
      if (d.count < 1) return { reason: `cuda flavour: no GPU (${d.error ?? 'cudaGetDeviceCount said 0'})`, fail: false };
    }
    return addon;
  } catch (e) {
    // CI has CMake and g++: an emulation flavour missing there means the build broke.
    return { reason: `${flavour} flavour: ${(e as Error).message}`, fail: flavour === 'emulation' && !!process.env.CI };
  }
}

/**
 * KILN_CUDA_TEST_FLAVOURS="cuda" (or "emulation", or both): only these flavours. The GPU
 * visit runs these tests bundled on the GPU machine, where no emulation is built.
 */
function testedFlavours(): CudaFlavour[] {
  const all: CudaFlavour[] = ['emulation', 'cuda'];
  const want = process.env.KILN_CUDA_TEST_FLAVOURS;
  return want ? all.filter((f) => want.split(/[\s,]+/).includes(f)) : all;
}

/**
 * One `describe(name [flavour])` per flavour that can run here, each given its harness;
 * a flavour that cannot shows as one skipped test naming the reason, or as one failing
 * test when its build failed (or, on CI, when the emulation flavour is missing).
 */
export function describeCuda(name: string, body: (h: CudaHarness) => void): void {
  for (const flavour of testedFlavours()) {
    const addon = cudaFlavour(flavour);
    if ('reason' in addon) {
      if (addon.fail)
        it(`${name} [${flavour}]`, () => {
          throw new Error(`the ${flavour} flavour of the CUDA addon is unusable: ${addon.reason}`);
        });
      else it.skip(`${name} [${flavour}]: ${addon.reason}`, () => {});
      continue;
    }
    const h: CudaHarness = {
      flavour,
      addon,
      kernel: (kernelName, arrays, nums) => addon.kernel(kernelName, arrays, nums),
    };
    describe(`${name} [${flavour}]`, () => body(h));
  }
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Each value rounded to the nearest bf16 (ties to even), as portable.cuh's f32_to_bf16_bits; NaN stays NaN. */
export function roundBf16(x: Float32Array): Float32Array<ArrayBuffer> {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    f32[0] = x[i];
    let u = u32[0];
    if ((u & 0x7fffffff) > 0x7f800000) u = (u | 0x400000) >>> 0;
    else u = (u + 0x7fff + ((u >>> 16) & 1)) >>> 0;
    u32[0] = (u & 0xffff0000) >>> 0;
    out[i] = f32[0];
  }
  return out;
}

/** `n` seeded floats uniform in [-scale, scale): the generator the WebGPU kernel tests use. */
export { randomFloats };

/** `n` seeded integers in [0, max) (the WebGPU tests' generator, with max before the seed). */
export function randomInts(n: number, max: number, seed: number): Int32Array<ArrayBuffer> {
  return seededInts(n, seed, max);
}
