// Small kernels and helpers shared by the ops: fill (the step graph zeroes gradients
// with it) and sub-ranges of a scratch binding.
import type { Bind, Dispatch, PipelineCache } from '../kernel.ts';
import { grid1d } from './grid.ts';

const WG = 256;

// buf is (n) floats. buf[:] = value.
export function fill(k: PipelineCache, buf: Bind, n: number, value: number): Dispatch[] {
  if (n <= 0) return [];
  return [k.dispatch('fill', { shader: 'util', entry: 'fill', constants: { N: n, VALUE: value, WG } }, [buf], grid1d(n, WG))];
}

/**
 * Options of a backward op for the activation gradient it writes (dinp, dx, dqkv).
 * accumulate (default true, the reference's +=) adds into it; false overwrites it, for a
 * gradient the step graph writes fresh, so it needs no zero-fill before. Set as a WGSL
 * override constant: each mode is its own pipeline, with no branch at run time.
 * Parameter gradients (dweight, dbias, dwte) always accumulate.
 */
export interface InputGradOptions {
  accumulate?: boolean;
}

/** Storage bindings must start at multiples of this (minStorageBufferOffsetAlignment is at most 256). */
export const BIND_ALIGN = 256;

export function alignUp(bytes: number, align = BIND_ALIGN): number {
  return Math.ceil(bytes / align) * align;
}

/** `bytes` bytes starting `offset` bytes (a multiple of 256) into a binding. */
export function slice(b: Bind, offset: number, bytes: number): GPUBufferBinding {
  if (offset % BIND_ALIGN !== 0) throw new Error(`slice: offset ${offset} is not a multiple of ${BIND_ALIGN}`);
  const size = Math.max(4, Math.ceil(bytes / 4) * 4);
  if ('buffer' in b) return { buffer: b.buffer, offset: (b.offset ?? 0) + offset, size };
  return { buffer: b, offset, size };
}

/** Bytes a binding covers. */
export function bindBytes(b: Bind): number {
  if ('buffer' in b) return b.size ?? b.buffer.size - (b.offset ?? 0);
  return b.size;
}
