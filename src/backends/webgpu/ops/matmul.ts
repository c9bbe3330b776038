// Matrix products (shaders/matmul.wgsl): the general tiled kernel `matmul`, the
// reference-named linear layer `matmulForward` / `matmulBackward`, and `matmulNaive`
// (one invocation per output, for the benchmark only).
//
// Scratch (matmulScratch): matmulBackward uses one scratch buffer, in sequence, for the
// split-K partial products of dweight (and dinp) and for the per-row-chunk partial
// column sums of dbias. It is only read inside one matmulBackward, so every layer can
// share one. Without it, K is never split and dbias is summed by one pass over all rows
// (correct, slower).
import { ceilDiv, type Bind, type Dispatch, type PipelineCache } from '../kernel.ts';
import { grid1d } from './grid.ts';
import { bindBytes, type InputGradOptions } from './util.ts';

const SHADER = 'matmul';
/** K step held in workgroup memory. 2 tiles * TILE_K * 64 floats = 8 KiB for 64x64 output tiles. */
const TILE_K = 16;
/** Split K until about this many workgroups run (a few per SM on big GPUs). */
const SPLIT_TARGET_WORKGROUPS = 256;
/** Each split-K layer walks at least this much K. */
const MIN_K_CHUNK = 256;
const MAX_SPLITS = 16;
/** Bias-gradient partial sums: rows per partial. */
const BIAS_ROW_CHUNK = 128;
const REDUCE_WG = 256;

export interface MatmulOptions {
  M: number;
  N: number;
  K: number;
  /** A is stored (K,M) instead of (M,K). */
  transA?: boolean;
  /** B is stored (N,K) instead of (K,N). */
  transB?: boolean;
  /** out += product instead of out = product. */
  accumulate?: boolean;
  /** Split-K scratch of at least matmulSplitKBytes(M, N, K) bytes; without it K is not split. */
  scratch?: Bind;
  /** Output tile edge: 64 (16x16 invocations) or 32 (8x8); default by size. */
  tile?: 32 | 64;
}

/** The output tile edge used for an (M,N) product unless told: 64 when that still gives enough workgroups. */
export function matmulTile(M: number, N: number): 32 | 64 {
  return ceilDiv(M, 64) * ceilDiv(N, 64) >= 128 ? 64 : 32;
}

/** How many K ranges an (M,N,K) product is split into when given scratch (1: no split). A function of the shape alone, so results are reproducible. */
export function matmulSplits(M: number, N: number, K: number, tile: 32 | 64 = matmulTile(M, N)): number {
  const tiles = ceilDiv(M, tile) * ceilDiv(N, tile);
  let s = Math.min(MAX_SPLITS, Math.floor(SPLIT_TARGET_WORKGROUPS / tiles), Math.floor(K / MIN_K_CHUNK));
  // Keep the scratch (s partial products) within 64 MiB.
  s = Math.min(s, Math.floor((64 << 20) / (M * N * 4)));
  if (s <= 1) return 1;
  // Whole TILE_K steps per layer; recount layers after rounding.
  return ceilDiv(K, kChunk(K, s));
}

function kChunk(K: number, splits: number): number {
  return ceilDiv(ceilDiv(K, splits), TILE_K) * TILE_K;
}

/** Scratch bytes `matmul` uses to split K for this shape (0: it does not split). */
export function matmulSplitKBytes(M: number, N: number, K: number, tile: 32 | 64 = matmulTile(M, N)): number {
  const s = matmulSplits(M, N, K, tile);
  return s > 1 ? s * M * N * 4 : 0;
}

function checkShape(o: MatmulOptions): void {
  for (const d of ['M', 'N', 'K'] as const) {
    if (!Number.isInteger(o[d]) || o[d] < 1) throw new Error(`matmul: ${d}=${o[d]} must be a positive integer`);
  }
}

// out is (M,N); a is (M,K), or (K,M) with transA; b is (K,N), or (N,K) with transB; bias is (N) or null.
// out (=, or += with accumulate) op(a) @ op(b) + bias.
export function matmul(k: PipelineCache, out: Bind, a: Bind, b: Bind, bias: Bind | null, o: MatmulOptions): Dispatch[] {
  checkShape(o);
  const { M, N, K } = o;
  const transA = !!o.transA;
  const transB = !!o.transB;
  const tile = o.tile ?? matmulTile(M, N);
  const wg = tile / 4;
  // vec4 loads need the operand's contiguous dimension to be a multiple of 4 (and 16-byte
  // aligned bindings, which 256-byte tensor offsets give).
  const a4 = (transA ? M : K) % 4 === 0;
  const b4 = (transB ? K : N) % 4 === 0;
  const entry = `matmul_a${a4 ? 4 : 1}_b${b4 ? 4 : 1}`;
  const base = { M, N, K, TRANS_A: +transA, TRANS_B: +transB, WG_X: wg, WG_Y: wg, TILE_K };
  const grid: [number, number] = [ceilDiv(N, tile), ceilDiv(M, tile)];
  const splits = o.scratch ? matmulSplits(M, N, K, tile) : 1;
  if (splits === 1) {
    const c = { ...base, ACCUMULATE: +!!o.accumulate, HAS_BIAS: +!!bias };
    return [k.dispatch(entry, { shader: SHADER, entry, constants: c }, [out, a, b, bias ?? b], grid)];
  }
  const scratch = o.scratch!;
  const need = splits * M * N * 4;
  if (bindBytes(scratch) < need) throw new Error(`matmul: split-K scratch holds ${bindBytes(scratch)} bytes, needs ${need} (matmulSplitKBytes)`);
  const c = { ...base, ACCUMULATE: 0, HAS_BIAS: 0, K_CHUNK: kChunk(K, splits) };
  const reduce = { M, N, SPLITS: splits, ACCUMULATE: +!!o.accumulate, HAS_BIAS: +!!bias, WG_X: REDUCE_WG, WG_Y: 1 };
  return [
    k.dispatch(`${entry} split-K`, { shader: SHADER, entry, constants: c }, [scratch, a, b, b], [grid[0], grid[1], splits]),
    k.dispatch('matmul_splitk_reduce', { shader: SHADER, entry: 'matmul_splitk_reduce', constants: reduce }, [out, scratch, bias ?? scratch], grid1d(M * N, REDUCE_WG)),
  ];
}

