// Matrix products (shaders/matmul.wgsl: 4x4 blocks, matmul_8x8.wgsl: 8x8 blocks, both
// over matmul_tiles.wgsl): the general tiled kernel `matmul`, the reference-named linear
// layer `matmulForward` / `matmulBackward`, and `matmulNaive` (one invocation per
// output, for the benchmark only).
//
// Tiles (matmulTile): 32x32 and 64x64 output tiles (8x8 / 16x16 invocations, 4x4 outputs
// each: entry `matmul`), and 128x128 (16x16 invocations, 8x8 outputs each, ping-pong
// workgroup tiles: `matmul_8x8`) for large products. Either reads an operand with vec4
// loads (shader switches a4, b4) where its contiguous dimension allows; dispatch labels
// say which, e.g. `matmul_8x8_a4_b1`. KILN_MATMUL_TILE=32|64|128 in
// the environment forces one for every product that does not set `tile` (and
// KILN_MATMUL_TILE_K=8|16 the 128 tile's K step): how a GPU visit compares candidates.
//
// GELU (shaders/gelu.wgsl) has no kernel of its own: `geluA` reads A as gelu(A) and
// `geluGradOf` multiplies the result by gelu'(P), which is how the step graph runs the MLP's
// c_proj (matmulForward / matmulBackward with geluInput).
//
// Scratch (matmulScratch): matmulBackward uses one scratch buffer, in sequence, for the
// split-K partial products of dweight (and dinp) and for the per-row-chunk partial
// column sums of dbias. It is only read inside one matmulBackward, so every layer can
// share one. Without it, K is never split and dbias is summed by one pass over all rows
// (correct, slower).
import { ceilDiv, type Bind, type Dispatch, type PipelineCache } from '../kernel.ts';
import { grid1d } from './grid.ts';
import { bindBytes, type InputGradOptions } from './util.ts';

const SHADER = 'matmul'; // 4x4 blocks
const SHADER_8X8 = 'matmul_8x8'; // 8x8 blocks (the 128 tile)
const SUMS = 'matmul_sums'; // split-K reduce, bias column sums
const NAIVE = 'matmul_naive'; // the benchmark's untiled baseline
/** K step held in workgroup memory (32 and 64 tiles). 2 tiles * TILE_K * 64 floats = 8 KiB for 64x64 output tiles. */
const TILE_K = 16;
/** WebGPU's guaranteed maxComputeWorkgroupStorageSize: what a device that reports nothing has. */
const MIN_WORKGROUP_STORAGE = 16384;
/** The 128 tile when that still gives at least this many workgroups (about two per SM on a 132-SM H200). */
const TILE128_MIN_WORKGROUPS = 256;
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
  /** Output tile edge: 128 (16x16 invocations, 8x8 outputs each), 64 (16x16, 4x4) or 32 (8x8, 4x4); default matmulTile(M, N). */
  tile?: MatmulTile;
  /**
   * K step of the 128 tile (ignored by 32 and 64, which step 16): 16 needs 32 KiB of
   * workgroup memory (two copies of two 128x16 tiles), 8 needs 16 KiB. Default
   * matmulTileK: 16 where the device allows 32 KiB, else 8; 16 asked of a 16 KiB device gives 8.
   */
  tileK?: 8 | 16;
  /** A is read as gelu(A): the GELU before c_proj, folded into the tile loads (shaders/gelu.wgsl). */
  geluA?: boolean;
  /** The result (+ bias) is multiplied by gelu'(geluGradOf) elementwise, geluGradOf (M,N): c_proj's input gradient made d(fch). */
  geluGradOf?: Bind;
}

export type MatmulTile = 32 | 64 | 128;

function env(name: string): string | undefined {
  const p = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return p?.env?.[name] || undefined;
}

function envChoice<T extends number>(name: string, allowed: readonly T[]): T | undefined {
  const v = env(name);
  if (v === undefined) return undefined;
  if (!allowed.includes(Number(v) as T)) throw new Error(`${name}=${v}: must be one of ${allowed.join(', ')}`);
  return Number(v) as T;
}

/**
 * The output tile edge used for an (M,N) product unless told: KILN_MATMUL_TILE if set;
 * else 128 when that still gives TILE128_MIN_WORKGROUPS workgroups (large products:
 * M*N >= ~4M), 64 when that gives 128, else 32. A function of the shape (and the
 * environment) alone, so the buffer plan's scratch sizes agree with the kernels.
 */
export function matmulTile(M: number, N: number): MatmulTile {
  const forced = envChoice('KILN_MATMUL_TILE', [32, 64, 128] as const);
  if (forced) return forced;
  if (ceilDiv(M, 128) * ceilDiv(N, 128) >= TILE128_MIN_WORKGROUPS) return 128;
  return ceilDiv(M, 64) * ceilDiv(N, 64) >= 128 ? 64 : 32;
}

