// Token + position embedding (shaders/encoder.wgsl).
//
// Scratch (encoderScratch): `sort` holds the radix sort of positions by token (two
// key/value buffers and the per-block digit counts). It is only used inside one
// encoderBackward call, so it can share memory with any other temporary.
import type { Bind, Dispatch, PipelineCache } from '../kernel.ts';
import { grid1d } from './grid.ts';
import { slice } from './util.ts';

const SHADER = 'encoder';
const WG = 256;
const SORT_BLOCK = 256; // positions per sort block; SORT_WG in the shader

// u32 offsets of the sort state inside the scratch binding: key and value buffers 0 and
// 1 (B*T each) and the digit counts (256, blocks).
function sortLayout(B: number, T: number) {
  const n = B * T;
  const blocks = Math.ceil(n / SORT_BLOCK);
  return { blocks, KEYS0: 0, VALS0: n, KEYS1: 2 * n, VALS1: 3 * n, HIST: 4 * n, bytes: (4 * n + 256 * blocks) * 4 };
}

/** Radix passes of 8 bits that cover token ids below V. */
function sortPasses(V: number): number {
  return Math.max(1, Math.ceil(Math.ceil(Math.log2(Math.max(2, V))) / 8));
}

/** Bytes of encoderBackward's scratch (temporary: nothing in it outlives the call). */
export function encoderScratch(B: number, T: number): Record<'sort', number> {
  return { sort: sortLayout(B, T).bytes };
}

// out is (B,T,C); inp is (B,T) int32 token ids; wte is (V,C); wpe is (maxT,C).
// out[b,t,:] = wte[inp[b,t],:] + wpe[t,:].
export function encoderForward(k: PipelineCache, out: Bind, inp: Bind, wte: Bind, wpe: Bind, B: number, T: number, C: number): Dispatch[] {
  const c = { B, T, C, WG };
  return [k.dispatch('encoder_forward', { shader: SHADER, entry: 'encoder_forward', constants: c }, [out, inp, wte, wpe], grid1d(B * T * C, WG))];
}

// dwte is (V,C); dwpe is (maxT,C); dout is (B,T,C); inp is (B,T) int32 token ids in [0, V);
// scratch is encoderScratch(B, T).sort bytes. Accumulates (+=) into dwte and dwpe,
// deterministically (fixed summation order: increasing position).
export function encoderBackward(
  k: PipelineCache, dwte: Bind, dwpe: Bind, dout: Bind, inp: Bind, B: number, T: number, C: number, V: number, scratch: Bind,
): Dispatch[] {
  const { blocks, bytes, ...offsets } = sortLayout(B, T);
  const desc = (entry: string, extra: Record<string, number> = {}) => ({ shader: SHADER, entry, constants: { B, T, C, WG, BLOCKS: blocks, ...offsets, ...extra } });
  const sort = slice(scratch, 0, bytes);

  const out: Dispatch[] = [
    k.dispatch('encoder_backward_wpe', desc('encoder_backward_wpe'), [dwpe, dout], grid1d(T * C, WG)),
  ];
  // LSD radix sort of (token, position) pairs: pass 0 reads the tokens and writes buffer
  // 0; pass p reads buffer (p-1) % 2 and writes the other.
  const passes = sortPasses(V);
  for (let p = 0; p < passes; p++) {
    const pass = { SHIFT: 8 * p, FIRST: +(p === 0), SRC: (p + 1) % 2 };
    out.push(
      k.dispatch('encoder_sort_count', desc('encoder_sort_count', pass), [sort, inp], [blocks]),
      k.dispatch('encoder_sort_scan', desc('encoder_sort_scan', pass), [sort], [1]),
      k.dispatch('encoder_sort_scatter', desc('encoder_sort_scatter', pass), [sort, inp], [blocks]),
    );
  }
  const result = { SRC: (passes - 1) % 2 };
  out.push(k.dispatch('encoder_backward_wte', desc('encoder_backward_wte', result), [dwte, dout, sort], grid1d(B * T * C, WG)));
  return out;
}