// As `matmul`, one invocation per output element and no tiling (benchmark baseline).
export function matmulNaive(k: PipelineCache, out: Bind, a: Bind, b: Bind, bias: Bind | null, o: MatmulOptions): Dispatch[] {
  checkShape(o);
  const { M, N, K } = o;
  const c = { M, N, K, TRANS_A: +!!o.transA, TRANS_B: +!!o.transB, ACCUMULATE: +!!o.accumulate, HAS_BIAS: +!!bias, WG_X: 16, WG_Y: 16 };
  return [k.dispatch('matmul_naive', { shader: SHADER, entry: 'matmul_naive', constants: c }, [out, a, b, bias ?? b], [ceilDiv(N, 16), ceilDiv(M, 16)])];
}

/** Bytes of matmulBackward's scratch buffer (shared by all layers: nothing in it outlives the call). */
export function matmulScratch(N: number, C: number, OC: number): Record<'partials', number> {
  return {
    partials: Math.max(
      4,
      matmulSplitKBytes(C, OC, N), // dweight = inp^T @ dout
      matmulSplitKBytes(N, C, OC), // dinp = dout @ weight^T
      ceilDiv(N, BIAS_ROW_CHUNK) * OC * 4, // dbias partial column sums
    ),
  };
}

// out is (N,OC) (N = B*T); inp is (N,C); weight is (C,OC); bias is (OC) or null.
// out = inp @ weight + bias.
export function matmulForward(k: PipelineCache, out: Bind, inp: Bind, weight: Bind, bias: Bind | null, N: number, C: number, OC: number): Dispatch[] {
  return matmul(k, out, inp, weight, bias, { M: N, N: OC, K: C });
}

// dinp and inp are (N,C); dweight and weight are (C,OC); dbias is (OC) or null; dout is (N,OC);
// scratch is matmulScratch(N, C, OC).partials bytes (optional, see the top of this file).
// Accumulates: dinp += dout @ weight^T; dweight += inp^T @ dout; dbias += column sums of dout
// (with accumulate: false, dinp = dout @ weight^T; dweight and dbias still accumulate).
export function matmulBackward(
  k: PipelineCache, dinp: Bind, dweight: Bind, dbias: Bind | null, dout: Bind, inp: Bind, weight: Bind,
  N: number, C: number, OC: number, scratch?: Bind, o: InputGradOptions = {},
): Dispatch[] {
  const out: Dispatch[] = [];
  if (dbias) out.push(...biasBackward(k, dbias, dout, N, OC, scratch));
  out.push(...matmul(k, dinp, dout, weight, null, { M: N, N: C, K: OC, transB: true, accumulate: o.accumulate ?? true, scratch }));
  out.push(...matmul(k, dweight, inp, dout, null, { M: C, N: OC, K: N, transA: true, accumulate: true, scratch }));
  return out;
}

// dbias is (OC); dout is (N,OC). dbias += sum over rows of dout, in row order within
// chunks of BIAS_ROW_CHUNK rows and chunk order across them (one chunk without scratch).
function biasBackward(k: PipelineCache, dbias: Bind, dout: Bind, N: number, OC: number, scratch?: Bind): Dispatch[] {
  const colGroups = ceilDiv(OC, REDUCE_WG);
  const chunks = ceilDiv(N, BIAS_ROW_CHUNK);
  const sum = { M: N, N: OC, WG_X: REDUCE_WG, WG_Y: 1 };
  if (!scratch || chunks === 1) {
    const c = { ...sum, ROW_CHUNK: N, ACCUMULATE: 1 };
    return [k.dispatch('matmul_colsum', { shader: SHADER, entry: 'matmul_colsum', constants: c }, [dbias, dout], [colGroups, 1])];
  }
  const partial = { ...sum, ROW_CHUNK: BIAS_ROW_CHUNK, ACCUMULATE: 0 };
  const reduce = { M: 1, N: OC, SPLITS: chunks, ACCUMULATE: 1, HAS_BIAS: 0, WG_X: REDUCE_WG, WG_Y: 1 };
  return [
    k.dispatch('matmul_colsum partial', { shader: SHADER, entry: 'matmul_colsum', constants: partial }, [scratch, dout], [colGroups, chunks]),
    k.dispatch('matmul_colsum reduce', { shader: SHADER, entry: 'matmul_splitk_reduce', constants: reduce }, [dbias, scratch, scratch], grid1d(OC, REDUCE_WG)),
  ];
}