/** Workgroup memory of the 128 tile with K step tileK: two copies of a 128 x tileK tile of each operand. */
export function matmul128WorkgroupBytes(tileK: number): number {
  return 2 * 2 * 128 * tileK * 4;
}

/**
 * The 128 tile's K step on a device with maxWorkgroupStorage bytes of workgroup memory:
 * `want`, else KILN_MATMUL_TILE_K, else 16; 8 where that does not fit (a 16 KiB device).
 */
export function matmulTileK(maxWorkgroupStorage: number, want?: 8 | 16): 8 | 16 {
  const k = want ?? envChoice('KILN_MATMUL_TILE_K', [8, 16] as const) ?? 16;
  return matmul128WorkgroupBytes(k) <= maxWorkgroupStorage ? k : 8;
}

/** How many K ranges an (M,N,K) product is split into when given scratch (1: no split). A function of the shape alone, so results are reproducible. */
export function matmulSplits(M: number, N: number, K: number, tile: MatmulTile = matmulTile(M, N)): number {
  const tiles = ceilDiv(M, tile) * ceilDiv(N, tile);
  let s = Math.min(MAX_SPLITS, Math.floor(SPLIT_TARGET_WORKGROUPS / tiles), Math.floor(K / MIN_K_CHUNK));
  // Keep the scratch (s partial products) within 64 MiB.
  s = Math.min(s, Math.floor((64 << 20) / (M * N * 4)));
  if (s <= 1) return 1;
  // Whole TILE_K steps per layer (also whole steps of the 128 tile's 8 or 16); recount layers after rounding.
  return ceilDiv(K, kChunk(K, s));
}

function kChunk(K: number, splits: number): number {
  return ceilDiv(ceilDiv(K, splits), TILE_K) * TILE_K;
}

/** Scratch bytes `matmul` uses to split K for this shape (0: it does not split). */
export function matmulSplitKBytes(M: number, N: number, K: number, tile: MatmulTile = matmulTile(M, N)): number {
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
  if (tile !== 32 && tile !== 64 && tile !== 128) throw new Error(`matmul: tile=${tile} must be 32, 64 or 128`);
  const big = tile === 128;
  const wg = big ? 16 : tile / 4;
  // vec4 loads need the operand's contiguous dimension to be a multiple of 4 (and 16-byte
  // aligned bindings, which 256-byte tensor offsets give).
  const a4 = (transA ? M : K) % 4 === 0;
  const b4 = (transB ? K : N) % 4 === 0;
  const shader = big ? SHADER_8X8 : SHADER;
  const entry = shader; // each file's one tiled entry point is named after it
  const switches = [...(a4 ? ['a4'] : []), ...(b4 ? ['b4'] : [])];
  const gelu = `${o.geluA ? '_gelu' : ''}${o.geluGradOf ? '_dgelu' : ''}`;
  const label = `${entry}_a${a4 ? 4 : 1}_b${b4 ? 4 : 1}${gelu}`;
  const shape = { M, N, K, TRANS_A: +transA, TRANS_B: +transB, WG_X: wg, WG_Y: wg, GELU_A: +!!o.geluA };
  // Every pipeline binds gelu_in (the shader reads it only with GELU_GRAD): b stands in,
  // read-only like it, so it can never alias the output.
  const geluIn = o.geluGradOf ?? b;
  const base = big
    ? { ...shape, TILE_K: matmulTileK(k.device.limits?.maxComputeWorkgroupStorageSize ?? MIN_WORKGROUP_STORAGE, o.tileK), BLOCK: 8, COPIES: 2 }
    : { ...shape, TILE_K };
  const grid: [number, number] = [ceilDiv(N, tile), ceilDiv(M, tile)];
  const splits = o.scratch ? matmulSplits(M, N, K, tile) : 1;
  if (splits === 1) {
    const c = { ...base, ACCUMULATE: +!!o.accumulate, HAS_BIAS: +!!bias, GELU_GRAD: +!!o.geluGradOf };
    return [{ ...k.dispatch(label, { shader, entry, constants: c, switches }, [out, a, b, bias ?? b, geluIn], grid), flops: 2 * M * N * K }];
  }
  const scratch = o.scratch!;
  const need = splits * M * N * 4;
  if (bindBytes(scratch) < need) throw new Error(`matmul: split-K scratch holds ${bindBytes(scratch)} bytes, needs ${need} (matmulSplitKBytes)`);
  // The layers write raw partial products; bias and gelu' apply once, to the sum.
  const c = { ...base, ACCUMULATE: 0, HAS_BIAS: 0, GELU_GRAD: 0, K_CHUNK: kChunk(K, splits) };
  const reduce = { M, N, SPLITS: splits, ACCUMULATE: +!!o.accumulate, HAS_BIAS: +!!bias, GELU_GRAD: +!!o.geluGradOf, WG_X: REDUCE_WG, WG_Y: 1 };
  return [
    { ...k.dispatch(`${label} split-K`, { shader, entry, constants: c, switches }, [scratch, a, b, b, b], [grid[0], grid[1], splits]), flops: 2 * M * N * K },
    k.dispatch(`matmul_splitk_reduce${gelu}`, { shader: SUMS, entry: 'matmul_splitk_reduce', constants: reduce }, [out, scratch, bias ?? scratch, o.geluGradOf ?? scratch], grid1d(M * N, REDUCE_WG)),
  ];
}

