// Moving test tensors to and from the GPU, and running a list of dispatches: the one
// way every GPU kernel test uploads inputs and reads results.
import { readBuffer, recordPass, storageBuffer, type Dispatch } from '../../src/backends/webgpu/kernel.ts';
import { expect } from 'vitest';
import { Rng } from '../../src/core/rng.ts';

/** A storage buffer holding `data` (or `n` zero floats when given a number). */
export function upload(device: GPUDevice, data: Float32Array | Int32Array | Uint32Array | number, label = 'tensor'): GPUBuffer {
  if (typeof data === 'number') return storageBuffer(device, label, data * 4, new Float32Array(data));
  return storageBuffer(device, label, data.byteLength, data);
}

/** Reads `n` floats back (starting `offsetFloats` into the buffer). */
export async function download(device: GPUDevice, buf: GPUBuffer, n: number, offsetFloats = 0): Promise<Float32Array<ArrayBuffer>> {
  return new Float32Array(await readBuffer(device, buf, n * 4, offsetFloats * 4));
}

/** Records the dispatches into one compute pass, submits, and waits for the queue. */
export async function runDispatches(device: GPUDevice, dispatches: readonly Dispatch[]): Promise<void> {
  const enc = device.createCommandEncoder();
  recordPass(enc, dispatches, 'test');
  device.queue.submit([enc.finish()]);
  await device.queue.onSubmittedWorkDone();
}

/**
 * Determinism check: writes each `restore` buffer's starting contents back, runs the
 * dispatches again, and expects every `outputs` buffer to hold exactly the bits it held
 * after the first run (`first`).
 */
export async function expectSameBitsAgain(
  device: GPUDevice,
  dispatches: readonly Dispatch[],
  restore: ReadonlyArray<readonly [GPUBuffer, Float32Array]>,
  outputs: Readonly<Record<string, readonly [GPUBuffer, Float32Array]>>,
): Promise<void> {
  for (const [buf, data] of restore) device.queue.writeBuffer(buf, 0, data.buffer, data.byteOffset, data.byteLength);
  await runDispatches(device, dispatches);
  for (const [name, [buf, first]] of Object.entries(outputs)) {
    const again = await download(device, buf, first.length);
    expect(new Uint32Array(again.buffer), `${name} bit-identical run to run`).toEqual(new Uint32Array(first.buffer, first.byteOffset, first.length));
  }
}

/** `n` seeded values uniform in [-scale, scale). */
export function randomFloats(n: number, seed: number, scale = 1): Float32Array<ArrayBuffer> {
  const rng = new Rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (rng.next() * 2 - 1) * scale;
  return out;
}

/** `n` seeded integers in [0, max). */
export function randomInts(n: number, seed: number, max: number): Int32Array<ArrayBuffer> {
  const rng = new Rng(seed);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.int(max);
  return out;
}

/**
 * `n` floats no kernel should ever read: huge values with NaN and Infinity among them.
 * An output a kernel overwrites starts as these, so any read of it (a += where an = was
 * asked for) or any element left unwritten shows in the result.
 */
export function garbageFloats(n: number, seed: number): Float32Array<ArrayBuffer> {
  const out = randomFloats(n, seed, 1e6);
  for (let i = 0; i < n; i += 3) out[i] = i % 2 ? NaN : -Infinity;
  return out;
}