// As `matmul`, one invocation per output element and no tiling (benchmark baseline).
export function matmulNaive(k: PipelineCache, out: Bind, a: Bind, b: Bind, bias: Bind | null, o: MatmulOptions): Dispatch[] {
  checkShape(o);
  const { M, N, K } = o;
  const c = { M, N, K, TRANS_A: +!!o.transA, TRANS_B: +!!o.transB, ACCUMULATE: +!!o.accumulate, HAS_BIAS: +!!bias, WG_X: 16, WG_Y: 16 };
  return [k.dispatch('matmul_naive', { shader: NAIVE, entry: 'matmul_naive', constants: c }, [out, a, b, bias ?? b], [ceilDiv(N, 16), ceilDiv(M, 16)])];
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

/** A linear layer whose input is gelu(inp): inp is the GELU's input (fch), the layer c_proj. */
export interface GeluInputOptions {
  geluInput?: boolean;
}

// out is (N,OC) (N = B*T); inp is (N,C); weight is (C,OC); bias is (OC) or null.
// out = inp @ weight + bias (gelu(inp) @ weight + bias with geluInput).
export function matmulForward(
  k: PipelineCache, out: Bind, inp: Bind, weight: Bind, bias: Bind | null, N: number, C: number, OC: number, o: GeluInputOptions = {},
): Dispatch[] {
  return matmul(k, out, inp, weight, bias, { M: N, N: OC, K: C, geluA: o.geluInput });
}

// dinp and inp are (N,C); dweight and weight are (C,OC); dbias is (OC) or null; dout is (N,OC);
// scratch is matmulScratch(N, C, OC).partials bytes (optional, see the top of this file).
// Accumulates: dinp += dout @ weight^T; dweight += inp^T @ dout; dbias += column sums of dout
// (with accumulate: false, dinp = dout @ weight^T; dweight and dbias still accumulate).
// With geluInput (the layer saw gelu(inp)): dinp (+)= gelu'(inp) * (dout @ weight^T), the
// gradient of inp itself, and dweight += gelu(inp)^T @ dout.
export function matmulBackward(
  k: PipelineCache, dinp: Bind, dweight: Bind, dbias: Bind | null, dout: Bind, inp: Bind, weight: Bind,
  N: number, C: number, OC: number, scratch?: Bind, o: InputGradOptions & GeluInputOptions = {},
): Dispatch[] {
  const out: Dispatch[] = [];
  const gelu = !!o.geluInput;
  if (dbias) out.push(...biasBackward(k, dbias, dout, N, OC, scratch));
  out.push(...matmul(k, dinp, dout, weight, null, { M: N, N: C, K: OC, transB: true, accumulate: o.accumulate ?? true, scratch, geluGradOf: gelu ? inp : undefined }));
  out.push(...matmul(k, dweight, inp, dout, null, { M: C, N: OC, K: N, transA: true, accumulate: true, scratch, geluA: gelu }));
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
    return [k.dispatch('matmul_colsum', { shader: SUMS, entry: 'matmul_colsum', constants: c }, [dbias, dout], [colGroups, 1])];
  }
  const partial = { ...sum, ROW_CHUNK: BIAS_ROW_CHUNK, ACCUMULATE: 0 };
  const reduce = { M: 1, N: OC, SPLITS: chunks, ACCUMULATE: 1, HAS_BIAS: 0, WG_X: REDUCE_WG, WG_Y: 1 };
  return [
    k.dispatch('matmul_colsum partial', { shader: SUMS, entry: 'matmul_colsum', constants: partial }, [scratch, dout], [colGroups, chunks]),
    k.dispatch('matmul_colsum reduce', { shader: SUMS, entry: 'matmul_splitk_reduce', constants: reduce }, [dbias, scratch, scratch, scratch], grid1d(OC, REDUCE_WG)),
  ];
}
